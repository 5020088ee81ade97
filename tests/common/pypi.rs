//! The pinned real wheels from PyPI (`fixtures/pypi/`), their fixture
//! tables, and pip as a second installer to compare keel with.
//!
//! The wheels come from `$KEEL_PYPI_WHEELS`, else `fixtures/pypi/wheels`
//! (`bash fixtures/pypi/download.sh` fills it; `bash .ci/run` does it too).
//! Missing wheels fail the tests that need them: a skipped test proves
//! nothing.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{assert_success, assert_success_of, run, stdout};

/// What to do when the real wheels are missing or incomplete.
const DOWNLOAD_HINT: &str =
    "run `bash fixtures/pypi/download.sh` (or `bash .ci/run`) to download the pinned PyPI wheels";

/// `fixtures/pypi/`: the pins (`requirements.txt`, `older.txt`) and the
/// tables (`import-names.tsv`, `scripts.tsv`).
pub fn pypi_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pypi")
}

/// Where the real wheels are: `$KEEL_PYPI_WHEELS`, else
/// `fixtures/pypi/wheels`, downloaded there on first use: `download.sh`
/// runs once per test process (it skips the network when every pinned
/// wheel is there with its hash, and locks the directory, so parallel test
/// processes take turns). A fresh clone's `cargo test` needs nothing run
/// before it.
pub fn real_wheels_dir() -> PathBuf {
    let dir = match std::env::var_os("KEEL_PYPI_WHEELS").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => pypi_fixtures().join("wheels"),
    };
    static DOWNLOADED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    DOWNLOADED.get_or_init(|| download(&dir));
    dir
}

/// `bash fixtures/pypi/download.sh DIR`; a failure fails the test.
fn download(dir: &Path) {
    let output = run(Command::new("bash")
        .arg(pypi_fixtures().join("download.sh"))
        .arg(dir));
    assert!(
        output.status.success(),
        "downloading the pinned PyPI wheels into {} failed:\n{}\n{DOWNLOAD_HINT}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// PEP 503: lower case, runs of `-`, `_`, `.` become one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::new();
    let mut separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            separator = true;
        } else {
            if separator && !out.is_empty() {
                out.push('-');
            }
            separator = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// (normalized name, version) from a wheel file name.
pub fn wheel_name_version(wheel: &Path) -> (String, String) {
    let file = wheel.file_name().unwrap().to_str().unwrap();
    let mut parts = file.split('-');
    let name = parts.next().unwrap();
    let version = parts
        .next()
        .unwrap_or_else(|| panic!("not a wheel file name: {file}"));
    (normalize_name(name), version.to_string())
}

/// The normalized name of the distribution a wheel file is of.
pub fn dist_name(wheel: &Path) -> String {
    wheel_name_version(wheel).0
}

/// Every `*.whl` directly in `dir`, sorted.
pub fn wheels_in(dir: &Path) -> Vec<PathBuf> {
    let mut wheels: Vec<PathBuf> = fs_err::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension() == Some(OsStr::new("whl")))
        .collect();
    wheels.sort();
    wheels
}

/// One pin of `requirements.txt`.
pub struct Pin {
    /// PEP 503 normalized.
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// Every pin of `requirements.txt`: `name==version --hash=sha256:…`.
pub fn pins() -> Vec<Pin> {
    let path = pypi_fixtures().join("requirements.txt");
    let text = fs_err::read_to_string(&path).unwrap();
    let mut pins = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut tokens = line.split_whitespace();
        let requirement = tokens.next().unwrap();
        let (name, version) = requirement
            .split_once("==")
            .unwrap_or_else(|| panic!("{}: not `name==version`: {line}", path.display()));
        let sha256 = tokens
            .find_map(|t| t.strip_prefix("--hash=sha256:"))
            .unwrap_or_else(|| panic!("{}: no --hash=sha256: {line}", path.display()));
        pins.push(Pin {
            name: normalize_name(name),
            version: version.to_string(),
            sha256: sha256.to_string(),
        });
    }
    pins
}

/// The real wheels: the directory (absolute, symlinks resolved) and every
/// `*.whl` in it, sorted.
pub struct RealWheels {
    pub dir: PathBuf,
    pub wheels: Vec<PathBuf>,
}

impl RealWheels {
    /// The wheel of one distribution (normalized name).
    pub fn wheel(&self, name: &str) -> &Path {
        self.wheels
            .iter()
            .find(|w| dist_name(w) == name)
            .unwrap_or_else(|| panic!("no wheel of {name} in {}", self.dir.display()))
    }

    /// The wheels of these distributions (normalized names), in that order.
    pub fn some(&self, names: &[&str]) -> Vec<PathBuf> {
        names
            .iter()
            .map(|name| self.wheel(name).to_path_buf())
            .collect()
    }
}

/// The real wheels ([`real_wheels_dir`]); fails unless the set pinned in
/// `requirements.txt` is there, complete, and nothing else.
pub fn real_wheels() -> RealWheels {
    let dir = fs_err::canonicalize(real_wheels_dir()).unwrap_or_else(|e| {
        panic!("the real PyPI wheels are missing ({e}); {DOWNLOAD_HINT}");
    });
    let wheels = wheels_in(&dir);
    assert!(
        !wheels.is_empty(),
        "no wheels in {}; {DOWNLOAD_HINT}",
        dir.display()
    );
    let present: BTreeSet<(String, String)> =
        wheels.iter().map(|w| wheel_name_version(w)).collect();
    let pins = pins();
    let missing: Vec<String> = pins
        .iter()
        .filter(|p| !present.contains(&(p.name.clone(), p.version.clone())))
        .map(|p| format!("{}=={}", p.name, p.version))
        .collect();
    assert!(
        missing.is_empty(),
        "{} lacks the wheels of {missing:?} pinned in fixtures/pypi/requirements.txt; {DOWNLOAD_HINT}",
        dir.display()
    );
    assert_eq!(
        wheels.len(),
        pins.len(),
        "{} holds wheels that requirements.txt does not pin: {wheels:#?}; {DOWNLOAD_HINT}",
        dir.display()
    );
    RealWheels { dir, wheels }
}

/// The rows of a tab-separated table in `fixtures/pypi/` (blank lines and
/// `#` comments skipped), each of exactly `fields` fields.
pub fn fixture_tsv(name: &str, fields: usize) -> Vec<Vec<String>> {
    let path = pypi_fixtures().join(name);
    let text = fs_err::read_to_string(&path).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let row: Vec<String> = l.split('\t').map(str::to_string).collect();
            assert_eq!(
                row.len(),
                fields,
                "{}: want {fields} tab-separated fields: {l:?}",
                path.display()
            );
            row
        })
        .collect()
}

