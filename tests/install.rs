//! `keel install` as a user runs it: upgrades and downgrades, the
//! already-installed case, corrupt wheels among good ones, usage errors,
//! every link mode, `--verify`, the environment and cache defaults,
//! namespace packages, awkward venv paths, and what `-q` / `-v` print.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use keel_fixtures::{WheelBuilder, builder_from_source, bundled, bundled_sources_dir};

// ---------------------------------------------------------------- helpers

/// No transaction directory (`<venv>/.keel/tx-*`) is left behind.
#[track_caller]
fn assert_no_transaction_left(venv: &Path) {
    let left: Vec<String> = leftover_transactions(venv)
        .into_iter()
        .filter(|name| name.starts_with("tx-"))
        .collect();
    assert!(left.is_empty(), "transactions left in .keel: {left:?}");
}

/// Byte-compiles site-packages at optimization levels 0 and 1, so that
/// `__pycache__/x.cpython-311.pyc` and `x.cpython-311.opt-1.pyc` exist.
fn compile_all(venv: &Path) {
    let output = run(Command::new(venv.join("bin/python"))
        .args(["-m", "compileall", "-q", "-o", "0", "-o", "1"])
        .arg(site_packages(venv)));
    assert_success(&output);
}

/// The two byte-code files CPython 3.11 writes for `dir/stem.py`.
fn bytecode(dir: &Path, stem: &str) -> [PathBuf; 2] {
    let cache = dir.join("__pycache__");
    [
        cache.join(format!("{stem}.cpython-311.pyc")),
        cache.join(format!("{stem}.cpython-311.opt-1.pyc")),
    ]
}

/// Every entry under `dir` (relative paths), or nothing if it is absent.
fn entries_under(dir: &Path) -> Vec<PathBuf> {
    if !dir.exists() {
        return Vec::new();
    }
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.unwrap().path().strip_prefix(dir).unwrap().to_path_buf())
        .collect()
}

/// The metadata of a path, without following a final symlink.
fn lstat(path: &Path) -> std::fs::Metadata {
    fs_err::symlink_metadata(path).unwrap()
}

/// A copy of `wheel` in `dir` (same file name) cut to `len` bytes.
fn truncated_copy(wheel: &Path, dir: &Path, len: usize) -> PathBuf {
    fs_err::create_dir_all(dir).unwrap();
    let bytes = fs_err::read(wheel).unwrap();
    assert!(len < bytes.len());
    let path = dir.join(wheel.file_name().unwrap());
    fs_err::write(&path, &bytes[..len]).unwrap();
    path
}

/// A copy of `wheel` in `dir` (same file name) with one byte flipped in the
/// middle of the compressed data of its first `.py` entry under `prefix`;
/// returns the copy and the entry's name. The central directory stays
/// intact, so only reading that entry fails.
fn damaged_entry_copy(wheel: &Path, dir: &Path, prefix: &str) -> (PathBuf, String) {
    fs_err::create_dir_all(dir).unwrap();
    let mut bytes = fs_err::read(wheel).unwrap();
    let u16_at = |b: &[u8], at: usize| u16::from_le_bytes([b[at], b[at + 1]]) as usize;
    let u32_at =
        |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
    let mut at = 0;
    let entry = loop {
        assert_eq!(&bytes[at..at + 4], b"PK\x03\x04", "local header at {at}");
        let compressed = u32_at(&bytes, at + 18);
        let name_len = u16_at(&bytes, at + 26);
        let extra_len = u16_at(&bytes, at + 28);
        let name = String::from_utf8(bytes[at + 30..at + 30 + name_len].to_vec()).unwrap();
        let data = at + 30 + name_len + extra_len;
        if name.starts_with(prefix) && name.ends_with(".py") && compressed > 16 {
            bytes[data + compressed / 2] ^= 0xff;
            break name;
        }
        at = data + compressed;
    };
    let path = dir.join(wheel.file_name().unwrap());
    fs_err::write(&path, &bytes).unwrap();
    (path, entry)
}

/// A copy of the bundled `hello-2.0.0` wheel, in `dir`, whose RECORD gives
/// `keel_demo_hello/newmod.py` a wrong sha256 (one character changed).
fn hello_v2_with_wrong_hash(dir: &Path) -> PathBuf {
    builder_from_source(&bundled_sources_dir().join("hello-2.0.0"))
        .unwrap()
        .override_record(|record| corrupt_hash(&record, "keel_demo_hello/newmod.py"))
        .build(dir)
        .unwrap()
}

