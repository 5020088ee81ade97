//! Caches a team or a fleet shares: a read-only cache another account made
//! (`--shared-cache`, `KEEL_SHARED_CACHE`), a read-only bind mount, a
//! `--cache-dir` keel cannot write, `--no-cache`, `keel cache add`, and
//! wheels rebuilt in place. keel runs as an ordinary user wherever a file
//! mode must bite (root ignores them).

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::unprivileged::{User, run_as, unprivileged_user};
use common::*;
use keel_fixtures::{WheelBuilder, bundled};
use keel_wheel::{HashAlgorithm, RecordHash};

/// The wheels every scenario installs.
const WHEELS: [&str; 4] = [
    bundled::HELLO_V2,
    bundled::DATA,
    bundled::MANY,
    bundled::NS_A,
];

/// A sandbox where root made a cache by installing [`WHEELS`] (`shared/`,
/// root's, readable by all, writable by none but root), and a directory the
/// ordinary user owns (`home/`) for its venvs and its own cache.
struct Shared {
    sandbox: Sandbox,
    shared: PathBuf,
    home: PathBuf,
    user: User,
}

impl Shared {
    fn new() -> Self {
        let user = unprivileged_user();
        let sandbox = Sandbox::new();
        chmod(sandbox.path(), 0o755);
        let shared = sandbox.path().join("shared");
        let venv = sandbox.venv("root-venv");
        let output = run(keel_install(&venv, &shared).args(sandbox.wheels(&WHEELS)));
        assert_success_without_warnings(&output);
        let home = sandbox.path().join("home");
        fs_err::create_dir(&home).expect("mkdir home");
        std::os::unix::fs::chown(&home, Some(user.uid), Some(user.gid)).expect("chown home");
        Shared {
            sandbox,
            shared,
            home,
            user,
        }
    }

    /// A fresh venv the user made, in its home.
    fn user_venv(&self, name: &str) -> PathBuf {
        let venv = self.home.join(name);
        let mut command = Command::new("python3");
        command.args(["-m", "venv", "--without-pip"]).arg(&venv);
        let output = run_as(&mut command, self.user);
        assert_success_of(&output, "python3 -m venv as the user");
        venv
    }

    /// The user's own (writable) cache.
    fn own_cache(&self) -> PathBuf {
        self.home.join("cache")
    }

    /// `keel install` of [`WHEELS`] as the user, into `venv`, with its own
    /// cache and `args`.
    fn install_as_user(&self, venv: &Path, args: &[&str]) -> Output {
        let mut command = keel_install(venv, &self.own_cache());
        command.args(args).args(self.sandbox.wheels(&WHEELS));
        run_as(&mut command, self.user)
    }

    /// Archives unpacked into the user's own cache, by distribution.
    fn own_archives(&self) -> Vec<String> {
        archives_in(&self.own_cache())
    }
}

/// `<name>/<id>` of every archive of the cache at `root`.
fn archives_in(root: &Path) -> Vec<String> {
    let archives = root.join("archives-v1");
    if !archives.exists() {
        return Vec::new();
    }
    let mut found = Vec::new();
    for name in names_in(&archives) {
        for id in names_in(&archives.join(&name)) {
            found.push(format!("{name}/{id}"));
        }
    }
    found
}

/// What an install of [`WHEELS`] must leave: every file matching RECORD,
/// `keel verify` content (as the user), and the code running.
#[track_caller]
fn assert_installed(venv: &Path, user: User) {
    assert_environment_matches_record(venv);
    let mut verify = keel();
    verify.arg("verify").arg("--venv").arg(venv);
    assert_success(&run_as(&mut verify, user));
    assert_contains(&script(venv, "keel-hello", &[]), "2.0.0");
    python(
        venv,
        "import keel_demo_many.alpha.mod_000, keel_demo_data, keel_demo_ns.a",
    );
}

