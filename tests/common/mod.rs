//! Support shared by keel's integration tests: sandboxes with fresh
//! virtual environments, the fixture wheels, the `keel` binary, and checks
//! that an environment matches its RECORD files (by an independent Python
//! script) and that a tree did not change.
//!
//! More specific support lives in submodules: [`pypi`] (the pinned real
//! wheels and pip), [`time_limit`] (children that must end in time),
//! [`ageing`] (old files and age-based cleaners) and [`unprivileged`]
//! (running keel as an ordinary user).
#![allow(dead_code)]

pub mod ageing;
pub mod fault_keel;
pub mod journal;
pub mod lock;
pub mod pypi;
pub mod time_limit;
pub mod unprivileged;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use keel_fixtures::bundled;

/// One wheel of every bundled distribution, all of which one install can
/// take side by side (hello at 1.0.0; its 2.0.0 is the other wheel).
pub const ALL_BUNDLED_DISTRIBUTIONS: [&str; 6] = [
    bundled::HELLO_V1,
    bundled::DATA,
    bundled::MANY,
    bundled::LEGACY,
    bundled::NS_A,
    bundled::NS_B,
];

/// The manifest file of an archive directory in keel's cache.
pub const MANIFEST: &str = "manifest.postcard";

/// A scratch directory holding the fixture wheels, a cache and any number
/// of virtual environments. Removed when dropped.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub wheels: PathBuf,
    pub cache: PathBuf,
}

impl Sandbox {
    /// A sandbox with every bundled fixture wheel built into `wheels/`.
    pub fn new() -> Self {
        let sandbox = Sandbox::without_wheels("keel-test-");
        keel_fixtures::build_bundled(&sandbox.wheels).expect("build fixture wheels");
        sandbox
    }