/// RECORD text with the hash of `path` changed in its first character.
fn corrupt_hash(record: &str, path: &str) -> String {
    let mut out = String::new();
    let mut found = false;
    for line in record.lines() {
        if let Some(rest) = line.strip_prefix(&format!("{path},sha256=")) {
            let first = if rest.starts_with('A') { 'B' } else { 'A' };
            out.push_str(&format!("{path},sha256={first}{}\n", &rest[1..]));
            found = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(found, "{path} not in RECORD:\n{record}");
    out
}

/// Asserts an install failed as a whole, with a proper error chain, and
/// touched nothing: exit 1, `error: ` first, `Caused by:` lines, each of
/// `needles` somewhere in stderr, the environment byte for byte as before,
/// no transaction left, nothing in the cache's `tmp/`.
#[track_caller]
fn assert_refused_without_a_trace(
    sandbox: &Sandbox,
    venv: &Path,
    before: &BTreeMap<PathBuf, Node>,
    output: &Output,
    needles: &[&str],
) {
    assert_exit(output, 1);
    let err = stderr(output);
    assert!(err.starts_with("error: "), "stderr:\n{err}");
    assert_contains(&err, "Caused by: ");
    for needle in needles {
        assert_contains(&err, needle);
    }
    assert!(stdout(output).is_empty(), "stdout:\n{}", stdout(output));
    assert_same_tree(before, &snapshot(venv));
    assert_no_transaction_left(venv);
    assert_eq!(
        entries_under(&sandbox.cache.join("tmp")),
        Vec::<PathBuf>::new(),
        "an unpack was left in the cache's tmp/"
    );
}

/// Every path under a venv (relative), except keel's own `.keel/`.
fn tree_paths(venv: &Path) -> Vec<PathBuf> {
    snapshot(venv)
        .into_keys()
        .filter(|p| !p.starts_with(".keel"))
        .collect()
}

/// Asserts `venv` holds exactly the paths a fresh venv gets from installing
/// `wheels` (nothing of a replaced version remains, nothing is missing).
#[track_caller]
fn assert_same_paths_as_a_fresh_install(sandbox: &Sandbox, venv: &Path, wheels: &[&Path]) {
    let fresh = sandbox.venv(&format!(
        "fresh-{}",
        venv.file_name().unwrap().to_string_lossy()
    ));
    assert_success(&sandbox.install_paths(&fresh, wheels, &[]));
    let (got, want) = (tree_paths(venv), tree_paths(&fresh));
    let extra: Vec<_> = got.iter().filter(|p| !want.contains(p)).collect();
    let missing: Vec<_> = want.iter().filter(|p| !got.contains(p)).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{} differs from a fresh install\nleft over: {extra:#?}\nmissing: {missing:#?}",
        venv.display()
    );
}

/// A venv with keel-demo-hello 1.0.0 installed (and byte-compiled, so that
/// "unchanged" covers `__pycache__` too).
fn venv_with_hello_v1(sandbox: &Sandbox, name: &str) -> PathBuf {
    let venv = sandbox.venv(name);
    sandbox.install_ok(&venv, &[&sandbox.wheel(bundled::HELLO_V1)]);
    compile_all(&venv);
    venv
}

// ------------------------------------------------- upgrades and downgrades

#[test]
fn upgrade_replaces_the_old_version_and_removes_its_dropped_files_and_bytecode() {
    let sandbox = Sandbox::new();
    let venv = venv_with_hello_v1(&sandbox, "venv");
    let site = site_packages(&venv);
    let util_pyc = bytecode(&site.join("keel_demo_hello/sub"), "util");
    for pyc in &util_pyc {
        assert!(pyc.is_file(), "compileall did not write {}", pyc.display());
    }

    let output = sandbox.install_ok(&venv, &[&sandbox.wheel(bundled::HELLO_V2)]);
    let err = stderr(&output);
    assert_contains(&err, "Installed 1 package in ");
    assert_contains(&err, " - keel-demo-hello==1.0.0\n");
    assert_contains(&err, " + keel-demo-hello==2.0.0\n");
    assert!(
        err.find(" - keel-demo-hello==1.0.0").unwrap()
            < err.find(" + keel-demo-hello==2.0.0").unwrap(),
        "{err}"
    );

    assert!(!site.join("keel_demo_hello/sub/util.py").exists());
    for pyc in &util_pyc {
        assert!(!pyc.exists(), "{} survived the upgrade", pyc.display());
    }
    assert!(site.join("keel_demo_hello/sub/__init__.py").is_file());
    assert!(site.join("keel_demo_hello/newmod.py").is_file());
    assert_eq!(dist_infos(&venv), ["keel_demo_hello-2.0.0.dist-info"]);
    assert_eq!(
        script(&venv, "keel-hello", &[]).trim(),
        "hello from keel_demo_hello 2.0.0"
    );
    assert_eq!(
        python(
            &venv,
            "import keel_demo_hello, keel_demo_hello.newmod; print(keel_demo_hello.__version__)"
        )
        .trim(),
        "2.0.0"
    );
    assert_no_transaction_left(&venv);
    assert_same_paths_as_a_fresh_install(&sandbox, &venv, &[&sandbox.wheel(bundled::HELLO_V2)]);
    assert_environment_matches_record(&venv);
}

#[test]
fn downgrade_replaces_the_newer_version_and_removes_its_files_and_bytecode() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    sandbox.install_ok(&venv, &[&sandbox.wheel(bundled::HELLO_V2)]);
    compile_all(&venv);
    let site = site_packages(&venv);
    let newmod_pyc = bytecode(&site.join("keel_demo_hello"), "newmod");
    for pyc in &newmod_pyc {
        assert!(pyc.is_file(), "compileall did not write {}", pyc.display());
    }

    let output = sandbox.install_ok(&venv, &[&sandbox.wheel(bundled::HELLO_V1)]);
    let err = stderr(&output);
    assert_contains(&err, " - keel-demo-hello==2.0.0\n");
    assert_contains(&err, " + keel-demo-hello==1.0.0\n");

    assert!(!site.join("keel_demo_hello/newmod.py").exists());
    for pyc in &newmod_pyc {
        assert!(!pyc.exists(), "{} survived the downgrade", pyc.display());
    }
    assert!(site.join("keel_demo_hello/sub/util.py").is_file());
    assert_eq!(dist_infos(&venv), ["keel_demo_hello-1.0.0.dist-info"]);
    assert_eq!(
        script(&venv, "keel-hello", &[]).trim(),
        "hello from keel_demo_hello 1.0.0"
    );
    assert_eq!(
        python(&venv, "import keel_demo_hello.sub.util; print('ok')").trim(),
        "ok"
    );
    assert_no_transaction_left(&venv);
    assert_same_paths_as_a_fresh_install(&sandbox, &venv, &[&sandbox.wheel(bundled::HELLO_V1)]);
    assert_environment_matches_record(&venv);
}

/// `keel-demo-evolve` at `version`: a package, a console script, a data
/// file and a header, each named after `tag`, so that two versions share
/// nothing but the package directory.
fn evolve_wheel(dir: &Path, version: &str, tag: &str) -> PathBuf {
    let data = format!("keel_demo_evolve-{version}.data");
    WheelBuilder::new("keel-demo-evolve", version)
        .file(
            "keel_demo_evolve/__init__.py",
            format!("def main():\n    print('evolve {version}')\n"),
        )
        .file(&format!("keel_demo_evolve/{tag}.py"), "")
        .file(&format!("{data}/data/share/evolve-{tag}/{tag}.txt"), tag)
        .file(&format!("{data}/headers/{tag}.h"), "/* h */\n")
        .executable(
            &format!("{data}/scripts/evolve-{tag}.sh"),
            "#!/bin/sh\necho sh\n",
        )
        .entry_points(&format!(
            "[console_scripts]\nevolve-{tag} = keel_demo_evolve:main\n"
        ))
        .build(dir)
        .unwrap()
}

#[test]
fn upgrade_removes_scripts_data_and_headers_the_new_version_dropped() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("evolve");
    let old = evolve_wheel(&dir, "1.0", "old");
    let new = evolve_wheel(&dir, "2.0", "new");
    let venv = sandbox.venv("venv");
    sandbox.install_ok(&venv, &[&old]);
    assert_eq!(script(&venv, "evolve-old", &[]).trim(), "evolve 1.0");
    assert!(venv.join("share/evolve-old/old.txt").is_file());
    assert!(venv.join("bin/evolve-old.sh").is_file());

    let output = sandbox.install_ok(&venv, &[&new]);
    assert_contains(&stderr(&output), " - keel-demo-evolve==1.0\n");
    assert_eq!(script(&venv, "evolve-new", &[]).trim(), "evolve 2.0");
    for gone in [
        "bin/evolve-old",
        "bin/evolve-old.sh",
        "share/evolve-old",
        "include/site/python3.11/keel-demo-evolve/old.h",
    ] {
        assert!(!venv.join(gone).exists(), "{gone} survived the upgrade");
    }
    assert_same_paths_as_a_fresh_install(&sandbox, &venv, &[&new]);
    assert_no_transaction_left(&venv);
    assert_environment_matches_record(&venv);
}

