//! The probe's process handling and cache, with fake interpreters: shell
//! scripts that count their runs in a file and write a recorded probe result
//! to the output file the probe names (`python -I -B -c <script> <outfile>`:
//! the outfile is `$5`).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use keel_python::{Error, Interpreter, ProbeOptions};

const PROBES: &str = include_str!("data/probes.jsonl");

/// The recorded probe of the 3.11 venv.
fn recorded_311() -> &'static str {
    PROBES
        .lines()
        .find(|line| line.contains("\"python_full_version\": \"3.11.7\""))
        .expect("a recorded 3.11 probe")
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs_err::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// A fake interpreter that appends a line to `<name>.runs` on every run.
fn counting_python(dir: &Path, name: &str) -> PathBuf {
    let recorded = dir.join("recorded.json");
    fs_err::write(&recorded, recorded_311()).expect("write recorded probe");
    let runs = dir.join(format!("{name}.runs"));
    let body = format!(
        "echo run >> '{}'\ncat '{}' > \"$5\"",
        runs.display(),
        recorded.display()
    );
    script(dir, name, &body)
}

fn runs(dir: &Path, name: &str) -> usize {
    fs_err::read_to_string(dir.join(format!("{name}.runs")))
        .map(|text| text.lines().count())
        .unwrap_or(0)
}

fn cache_files(cache: &Path) -> Vec<PathBuf> {
    fs_err::read_dir(cache.join("interpreters-v1"))
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn a_second_probe_is_read_from_the_cache_until_the_interpreter_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let python = counting_python(dir.path(), "python");

    let first = Interpreter::probe(&python, Some(&cache)).expect("probe");
    assert_eq!(runs(dir.path(), "python"), 1);
    assert_eq!(cache_files(&cache).len(), 1);
    let second = Interpreter::probe(&python, Some(&cache)).expect("cached probe");
    assert_eq!(runs(dir.path(), "python"), 1, "a cache hit runs no Python");
    assert_eq!(second.path(), python);
    assert_eq!(first, second);

    let touched = Command::new("touch").arg(&python).status().expect("touch");
    assert!(touched.success());
    Interpreter::probe(&python, Some(&cache)).expect("probe");
    assert_eq!(
        runs(dir.path(), "python"),
        2,
        "a touched interpreter is probed again"
    );
    Interpreter::probe(&python, Some(&cache)).expect("probe");
    assert_eq!(runs(dir.path(), "python"), 2);

    // Without a cache, every probe runs it.
    Interpreter::probe(&python, None).expect("probe");
    assert_eq!(runs(dir.path(), "python"), 3);
}

#[test]
fn re_pointing_a_venv_symlink_misses_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let base_a = counting_python(dir.path(), "python-a");
    let base_b = counting_python(dir.path(), "python-b");
    let bin = dir.path().join("venv/bin");
    fs_err::create_dir_all(&bin).expect("mkdir");
    let link = bin.join("python");
    fs_err::os::unix::fs::symlink(&base_a, &link).expect("symlink");

    Interpreter::probe(&link, Some(&cache)).expect("probe");
    Interpreter::probe(&link, Some(&cache)).expect("probe");
    assert_eq!(
        (runs(dir.path(), "python-a"), runs(dir.path(), "python-b")),
        (1, 0)
    );

    fs_err::remove_file(&link).expect("rm");
    fs_err::os::unix::fs::symlink(&base_b, &link).expect("symlink");
    Interpreter::probe(&link, Some(&cache)).expect("probe");
    assert_eq!(
        (runs(dir.path(), "python-a"), runs(dir.path(), "python-b")),
        (1, 1)
    );

    // The base interpreter itself is another cache entry.
    Interpreter::probe(&base_b, Some(&cache)).expect("probe");
    assert_eq!(runs(dir.path(), "python-b"), 2);
}

#[test]
fn a_corrupt_cache_entry_is_probed_again_and_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let python = counting_python(dir.path(), "python");
    Interpreter::probe(&python, Some(&cache)).expect("probe");
    let files = cache_files(&cache);
    assert_eq!(files.len(), 1);
    for garbage in [
        "{\"interpreter\": ",
        "{\"interpreter\": \"/x\", \"loader\": null, \"probe\": {\"result\": \"success\"}}",
    ] {
        fs_err::write(&files[0], garbage).expect("corrupt");
        let again =
            Interpreter::probe(&python, Some(&cache)).expect("probe despite a corrupt cache");
        assert_eq!(again.python_version(), (3, 11));
        let text = fs_err::read_to_string(&files[0]).expect("read");
        assert!(
            serde_json::from_str::<serde_json::Value>(&text).is_ok(),
            "overwritten: {text}"
        );
    }
    assert_eq!(runs(dir.path(), "python"), 3);
    Interpreter::probe(&python, Some(&cache)).expect("probe");
    assert_eq!(runs(dir.path(), "python"), 3);
}

#[test]
fn an_unwritable_cache_is_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let python = counting_python(dir.path(), "python");
    // A file where the cache directory should be: nothing can be created in it.
    let cache = dir.path().join("not-a-directory");
    fs_err::write(&cache, "").expect("write");
    for _ in 0..2 {
        let probed = Interpreter::probe(&python, Some(&cache)).expect("probe without a cache");
        assert_eq!(probed.python_version(), (3, 11));
    }
    assert_eq!(runs(dir.path(), "python"), 2);
}

