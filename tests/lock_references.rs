//! keel against the reference tools on a real lock: `uv pip compile
//! --format pylock.toml` (the pinned uv 0.13.9) writes a lock of the web set
//! served on 127.0.0.1 by `keel-testserver`; keel installs it; pip 26.3
//! (`pip install -r pylock.toml`) installs the same lock into another
//! environment and the two trees are equal file by file; keel's selection is
//! `packaging.pylock`'s (packaging 26.4); and `keel sync -r` removes what the
//! lock does not hold. Nothing here talks to a remote index.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::lock::{WEB, assert_flask_runs};
use common::pypi::{normalize_name, real_wheels, wheel_name_version};
use common::*;
use keel_fixtures::python::{pypi_wheel, required_python};
use keel_testserver::Server;

const UV_WHEEL: &str = "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl";
const PIP_WHEEL: &str = "pip-26.3-py3-none-any.whl";
const PACKAGING_WHEEL: &str = "packaging-26.4-py3-none-any.whl";

/// The uv binary of the pinned uv wheel (its entry
/// `uv-0.13.9.data/scripts/uv`), extracted once into cargo's scratch
/// directory for integration tests by Python's `zipfile` (the root crate has
/// no zip dev-dependency).
fn uv() -> &'static Path {
    static UV: OnceLock<PathBuf> = OnceLock::new();
    UV.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lock-references-uv-0.13.9");
        let binary = dir.join("uv");
        if binary.is_file() {
            return binary;
        }
        fs_err::create_dir_all(&dir).expect("create the uv directory");
        // Extracted beside it, then renamed: a binary that is there is whole.
        let partial = dir.join(format!("uv.partial-{}", std::process::id()));
        let output = run(Command::new("python3")
            .arg("-I")
            .arg("-c")
            .arg(
                "import sys, zipfile\n\
                 with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], 'wb') as out:\n\
                 \x20   out.write(z.read('uv-0.13.9.data/scripts/uv'))\n",
            )
            .arg(pypi_wheel(UV_WHEEL))
            .arg(&partial));
        assert_success_of(&output, "extracting uv from its wheel");
        fs_err::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))
            .expect("chmod +x uv");
        fs_err::rename(&partial, &binary).expect("rename uv into place");
        binary
    })
}

/// Environment variables of the form `PREFIX*` set for this process.
fn vars_starting_with(prefix: &str) -> Vec<OsString> {
    std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| name.to_string_lossy().starts_with(prefix))
        .collect()
}

/// `command` without proxies (everything here is on 127.0.0.1), a virtual
/// environment or a configuration of its own from the caller's environment.
fn isolated(mut command: Command, prefix: &str) -> Command {
    for name in vars_starting_with(prefix) {
        command.env_remove(name);
    }
    for name in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "VIRTUAL_ENV",
        "CONDA_PREFIX",
        "PYTHONPATH",
    ] {
        command.env_remove(name);
    }
    command
        .env("NO_PROXY", "127.0.0.1")
        .env("no_proxy", "127.0.0.1");
    command
}

/// The web set served from a directory of copies of its pinned wheels.
struct Served {
    server: Server,
    _root: tempfile::TempDir,
    /// The served wheels' file names, by normalized distribution name.
    files: BTreeMap<String, String>,
}