    /// A sandbox in a temporary directory named `PREFIX…` with no wheels
    /// built: `wheels/` and the (cold) cache do not exist yet.
    pub fn without_wheels(prefix: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("tempdir");
        let wheels = dir.path().join("wheels");
        let cache = dir.path().join("cache");
        Sandbox { dir, wheels, cache }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A fixture wheel by its file name (see `keel_fixtures::bundled`).
    pub fn wheel(&self, name: &str) -> PathBuf {
        self.wheels.join(name)
    }

    /// Fixture wheels by their file names.
    pub fn wheels(&self, names: &[&str]) -> Vec<PathBuf> {
        names.iter().map(|name| self.wheel(name)).collect()
    }

    /// A fresh virtual environment made by `python3 -m venv --without-pip`.
    pub fn venv(&self, name: &str) -> PathBuf {
        let path = self.path().join(name);
        create_venv(&path);
        path
    }

    /// Runs `keel install --venv VENV --cache-dir CACHE ARGS...`.
    pub fn install(&self, venv: &Path, args: &[&dyn AsRef<OsStr>]) -> Output {
        run(keel_install(venv, &self.cache).args(args))
    }

    /// Runs `keel install --venv VENV --cache-dir CACHE WHEELS... EXTRA...`
    /// of wheels by path.
    pub fn install_paths(
        &self,
        venv: &Path,
        wheels: &[impl AsRef<Path>],
        extra: &[&str],
    ) -> Output {
        run(keel_install(venv, &self.cache)
            .args(wheels.iter().map(AsRef::as_ref))
            .args(extra))
    }

    /// Runs `keel install --venv VENV --cache-dir CACHE WHEELS... EXTRA...`
    /// of fixture wheels by file name, then `extra` arguments (`--verify`,
    /// `--link-mode …`).
    /// [`Sandbox::install`], asserting success.
    #[track_caller]
    pub fn install_ok(&self, venv: &Path, args: &[&dyn AsRef<OsStr>]) -> Output {
        let output = self.install(venv, args);
        assert_success(&output);
        output
    }

    /// [`Sandbox::install_bundled`] with no flags, asserting success.
    #[track_caller]
    pub fn install_bundled_ok(&self, venv: &Path, wheels: &[&str]) -> Output {
        let output = self.install_bundled(venv, wheels, &[]);
        assert_success(&output);
        output
    }

    /// [`Sandbox::install_paths`] with no flags, asserting success.
    #[track_caller]
    pub fn install_paths_ok(&self, venv: &Path, wheels: &[PathBuf]) -> Output {
        let output = self.install_paths(venv, wheels, &[]);
        assert_success(&output);
        output
    }

    pub fn install_bundled(&self, venv: &Path, wheels: &[&str], extra: &[&str]) -> Output {
        self.install_paths(venv, &self.wheels(wheels), extra)
    }

    /// Every archive directory in the cache for a normalized distribution name.
    pub fn archives(&self, name: &str) -> Vec<PathBuf> {
        let dir = self.cache.join("archives-v1").join(name);
        let mut found: Vec<PathBuf> = match fs_err::read_dir(&dir) {
            Ok(entries) => entries.map(|e| e.expect("read_dir").path()).collect(),
            Err(_) => Vec::new(),
        };
        found.sort();
        found
    }

    /// The one archive of a distribution (the `tree/` inside it); panics
    /// unless there is exactly one.
    pub fn only_archive_tree(&self, name: &str) -> PathBuf {
        let archives = self.archives(name);
        assert_eq!(
            archives.len(),
            1,
            "expected one archive of {name}, found {archives:?}"
        );
        archives[0].join("tree")
    }

    /// The one pointer file (`pointers-v1/<name>/*.json`) of a distribution
    /// (normalized name); panics unless there is exactly one.
    pub fn only_pointer(&self, name: &str) -> PathBuf {
        let dir = self.cache.join("pointers-v1").join(name);
        let pointers: Vec<PathBuf> = fs_err::read_dir(&dir)
            .expect("pointer dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        assert_eq!(pointers.len(), 1, "{pointers:?}");
        pointers[0].clone()
    }
}

pub fn create_venv(path: &Path) {
    let output = run(Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(path));
    assert!(
        output.status.success(),
        "python3 -m venv failed: {}",
        stderr(&output)
    );
}

/// The `keel` binary under test.
pub fn keel() -> Command {
    keel_built_at(Path::new(env!("CARGO_BIN_EXE_keel")))
}

/// A keel binary (the one under test, or another build of it), without the
/// environment variables that would change its defaults or its output.
pub fn keel_built_at(binary: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .env_remove("VIRTUAL_ENV")
        .env_remove("KEEL_CACHE_DIR")
        .env_remove("KEEL_LOG");
    command
}

/// `KEEL SUBCOMMAND --venv VENV --cache-dir CACHE` (for `install` and
/// `sync`), wheels and options to be added; `keel` is [`keel`] or another
/// build ([`keel_built_at`]).
pub fn keel_with_venv_and_cache(
    mut keel: Command,
    subcommand: &str,
    venv: &Path,
    cache: &Path,
) -> Command {
    keel.arg(subcommand)
        .arg("--venv")
        .arg(venv)
        .arg("--cache-dir")
        .arg(cache);
    keel
}

/// `keel install --venv VENV --cache-dir CACHE`, wheels and options to be
/// added.
pub fn keel_install(venv: &Path, cache: &Path) -> Command {
    keel_with_venv_and_cache(keel(), "install", venv, cache)
}

/// `keel cache ARGS... --cache-dir CACHE`.
pub fn cache_command(cache: &Path, args: &[&str]) -> Command {
    let mut command = keel();
    command
        .arg("cache")
        .args(args)
        .arg("--cache-dir")
        .arg(cache);
    command
}

pub fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("failed to run {command:?}: {e}"))
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts a command succeeded, showing its output if not.
#[track_caller]
pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "command failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

/// Asserts a command succeeded; a failure says `what` failed, followed by
/// the command's stdout and stderr.
#[track_caller]
pub fn assert_success_of(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}:\n{}{}",
        stdout(output),
        stderr(output)
    );
}

/// Asserts a command succeeded and printed no `warning:` line, showing its
/// output if not.
#[track_caller]
pub fn assert_success_without_warnings(output: &Output) {
    assert_success(output);
    assert!(warnings(output).is_empty(), "{}", stderr(output));
}

/// Asserts the exit code, showing the output if it differs.
#[track_caller]
pub fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}

/// Asserts `haystack` contains `needle`, showing the haystack if not.
#[track_caller]
pub fn assert_contains(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "expected {needle:?} in:\n{haystack}"
    );
}

/// The `warning:` lines a command printed on stderr.
pub fn warnings(output: &Output) -> Vec<String> {
    stderr(output)
        .lines()
        .filter(|line| line.starts_with("warning:"))
        .map(str::to_owned)
        .collect()
}

/// Runs `VENV/bin/python -c CODE` and returns its stdout; panics on failure.
#[track_caller]
pub fn python(venv: &Path, code: &str) -> String {
    let output = run(Command::new(venv.join("bin/python")).arg("-c").arg(code));
    assert_success(&output);
    stdout(&output)
}