#[test]
fn an_ordinary_user_installs_from_a_root_owned_shared_cache_without_writing_to_it() {
    let shared = Shared::new();
    let before = snapshot(&shared.shared);
    let venv = shared.user_venv("venv");

    let output = shared.install_as_user(&venv, &["--shared-cache", path_str(&shared.shared)]);

    assert_success_without_warnings(&output);
    assert!(!stderr(&output).contains("Unpacked"), "{}", stderr(&output));
    assert_eq!(shared.own_archives(), Vec::<String>::new());
    assert_installed(&venv, shared.user);
    assert_same_tree(&before, &snapshot(&shared.shared));
}

#[test]
fn keel_shared_cache_names_the_layers_as_the_flag_does() {
    let shared = Shared::new();
    let venv = shared.user_venv("venv");
    let layers = format!(
        "{}:{}",
        shared.home.join("absent").display(),
        shared.shared.display()
    );

    let mut command = keel_install(&venv, &shared.own_cache());
    command
        .env("KEEL_SHARED_CACHE", layers)
        .args(shared.sandbox.wheels(&WHEELS));
    let output = run_as(&mut command, shared.user);

    assert_success_without_warnings(&output);
    assert_eq!(shared.own_archives(), Vec::<String>::new());
    assert_installed(&venv, shared.user);
}

#[test]
fn files_deleted_from_a_shared_cache_are_unpacked_once_into_the_writable_cache() {
    let shared = Shared::new();
    // tmpwatch on the shared cache: a module and a whole manifest gone.
    let hello = only_archive(&shared.shared, "keel-demo-hello");
    fs_err::remove_file(hello.join("tree/keel_demo_hello/__init__.py")).expect("delete");
    let many = only_archive(&shared.shared, "keel-demo-many");
    fs_err::remove_file(many.join(common::MANIFEST)).expect("delete");
    let before = snapshot(&shared.shared);

    let venv = shared.user_venv("first");
    let output = shared.install_as_user(&venv, &["--shared-cache", path_str(&shared.shared)]);

    assert_success(&output);
    let warned = warnings(&output);
    assert_eq!(warned.len(), 2, "{}", stderr(&output));
    assert!(
        warned.iter().any(|w| w.contains("keel_demo_hello")),
        "{warned:?}"
    );
    assert!(
        warned.iter().any(|w| w.contains("keel_demo_many")),
        "{warned:?}"
    );
    let own: Vec<String> = shared
        .own_archives()
        .iter()
        .map(|id| id.split('/').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(own, ["keel-demo-hello", "keel-demo-many"]);
    assert_installed(&venv, shared.user);
    assert_same_tree(&before, &snapshot(&shared.shared));

    // The next install knows: no warning, nothing unpacked again.
    let again = shared.user_venv("second");
    let output = shared.install_as_user(&again, &["--shared-cache", path_str(&shared.shared)]);
    assert_success_without_warnings(&output);
    assert_eq!(shared.own_archives().len(), 2);
    assert_installed(&again, shared.user);
    assert_same_tree(&before, &snapshot(&shared.shared));
}

/// A read-only bind mount of a directory, unmounted on drop.
struct ReadOnlyMount {
    at: PathBuf,
}

impl ReadOnlyMount {
    #[track_caller]
    fn of(source: &Path, at: &Path) -> Self {
        fs_err::create_dir_all(at).expect("mkdir mount point");
        let bind = run(Command::new("mount").arg("--bind").arg(source).arg(at));
        assert_success_of(&bind, "mount --bind (the test needs root)");
        let mount = ReadOnlyMount { at: at.to_owned() };
        let remount = run(Command::new("mount")
            .args(["-o", "remount,ro,bind"])
            .arg(at));
        assert_success_of(&remount, "mount -o remount,ro,bind");
        mount
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.at).status();
    }
}

