//! keel's probe and tag list against real CPython 3.8 … 3.13 from pyenv
//! (`$PYENV_ROOT`, else `~/.pyenv`): for each, a `python -m venv
//! --without-pip` venv is probed through keel, the probe is checked against
//! what the venv's Python says directly, and keel's tags are compared entry
//! for entry with `packaging.tags.sys_tags()` run by that Python, with the
//! pinned packaging wheels on `PYTHONPATH` (a pure-Python wheel imports from
//! the zip): 26.3 (Python ≥ 3.9; `linux_*` first) and 24.2 (`linux_*` last).
//!
//! 3.8, 3.11, 3.12 and 3.13 are required: their tests fail when pyenv does
//! not have them. 3.9 and 3.10 are compared when present.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use keel_python::{Interpreter, TagOrder, Tags};

const REQUIRED: [u32; 4] = [8, 11, 12, 13];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn pyenv_root() -> PathBuf {
    match std::env::var_os("PYENV_ROOT") {
        Some(root) if !root.is_empty() => PathBuf::from(root),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".pyenv"),
    }
}

/// `$(pyenv root)/versions/3.X.Z/bin/python3.X` with the highest Z, and Z.
fn pyenv_python(minor: u32) -> Option<(PathBuf, String)> {
    let versions = fs_err::read_dir(pyenv_root().join("versions")).ok()?;
    let mut found: Vec<(u32, String, PathBuf)> = versions
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let micro = name
                .strip_prefix(&format!("3.{minor}."))?
                .parse::<u32>()
                .ok()?;
            let python = entry.path().join(format!("bin/python3.{minor}"));
            python.is_file().then_some((micro, name, python))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, name, python)| (python, name))
}

fn wheels_dir() -> PathBuf {
    match std::env::var_os("KEEL_PYPI_WHEELS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo().join("fixtures/pypi/wheels"),
    }
}

/// The pinned packaging wheel, downloaded (once) if it is missing.
fn packaging_wheel(version: &str) -> PathBuf {
    let dir = wheels_dir();
    let name = format!("packaging-{version}-py3-none-any.whl");
    let path = if version == "26.3" {
        dir.join(&name)
    } else {
        dir.join("older").join(&name)
    };
    static DOWNLOAD: OnceLock<()> = OnceLock::new();
    if !path.is_file() {
        DOWNLOAD.get_or_init(|| {
            let status = Command::new("bash")
                .arg(repo().join("fixtures/pypi/download.sh"))
                .arg(&dir)
                .status()
                .expect("run fixtures/pypi/download.sh");
            assert!(
                status.success(),
                "fixtures/pypi/download.sh {} failed",
                dir.display()
            );
        });
    }
    assert!(
        path.is_file(),
        "{} is missing after download.sh",
        path.display()
    );
    path
}

/// Runs `python -c code` in `cwd` with no `PYTHON*` variables but `extra`,
/// and returns the last line of its stdout parsed as JSON.
fn python_json(
    python: &Path,
    cwd: &Path,
    code: &str,
    extra: &[(&str, &Path)],
) -> serde_json::Value {
    let mut command = Command::new(python);
    command.arg("-c").arg(code).current_dir(cwd);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PYTHON") {
            command.env_remove(name);
        }
    }
    for (name, value) in extra {
        command.env(name, value);
    }
    let output = command.output().expect("run python");
    assert!(
        output.status.success(),
        "{} -c …: {}",
        python.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    // The last line: a `.pth` file may print before the code runs.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().next_back().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("python printed no JSON ({e}): {stdout}"))
}

const DIRECT: &str = r#"
import importlib.util, json, os, platform, sys, sysconfig
i = sys.implementation.version
v = "%d.%d.%d" % (i.major, i.minor, i.micro)
if i.releaselevel != "final":
    v += i.releaselevel[0] + str(i.serial)
print(json.dumps({
    "implementation_name": sys.implementation.name, "implementation_version": v,
    "os_name": os.name, "platform_machine": platform.machine(),
    "platform_python_implementation": platform.python_implementation(),
    "platform_release": platform.release(), "platform_system": platform.system(),
    "platform_version": platform.version(), "python_full_version": platform.python_version(),
    "python_version": ".".join(platform.python_version_tuple()[:2]), "sys_platform": sys.platform,
    "cache_tag": sys.implementation.cache_tag, "ext_suffix": sysconfig.get_config_var("EXT_SUFFIX"),
    "magic": importlib.util.MAGIC_NUMBER.hex(), "purelib": sysconfig.get_paths()["purelib"],
    "prefix": sys.prefix, "executable": sys.executable,
}))
"#;

const SYS_TAGS: &str = "import json, packaging, packaging.tags as t; \
    print(json.dumps([packaging.__version__] + [str(tag) for tag in t.sys_tags()]))";