/// Runs an installed script `VENV/bin/NAME ARGS` and returns its stdout.
#[track_caller]
pub fn script(venv: &Path, name: &str, args: &[&str]) -> String {
    let output = run(Command::new(venv.join("bin").join(name)).args(args));
    assert_success(&output);
    stdout(&output)
}

/// Byte-compiles `dir` with the environment's Python at optimization levels
/// 0, 1 and 2, as `python -m compileall` and `python -O`/`-OO` leave it.
#[track_caller]
pub fn compile_at_every_level(venv: &Path, dir: &Path) {
    let output = run(Command::new(venv.join("bin/python"))
        .args(["-m", "compileall", "-q", "-o", "0", "-o", "1", "-o", "2"])
        .arg(dir));
    assert_success(&output);
}

/// Checks every installed file against its RECORD with an independent
/// Python implementation, and that no file is left that no RECORD lists.
#[track_caller]
pub fn assert_environment_matches_record(venv: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/verify_record.py");
    let output = run(Command::new("python3").arg(script).arg(venv));
    assert_success_of(
        &output,
        &format!(
            "environment {} does not match its RECORD files",
            venv.display()
        ),
    );
}

/// What a tree looked like: per relative path, its kind, mode and content
/// (or link target). Used to prove "nothing changed".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        size: u64,
        content: Vec<u8>,
    },
    Symlink {
        target: PathBuf,
    },
}

pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut nodes = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.expect("walk");
        let relative = entry
            .path()
            .strip_prefix(root)
            .expect("prefix")
            .to_path_buf();
        let metadata = entry.path().symlink_metadata().expect("lstat");
        let mode = metadata.permissions().mode() & 0o7777;
        let node = if metadata.file_type().is_symlink() {
            Node::Symlink {
                target: fs_err::read_link(entry.path()).expect("readlink"),
            }
        } else if metadata.is_dir() {
            Node::Dir { mode }
        } else {
            Node::File {
                mode,
                size: metadata.size(),
                content: fs_err::read(entry.path()).expect("read"),
            }
        };
        nodes.insert(relative, node);
    }
    nodes
}

/// Asserts two snapshots are equal, naming the first difference.
#[track_caller]
/// [`snapshot`] of an environment without its `.keel` entry (which a
/// transaction creates and removes when it leaves it empty): anything left
/// *inside* `.keel` still shows.
pub fn env_snapshot(venv: &Path) -> BTreeMap<PathBuf, Node> {
    let mut nodes = snapshot(venv);
    nodes.remove(Path::new(".keel"));
    nodes
}

/// [`snapshot`] of an environment without `.keel` and everything in it:
/// for environments another keel process may be working in right now.
pub fn env_snapshot_outside_keel_dir(venv: &Path) -> BTreeMap<PathBuf, Node> {
    snapshot(venv)
        .into_iter()
        .filter(|(path, _)| !path.starts_with(".keel"))
        .collect()
}

pub fn assert_same_tree(before: &BTreeMap<PathBuf, Node>, after: &BTreeMap<PathBuf, Node>) {
    for (path, node) in before {
        match after.get(path) {
            None => panic!("{} disappeared", path.display()),
            Some(other) if other != node => panic!("{} changed", path.display()),
            _ => {}
        }
    }
    for path in after.keys() {
        assert!(before.contains_key(path), "{} appeared", path.display());
    }
}

/// The environment's site-packages directory.
pub fn site_packages(venv: &Path) -> PathBuf {
    let lib = venv.join("lib");
    for entry in fs_err::read_dir(&lib).expect("lib") {
        let candidate = entry.expect("entry").path().join("site-packages");
        if candidate.is_dir() {
            return candidate;
        }
    }
    panic!("no site-packages under {}", lib.display());
}

/// Names of the `.dist-info` directories in site-packages, sorted.
pub fn dist_infos(venv: &Path) -> Vec<String> {
    names_in(&site_packages(venv))
        .into_iter()
        .filter(|n| n.ends_with(".dist-info"))
        .collect()
}

/// Every transaction (`tx-*`) and trash of a finished one (`trash-*`) left
/// in `<venv>/.keel`, by name, sorted.
pub fn leftover_transactions(venv: &Path) -> Vec<String> {
    names_in(&venv.join(".keel"))
        .into_iter()
        .filter(|n| n.starts_with("tx-") || n.starts_with("trash-"))
        .collect()
}

/// The names in a directory, sorted; none when it does not exist.
pub fn names_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs_err::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| {
            e.expect("read_dir")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Sets the permission bits of a path.
pub fn chmod(path: &Path, mode: u32) {
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
