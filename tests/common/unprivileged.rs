//! Running commands as an ordinary user, so that file modes apply: root
//! ignores permission bits, so a permission test run as root proves
//! nothing. Such a test fails, never skips, when it has no ordinary user to
//! switch to.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

use super::{assert_success, run, stdout};

/// An ordinary (not root) user, by its ids.
#[derive(Debug, Clone, Copy)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
}

/// Whether this process runs as root (and so ignores file modes, and can
/// switch to another user).
pub fn running_as_root() -> bool {
    fs_err::metadata("/proc/self")
        .expect("stat /proc/self")
        .uid()
        == 0
}

/// The user the tests create when root runs them without
/// `$KEEL_TEST_UNPRIVILEGED_USER` (the one `bash .ci/run` creates too).
pub const DEFAULT_UNPRIVILEGED_USER: &str = "keeltest";

/// The ordinary user the permission tests run keel as: the one named by
/// `$KEEL_TEST_UNPRIVILEGED_USER` if set and not empty; else, when root
/// runs the tests, `keeltest`, created on first use (once per process, and
/// under a lock across test processes), so that a fresh clone's
/// `cargo test` needs nothing run before it. `None` for a non-root run
/// without the variable: such a run cannot switch users.
pub fn configured_unprivileged_user() -> Option<String> {
    if let Some(name) = std::env::var("KEEL_TEST_UNPRIVILEGED_USER")
        .ok()
        .filter(|name| !name.is_empty())
    {
        return Some(name);
    }
    if !running_as_root() {
        return None;
    }
    static CREATED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    CREATED.get_or_init(|| create_user(DEFAULT_UNPRIVILEGED_USER));
    Some(DEFAULT_UNPRIVILEGED_USER.to_string())
}

/// `useradd` (as `.ci/run` does) unless the user exists; two test
/// processes take turns on a lock file.
fn create_user(name: &str) {
    let lock = fs_err::File::create(std::env::temp_dir().join("keel-test-useradd.lock"))
        .expect("create the useradd lock file");
    lock.file().lock().expect("lock the useradd lock file");
    if !user_exists(name) {
        let output = run(Command::new("useradd").args([
            "--create-home",
            "--user-group",
            "--shell",
            "/bin/bash",
            name,
        ]));
        assert!(
            output.status.success(),
            "could not create the unprivileged test user `{name}` (useradd): {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Whether the system has a user of that name.
pub fn user_exists(name: &str) -> bool {
    run(Command::new("id").args(["-u", name])).status.success()
}

/// The ids of the user `name`; fails the test unless there is such a user
/// and it is not root.
#[track_caller]
pub fn user_named(name: &str) -> User {
    let id = |flag: &str| -> u32 {
        let output = run(Command::new("id").arg(flag).arg(name));
        assert_success(&output);
        stdout(&output).trim().parse().expect("numeric id")
    };
    let user = User {
        uid: id("-u"),
        gid: id("-g"),
    };
    assert_ne!(user.uid, 0, "`{name}` must not be root");
    user
}

/// Runs `command` as `user` (which only root can do), with `HOME` pointing
/// nowhere. Root's supplementary groups are dropped when the uid changes.
pub fn run_as(command: &mut Command, user: User) -> Output {
    command
        .uid(user.uid)
        .gid(user.gid)
        .env("HOME", "/nonexistent");
    run(command)
}

/// The unprivileged user `.ci/run` creates (`$KEEL_TEST_UNPRIVILEGED_USER`,
/// which must be set). Fails (never skips) when there is none: a permission
/// test run as root proves nothing.
#[track_caller]
pub fn unprivileged_user() -> User {
    let name = configured_unprivileged_user().unwrap_or_else(|| {
        panic!(
            "KEEL_TEST_UNPRIVILEGED_USER is not set: permission tests must run keel as an \
             ordinary user (root ignores permission bits); run `bash .ci/run`, or create a user \
             and export the variable"
        )
    });
    assert!(
        running_as_root(),
        "permission tests switch to `{name}` for keel, which only root can do"
    );
    user_named(&name)
}