#[test]
fn a_directory_in_the_way_of_a_file_fails_the_whole_transaction_and_changes_nothing() {
    let sandbox = Sandbox::new();
    let venv = venv_with_hello_v1(&sandbox, "venv");
    // A directory where NS_A wants to put a file, in the same transaction
    // as an upgrade that replaces HELLO 1.0.0: neither may happen.
    let blocker = site_packages(&venv).join("keel_demo_ns/a.py");
    fs_err::create_dir_all(&blocker).unwrap();
    let before = snapshot(&venv);

    let output = sandbox.install(
        &venv,
        &[
            &sandbox.wheel(bundled::HELLO_V2),
            &sandbox.wheel(bundled::NS_A),
        ],
    );
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(err.starts_with("error: "), "{err}");
    assert_contains(&err, "in the way");
    assert_contains(&err, &blocker.display().to_string());
    assert_same_tree(&before, &snapshot(&venv));
    assert_no_transaction_left(&venv);
    assert_eq!(
        script(&venv, "keel-hello", &[]).trim(),
        "hello from keel_demo_hello 1.0.0"
    );
    fs_err::remove_dir_all(site_packages(&venv).join("keel_demo_ns")).unwrap();
    assert_environment_matches_record(&venv);
}

// --------------------------------------------------- already installed

#[test]
fn same_version_already_installed_is_left_byte_for_byte_alone() {
    let sandbox = Sandbox::new();
    let venv = venv_with_hello_v1(&sandbox, "venv");
    let before = snapshot(&venv);

    let output = sandbox.install_ok(&venv, &[&sandbox.wheel(bundled::HELLO_V1)]);
    let err = stderr(&output);
    assert_contains(&err, "Nothing to install");
    assert_contains(&err, "already installed");
    assert!(!err.contains(" + "), "{err}");
    assert_same_tree(&before, &snapshot(&venv));
    assert_environment_matches_record(&venv);
}

#[test]
fn reinstall_installs_the_same_version_again_and_restores_a_deleted_file() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    sandbox.install_ok(&venv, &[&sandbox.wheel(bundled::HELLO_V1)]);
    let util = site_packages(&venv).join("keel_demo_hello/sub/util.py");
    let content = fs_err::read(&util).unwrap();
    fs_err::remove_file(&util).unwrap();

    let output = sandbox.install_ok(&venv, &[&sandbox.wheel(bundled::HELLO_V1), &"--reinstall"]);
    let err = stderr(&output);
    assert_contains(&err, " ~ keel-demo-hello==1.0.0\n");
    assert!(!err.contains(" + keel-demo-hello"), "{err}");
    assert!(!err.contains(" - keel-demo-hello"), "{err}");
    assert_eq!(fs_err::read(&util).unwrap(), content);
    assert_eq!(dist_infos(&venv), ["keel_demo_hello-1.0.0.dist-info"]);
    assert_eq!(
        script(&venv, "keel-hello", &[]).trim(),
        "hello from keel_demo_hello 1.0.0"
    );
    assert_no_transaction_left(&venv);
    assert_environment_matches_record(&venv);
}

#[test]
fn already_installed_wheels_are_listed_beside_the_ones_installed() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    sandbox.install_ok(&venv, &[&sandbox.wheel(bundled::HELLO_V1)]);
    let output = sandbox.install_ok(
        &venv,
        &[
            &sandbox.wheel(bundled::HELLO_V1),
            &sandbox.wheel(bundled::NS_A),
        ],
    );
    let err = stderr(&output);
    assert_contains(&err, "Installed 1 package in ");
    assert_contains(&err, " + keel-demo-ns-a==1.0\n");
    assert!(!err.contains(" + keel-demo-hello"), "{err}");
    assert_contains(&err, "keel-demo-hello==1.0.0");
    assert_environment_matches_record(&venv);
}

// ------------------------------------------------------------ bad input

#[test]
fn wheel_with_a_wrong_record_hash_among_good_ones_changes_nothing() {
    let sandbox = Sandbox::new();
    let venv = venv_with_hello_v1(&sandbox, "venv");
    let bad_dir = sandbox.path().join("bad");
    let bad = WheelBuilder::new("keel-demo-corrupt", "1.0")
        .file("keel_demo_corrupt/__init__.py", "X = 1\n")
        .file("keel_demo_corrupt/core.py", "def f():\n    return 42\n")
        .override_record(|record| corrupt_hash(&record, "keel_demo_corrupt/core.py"))
        .build(&bad_dir)
        .unwrap();
    let before = snapshot(&venv);

    let output = sandbox.install(
        &venv,
        &[
            &sandbox.wheel(bundled::DATA),
            &bad,
            &sandbox.wheel(bundled::NS_A),
        ],
    );
    assert_refused_without_a_trace(
        &sandbox,
        &venv,
        &before,
        &output,
        &[
            "keel_demo_corrupt-1.0-py3-none-any.whl",
            "keel_demo_corrupt/core.py",
        ],
    );
    assert_eq!(
        sandbox.archives("keel-demo-corrupt"),
        Vec::<PathBuf>::new(),
        "an archive of the corrupt wheel was left in the cache"
    );
    assert_eq!(
        entries_under(&sandbox.cache.join("pointers-v1/keel-demo-corrupt")),
        Vec::<PathBuf>::new(),
        "a pointer for the corrupt wheel was left in the cache"
    );
    assert_environment_matches_record(&venv);
}

#[test]
fn upgrade_to_a_wheel_with_a_wrong_record_hash_keeps_the_old_version() {
    let sandbox = Sandbox::new();
    let venv = venv_with_hello_v1(&sandbox, "venv");
    let bad = hello_v2_with_wrong_hash(&sandbox.path().join("bad"));
    let archives_before = sandbox.archives("keel-demo-hello");
    let before = snapshot(&venv);

    let output = sandbox.install(&venv, &[&sandbox.wheel(bundled::NS_A), &bad]);
    assert_refused_without_a_trace(
        &sandbox,
        &venv,
        &before,
        &output,
        &[
            &bad.display().to_string(),
            "keel_demo_hello/newmod.py",
            "sha256",
        ],
    );
    assert_eq!(sandbox.archives("keel-demo-hello"), archives_before);
    assert_eq!(
        script(&venv, "keel-hello", &[]).trim(),
        "hello from keel_demo_hello 1.0.0"
    );
    assert_environment_matches_record(&venv);
}