#[test]
fn a_read_only_bind_mount_serves_root_and_an_ordinary_user_even_when_damaged() {
    let shared = Shared::new();
    let hello = only_archive(&shared.shared, "keel-demo-hello");
    fs_err::remove_file(hello.join("tree/keel_demo_hello/__init__.py")).expect("delete");
    let before = snapshot(&shared.shared);
    let mount = ReadOnlyMount::of(&shared.shared, &shared.sandbox.path().join("ro"));
    let layer = path_str(&mount.at);

    // Root ignores modes but not a read-only mount: any write there fails.
    let root_venv = shared.sandbox.venv("root-from-ro");
    let root_cache = shared.sandbox.path().join("root-cache");
    let mut command = keel_install(&root_venv, &root_cache);
    command
        .args(["--shared-cache", layer])
        .args(shared.sandbox.wheels(&WHEELS));
    let output = run(&mut command);
    assert_success(&output);
    assert_eq!(warnings(&output).len(), 1, "{}", stderr(&output));
    assert_eq!(archives_in(&root_cache).len(), 1);
    assert_installed(&root_venv, shared.user);

    let venv = shared.user_venv("venv");
    let output = shared.install_as_user(&venv, &["--shared-cache", layer]);
    assert_success(&output);
    assert_eq!(shared.own_archives().len(), 1);
    assert_installed(&venv, shared.user);

    drop(mount);
    assert_same_tree(&before, &snapshot(&shared.shared));
}

#[test]
fn a_cache_dir_keel_cannot_write_is_read_with_a_note_instead_of_failing() {
    let shared = Shared::new();
    let before = snapshot(&shared.shared);
    let venv = shared.user_venv("venv");
    // A wheel the root cache does not hold: extracted for this install only.
    let extra = shared.sandbox.wheel(bundled::LEGACY);

    let mut command = keel_install(&venv, &shared.shared);
    command.args(shared.sandbox.wheels(&WHEELS)).arg(&extra);
    let output = run_as(&mut command, shared.user);

    assert_success(&output);
    let warned = warnings(&output);
    assert_eq!(warned.len(), 1, "{}", stderr(&output));
    assert_contains(&warned[0], "cannot write the cache");
    assert_contains(&warned[0], path_str(&shared.shared));
    assert_installed(&venv, shared.user);
    python(&venv, "import keel_demo_legacy");
    assert_eq!(leftover_transactions(&venv), Vec::<String>::new());
    assert_same_tree(&before, &snapshot(&shared.shared));
}

#[test]
fn no_cache_installs_straight_from_the_wheels_and_leaves_no_cache() {
    let shared = Shared::new();
    for (name, how) in [("flag", None), ("variable", Some("1"))] {
        let venv = shared.user_venv(name);
        let mut command = keel_install(&venv, &shared.own_cache());
        match how {
            None => command.arg("--no-cache"),
            Some(value) => command.env("KEEL_NO_CACHE", value),
        };
        command.args(shared.sandbox.wheels(&WHEELS));
        let output = run_as(&mut command, shared.user);

        assert_success_without_warnings(&output);
        assert!(
            !shared.own_cache().exists(),
            "--no-cache ({name}) made a cache"
        );
        assert_installed(&venv, shared.user);
        assert_eq!(leftover_transactions(&venv), Vec::<String>::new());
        assert!(!venv.join(".keel").exists(), "{name}: .keel left behind");
    }
}

#[test]
fn symlinks_into_a_scratch_cache_are_refused_before_anything_changes() {
    let shared = Shared::new();
    let venv = shared.user_venv("venv");
    let before = env_snapshot(&venv);
    let own = shared.own_cache();
    // --no-cache, then the root-owned cache as the (unwritable) --cache-dir.
    for (cache, args) in [(&own, &["--no-cache"][..]), (&shared.shared, &[])] {
        let mut command = keel_install(&venv, cache);
        command
            .args(["--link-mode", "symlink"])
            .args(args)
            .args(shared.sandbox.wheels(&WHEELS));
        let output = run_as(&mut command, shared.user);
        assert_exit(&output, 1);
        assert_contains(
            &stderr(&output),
            "--link-mode symlink needs a writable cache",
        );
        assert_same_tree(&before, &env_snapshot(&venv));
    }
}