#[test]
fn a_failing_interpreter_is_an_error_naming_it_and_quoting_stderr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let python = script(
        dir.path(),
        "python",
        "echo 'Fatal Python error: init_fs_encoding: failed to get the Python codec' >&2\nexit 1",
    );
    let error = Interpreter::probe(&python, None).expect_err("fails");
    assert!(matches!(error, Error::ProbeFailed { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&format!("`{}`", python.display())),
        "{message}"
    );
    assert!(message.contains("exit status 1"), "{message}");
    assert!(
        message.contains("failed to get the Python codec"),
        "{message}"
    );
}

#[test]
fn a_missing_interpreter_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("venv/bin/python");
    let error = Interpreter::probe(&missing, Some(&dir.path().join("cache"))).expect_err("missing");
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&missing.display().to_string()),
        "{error}"
    );

    let dangling = dir.path().join("dangling");
    fs_err::os::unix::fs::symlink(dir.path().join("gone"), &dangling).expect("symlink");
    let error = Interpreter::probe(&dangling, None).expect_err("dangling");
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    let error = Interpreter::probe(Path::new(""), None).expect_err("empty");
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
}

#[test]
fn a_file_that_cannot_be_executed_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let python = dir.path().join("python");
    fs_err::write(&python, "#!/bin/sh\nexit 0\n").expect("write");
    fs_err::set_permissions(&python, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let error = Interpreter::probe(&python, None).expect_err("not executable");
    assert!(matches!(error, Error::Spawn { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&python.display().to_string()),
        "{error}"
    );
}

#[test]
fn a_program_that_writes_no_result_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let python = script(
        dir.path(),
        "python",
        "echo '{\"result\": \"success\"}'\nexit 0",
    );
    let error = Interpreter::probe(&python, None).expect_err("no result");
    assert!(matches!(error, Error::NoProbeOutput { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&python.display().to_string()),
        "{error}"
    );

    let python = script(dir.path(), "garbage", "echo 'not json' > \"$5\"");
    let error = Interpreter::probe(&python, None).expect_err("garbage");
    assert!(
        matches!(error, Error::MalformedProbeOutput { .. }),
        "{error:?}"
    );
}

#[test]
fn a_hanging_probe_is_killed_at_the_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let python = script(
        dir.path(),
        "python",
        "echo 'waiting for the network' >&2\nexec sleep 60",
    );
    let started = Instant::now();
    let options = ProbeOptions::new().timeout(Duration::from_secs(1));
    let error = Interpreter::probe_with(&python, &options).expect_err("times out");
    let elapsed = started.elapsed();
    assert!(matches!(error, Error::ProbeTimedOut { .. }), "{error:?}");
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    let message = error.to_string();
    assert!(message.contains(&python.display().to_string()), "{message}");
    assert!(message.contains("waiting for the network"), "{message}");
}

#[test]
fn an_old_python_is_unsupported_and_says_its_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Python 2 refuses `-I`; asked again with `-E -s -B`, the probe writes
    // its version (the outfile is then `$6`).
    let body = r#"if [ "$1" = "-I" ]; then echo 'Unknown option: -I' >&2; exit 2; fi
printf '{"kind": "unsupported_python", "probe_version": 1, "python_full_version": "2.7.18", "result": "error"}' > "$6""#;
    let python = script(dir.path(), "python2", body);
    let error = Interpreter::probe(&python, None).expect_err("unsupported");
    assert_eq!(
        error.to_string(),
        format!(
            "`{}` is Python 2.7.18; keel supports Python 3.7 and newer",
            python.display()
        )
    );
    let python = script(
        dir.path(),
        "python3.3",
        "echo 'Unknown option: -I' >&2\nexit 2",
    );
    let error = Interpreter::probe(&python, None).expect_err("unsupported");
    assert!(
        error.to_string().contains("is Python older than 3.4"),
        "{error}"
    );
}

/// A fake venv: `pyvenv.cfg` and `bin/python`, a symlink to `base`.
fn fake_venv(dir: &Path, name: &str, base: &Path) -> PathBuf {
    let bin = dir.join(name).join("bin");
    fs_err::create_dir_all(&bin).expect("mkdir");
    fs_err::write(bin.join("../pyvenv.cfg"), "home = /somewhere/bin\n").expect("write pyvenv.cfg");
    let python = bin.join("python");
    fs_err::os::unix::fs::symlink(base, &python).expect("symlink");
    python
}

/// An interpreter whose `sys.prefix` is not the venv it runs in cannot
/// share its probe with other venvs: each venv's probe is cached for its
/// own path only, and read from there the next time.
#[test]
fn a_probe_that_names_another_prefix_is_cached_for_its_path_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    // The recorded probe's prefix is the venv it was recorded in, elsewhere.
    let base = counting_python(dir.path(), "python");
    let one = fake_venv(dir.path(), "one", &base);
    let two = fake_venv(dir.path(), "two", &base);

    Interpreter::probe(&one, Some(&cache)).expect("probe");
    Interpreter::probe(&two, Some(&cache)).expect("probe");
    assert_eq!(runs(dir.path(), "python"), 2, "no shared entry");
    assert_eq!(cache_files(&cache).len(), 2);
    let again = Interpreter::probe(&two, Some(&cache)).expect("probe");
    assert_eq!(runs(dir.path(), "python"), 2, "each venv's own entry hits");
    assert_eq!(again.path(), two);
}