#[test]
fn truncated_wheel_among_good_ones_changes_nothing() {
    let sandbox = Sandbox::new();
    let venv = venv_with_hello_v1(&sandbox, "venv");
    let good = sandbox.wheel(bundled::HELLO_V2);
    let len = fs_err::metadata(&good).unwrap().len() as usize;
    let bad = truncated_copy(&good, &sandbox.path().join("bad"), len / 2);
    let archives_before = sandbox.archives("keel-demo-hello");
    let before = snapshot(&venv);

    let output = sandbox.install(
        &venv,
        &[
            &sandbox.wheel(bundled::DATA),
            &bad,
            &sandbox.wheel(bundled::NS_B),
        ],
    );
    assert_refused_without_a_trace(
        &sandbox,
        &venv,
        &before,
        &output,
        &[&bad.display().to_string()],
    );
    assert_eq!(sandbox.archives("keel-demo-hello"), archives_before);
    assert_environment_matches_record(&venv);
}

#[test]
fn wheel_with_a_corrupt_entry_names_the_entry_and_changes_nothing() {
    let sandbox = Sandbox::new();
    let venv = venv_with_hello_v1(&sandbox, "venv");
    let (bad, entry) = damaged_entry_copy(
        &sandbox.wheel(bundled::MANY),
        &sandbox.path().join("bad"),
        "keel_demo_many/gamma/",
    );
    let before = snapshot(&venv);

    let output = sandbox.install(&venv, &[&bad, &sandbox.wheel(bundled::NS_A)]);
    assert_refused_without_a_trace(
        &sandbox,
        &venv,
        &before,
        &output,
        &[&bad.display().to_string(), &entry],
    );
    assert_eq!(sandbox.archives("keel-demo-many"), Vec::<PathBuf>::new());
    assert_environment_matches_record(&venv);
}

#[test]
fn two_versions_of_one_distribution_in_one_command_are_refused() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    sandbox.install_ok(&venv, &[&sandbox.wheel(bundled::NS_A)]);
    let before = snapshot(&venv);

    let v1 = sandbox.wheel(bundled::HELLO_V1);
    let v2 = sandbox.wheel(bundled::HELLO_V2);
    let output = sandbox.install(&venv, &[&v1, &sandbox.wheel(bundled::DATA), &v2]);
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(err.starts_with("error: "), "{err}");
    assert_contains(&err, "keel-demo-hello");
    assert_contains(&err, &v1.display().to_string());
    assert_contains(&err, &v2.display().to_string());
    assert_same_tree(&before, &snapshot(&venv));
    assert_no_transaction_left(&venv);
    assert_environment_matches_record(&venv);
}

// ------------------------------------------------------- usage errors

#[test]
fn no_wheels_is_a_usage_error() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    let before = snapshot(&venv);
    let output = sandbox.install(&venv, &[]);
    assert_exit(&output, 2);
    assert_contains(&stderr(&output), "<WHEEL>");
    assert_same_tree(&before, &snapshot(&venv));
}

#[test]
fn unknown_link_mode_is_a_usage_error() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    let before = snapshot(&venv);
    let output = sandbox.install(
        &venv,
        &[
            &"--link-mode",
            &"teleport",
            &sandbox.wheel(bundled::HELLO_V1),
        ],
    );
    assert_exit(&output, 2);
    let err = stderr(&output);
    assert_contains(&err, "teleport");
    assert_contains(&err, "--link-mode");
    assert_contains(&err, "hardlink");
    assert_same_tree(&before, &snapshot(&venv));
}

#[test]
fn a_directory_that_is_not_a_venv_is_refused_with_a_hint() {
    let sandbox = Sandbox::new();
    let not_venv = sandbox.path().join("plain dir");
    fs_err::create_dir(&not_venv).unwrap();
    fs_err::write(not_venv.join("keep.txt"), "x").unwrap();
    let before = snapshot(&not_venv);

    let output = sandbox.install(&not_venv, &[&sandbox.wheel(bundled::HELLO_V1)]);
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(err.starts_with("error: "), "{err}");
    assert_contains(&err, &not_venv.display().to_string());
    assert_contains(&err, "python3 -m venv");
    assert_same_tree(&before, &snapshot(&not_venv));

    let missing = sandbox.path().join("no-such-venv");
    let output = sandbox.install(&missing, &[&sandbox.wheel(bundled::HELLO_V1)]);
    assert_exit(&output, 1);
    assert_contains(&stderr(&output), &missing.display().to_string());
    assert!(!missing.exists(), "keel created {}", missing.display());
}

#[test]
fn the_venv_hint_is_a_command_that_can_be_pasted_for_a_path_with_a_space() {
    let sandbox = Sandbox::new();
    let not_venv = sandbox.path().join("my project");
    fs_err::create_dir(&not_venv).unwrap();
    let output = sandbox.install(&not_venv, &[&sandbox.wheel(bundled::NS_A)]);
    assert_exit(&output, 1);
    let err = stderr(&output);
    let hint = err
        .split("`python3 -m venv")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap_or_else(|| panic!("no `python3 -m venv …` hint in:\n{err}"));
    let command = format!("python3 -m venv{hint}");
    // How a POSIX shell splits the suggested command.
    let words = run(Command::new("python3")
        .arg("-c")
        .arg("import shlex, sys; print('\\n'.join(shlex.split(sys.argv[1])))")
        .arg(&command));
    assert_success(&words);
    let words: Vec<String> = stdout(&words).lines().map(str::to_owned).collect();
    assert_eq!(
        words,
        ["python3", "-m", "venv", not_venv.to_str().unwrap()],
        "pasting the suggested `{command}` into a shell would not create {}",
        not_venv.display()
    );
}

#[test]
fn a_missing_wheel_is_named_and_nothing_is_installed() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    sandbox.install_ok(&venv, &[&sandbox.wheel(bundled::NS_A)]);
    let before = snapshot(&venv);
    let missing = sandbox.path().join("keel_demo_gone-1.0-py3-none-any.whl");

    let output = sandbox.install(&venv, &[&sandbox.wheel(bundled::HELLO_V1), &missing]);
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(err.starts_with("error: "), "{err}");
    assert_contains(&err, &missing.display().to_string());
    assert_contains(&err, "does not exist");
    assert_same_tree(&before, &snapshot(&venv));
    assert_environment_matches_record(&venv);
}

