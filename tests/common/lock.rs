//! Serving wheels on 127.0.0.1 and writing the locks that name them, for
//! the lock-file tests (`tests/lock*.rs`): a `keel-testserver` (plain HTTP
//! or HTTPS) holding copies of pinned PyPI wheels (or any others),
//! `pylock.toml` text with their loopback URLs, sizes and sha256, and what a
//! download cache then holds.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use keel_testserver::Server;
use keel_wheel::{HashAlgorithm, RecordHash};

use super::pypi::real_wheels;
use super::{Sandbox, keel_install, run};

/// Flask and its dependencies: pure wheels and one with a C extension.
pub const WEB: &[&str] = &[
    "flask",
    "werkzeug",
    "jinja2",
    "markupsafe",
    "itsdangerous",
    "click",
    "blinker",
];

/// A loopback server holding copies of `names`' pinned wheels.
pub struct Served {
    /// The server.
    pub server: Server,
    _root: tempfile::TempDir,
    /// The served copies, in the order asked for.
    pub wheels: Vec<PathBuf>,
}

/// A loopback server holding copies of `names`' pinned wheels.
pub fn serve(names: &[&str]) -> Served {
    serve_wheels(&real_wheels().some(names))
}

/// A loopback server holding copies of `wheels`.
pub fn serve_wheels(wheels: &[PathBuf]) -> Served {
    serve_wheels_with(wheels, Server::start)
}

/// A loopback HTTPS server ([`Server::start_tls`], its own CA) holding
/// copies of `wheels`: [`pylock`] then names `https://127.0.0.1:…` URLs.
pub fn serve_wheels_tls(wheels: &[PathBuf]) -> Served {
    serve_wheels_with(wheels, Server::start_tls)
}

/// A server `start` starts, holding copies of `wheels`.
fn serve_wheels_with(wheels: &[PathBuf], start: fn(&Path) -> Server) -> Served {
    let root = tempfile::tempdir().expect("tempdir");
    let wheels: Vec<PathBuf> = wheels
        .iter()
        .map(|wheel| {
            let copy = root.path().join(wheel.file_name().expect("file name"));
            fs_err::copy(wheel, &copy).expect("copy a wheel to serve");
            copy
        })
        .collect();
    let server = start(root.path());
    Served {
        server,
        _root: root,
        wheels,
    }
}

impl Served {
    /// The served wheel of a distribution (normalized name).
    pub fn wheel(&self, project: &str) -> &Path {
        self.wheels
            .iter()
            .find(|w| super::pypi::wheel_name_version(w).0 == project)
            .unwrap_or_else(|| panic!("{project} is not served"))
    }
}

pub fn sha256(path: &Path) -> RecordHash {
    RecordHash::of(HashAlgorithm::Sha256, &fs_err::read(path).expect("read"))
}

pub fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

/// A `pylock.toml` naming each served wheel by its loopback URL, size and
/// sha256, as `uv export` writes one.
pub fn pylock(served: &Served) -> String {
    let mut lock = String::from("lock-version = \"1.0\"\ncreated-by = \"keel's tests\"\n");
    for wheel in &served.wheels {
        let name = file_name(wheel);
        let (project, version) = super::pypi::wheel_name_version(wheel);
        let size = fs_err::metadata(wheel).expect("stat").len();
        lock += &format!(
            "\n[[packages]]\nname = \"{project}\"\nversion = \"{version}\"\n\
             wheels = [{{ url = \"{}\", size = {size}, hashes = {{ sha256 = \"{}\" }} }}]\n",
            served.server.file_url(&name),
            sha256(wheel).hex()
        );
    }
    lock
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs_err::write(&path, text).expect("write");
    path
}

/// `keel install -r FILE`, with the sandbox's cache.
pub fn install_from(sandbox: &Sandbox, venv: &Path, file: &Path, extra: &[&str]) -> Output {
    run(keel_install(venv, &sandbox.cache)
        .arg("-r")
        .arg(file)
        .args(extra))
}

/// Every file under the download cache whose name says it is unfinished.
pub fn partial_downloads(cache: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(cache.join("downloads-v1"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".partial"))
        .map(|e| e.into_path())
        .collect()
}

/// The downloaded wheels in the cache.
pub fn downloaded_wheels(cache: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(cache.join("downloads-v1"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".whl") && e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

/// The web set's Flask 3.1.3 imports (with markupsafe's C extension), its
/// `flask` script runs, and every file matches its RECORD.
#[track_caller]
pub fn assert_flask_runs(venv: &Path) {
    let version = super::python(
        venv,
        "import flask, markupsafe._speedups; print(flask.__version__)",
    );
    assert_eq!(version.trim(), "3.1.3");
    super::assert_contains(&super::script(venv, "flask", &["--version"]), "Flask 3.1.3");
    super::assert_environment_matches_record(venv);
}