fn serve_web_set() -> Served {
    let root = tempfile::tempdir().expect("tempdir");
    let mut files = BTreeMap::new();
    for wheel in real_wheels().some(WEB) {
        let name = file_name(&wheel);
        fs_err::copy(&wheel, root.path().join(&name)).expect("copy a wheel to serve");
        files.insert(wheel_name_version(&wheel).0, name);
    }
    Served {
        server: Server::start(root.path()),
        _root: root,
        files,
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

/// `uv pip compile --format pylock.toml` of `flask==3.1.3` against the
/// loopback index, for CPython 3.11 on manylinux_2_28 x86_64; returns the
/// lock's path (`DIR/pylock.toml`).
fn uv_lock(served: &Served, dir: &Path) -> PathBuf {
    let input = dir.join("requirements.in");
    fs_err::write(&input, "flask==3.1.3\n").expect("write requirements.in");
    let lock = dir.join("pylock.toml");
    let mut command = isolated(Command::new(uv()), "UV_");
    command
        .current_dir(dir)
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("UV_NO_PROGRESS", "1")
        .args(["--no-config", "pip", "compile", "--format", "pylock.toml"])
        .arg("--index-url")
        .arg(served.server.index_url())
        .args(["--python-version", "3.11"])
        .args(["--python-platform", "x86_64-manylinux_2_28"])
        .arg("--cache-dir")
        .arg(dir.join("uv-cache"))
        .arg("-o")
        .arg(&lock)
        .arg(&input);
    let output = run(&mut command);
    assert_success_of(&output, "uv pip compile --format pylock.toml");
    lock
}

/// A TOML file as JSON, read by Python's `tomllib`.
fn toml_as_json(path: &Path) -> serde_json::Value {
    let output = run(Command::new(required_python(11))
        .arg("-I")
        .arg("-c")
        .arg("import json, sys, tomllib\nprint(json.dumps(tomllib.load(open(sys.argv[1], 'rb'))))")
        .arg(path));
    assert_success_of(&output, "reading the lock with tomllib");
    serde_json::from_slice(&output.stdout).expect("tomllib's JSON")
}

/// Asserts the lock is a PEP 751 lock whose `[[packages]]` are exactly the
/// web set, each a `[[packages.wheels]]` entry of the served file at its
/// loopback URL with a sha256.
#[track_caller]
fn assert_lock_names_every_served_wheel(lock: &Path, served: &Served) {
    let lock = toml_as_json(lock);
    assert_eq!(lock["lock-version"], "1.0", "{lock:#}");
    let packages = lock["packages"].as_array().expect("[[packages]]");
    let mut names = BTreeSet::new();
    for package in packages {
        let name = normalize_name(package["name"].as_str().expect("package name"));
        let served_file = served
            .files
            .get(&name)
            .unwrap_or_else(|| panic!("the lock holds {name}, which is not served: {lock:#}"));
        let wheels = package["wheels"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no [[packages.wheels]]: {package:#}"));
        assert_eq!(wheels.len(), 1, "{name}: one served wheel: {package:#}");
        assert_eq!(
            wheels[0]["url"],
            served.server.file_url(served_file),
            "{package:#}"
        );
        assert!(
            wheels[0]["hashes"]["sha256"].is_string(),
            "{name}: no sha256: {package:#}"
        );
        assert!(package.get("sdist").is_none(), "{package:#}");
        names.insert(name);
    }
    let served_names: BTreeSet<String> = served.files.keys().cloned().collect();
    assert_eq!(names, served_names, "{lock:#}");
}

/// `keel install -r LOCK` (or `sync`) with the sandbox's cache.
fn keel_from_lock(subcommand: &str, sandbox: &Sandbox, venv: &Path, lock: &Path) -> Output {
    run(isolated(
        keel_with_venv_and_cache(keel(), subcommand, venv, &sandbox.cache),
        "KEEL_",
    )
    .arg("-r")
    .arg(lock))
}

/// A sandbox, the served web set and uv's lock of it in the sandbox.
struct Scenario {
    sandbox: Sandbox,
    served: Served,
    lock: PathBuf,
}

fn scenario() -> Scenario {
    let sandbox = Sandbox::without_wheels("keel-lockref-");
    let served = serve_web_set();
    let lock = uv_lock(&served, sandbox.path());
    Scenario {
        sandbox,
        served,
        lock,
    }
}

/// The distributions installed, as (normalized name, version), from the
/// `.dist-info` directory names.
fn installed(venv: &Path) -> BTreeSet<(String, String)> {
    dist_infos(venv)
        .iter()
        .map(|info| {
            let stem = info.strip_suffix(".dist-info").expect("dist-info");
            let (name, version) = stem.rsplit_once('-').expect("name-version");
            (normalize_name(name), version.to_owned())
        })
        .collect()
}

/// The served set, as (normalized name, version).
fn served_distributions(served: &Served) -> BTreeSet<(String, String)> {
    served
        .files
        .values()
        .map(|file| wheel_name_version(Path::new(file)))
        .collect()
}

#[test]
fn a_lock_uv_wrote_against_the_loopback_index_installs_and_runs() {
    let Scenario {
        sandbox,
        served,
        lock,
    } = scenario();
    assert_lock_names_every_served_wheel(&lock, &served);

    // uv fetched the files to read their metadata; keel fetches each once.
    let before: BTreeMap<&String, usize> = served
        .files
        .values()
        .map(|file| (file, served.server.requests(file)))
        .collect();
    let venv = sandbox.venv("venv");
    let output = keel_from_lock("install", &sandbox, &venv, &lock);
    assert_success(&output);
    assert_eq!(installed(&venv), served_distributions(&served));
    assert_flask_runs(&venv);
    for (file, requests) in before {
        assert_eq!(served.server.requests(file), requests + 1, "{file}");
    }
}

/// `PIP_WHEEL/pip …` run by CPython 3.11 (pip runs from its wheel on
/// `sys.path`), without the caller's pip configuration.
fn pip() -> Command {
    let mut command = isolated(Command::new(required_python(11)), "PIP_");
    command
        .arg(pypi_wheel(PIP_WHEEL).join("pip"))
        .env("PIP_CONFIG_FILE", "/dev/null");
    command
}

/// Whether a path relative to site-packages is one the two installers may
/// write differently: bytecode, and the installer's own dist-info files.
fn installer_specific(relative: &Path) -> bool {
    if relative
        .components()
        .any(|c| c.as_os_str() == "__pycache__")
    {
        return true;
    }
    let in_dist_info = relative
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|dir| dir.to_string_lossy().ends_with(".dist-info"));
    let name = file_name(relative);
    in_dist_info
        && relative.components().count() == 2
        && ["RECORD", "INSTALLER", "REQUESTED", "direct_url.json"].contains(&name.as_str())
}

/// Every file (and symlink) under site-packages but those of
/// [`installer_specific`], by relative path: its bytes and whether it is
/// executable.
fn site_packages_files(venv: &Path) -> BTreeMap<PathBuf, (Vec<u8>, bool)> {
    let root = site_packages(venv);
    walkdir::WalkDir::new(&root)
        .sort_by_file_name()
        .into_iter()
        .map(|entry| entry.expect("walk site-packages"))
        .filter(|entry| !entry.file_type().is_dir())
        .filter_map(|entry| {
            let relative = entry.path().strip_prefix(&root).expect("prefix").to_owned();
            if installer_specific(&relative) {
                return None;
            }
            let content = fs_err::read(entry.path()).expect("read");
            let mode = fs_err::metadata(entry.path())
                .expect("stat")
                .permissions()
                .mode();
            Some((relative, (content, mode & 0o111 != 0)))
        })
        .collect()
}

/// The console scripts an install put in `bin/` (names not in `before`),
/// each by the entry point it runs: its `from MODULE import FUNCTION` line.
/// The rest is the installer's template (the shebang names each venv's
/// python; pip 26 dropped the `coding` line and the `re.sub` that keel,
/// like pip 23 and distlib, still writes).
fn installed_scripts(venv: &Path, before: &[String]) -> BTreeMap<String, String> {
    names_in(&venv.join("bin"))
        .into_iter()
        .filter(|name| !before.contains(name))
        .map(|name| {
            let text = fs_err::read_to_string(venv.join("bin").join(&name)).expect("read script");
            let import = text
                .lines()
                .find(|line| line.starts_with("from ") && line.contains(" import "))
                .unwrap_or_else(|| panic!("{name} imports no entry point:\n{text}"))
                .to_owned();
            (name, import)
        })
        .collect()
}

/// The dist-info directories in a venv that hold a `direct_url.json`.
fn with_direct_url(venv: &Path) -> Vec<String> {
    dist_infos(venv)
        .into_iter()
        .filter(|info| {
            site_packages(venv)
                .join(info)
                .join("direct_url.json")
                .exists()
        })
        .collect()
}

#[test]
fn pip_installs_the_same_uv_lock_into_the_same_tree() {
    let Scenario {
        sandbox,
        served: _served,
        lock,
    } = scenario();
    let by_keel = sandbox.venv("by-keel");
    let by_pip = sandbox.venv("by-pip");
    let fresh_bin = names_in(&by_keel.join("bin"));
    assert_eq!(fresh_bin, names_in(&by_pip.join("bin")));

    assert_success(&keel_from_lock("install", &sandbox, &by_keel, &lock));
    let output = run(pip()
        .arg("--python")
        .arg(by_pip.join("bin/python"))
        .arg("install")
        .args([
            "--no-deps",
            "--no-compile",
            "--no-index",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--no-input",
        ])
        .arg("-r")
        .arg(&lock));
    assert_success_of(&output, "pip install -r pylock.toml");
    assert_eq!(installed(&by_pip), installed(&by_keel));

    let (keel_files, pip_files) = (site_packages_files(&by_keel), site_packages_files(&by_pip));
    for expected in [
        "flask/__init__.py",
        "markupsafe/_speedups.cpython-311-x86_64-linux-gnu.so",
    ] {
        assert!(keel_files.contains_key(Path::new(expected)), "{expected}");
    }
    let keel_paths: BTreeSet<&PathBuf> = keel_files.keys().collect();
    let pip_paths: BTreeSet<&PathBuf> = pip_files.keys().collect();
    assert_eq!(
        keel_paths.difference(&pip_paths).collect::<Vec<_>>(),
        Vec::<&&PathBuf>::new(),
        "files keel installed and pip did not"
    );
    assert_eq!(
        pip_paths.difference(&keel_paths).collect::<Vec<_>>(),
        Vec::<&&PathBuf>::new(),
        "files pip installed and keel did not"
    );
    for (path, (content, executable)) in &keel_files {
        let (pip_content, pip_executable) = &pip_files[path];
        assert!(
            content == pip_content,
            "{} differs between keel's and pip's install",
            path.display()
        );
        assert_eq!(
            executable,
            pip_executable,
            "{}: executable for keel: {executable}, for pip: {pip_executable}",
            path.display()
        );
    }
    assert_eq!(
        installed_scripts(&by_keel, &fresh_bin),
        installed_scripts(&by_pip, &fresh_bin)
    );
    assert_eq!(
        installed_scripts(&by_keel, &fresh_bin).get("flask"),
        Some(&"from flask.cli import main".to_owned())
    );
    // A lock's [[packages.wheels]] are no direct URL references: neither
    // installer writes a direct_url.json for them.
    assert_eq!(with_direct_url(&by_keel), Vec::<String>::new());
    assert_eq!(with_direct_url(&by_pip), Vec::<String>::new());
    assert_eq!(
        script(&by_keel, "flask", &["--version"]),
        script(&by_pip, "flask", &["--version"])
    );
}

/// `Pylock.from_dict(tomllib.load(LOCK)).select()` with packaging 26.4 in
/// the venv's interpreter: `[name, version, wheel file name]` per selected
/// package, as JSON.
const SELECT: &str = r#"
import json, sys, tomllib
sys.path.insert(0, sys.argv[1])
import packaging
assert packaging.__version__ == "26.4", packaging.__version__
from packaging.pylock import Pylock, PackageWheel
with open(sys.argv[2], "rb") as f:
    lock = Pylock.from_dict(tomllib.load(f))
selected = []
for package, dist in lock.select():
    assert isinstance(dist, PackageWheel), (package.name, dist)
    file = dist.name or dist.url.rsplit("/", 1)[-1]
    selected.append([str(package.name), str(package.version), file])
print(json.dumps(selected))
"#;

/// Every wheel in the download cache, by file name.
fn downloaded_wheels(cache: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(cache.join("downloads-v1"))
        .into_iter()
        .map(|entry| entry.expect("walk the download cache"))
        .filter(|e| e.file_type().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".whl"))
        .collect()
}

#[test]
fn keel_selects_from_the_uv_lock_what_packaging_pylock_selects() {
    let Scenario {
        sandbox,
        served,
        lock,
    } = scenario();
    let venv = sandbox.venv("venv");
    let output = run(Command::new(venv.join("bin/python"))
        .arg("-I")
        .arg("-c")
        .arg(SELECT)
        .arg(pypi_wheel(PACKAGING_WHEEL))
        .arg(&lock));
    assert_success_of(&output, "packaging.pylock select()");
    let selected: Vec<(String, String, String)> =
        serde_json::from_slice(&output.stdout).expect("select()'s JSON");
    let reference_files: BTreeSet<String> = selected.iter().map(|(_, _, f)| f.clone()).collect();
    let reference_dists: BTreeSet<(String, String)> = selected
        .iter()
        .map(|(name, version, _)| (normalize_name(name), version.clone()))
        .collect();
    assert_eq!(reference_dists, served_distributions(&served));

    assert_success(&keel_from_lock("install", &sandbox, &venv, &lock));
    // What keel chose: the files it fetched into a cache that was empty, and
    // the distributions it installed.
    assert_eq!(downloaded_wheels(&sandbox.cache), reference_files);
    assert_eq!(installed(&venv), reference_dists);
}

#[test]
fn sync_from_the_uv_lock_removes_what_the_lock_does_not_hold() {
    let Scenario {
        sandbox,
        served,
        lock,
    } = scenario();
    let venv = sandbox.venv("venv");
    let idna = real_wheels().wheel("idna").to_path_buf();
    assert_success(&run(
        isolated(keel_install(&venv, &sandbox.cache), "KEEL_").arg(&idna)
    ));
    python(&venv, "import idna");
    assert!(installed(&venv).contains(&wheel_name_version(&idna)));

    let output = keel_from_lock("sync", &sandbox, &venv, &lock);
    assert_success(&output);
    assert_eq!(installed(&venv), served_distributions(&served));
    let gone = run(Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg("import idna"));
    assert_exit(&gone, 1);
    python(&venv, "import flask, markupsafe._speedups");
    assert_contains(&script(&venv, "flask", &["--version"]), "Flask 3.1.3");
    assert_environment_matches_record(&venv);
}