/// A wheel whose directories' files are interleaved in the zip (`a/`, `b/`,
/// `a/` again, a subdirectory of `a/` between): each directory is filled by
/// several runs of hardlinks, which make it themselves, racing each other
/// on two cores, cold and warm.
#[test]
fn a_wheel_with_its_directories_files_interleaved_installs_whole_cold_and_warm() {
    let sandbox = Sandbox::new();
    let mut builder = WheelBuilder::new("keel-demo-interleaved", "1.0");
    for i in 0..40 {
        for (k, dir) in ["a", "b", "a/sub", "a"].into_iter().enumerate() {
            builder = builder.file(
                &format!("keel_demo_interleaved/{dir}/m{i}_{k}.py"),
                format!("VALUE = {i}\n"),
            );
        }
    }
    let wheel = builder
        .file("keel_demo_interleaved/__init__.py", "")
        .build(&sandbox.wheels)
        .expect("build the wheel");
    let import_all = "import importlib; print(sum(importlib.import_module(f'keel_demo_interleaved.{d}.m{i}_{k}').VALUE for i in range(40) for k, d in enumerate(('a', 'b', 'a.sub', 'a'))))";
    for name in ["cold", "warm"] {
        let venv = sandbox.venv(name);
        sandbox.install_paths_ok(&venv, std::slice::from_ref(&wheel));
        assert_eq!(python(&venv, import_all).trim(), (4 * 780).to_string());
        assert_environment_matches_record(&venv);
        assert_no_transaction_left(&venv);
    }
}

// ---------------------------------------------------------- link modes

/// Installs HELLO_V1 and DATA with `--link-mode MODE` (plus `extra`) into a
/// fresh venv, imports them and runs their scripts; returns the venv and
/// keel's output.
fn install_with_link_mode(sandbox: &Sandbox, mode: &str, extra: &[&str]) -> (PathBuf, Output) {
    let venv = sandbox.venv(&format!("venv-{mode}"));
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"--link-mode", &mode];
    for arg in extra {
        args.push(arg);
    }
    let hello = sandbox.wheel(bundled::HELLO_V1);
    let data = sandbox.wheel(bundled::DATA);
    args.push(&hello);
    args.push(&data);
    let output = sandbox.install_ok(&venv, &args);
    assert_contains(&stderr(&output), "Installed 2 packages in ");
    assert_eq!(
        python(
            &venv,
            "import keel_demo_hello.sub.util, keel_demo_data, keel_demo_data_extra; print(keel_demo_hello.greet('x'))"
        )
        .trim(),
        "hello x from keel_demo_hello 1.0.0"
    );
    assert_eq!(
        script(&venv, "keel-hello", &[]).trim(),
        "hello from keel_demo_hello 1.0.0"
    );
    let tool = script(&venv, "keel-data-tool", &[]);
    assert!(tool.starts_with("data tool ok\n"), "{tool}");
    assert_eq!(script(&venv, "keel-data-sh", &[]).trim(), "sh tool ok");
    assert_no_transaction_left(&venv);
    (venv, output)
}

/// Files keel writes itself: they must never be links into the cache.
fn generated_files(venv: &Path) -> Vec<PathBuf> {
    let site = site_packages(venv);
    let mut files = Vec::new();
    for dist_info in [
        "keel_demo_hello-1.0.0.dist-info",
        "keel_demo_data-0.3.0.dist-info",
    ] {
        for name in ["RECORD", "INSTALLER", "REQUESTED", "direct_url.json"] {
            files.push(site.join(dist_info).join(name));
        }
    }
    for script in [
        "keel-hello",
        "keel-hello-gui",
        "keel-data-tool",
        "keel-data-sh",
    ] {
        files.push(venv.join("bin").join(script));
    }
    files
}

/// Package files installed from the archives, with their archive paths.
fn linked_files(sandbox: &Sandbox, venv: &Path) -> Vec<(PathBuf, PathBuf)> {
    let site = site_packages(venv);
    let hello = sandbox.only_archive_tree("keel-demo-hello");
    let data = sandbox.only_archive_tree("keel-demo-data");
    let mut pairs = Vec::new();
    for file in [
        "keel_demo_hello/__init__.py",
        "keel_demo_hello/sub/util.py",
        "keel_demo_hello-1.0.0.dist-info/METADATA",
    ] {
        pairs.push((site.join(file), hello.join(file)));
    }
    pairs.push((
        site.join("keel_demo_data/__init__.py"),
        data.join("keel_demo_data/__init__.py"),
    ));
    pairs.push((
        site.join("keel_demo_data_extra.py"),
        data.join("keel_demo_data-0.3.0.data/purelib/keel_demo_data_extra.py"),
    ));
    pairs
}

#[test]
fn link_mode_copy_installs_independent_files() {
    let sandbox = Sandbox::new();
    let (venv, _) = install_with_link_mode(&sandbox, "copy", &[]);
    for (installed, archived) in linked_files(&sandbox, &venv) {
        let meta = lstat(&installed);
        assert!(meta.is_file(), "{}", installed.display());
        assert_eq!(meta.nlink(), 1, "{}", installed.display());
        assert_ne!(
            meta.ino(),
            lstat(&archived).ino(),
            "{}",
            installed.display()
        );
        assert_eq!(
            fs_err::read(&installed).unwrap(),
            fs_err::read(&archived).unwrap()
        );
    }
    for file in generated_files(&venv) {
        assert_eq!(lstat(&file).nlink(), 1, "{}", file.display());
    }
    assert_environment_matches_record(&venv);
}

#[test]
fn link_mode_hardlink_shares_package_files_with_the_cache_but_not_generated_ones() {
    let sandbox = Sandbox::new();
    let (venv, _) = install_with_link_mode(&sandbox, "hardlink", &[]);
    for (installed, archived) in linked_files(&sandbox, &venv) {
        let (a, b) = (lstat(&installed), lstat(&archived));
        assert!(a.is_file(), "{}", installed.display());
        assert_eq!(
            (a.dev(), a.ino()),
            (b.dev(), b.ino()),
            "{} is not a hardlink of {}",
            installed.display(),
            archived.display()
        );
        assert!(a.nlink() >= 2, "{}", installed.display());
    }
    for file in generated_files(&venv) {
        let meta = lstat(&file);
        assert!(meta.is_file(), "{}", file.display());
        assert_eq!(meta.nlink(), 1, "{} is linked", file.display());
    }
    assert_environment_matches_record(&venv);
}

