//! The keel binary built with the `fault-injection` cargo feature, for the
//! crash tests (`tests/crash.rs`, `tests/lock_crash.rs`): fail point
//! `keel::mutation` aborts the process at a chosen file-system mutation.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use super::{keel, keel_built_at, run, stderr};

/// The keel binary built with the `fault-injection` feature, built once per
/// test process (cargo's own lock serializes concurrent builds).
pub fn fault_keel_path() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
            Some(dir) => manifest_dir.join(dir),
            // `<target>/release/keel` (or `<target>/<triple>/release/keel`).
            None => Path::new(env!("CARGO_BIN_EXE_keel"))
                .ancestors()
                .nth(2)
                .expect("target dir")
                .to_path_buf(),
        };
        let target_dir = target.join("fault-injection");
        eprintln!(
            "building keel with --features fault-injection into {}",
            target_dir.display()
        );
        let start = Instant::now();
        let output = run(Command::new(env!("CARGO"))
            .current_dir(manifest_dir)
            .args([
                "build",
                "--release",
                "--features",
                "fault-injection",
                "--bin",
                "keel",
                "--target-dir",
            ])
            .arg(&target_dir)
            .env_remove("FAILPOINTS"));
        assert!(
            output.status.success(),
            "building the fault-injection binary failed:\n{}",
            stderr(&output)
        );
        eprintln!("built in {:.1?}", start.elapsed());
        let binary = target_dir.join("release/keel");
        assert!(binary.is_file(), "{} was not built", binary.display());
        binary
    })
}

/// The fault-injection binary, aborting at mutation number `after + 1`
/// (`None`: no fail point armed).
pub fn fault_keel(after: Option<usize>) -> Command {
    let mut command = keel_built_at(fault_keel_path());
    command.env_remove("KEEL_UNSAFE_NO_FSYNC");
    match after {
        Some(n) => command.env("FAILPOINTS", format!("keel::mutation={n}*off->return")),
        None => command.env_remove("FAILPOINTS"),
    };
    command
}

pub fn normal_keel() -> Command {
    let mut command = keel();
    command
        .env_remove("FAILPOINTS")
        .env_remove("KEEL_UNSAFE_NO_FSYNC");
    command
}