#[test]
fn cache_add_seeds_a_cache_that_installs_then_unpack_nothing_from() {
    let shared = Shared::new();
    let seeded = shared.sandbox.path().join("seeded");

    let added = run(cache_command(&seeded, &["add"]).args(shared.sandbox.wheels(&WHEELS)));
    assert_success_without_warnings(&added);
    assert_contains(&stderr(&added), "Added 4 wheels");
    assert_contains(&stderr(&added), "4 unpacked");
    assert_eq!(archives_in(&seeded).len(), 4);
    let again = run(cache_command(&seeded, &["add"]).args(shared.sandbox.wheels(&WHEELS)));
    assert_contains(&stderr(&again), "4 already there");
    let before = snapshot(&seeded);

    let venv = shared.user_venv("venv");
    let output = shared.install_as_user(&venv, &["--shared-cache", path_str(&seeded)]);

    assert_success_without_warnings(&output);
    assert!(!stderr(&output).contains("Unpacked"), "{}", stderr(&output));
    assert_eq!(shared.own_archives(), Vec::<String>::new());
    assert_installed(&venv, shared.user);
    assert_same_tree(&before, &snapshot(&seeded));
}

#[test]
fn a_copy_of_an_added_cache_serves_a_lock_offline_by_content() {
    let shared = Shared::new();
    let seeded = shared.sandbox.path().join("seeded");
    assert_success(&run(
        cache_command(&seeded, &["add"]).args(shared.sandbox.wheels(&WHEELS))
    ));
    // Published elsewhere: every file has a new inode (and new times).
    let copy = shared.sandbox.path().join("published");
    assert_success(&run(Command::new("cp").arg("-r").arg(&seeded).arg(&copy)));
    let before = snapshot(&copy);
    let lock = shared.sandbox.path().join("pylock.toml");
    fs_err::write(&lock, pylock_of(&shared.sandbox.wheels(&WHEELS))).expect("write lock");

    let venv = shared.user_venv("venv");
    let mut command = keel_install(&venv, &shared.own_cache());
    command
        .arg("-r")
        .arg(&lock)
        .args(["--offline", "--shared-cache", path_str(&copy)]);
    let output = run_as(&mut command, shared.user);

    assert_success_without_warnings(&output);
    assert!(!stderr(&output).contains("Unpacked"), "{}", stderr(&output));
    assert_eq!(shared.own_archives(), Vec::<String>::new());
    assert!(!shared.own_cache().join("downloads-v1").exists());
    assert_installed(&venv, shared.user);
    assert_same_tree(&before, &snapshot(&copy));
}

/// A `pylock.toml` naming each wheel at a URL nothing answers (an install
/// must find them by content, offline).
fn pylock_of(wheels: &[PathBuf]) -> String {
    let mut text = String::from("lock-version = \"1.0\"\ncreated-by = \"keel tests\"\n");
    for wheel in wheels {
        let file_name = wheel.file_name().and_then(|n| n.to_str()).expect("name");
        let filename: keel_wheel::WheelFilename = file_name.parse().expect("wheel name");
        let bytes = fs_err::read(wheel).expect("read wheel");
        let sha256 = RecordHash::of(HashAlgorithm::Sha256, &bytes).hex();
        text.push_str(&format!(
            "\n[[packages]]\nname = \"{}\"\nversion = \"{}\"\n\n[[packages.wheels]]\nname = \"{file_name}\"\nurl = \"http://127.0.0.1:9/{file_name}\"\nsize = {}\nhashes = {{ sha256 = \"{sha256}\" }}\n",
            filename.normalized_name(),
            filename.version,
            bytes.len()
        ));
    }
    text
}

// ---------------------------------------------------------------------------
// Which wheel is this: rebuilt in place
// ---------------------------------------------------------------------------

/// Builds `rebuilt-1.0` whose module says `VALUE = "<value>"` at `dir`, its
/// modification time set to `mtime` (so that a rebuild looks untouched).
fn build_rebuilt(dir: &Path, value: &str, mtime: std::time::SystemTime) -> PathBuf {
    let path = WheelBuilder::new("rebuilt", "1.0")
        .file("rebuilt/__init__.py", format!("VALUE = \"{value}\"\n"))
        .build(dir)
        .expect("build the wheel");
    let file = fs_err::File::options()
        .write(true)
        .open(&path)
        .expect("open the wheel");
    file.set_modified(mtime).expect("restore the mtime");
    path
}