#[test]
fn link_mode_symlink_points_package_files_into_the_cache() {
    let sandbox = Sandbox::new();
    let (venv, _) = install_with_link_mode(&sandbox, "symlink", &[]);
    for (installed, archived) in linked_files(&sandbox, &venv) {
        let meta = lstat(&installed);
        assert!(meta.file_type().is_symlink(), "{}", installed.display());
        assert_eq!(
            fs_err::canonicalize(&installed).unwrap(),
            fs_err::canonicalize(&archived).unwrap()
        );
    }
    for file in generated_files(&venv) {
        let meta = lstat(&file);
        assert!(
            meta.is_file() && meta.nlink() == 1,
            "{} is not a real file",
            file.display()
        );
    }
    // The shared checker refuses symlinks on principle; with symlinks that
    // point into keel's own cache, check every RECORD row through them.
    assert_record_matches_through_symlinks(&venv, &sandbox.cache);
}

/// Like `assert_environment_matches_record`, but a RECORD row may be a
/// symlink, if it resolves to a regular file inside `cache`.
#[track_caller]
fn assert_record_matches_through_symlinks(venv: &Path, cache: &Path) {
    const CHECK: &str = r#"
import base64, csv, hashlib, os, sys
venv, cache = os.path.abspath(sys.argv[1]), os.path.realpath(sys.argv[2])
lib = os.path.join(venv, "lib")
site = [os.path.join(lib, n, "site-packages") for n in os.listdir(lib)][0]
problems, rows = [], 0
for entry in sorted(os.listdir(site)):
    if not entry.endswith(".dist-info"):
        continue
    with open(os.path.join(site, entry, "RECORD"), newline="") as f:
        for path, digest, size in csv.reader(f):
            full = os.path.normpath(os.path.join(site, path))
            if not digest:
                continue
            rows += 1
            if os.path.islink(full) and not os.path.realpath(full).startswith(cache + os.sep):
                problems.append(f"{path}: symlink out of the cache")
            if not os.path.isfile(full):
                problems.append(f"{path}: missing")
                continue
            algorithm, expected = digest.split("=", 1)
            data = open(full, "rb").read()
            actual = base64.urlsafe_b64encode(hashlib.new(algorithm, data).digest()).rstrip(b"=").decode()
            if actual != expected or int(size) != len(data):
                problems.append(f"{path}: hash or size mismatch")
print("\n".join(problems))
sys.exit(1 if problems or rows == 0 else 0)
"#;
    let output = run(Command::new("python3")
        .arg("-c")
        .arg(CHECK)
        .arg(venv)
        .arg(cache));
    assert_success_of(
        &output,
        &format!("{} does not match its RECORD files", venv.display()),
    );
}

#[test]
fn link_mode_clone_default_falls_back_where_reflinks_are_unsupported() {
    let sandbox = Sandbox::new();
    let (venv, output) = install_with_link_mode(&sandbox, "clone", &["-v"]);
    let err = stderr(&output);
    let (installed, archived) = linked_files(&sandbox, &venv).remove(0);
    let shares_inode = lstat(&installed).ino() == lstat(&archived).ino();
    if shares_inode {
        // No reflinks here (ext4): keel fell back to hardlinks and said so.
        assert_contains(
            &err,
            "link mode clone is not supported here; using hardlink",
        );
    } else {
        // A real clone (or copy): an independent file.
        assert_eq!(lstat(&installed).nlink(), 1);
    }
    for file in generated_files(&venv) {
        assert_eq!(lstat(&file).nlink(), 1, "{}", file.display());
    }
    assert_environment_matches_record(&venv);

    // The default is clone: the same result without --link-mode.
    let venv2 = sandbox.venv("venv-default");
    sandbox.install_ok(&venv2, &[&sandbox.wheel(bundled::HELLO_V1)]);
    let installed2 = site_packages(&venv2).join("keel_demo_hello/__init__.py");
    assert_eq!(
        lstat(&installed2).ino() == lstat(&archived).ino(),
        shares_inode
    );
    assert_environment_matches_record(&venv2);
}

#[test]
fn editing_a_hardlinked_file_does_not_reach_the_next_environment() {
    let sandbox = Sandbox::new();
    let (first, _) = install_with_link_mode(&sandbox, "hardlink", &[]);
    let edited = site_packages(&first).join("keel_demo_hello/__init__.py");
    let mut text = fs_err::read_to_string(&edited).unwrap();
    text.push_str("\nEDITED = True\n");
    fs_err::write(&edited, text).unwrap();

    let second = sandbox.venv("second");
    let output = sandbox.install_ok(
        &second,
        &[
            &"--link-mode",
            &"hardlink",
            &sandbox.wheel(bundled::HELLO_V1),
        ],
    );
    let err = stderr(&output);
    assert_contains(&err, "warning: the cached archive of keel_demo_hello-1.0.0");
    assert_eq!(
        python(
            &second,
            "import keel_demo_hello; print(hasattr(keel_demo_hello, 'EDITED'))"
        )
        .trim(),
        "False"
    );
    assert_environment_matches_record(&second);
}

// ------------------------------------------------------------- --verify

#[test]
fn verify_on_a_warm_cache_installs_a_verified_environment() {
    let sandbox = Sandbox::new();
    let cold = sandbox.venv("cold");
    sandbox.install_ok(&cold, &[&sandbox.wheel(bundled::MANY)]);

    let warm = sandbox.venv("warm");
    let output = sandbox.install_ok(&warm, &[&"--verify", &sandbox.wheel(bundled::MANY)]);
    let err = stderr(&output);
    assert!(!err.contains("Unpacked"), "the cache was not warm:\n{err}");
    assert!(!err.contains("warning"), "{err}");
    assert_eq!(
        script(&warm, "keel-many", &[]).trim(),
        bundled::MANY_MODULE_COUNT.to_string()
    );
    assert_environment_matches_record(&warm);
}

#[test]
fn verify_catches_an_archive_file_altered_behind_an_intact_stamp() {
    let sandbox = Sandbox::new();
    let first = sandbox.venv("first");
    sandbox.install_ok(
        &first,
        &[&"--link-mode", &"copy", &sandbox.wheel(bundled::HELLO_V1)],
    );
    // Same size, same mtime, other bytes: a stamp (dev, inode, size, mtime)
    // cannot see it; only hashing can.
    let archived = sandbox
        .only_archive_tree("keel-demo-hello")
        .join("keel_demo_hello/__init__.py");
    let original = fs_err::read(&archived).unwrap();
    let output = run(Command::new("python3")
        .arg("-c")
        .arg(
            "import os, sys\n\
         p = sys.argv[1]\n\
         st = os.stat(p)\n\
         data = bytearray(open(p, 'rb').read())\n\
         i = data.index(b'1.0.0')\n\
         data[i:i + 5] = b'6.6.6'\n\
         open(p, 'r+b').write(data)\n\
         os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))\n",
        )
        .arg(&archived));
    assert_success(&output);
    assert_ne!(fs_err::read(&archived).unwrap(), original);

    let second = sandbox.venv("second");
    let output = sandbox.install_ok(&second, &[&"--verify", &sandbox.wheel(bundled::HELLO_V1)]);
    let err = stderr(&output);
    assert_contains(&err, "warning: the cached archive of keel_demo_hello-1.0.0");
    assert_contains(&err, "keel_demo_hello/__init__.py");
    assert_eq!(
        script(&second, "keel-hello", &[]).trim(),
        "hello from keel_demo_hello 1.0.0"
    );
    assert_environment_matches_record(&second);
}

