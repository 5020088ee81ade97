//! Support shared by keel's integration tests: sandboxes with fresh
//! virtual environments, the fixture wheels, the `keel` binary, and checks
//! that an environment matches its RECORD files (by an independent Python
//! script) and that a tree did not change.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
        let dir = tempfile::Builder::new()
            .prefix("keel-test-")
            .tempdir()
            .expect("tempdir");
        let wheels = dir.path().join("wheels");
        keel_fixtures::build_bundled(&wheels).expect("build fixture wheels");
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

    /// A fresh virtual environment made by `python3 -m venv --without-pip`.
    pub fn venv(&self, name: &str) -> PathBuf {
        let path = self.path().join(name);
        create_venv(&path);
        path
    }

    /// Runs `keel install --venv VENV --cache-dir CACHE ARGS...`.
    pub fn install(&self, venv: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
        let mut command = keel();
        command
            .arg("install")
            .arg("--venv")
            .arg(venv)
            .arg("--cache-dir")
            .arg(&self.cache);
        for arg in args {
            command.arg(arg);
        }
        run(&mut command)
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
    let mut command = Command::new(env!("CARGO_BIN_EXE_keel"));
    command
        .env_remove("VIRTUAL_ENV")
        .env_remove("KEEL_CACHE_DIR")
        .env_remove("KEEL_LOG");
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

/// Checks every installed file against its RECORD with an independent
/// Python implementation, and that no file is left that no RECORD lists.
#[track_caller]
pub fn assert_environment_matches_record(venv: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/verify_record.py");
    let output = run(Command::new("python3").arg(script).arg(venv));
    assert!(
        output.status.success(),
        "environment {} does not match its RECORD files:\n{}{}",
        venv.display(),
        stdout(&output),
        stderr(&output)
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
