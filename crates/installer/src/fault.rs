//! Fault injection for the crash tests, on the `fail` crate.
//!
//! With the `fault-injection` cargo feature (never in release builds),
//! every file system mutation of a commit, rollback or recovery passes the
//! fail point `keel::mutation`. Configured through the `FAILPOINTS`
//! environment variable, e.g. `FAILPOINTS='keel::mutation=4*off->return'`,
//! the fifth mutation aborts the process: no destructors and no clean-up,
//! as under `kill -9`. Without the feature the fail point compiles to
//! nothing.

/// Reads `FAILPOINTS` once; call at the start of the program.
pub fn enable_from_env() {
    #[cfg(feature = "fault-injection")]
    std::mem::forget(fail::FailScenario::setup());
}

/// Marks a file system mutation.
#[inline(always)]
pub(crate) fn mutation() {
    #[cfg(feature = "fault-injection")]
    fail::fail_point!("keel::mutation", |_| std::process::abort());
}