// ------------------------------------------------------------- defaults

#[test]
fn virtual_env_variable_is_the_default_venv() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("activated");
    let output = run(keel()
        .current_dir(sandbox.path())
        .env("VIRTUAL_ENV", &venv)
        .arg("install")
        .arg("--cache-dir")
        .arg(&sandbox.cache)
        .arg(sandbox.wheel(bundled::HELLO_V1)));
    assert_success(&output);
    assert_eq!(
        script(&venv, "keel-hello", &[]).trim(),
        "hello from keel_demo_hello 1.0.0"
    );
    assert_environment_matches_record(&venv);
}

#[test]
fn explicit_venv_wins_over_virtual_env() {
    let sandbox = Sandbox::new();
    let activated = sandbox.venv("activated");
    let explicit = sandbox.venv("explicit");
    let before = snapshot(&activated);
    let output = run(keel()
        .env("VIRTUAL_ENV", &activated)
        .arg("install")
        .arg("--venv")
        .arg(&explicit)
        .arg("--cache-dir")
        .arg(&sandbox.cache)
        .arg(sandbox.wheel(bundled::NS_A)));
    assert_success(&output);
    assert_same_tree(&before, &snapshot(&activated));
    assert_eq!(dist_infos(&explicit), ["keel_demo_ns_a-1.0.dist-info"]);
    assert_environment_matches_record(&explicit);
}

#[test]
fn dot_venv_in_the_current_directory_is_the_fallback() {
    let sandbox = Sandbox::new();
    let project = sandbox.path().join("project");
    fs_err::create_dir(&project).unwrap();

    // No VIRTUAL_ENV and no .venv yet: a clear error.
    let no_env = run(keel()
        .current_dir(&project)
        .env("KEEL_CACHE_DIR", &sandbox.cache)
        .arg("install")
        .arg(sandbox.wheel(bundled::HELLO_V1)));
    assert_exit(&no_env, 1);
    let err = stderr(&no_env);
    assert!(err.starts_with("error: "), "{err}");
    assert_contains(&err, ".venv");
    assert_contains(&err, "VIRTUAL_ENV");

    create_venv(&project.join(".venv"));
    let output = run(keel()
        .current_dir(&project)
        .env("KEEL_CACHE_DIR", &sandbox.cache)
        .arg("install")
        .arg(sandbox.wheel(bundled::HELLO_V1)));
    assert_success(&output);
    let venv = project.join(".venv");
    assert_eq!(
        script(&venv, "keel-hello", &[]).trim(),
        "hello from keel_demo_hello 1.0.0"
    );
    // Scripts point at the venv by its absolute path, not `.venv/bin/python`.
    let launcher = fs_err::read_to_string(venv.join("bin/keel-hello")).unwrap();
    assert!(
        launcher.starts_with(&format!("#!{}\n", venv.join("bin/python").display())),
        "{launcher}"
    );
    assert_environment_matches_record(&venv);
}

#[test]
fn keel_cache_dir_variable_is_the_default_cache() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    let cache = sandbox.path().join("env-cache");
    let output = run(keel()
        .env("KEEL_CACHE_DIR", &cache)
        .env("XDG_CACHE_HOME", sandbox.path().join("xdg"))
        .arg("install")
        .arg("--venv")
        .arg(&venv)
        .arg(sandbox.wheel(bundled::HELLO_V1)));
    assert_success(&output);
    assert!(cache.join("CACHEDIR.TAG").is_file());
    assert_eq!(
        fs_err::read_dir(cache.join("archives-v1/keel-demo-hello"))
            .unwrap()
            .count(),
        1
    );
    assert!(!sandbox.path().join("xdg").exists());
    assert!(!sandbox.cache.exists());
    assert_environment_matches_record(&venv);

    // `keel cache dir` agrees; --cache-dir wins over the variable.
    let dir = run(keel().env("KEEL_CACHE_DIR", &cache).args(["cache", "dir"]));
    assert_success(&dir);
    assert_eq!(stdout(&dir).trim(), cache.display().to_string());
    let other = sandbox.path().join("flag-cache");
    let venv2 = sandbox.venv("venv2");
    let output = run(keel()
        .env("KEEL_CACHE_DIR", &cache)
        .arg("install")
        .arg("--venv")
        .arg(&venv2)
        .arg("--cache-dir")
        .arg(&other)
        .arg(sandbox.wheel(bundled::NS_B)));
    assert_success(&output);
    assert!(other.join("archives-v1/keel-demo-ns-b").is_dir());
    assert!(!cache.join("archives-v1/keel-demo-ns-b").exists());
    assert_environment_matches_record(&venv2);
}

#[test]
fn xdg_cache_home_is_the_default_cache_without_keel_cache_dir() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    let xdg = sandbox.path().join("xdg");
    let output = run(keel()
        .env("XDG_CACHE_HOME", &xdg)
        .arg("install")
        .arg("--venv")
        .arg(&venv)
        .arg(sandbox.wheel(bundled::NS_A)));
    assert_success(&output);
    assert!(xdg.join("keel/archives-v1/keel-demo-ns-a").is_dir());
    assert_environment_matches_record(&venv);
}

// ------------------------------------------------- namespace packages

