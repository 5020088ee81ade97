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

/// The group the shared-cache tests' two users belong to (besides their
/// own groups), and the users, as `.ci/run` creates them.
pub const SHARE_GROUP: &str = "keelshare";
/// The two members of [`SHARE_GROUP`].
pub const SHARE_MEMBERS: [&str; 2] = ["keelgroup1", "keelgroup2"];

/// Two ordinary users who share a group, and that group's id.
#[derive(Debug, Clone, Copy)]
pub struct GroupMembers {
    /// The id of [`SHARE_GROUP`].
    pub gid: u32,
    /// [`SHARE_MEMBERS`], each with its own primary group.
    pub users: [User; 2],
}

/// [`SHARE_MEMBERS`] in [`SHARE_GROUP`], created on first use when root
/// runs the tests (`groupadd`, `useradd`, `usermod -aG`: idempotent, under
/// the same lock across test processes as [`configured_unprivileged_user`]).
/// Fails the test, never skips, when not root: only root can switch users,
/// and root alone ignores the file modes these tests are about.
pub fn group_members() -> GroupMembers {
    assert!(
        running_as_root(),
        "the shared-cache tests run keel as `{}` and `{}`, which only root can do",
        SHARE_MEMBERS[0],
        SHARE_MEMBERS[1]
    );
    static CREATED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    CREATED.get_or_init(create_group_members);
    let group = run(Command::new("getent").args(["group", SHARE_GROUP]));
    assert_success(&group);
    let gid = stdout(&group)
        .split(':')
        .nth(2)
        .and_then(|gid| gid.trim().parse().ok())
        .expect("a numeric gid from getent");
    GroupMembers {
        gid,
        users: SHARE_MEMBERS.map(user_named),
    }
}

fn create_group_members() {
    let lock = fs_err::File::create(std::env::temp_dir().join("keel-test-useradd.lock"))
        .expect("create the useradd lock file");
    lock.file().lock().expect("lock the useradd lock file");
    let must = |command: &mut Command| {
        let output = run(command);
        assert!(
            output.status.success(),
            "could not create the shared-cache test users ({command:?}): {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    if !run(Command::new("getent").args(["group", SHARE_GROUP]))
        .status
        .success()
    {
        must(Command::new("groupadd").arg(SHARE_GROUP));
    }
    for name in SHARE_MEMBERS {
        if !user_exists(name) {
            must(Command::new("useradd").args([
                "--create-home",
                "--user-group",
                "--shell",
                "/bin/bash",
                name,
            ]));
        }
        let groups = run(Command::new("id").args(["-nG", name]));
        if !stdout(&groups).split_whitespace().any(|g| g == SHARE_GROUP) {
            must(Command::new("usermod").args(["-aG", SHARE_GROUP, name]));
        }
    }
}

/// `command` as `user` with the user's supplementary groups (`setpriv
/// --init-groups`: the shared group among them) and the umask `umask`,
/// `HOME` pointing nowhere. Not run: the caller runs or spawns it.
pub fn as_member(command: &Command, user: User, umask: u32) -> Command {
    let mut wrapped = Command::new("setpriv");
    wrapped
        .arg(format!("--reuid={}", user.uid))
        .arg(format!("--regid={}", user.gid))
        .arg("--init-groups")
        .args([
            "--",
            "sh",
            "-c",
            &format!("umask {umask:03o} && exec \"$@\""),
            "sh",
        ])
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped.env("HOME", "/nonexistent");
    wrapped
}