/// Python code checking installed distributions: for each argument
/// `dist<TAB>version<TAB>modules` (modules comma-separated, `-` for none),
/// the version `importlib.metadata` sees and the imports, printing
/// `dist version` once the imports of `dist` are done. Failures are printed
/// to stderr and make it exit 1.
const IMPORT_CHECK: &str = r#"
import importlib, importlib.metadata, sys
failures = []
for arg in sys.argv[1:]:
    dist, version, modules = arg.split("\t")
    try:
        got = importlib.metadata.version(dist)
    except Exception as e:
        failures.append(f"{dist}: no metadata: {e!r}")
        continue
    if got != version:
        failures.append(f"{dist}: version {got}, want {version}")
    for m in modules.split(","):
        if m == "-":
            continue
        try:
            importlib.import_module(m)
        except Exception as e:
            failures.append(f"import {m} ({dist}): {e!r}")
    print(dist, got)
for f in failures:
    print("FAIL", f, file=sys.stderr)
sys.exit(1 if failures else 0)
"#;

/// Checks the version and imports the modules of every row (rows of
/// `import-names.tsv`, `dist<TAB>version<TAB>modules`) in one Python process
/// of `venv` run from `cwd`; returns what it printed (a `dist version` line
/// per row).
#[track_caller]
pub fn assert_versions_and_imports(venv: &Path, rows: &[String], cwd: &Path) -> String {
    let output = run(Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg(IMPORT_CHECK)
        .args(rows)
        .current_dir(cwd)
        .stdin(Stdio::null()));
    assert_success_of(&output, &format!("imports failed in {}", venv.display()));
    stdout(&output)
}

/// `python3 -m pip install --no-deps --no-index … FLAGS... WHEELS...` into
/// `venv` (pip's own, not the environment's), asserting success.
#[track_caller]
pub fn pip_install(venv: &Path, flags: &[&str], wheels: &[PathBuf]) {
    let output = run(Command::new("python3")
        .args(["-m", "pip", "--python"])
        .arg(venv.join("bin/python"))
        .args([
            "install",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
        ])
        .args(flags)
        .args(wheels)
        .env_remove("VIRTUAL_ENV")
        .env_remove("PIP_REQUIRE_VIRTUALENV"));
    assert_success(&output);
}
