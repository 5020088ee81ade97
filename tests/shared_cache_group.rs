//! Caches several users share: a setgid, group-writable cache directory
//! (`root:keelshare`, mode `2775`) that two ordinary users, `keelgroup1` and
//! `keelgroup2` (each with its own primary group, both in `keelshare`), use
//! with the umask `002`, as a team shares a cache on one machine.
//!
//! Every keel process runs as one of those users (root ignores file modes,
//! so a permission test run as root proves nothing): these tests fail,
//! never skip, when not run as root, which alone can switch users. The test
//! support creates the users and the group on first use (`.ci/run` does
//! too).
//!
//! What they prove: everything keel makes in such a cache has the cache's
//! group and is group-readable and -writable; the second user installs from
//! what the first unpacked without unpacking again or warning; the second
//! prunes and cleans what the first made; a lock file the second user may
//! not write still locks (read-only `flock`); both users installing,
//! pruning and cleaning at once never leave a broken environment.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::time_limit::output_with_limit;
use common::unprivileged::{GroupMembers, User, as_member, group_members};
use common::*;

/// The umask of a team sharing files through a group.
const GROUP_UMASK: u32 = 0o002;

/// How long one keel command may take before it counts as hung.
const LIMIT: Duration = Duration::from_secs(180);

/// A sandbox (readable by everyone) whose cache is a setgid directory of
/// root's in the shared group, and a home directory per member.
struct SharedCache {
    sandbox: Sandbox,
    members: GroupMembers,
}

impl SharedCache {
    fn new() -> Self {
        let members = group_members();
        let sandbox = Sandbox::new();
        chmod(sandbox.path(), 0o755);
        fs_err::create_dir(&sandbox.cache).expect("mkdir cache");
        std::os::unix::fs::chown(&sandbox.cache, Some(0), Some(members.gid)).expect("chown");
        chmod(&sandbox.cache, 0o2775);
        for (index, user) in members.users.iter().enumerate() {
            let home = sandbox.path().join(format!("member{index}"));
            fs_err::create_dir(&home).expect("mkdir home");
            std::os::unix::fs::chown(&home, Some(user.uid), Some(user.gid)).expect("chown");
        }
        SharedCache { sandbox, members }
    }

    fn cache(&self) -> &Path {
        &self.sandbox.cache
    }

    fn user(&self, member: usize) -> User {
        self.members.users[member]
    }

    /// Runs `command` as `member` with the group umask, under a time limit.
    fn run(&self, member: usize, command: &Command, what: &str) -> Output {
        output_with_limit(
            &mut as_member(command, self.user(member), GROUP_UMASK),
            LIMIT,
            what,
        )
    }

    /// A virtual environment of `member`'s own, made by that user with the
    /// system's Python (the test runner's may live under `/root`).
    fn venv(&self, member: usize, name: &str) -> PathBuf {
        let path = self.sandbox.path().join(format!("member{member}/{name}"));
        let mut command = Command::new("/usr/bin/python3");
        command.args(["-m", "venv", "--without-pip"]).arg(&path);
        assert_success(&self.run(member, &command, "python3 -m venv"));
        path
    }

    /// `keel install --venv VENV --cache-dir CACHE` of every bundled
    /// distribution, then `extra`, as `member`.
    fn install(&self, member: usize, venv: &Path, extra: &[&str]) -> Output {
        let mut command = keel_install(venv, self.cache());
        command
            .args(self.sandbox.wheels(&ALL_BUNDLED_DISTRIBUTIONS))
            .args(extra);
        self.run(member, &command, "keel install")
    }

    /// `keel cache ARGS --cache-dir CACHE` as `member`.
    fn cache_command(&self, member: usize, args: &[&str]) -> Output {
        self.run(member, &cache_command(self.cache(), args), "keel cache")
    }

    /// `keel verify --venv VENV` as `member`.
    fn verify(&self, member: usize, venv: &Path) -> Output {
        let mut command = keel();
        command.arg("verify").arg("--venv").arg(venv);
        self.run(member, &command, "keel verify")
    }

    /// Every archive directory in the cache (`archives-v1/<name>/<id>`).
    fn archive_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        let archives = self.cache().join("archives-v1");
        for name in fs_err::read_dir(&archives).into_iter().flatten() {
            let name = name.expect("entry").path();
            for id in fs_err::read_dir(&name).expect("read_dir") {
                dirs.push(id.expect("entry").path());
            }
        }
        dirs.sort();
        dirs
    }
}