#[test]
fn namespace_package_shared_by_two_wheels_installed_separately() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    let output = sandbox.install_ok(&venv, &[&sandbox.wheel(bundled::NS_A)]);
    assert_contains(&stderr(&output), " + keel-demo-ns-a==1.0\n");
    let output = sandbox.install_ok(&venv, &[&sandbox.wheel(bundled::NS_B)]);
    let err = stderr(&output);
    assert_contains(&err, " + keel-demo-ns-b==1.0\n");
    assert!(!err.contains("keel-demo-ns-a"), "{err}");

    let ns = site_packages(&venv).join("keel_demo_ns");
    assert!(!ns.join("__init__.py").exists());
    assert_eq!(
        python(
            &venv,
            "import keel_demo_ns.a, keel_demo_ns.b, keel_demo_ns; print(len(list(keel_demo_ns.__path__)))"
        )
        .trim(),
        "1"
    );
    assert_eq!(
        dist_infos(&venv),
        [
            "keel_demo_ns_a-1.0.dist-info",
            "keel_demo_ns_b-1.0.dist-info"
        ]
    );
    assert_environment_matches_record(&venv);

    // Removing one keeps the other's half of the shared directory.
    let output = run(keel()
        .args(["uninstall", "--venv"])
        .arg(&venv)
        .arg("keel-demo-ns-a"));
    assert_success(&output);
    assert!(!ns.join("a.py").exists());
    assert!(ns.join("b.py").is_file());
    assert_eq!(
        python(&venv, "import keel_demo_ns.b; print('ok')").trim(),
        "ok"
    );
    assert_eq!(dist_infos(&venv), ["keel_demo_ns_b-1.0.dist-info"]);
    assert_environment_matches_record(&venv);
    let output = run(keel()
        .args(["uninstall", "--venv"])
        .arg(&venv)
        .arg("keel_demo_ns_b"));
    assert_success(&output);
    assert!(
        !ns.exists(),
        "the emptied namespace directory was left behind"
    );
    assert_environment_matches_record(&venv);
}

// ----------------------------------------------------- awkward venv paths

/// Installs HELLO_V1 and DATA into `venv` and runs an entry-point script
/// and a `#!python` data script, which must use the `/bin/sh` trampoline.
fn scripts_run_through_the_trampoline(sandbox: &Sandbox, venv: &Path) {
    create_venv(venv);
    let python = venv.join("bin/python");
    sandbox.install_ok(
        venv,
        &[
            &sandbox.wheel(bundled::HELLO_V1),
            &sandbox.wheel(bundled::DATA),
        ],
    );
    for name in ["keel-hello", "keel-hello-gui", "keel-data-tool"] {
        let text = fs_err::read_to_string(venv.join("bin").join(name)).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{name}:\n{text}");
    }
    assert_eq!(
        script(venv, "keel-hello", &[]).trim(),
        "hello from keel_demo_hello 1.0.0"
    );
    assert_eq!(
        script(venv, "keel-hello-gui", &[]).trim(),
        "hello gui from keel_demo_hello 1.0.0"
    );
    let tool = script(venv, "keel-data-tool", &[]);
    let lines: Vec<&str> = tool.lines().collect();
    assert_eq!(lines, ["data tool ok", python.to_str().unwrap()], "{tool}");
    assert_eq!(script(venv, "keel-data-sh", &[]).trim(), "sh tool ok");
    // Arguments pass through the trampoline unchanged.
    let echo = run(Command::new(venv.join("bin/keel-hello")).arg("a b"));
    assert_success(&echo);
    assert_environment_matches_record(venv);
}

#[test]
fn scripts_run_in_a_venv_whose_path_is_too_long_for_a_shebang() {
    let sandbox = Sandbox::new();
    let venv = sandbox
        .path()
        .join("a-rather-long-directory-name-for-a-virtual-environment".repeat(2))
        .join("and-then-some-more-of-it")
        .join("venv");
    assert!(
        venv.join("bin/python").as_os_str().len() > 127,
        "{}",
        venv.display()
    );
    scripts_run_through_the_trampoline(&sandbox, &venv);
}

#[test]
fn scripts_run_in_a_venv_whose_path_has_a_space() {
    let sandbox = Sandbox::new();
    let venv = sandbox.path().join("my projects").join("the venv");
    scripts_run_through_the_trampoline(&sandbox, &venv);
}

#[test]
fn scripts_in_a_short_plain_venv_path_get_a_direct_shebang() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    sandbox.install_ok(
        &venv,
        &[
            &sandbox.wheel(bundled::HELLO_V1),
            &sandbox.wheel(bundled::DATA),
        ],
    );
    let shebang = format!("#!{}\n", venv.join("bin/python").display());
    for name in ["keel-hello", "keel-data-tool"] {
        let text = fs_err::read_to_string(venv.join("bin").join(name)).unwrap();
        assert!(text.starts_with(&shebang), "{name}:\n{text}");
    }
    let sh = fs_err::read_to_string(venv.join("bin/keel-data-sh")).unwrap();
    assert!(sh.starts_with("#!/bin/sh\n"), "{sh}");
    assert_environment_matches_record(&venv);
}

// ------------------------------------------------------------- -q and -v

#[test]
fn quiet_prints_nothing_on_success() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    let output = sandbox.install_ok(
        &venv,
        &[
            &"-q",
            &sandbox.wheel(bundled::HELLO_V1),
            &sandbox.wheel(bundled::NS_A),
        ],
    );
    assert_eq!(stdout(&output), "");
    assert_eq!(stderr(&output), "");
    let output = sandbox.install_ok(&venv, &[&"-q", &sandbox.wheel(bundled::HELLO_V1)]);
    assert_eq!(stdout(&output), "");
    assert_eq!(stderr(&output), "", "nothing-to-do message despite -q");
    assert_environment_matches_record(&venv);
}

#[test]
fn quiet_still_prints_errors() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    let missing = sandbox.path().join("keel_demo_gone-1.0-py3-none-any.whl");
    let output = sandbox.install(&venv, &[&"-q", &missing]);
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(err.starts_with("error: "), "{err}");
    assert_contains(&err, &missing.display().to_string());
}

#[test]
fn verbose_prints_more_than_the_default() {
    // Like for like: both on a warm cache, both with a link mode that needs
    // no fallback, so that -v has to say something about what keel did.
    let sandbox = Sandbox::new();
    let hello = sandbox.wheel(bundled::HELLO_V1);
    sandbox.install_ok(&sandbox.venv("warm-up"), &[&hello]);

    let plain = sandbox.venv("plain");
    let default = sandbox.install_ok(&plain, &[&"--link-mode", &"copy", &hello]);
    let loud = sandbox.venv("loud");
    let verbose = sandbox.install_ok(&loud, &[&"-v", &"--link-mode", &"copy", &hello]);
    let (default_err, verbose_err) = (stderr(&default), stderr(&verbose));
    assert_contains(&verbose_err, " + keel-demo-hello==1.0.0\n");
    assert!(
        verbose_err.lines().count() > default_err.lines().count(),
        "-v printed nothing more than the default:\n--- -v:\n{verbose_err}--- default:\n{default_err}"
    );
    assert_environment_matches_record(&loud);
}

#[test]
fn very_verbose_prints_debug_detail() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    let output = sandbox.install_ok(&venv, &[&"-vv", &sandbox.wheel(bundled::NS_A)]);
    let err = stderr(&output);
    assert!(err.lines().any(|l| l.starts_with("debug: ")), "{err}");
    assert_contains(&err, " + keel-demo-ns-a==1.0\n");
    assert_environment_matches_record(&venv);
}