/// A venv of pyenv's CPython 3.`minor`, in a temporary directory.
struct Venv {
    dir: tempfile::TempDir,
    python: PathBuf,
    version: String,
}

fn venv(minor: u32) -> Option<Venv> {
    let Some((base, version)) = pyenv_python(minor) else {
        assert!(
            !REQUIRED.contains(&minor),
            "CPython 3.{minor} is required but {}/versions/3.{minor}.*/bin/python3.{minor} does not exist",
            pyenv_root().display()
        );
        eprintln!(
            "skipped: no CPython 3.{minor} under {}",
            pyenv_root().display()
        );
        return None;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("venv");
    let status = Command::new(&base)
        .args(["-m", "venv", "--without-pip"])
        .arg(&root)
        .status()
        .expect("run python -m venv");
    assert!(status.success(), "{} -m venv failed", base.display());
    Some(Venv {
        python: root.join("bin/python"),
        dir,
        version,
    })
}

/// keel's tags equal packaging's `sys_tags()` with `wheel` on `PYTHONPATH`.
fn assert_tags_equal_packaging(
    venv: &Venv,
    interpreter: &Interpreter,
    packaging: &str,
    order: TagOrder,
) {
    let wheel = packaging_wheel(packaging);
    let json = python_json(
        &venv.python,
        venv.dir.path(),
        SYS_TAGS,
        &[("PYTHONPATH", &wheel)],
    );
    let mut want: Vec<String> = serde_json::from_value(json).expect("a list of strings");
    assert_eq!(
        want.remove(0),
        packaging,
        "imported packaging from {}",
        wheel.display()
    );
    let tags = Tags::new(interpreter, order);
    let got: Vec<String> = tags.iter().map(ToString::to_string).collect();
    if let Some(i) = (0..want.len().max(got.len())).find(|&i| want.get(i) != got.get(i)) {
        panic!(
            "Python {} with packaging {packaging}: first difference at entry {i}: packaging {:?}, keel {:?} ({} vs {} tags)",
            venv.version,
            want.get(i),
            got.get(i),
            want.len(),
            got.len()
        );
    }
    eprintln!(
        "Python {}: {} tags equal packaging {packaging} ({order:?})",
        venv.version,
        got.len()
    );
}

/// The probe (through the cache) against the venv's Python asked directly.
fn assert_probe_matches_python(venv: &Venv, minor: u32) -> Interpreter {
    let cache = venv.dir.path().join("cache");
    let interpreter = Interpreter::probe(&venv.python, Some(&cache)).expect("probe");
    let cached = Interpreter::probe(&venv.python, Some(&cache)).expect("cached probe");
    assert_eq!(interpreter, cached);

    assert_eq!(interpreter.python_version(), (3, minor));
    assert_eq!(interpreter.python_full_version().to_string(), venv.version);
    let tag = format!("cpython-3{minor}");
    assert_eq!(interpreter.cache_tag(), Some(tag.as_str()));
    let root = venv
        .python
        .parent()
        .and_then(Path::parent)
        .expect("venv root");
    let site = root.join(format!("lib/python3.{minor}/site-packages"));
    let canonical = |p: &Path| fs_err::canonicalize(p).expect("canonicalize");
    assert_eq!(canonical(&interpreter.paths().purelib), canonical(&site));
    assert_eq!(
        canonical(&interpreter.paths().scripts),
        canonical(&root.join("bin"))
    );
    assert_eq!(canonical(interpreter.prefix()), canonical(root));
    assert!(interpreter.is_virtual_environment());
    assert_eq!(interpreter.executable(), venv.python);

    let direct = python_json(&venv.python, venv.dir.path(), DIRECT, &[]);
    let markers = serde_json::to_value(interpreter.markers()).expect("markers as JSON");
    for (name, value) in markers.as_object().expect("an object") {
        assert_eq!(&direct[name], value, "marker {name}");
    }
    assert_eq!(direct["cache_tag"], tag.as_str());
    assert_eq!(direct["ext_suffix"].as_str(), interpreter.ext_suffix());
    let magic: String = interpreter
        .magic_number()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(direct["magic"], magic.as_str());
    assert_eq!(
        direct["purelib"].as_str().map(PathBuf::from),
        Some(interpreter.paths().purelib.clone())
    );
    assert_eq!(
        direct["prefix"].as_str().map(PathBuf::from),
        Some(interpreter.prefix().to_path_buf())
    );
    interpreter
}

fn check(minor: u32) {
    let Some(venv) = venv(minor) else { return };
    let interpreter = assert_probe_matches_python(&venv, minor);
    if minor >= 9 {
        assert_tags_equal_packaging(&venv, &interpreter, "26.3", TagOrder::NativeFirst);
    }
    assert_tags_equal_packaging(&venv, &interpreter, "24.2", TagOrder::NativeLast);
}

#[test]
fn the_required_interpreters_are_installed() {
    let missing: Vec<String> = REQUIRED
        .iter()
        .filter(|&&minor| pyenv_python(minor).is_none())
        .map(|minor| format!("3.{minor}"))
        .collect();
    assert!(
        missing.is_empty(),
        "CPython {} missing under {}/versions (install with `pyenv install`)",
        missing.join(", "),
        pyenv_root().display()
    );
}

#[test]
fn tags_equal_packaging_on_cpython_3_8() {
    check(8);
}

#[test]
fn tags_equal_packaging_on_cpython_3_9() {
    check(9);
}

#[test]
fn tags_equal_packaging_on_cpython_3_10() {
    check(10);
}

#[test]
fn tags_equal_packaging_on_cpython_3_11() {
    check(11);
}

#[test]
fn tags_equal_packaging_on_cpython_3_12() {
    check(12);
}

#[test]
fn tags_equal_packaging_on_cpython_3_13() {
    check(13);
}

/// A PEP 600 `_manylinux` module vetoing versions, and a `.pth` file
/// printing garbage to stdout and stderr, in a 3.12 venv: the probe is not
/// disturbed and the tags still equal packaging's, which asks the module too.
#[test]
fn a_manylinux_hook_and_a_noisy_pth_file_in_a_cpython_3_12_venv() {
    let Some(venv) = venv(12) else { return };
    let site = venv.dir.path().join("venv/lib/python3.12/site-packages");
    fs_err::write(
        site.join("_manylinux.py"),
        "def manylinux_compatible(major, minor, arch):\n    \
         if (major, minor) > (2, 28) or (major, minor) == (2, 12):\n        return False\n    \
         return None\n",
    )
    .expect("write _manylinux.py");
    fs_err::write(
        site.join("noisy.pth"),
        "import sys; sys.stdout.write('{\"result\": garbage\\n'); sys.stderr.write('noise\\n')\n",
    )
    .expect("write noisy.pth");
    let interpreter = Interpreter::probe(&venv.python, None).expect("probe");
    assert!(interpreter.has_manylinux_hook());
    let tags = Tags::new(&interpreter, TagOrder::NativeFirst);
    assert!(
        tags.iter()
            .all(|t| !t.platform.starts_with("manylinux_2_29_")
                && !t.platform.starts_with("manylinux2010_"))
    );
    assert_tags_equal_packaging(&venv, &interpreter, "26.3", TagOrder::NativeFirst);
    assert_tags_equal_packaging(&venv, &interpreter, "24.2", TagOrder::NativeLast);
}

/// Each entry of the probe cache, with its inode (a rewrite changes it).
fn probe_cache_entries(cache: &Path) -> Vec<(PathBuf, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let mut entries: Vec<_> = fs_err::read_dir(cache.join("interpreters-v1"))
        .expect("the probe cache exists")
        .map(|e| {
            let e = e.expect("read_dir");
            (e.path(), e.metadata().expect("stat").ino())
        })
        .collect();
    entries.sort();
    entries
}

/// Fresh venvs of one base interpreter share one probe: the second venv's
/// is read from the first one's entry (nothing is written), relocated to its
/// own root, and equals an uncached probe of it. A `_manylinux` module added
/// to a venv's site-packages answers the probe, so that venv probes again.
#[test]
fn fresh_venvs_of_one_base_interpreter_share_a_relocated_probe() {
    let (Some(first), Some(second)) = (venv(11), venv(11)) else {
        return;
    };
    let cache = tempfile::tempdir().expect("tempdir");
    Interpreter::probe(&first.python, Some(cache.path())).expect("probe");
    let entries = probe_cache_entries(cache.path());
    assert_eq!(entries.len(), 1);

    let shared = Interpreter::probe(&second.python, Some(cache.path())).expect("probe");
    assert_eq!(
        probe_cache_entries(cache.path()),
        entries,
        "the second venv's probe comes from the first one's entry"
    );
    let root = second.dir.path().join("venv");
    assert_eq!(shared.prefix(), root);
    assert!(shared.paths().purelib.starts_with(&root));
    assert_eq!(
        shared,
        Interpreter::probe(&second.python, None).expect("probe")
    );

    let site = root.join("lib/python3.11/site-packages");
    fs_err::write(
        site.join("_manylinux.py"),
        "def manylinux_compatible(major, minor, arch):\n    return None\n",
    )
    .expect("write _manylinux.py");
    let hooked = Interpreter::probe(&second.python, Some(cache.path())).expect("probe");
    assert!(
        hooked.has_manylinux_hook(),
        "the hook was seen: probed again"
    );
    assert_eq!(probe_cache_entries(cache.path()).len(), 2);
    let first_again = Interpreter::probe(&first.python, Some(cache.path())).expect("probe");
    assert!(!first_again.has_manylinux_hook());
}