/// Asserts that everything under the cache has the shared group, that every
/// directory is setgid, and that every directory and file is group-readable
/// and -writable (and each directory group-searchable).
#[track_caller]
fn assert_shared_by_the_group(cache: &Path, gid: u32) {
    let mut checked = 0;
    for entry in walkdir::WalkDir::new(cache).min_depth(1) {
        let entry = entry.expect("walk the cache");
        let metadata = entry.metadata().expect("stat");
        if entry.file_type().is_symlink() {
            continue;
        }
        let mode = metadata.permissions().mode();
        let path = entry.path().display();
        assert_eq!(metadata.gid(), gid, "{path} is not in the shared group");
        if metadata.is_dir() {
            assert_eq!(mode & 0o2070, 0o2070, "{path}: mode {mode:o}");
        } else {
            assert_eq!(mode & 0o060, 0o060, "{path}: mode {mode:o}");
        }
        checked += 1;
    }
    assert!(
        checked > 20,
        "only {checked} entries in {}",
        cache.display()
    );
}

/// Asserts the installed code runs under `member`'s Python.
#[track_caller]
fn assert_runs(shared: &SharedCache, member: usize, venv: &Path) {
    let hello = shared.run(
        member,
        &Command::new(venv.join("bin/keel-hello")),
        "keel-hello",
    );
    assert_success(&hello);
    assert_eq!(stdout(&hello).trim(), "hello from keel_demo_hello 1.0.0");
    let mut import = Command::new(venv.join("bin/python"));
    import.args([
        "-c",
        "import keel_demo_many, keel_demo_data, keel_demo_hello.sub.util; print('ok')",
    ]);
    let imported = shared.run(member, &import, "python -c import");
    assert_success(&imported);
    assert_eq!(stdout(&imported).trim(), "ok");
    assert_success(&shared.verify(member, venv));
}

#[test]
fn a_member_installs_from_what_another_unpacked_without_unpacking_again() {
    let shared = SharedCache::new();
    let first = shared.venv(0, "venv");
    let output = shared.install(0, &first, &[]);
    assert_success_without_warnings(&output);
    assert_contains(&stderr(&output), "Unpacked 6 packages into the cache");
    assert_shared_by_the_group(shared.cache(), shared.members.gid);
    let archives = shared.archive_dirs();
    assert_eq!(archives.len(), 6, "{archives:?}");

    let second = shared.venv(1, "venv");
    let output = shared.install(1, &second, &[]);
    // No "damaged" warning, nothing unpacked: the first user's pointers,
    // manifests and archives served the second.
    assert_success_without_warnings(&output);
    assert!(!stderr(&output).contains("Unpacked"), "{}", stderr(&output));
    assert_eq!(shared.archive_dirs(), archives);
    assert_runs(&shared, 1, &second);
    // What the second user wrote (restamped manifests, its probe of the
    // interpreter) is the group's too.
    assert_shared_by_the_group(shared.cache(), shared.members.gid);
}

#[test]
fn a_member_prunes_and_cleans_what_another_made() {
    let shared = SharedCache::new();
    let first = shared.venv(0, "venv");
    assert_success_without_warnings(&shared.install(0, &first, &[]));
    let archives = shared.archive_dirs();
    // The first user leaves a killed unpack behind and damages one archive
    // (a file gone from it).
    let killed = shared.cache().join("tmp/unpack-killed");
    let many = archives
        .iter()
        .find(|dir| dir.starts_with(shared.cache().join("archives-v1/keel-demo-many")))
        .expect("the archive of keel-demo-many")
        .clone();
    let mut vandal = Command::new("sh");
    vandal
        .arg("-c")
        .arg("mkdir -p \"$1/tree/pkg\" && echo x > \"$1/tree/pkg/mod.py\" && rm \"$2\"")
        .arg("sh")
        .arg(&killed)
        .arg(many.join("tree/keel_demo_many/__init__.py"));
    assert_success(&shared.run(0, &vandal, "sh"));

    let output = shared.cache_command(1, &["prune"]);
    assert_success(&output);
    assert!(!killed.exists(), "the killed unpack survived the prune");
    let left: Vec<PathBuf> = archives.iter().filter(|d| **d != many).cloned().collect();
    // The intact archives of the first user stay: the second could read
    // their pointers and manifests.
    assert_eq!(shared.archive_dirs(), left, "{}", stderr(&output));

    let second = shared.venv(1, "venv");
    let output = shared.install(1, &second, &[]);
    assert_success_without_warnings(&output);
    assert_contains(&stderr(&output), "Unpacked 1 package into the cache");
    assert_runs(&shared, 1, &second);

    // The cache holds what both made; the second user cleans it all. The
    // directory itself stays, with its group and setgid bit.
    assert_success(&shared.cache_command(1, &["clean"]));
    assert_eq!(names_in(shared.cache()), Vec::<String>::new());
    let metadata = fs_err::metadata(shared.cache()).expect("the cache directory stays");
    assert_eq!(metadata.gid(), shared.members.gid);
    assert_eq!(metadata.permissions().mode() & 0o7777, 0o2775);
    // And the first user's environment still works: it owns its files.
    assert_runs(&shared, 0, &first);
}