/// The installed module's value.
fn installed_value(venv: &Path) -> String {
    python(venv, "import rebuilt; print(rebuilt.VALUE)")
        .trim()
        .to_owned()
}

/// The old build installed into a fresh venv: the sandbox, the venv, the
/// wheel's directory and its modification time (which a rebuild restores).
struct OldBuild {
    sandbox: Sandbox,
    venv: PathBuf,
    first: PathBuf,
    dir: PathBuf,
    mtime: std::time::SystemTime,
}

fn old_build_installed() -> OldBuild {
    let sandbox = Sandbox::without_wheels("keel-rebuilt-");
    let dir = sandbox.path().join("dist");
    let mtime = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let first = build_rebuilt(&dir, "old", mtime);
    let venv = sandbox.venv("venv");
    assert_success(&run(keel_install(&venv, &sandbox.cache).arg(&first)));
    OldBuild {
        sandbox,
        venv,
        first,
        dir,
        mtime,
    }
}

#[test]
fn a_wheel_rebuilt_in_place_with_size_and_mtime_restored_is_never_served_from_the_old_archive() {
    let OldBuild {
        sandbox,
        venv,
        first,
        dir,
        mtime,
    } = old_build_installed();
    assert_eq!(installed_value(&venv), "old");
    let before = fs_err::metadata(&first).expect("stat");

    let second = build_rebuilt(&dir, "new", mtime);
    let after = fs_err::metadata(&second).expect("stat");
    assert_eq!((before.len(), before.mtime()), (after.len(), after.mtime()));

    for args in [&["--reinstall"][..], &["--reinstall", "--verify"]] {
        let output = run(keel_install(&venv, &sandbox.cache).args(args).arg(&second));
        assert_success_without_warnings(&output);
        assert_eq!(installed_value(&venv), "new", "keel install {args:?}");
    }
}

#[test]
fn verify_hashes_the_wheel_and_catches_an_archive_of_another_build_behind_a_matching_pointer() {
    let OldBuild {
        sandbox,
        venv,
        dir,
        mtime,
        ..
    } = old_build_installed();
    let old_pointer = sandbox.only_pointer("rebuilt");

    // The new build behind the old build's pointer: what no stat can tell
    // (a cache restored from a backup, a file system that reuses inodes).
    let second = build_rebuilt(&dir, "new", mtime);
    let stat = fs_err::metadata(&second).expect("stat");
    let name = second.file_name().and_then(|n| n.to_str()).expect("name");
    let ctime_ns = stat.ctime() * 1_000_000_000 + stat.ctime_nsec();
    let mtime_ns = stat.mtime() * 1_000_000_000 + stat.mtime_nsec();
    let forged = old_pointer.with_file_name(format!(
        "{name}.{}.{mtime_ns}.{ctime_ns}.{}.json",
        stat.len(),
        stat.ino()
    ));
    fs_err::rename(&old_pointer, &forged).expect("forge the pointer");

    let output = run(keel_install(&venv, &sandbox.cache)
        .args(["--reinstall", "--verify"])
        .arg(&second));

    assert_success(&output);
    let warned = warnings(&output);
    assert_eq!(warned.len(), 1, "{}", stderr(&output));
    assert_contains(&warned[0], "another build of the wheel");
    assert_eq!(installed_value(&venv), "new");
    assert_environment_matches_record(&venv);
}

/// The one archive directory of `name` in the cache at `root`.
#[track_caller]
fn only_archive(root: &Path, name: &str) -> PathBuf {
    let dir = root.join("archives-v1").join(name);
    let ids = names_in(&dir);
    assert_eq!(ids.len(), 1, "{ids:?}");
    dir.join(&ids[0])
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}