#[test]
fn a_lock_file_another_member_cannot_write_still_locks() {
    let shared = SharedCache::new();
    // The first user made the lock files with the umask 022: `rw-r--r--`,
    // not writable by the second.
    let mut touch = Command::new("sh");
    touch
        .arg("-c")
        .arg("umask 022 && touch \"$1/.lock\" \"$1/.turnstile\"")
        .arg("sh")
        .arg(shared.cache());
    assert_success(&shared.run(0, &touch, "touch"));
    let first = shared.venv(0, "venv");
    assert_success_without_warnings(&shared.install(0, &first, &[]));

    let second = shared.venv(1, "venv");
    let output = shared.install(1, &second, &[]);
    assert_success_without_warnings(&output);
    assert!(!stderr(&output).contains("Unpacked"), "{}", stderr(&output));
    assert_runs(&shared, 1, &second);
    // Exclusive locks too: a prune and a repair take them read-only.
    assert_success(&shared.cache_command(1, &["prune"]));
    assert_success(&shared.cache_command(1, &["verify", "--repair"]));
    for lock in [".lock", ".turnstile"] {
        let metadata = fs_err::metadata(shared.cache().join(lock)).expect("lock file");
        assert_eq!(metadata.uid(), shared.user(0).uid, "{lock} was replaced");
        assert_eq!(metadata.permissions().mode() & 0o777, 0o644);
    }
}

#[test]
fn a_cache_directory_a_member_cannot_write_is_read_only_for_installs_and_named_by_maintenance() {
    let shared = SharedCache::new();
    // Root's, not the group's to write, and no lock file in it yet.
    chmod(shared.cache(), 0o755);
    let venv = shared.venv(1, "venv");
    let output = shared.install(1, &venv, &[]);
    assert_success(&output);
    assert_contains(&stderr(&output), "cannot write the cache");
    assert_success(&shared.verify(1, &venv));
    assert!(
        !shared.cache().join(".turnstile").exists(),
        "a lock file was made"
    );
    // Maintenance needs to write: its error names the lock file.
    let prune = shared.cache_command(1, &["prune"]);
    assert!(!prune.status.success(), "{}", stderr(&prune));
    assert_contains(&stderr(&prune), "cannot create the lock file");
    let lock = shared.cache().join(".turnstile");
    assert_contains(&stderr(&prune), &lock.display().to_string());
}

/// One member's rounds: install (again) into its own environment, prove
/// the environment intact whatever the install's outcome, then prune (the
/// first member) or clean (the second) the shared cache.
fn rounds(shared: &SharedCache, member: usize, venv: &Path, rounds: usize) {
    let maintenance = if member == 0 { "prune" } else { "clean" };
    for round in 0..rounds {
        let output = shared.install(member, venv, &["--reinstall"]);
        if !output.status.success() {
            // A clear error, never a panic or a silent failure.
            assert_contains(&stderr(&output), "error:");
            assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
        }
        let verified = shared.verify(member, venv);
        assert!(
            verified.status.success(),
            "member {member}, round {round}: the environment is broken after an install \
             ({:?}):\n{}\n{}\n{}",
            output.status,
            stderr(&output),
            stdout(&verified),
            stderr(&verified)
        );
        let output = shared.cache_command(member, &[maintenance]);
        assert_success(&output);
    }
}

#[test]
fn two_members_install_prune_and_clean_one_cache_at_once() {
    let shared = SharedCache::new();
    let venvs = [shared.venv(0, "venv"), shared.venv(1, "venv")];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|member| {
                let shared = &shared;
                let venv = &venvs[member];
                scope.spawn(move || rounds(shared, member, venv, 4))
            })
            .collect();
        for handle in handles {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
    // Both environments work, and a last install by each member from what
    // is left is intact too.
    for (member, venv) in venvs.iter().enumerate() {
        assert_success_without_warnings(&shared.install(member, venv, &["--reinstall"]));
        assert_runs(&shared, member, venv);
    }
    assert_shared_by_the_group(shared.cache(), shared.members.gid);
}
