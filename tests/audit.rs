//! `keel verify` as a user runs it: real `python3 -m venv` environments,
//! real installs by the keel binary, then every way an installed file can
//! stop being what its RECORD says (edited, grown, deleted, replaced by a
//! directory or a symlink, unreadable, an unlisted file dropped in, RECORD
//! itself gone), interrupted transactions, `NAME...` and `--json`; and that
//! verify itself never writes into the environment.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::journal::InterruptedTransaction;
use common::pypi::{pip_install, real_wheels, wheel_name_version};
use common::unprivileged::{
    User, configured_unprivileged_user, run_as, running_as_root, user_exists, user_named,
};
use common::*;
use keel_fixtures::bundled::{DATA, HELLO_V1, HELLO_V2, LEGACY, MANY, NS_A, NS_B};
use serde_json::{Value, json};

// ---------------------------------------------------------------- helpers

/// Every bundled wheel that can be installed side by side: the one with
/// `.data` scripts, headers, data and purelib (`DATA`), the ones with
/// console scripts (`HELLO_V1`, `MANY`), a single-module one with capitals
/// in its `.dist-info` (`LEGACY`) and two sharing a namespace package.
const SIDE_BY_SIDE: [&str; 6] = [DATA, HELLO_V1, LEGACY, MANY, NS_A, NS_B];

/// `name==version` of each of [`SIDE_BY_SIDE`], in the order verify prints
/// them (by normalized name).
const SIDE_BY_SIDE_DISTS: [&str; 6] = [
    "keel-demo-data==0.3.0",
    "keel-demo-hello==1.0.0",
    "keel-demo-legacy==0.9",
    "keel-demo-many==1.0.0",
    "keel-demo-ns-a==1.0",
    "keel-demo-ns-b==1.0",
];

/// A sandbox with one environment (absolute path) holding `wheels`.
fn installed(wheels: &[&str]) -> (Sandbox, PathBuf) {
    let sandbox = Sandbox::new();
    let venv = std::path::absolute(sandbox.venv("venv")).expect("absolute venv path");
    sandbox.install_bundled_ok(&venv, wheels);
    (sandbox, venv)
}

/// `keel verify --venv VENV ARGS...`.
fn verify(venv: &Path, args: &[&str]) -> Output {
    run(keel().arg("verify").arg("--venv").arg(venv).args(args))
}

/// `keel verify --venv VENV --json ARGS...`, its stdout parsed (it must be
/// one JSON document and nothing else).
#[track_caller]
fn verify_json(venv: &Path, args: &[&str]) -> (Output, Value) {
    let output = run(keel()
        .arg("verify")
        .arg("--venv")
        .arg(venv)
        .arg("--json")
        .args(args));
    let value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout of verify --json is not JSON ({e}):\n{}\nstderr:\n{}",
            stdout(&output),
            stderr(&output)
        )
    });
    assert_report_shape(&value);
    (output, value)
}

/// The lines verify prints about one distribution: its header line
/// (`name==version: ...`) and the indented detail lines under it.
#[track_caller]
fn block(output: &Output, dist: &str) -> Vec<String> {
    let text = stdout(output);
    let mut lines = text.lines();
    let header = format!("{dist}: ");
    let Some(first) = lines.find(|l| l.starts_with(&header)) else {
        panic!("no line for {dist} in:\n{text}");
    };
    let mut found = vec![first.to_string()];
    found.extend(
        lines
            .take_while(|l| l.starts_with("  "))
            .map(str::to_string),
    );
    found
}

/// Asserts verify printed exactly these detail lines under `dist`, after
/// `dist: damaged`.
#[track_caller]
fn assert_damaged(output: &Output, dist: &str, details: &[String]) {
    let lines = block(output, dist);
    let mut expected = vec![format!("{dist}: damaged")];
    expected.extend(details.iter().cloned());
    assert_eq!(lines, expected, "stdout:\n{}", stdout(output));
}

/// Asserts verify printed `dist: intact (N files)` for `dist`, with no detail
/// lines under it.
#[track_caller]
fn assert_intact_line(output: &Output, dist: &str) {
    let lines = block(output, dist);
    assert_eq!(lines.len(), 1, "stdout:\n{}", stdout(output));
    assert!(
        lines[0].starts_with(&format!("{dist}: intact (")) && lines[0].ends_with(" files)"),
        "{dist} is not intact:\n{}",
        stdout(output)
    );
}

/// The distribution `name` (normalized) of a JSON report.
#[track_caller]
fn dist<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["distributions"]
        .as_array()
        .expect("distributions")
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no distribution {name} in {report:#}"))
}

/// Asserts a parsed `--json` report has exactly the documented stable shape
/// (README § Command line): every key, no other key, every type.
#[track_caller]
fn assert_report_shape(report: &Value) {
    let keys = |value: &Value| -> Vec<String> {
        let mut keys: Vec<String> = value
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {value:#}"))
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(
        keys(report),
        [
            "distributions",
            "environment",
            "intact",
            "interrupted_transactions",
            "unowned"
        ],
        "{report:#}"
    );
    assert!(report["environment"].is_string(), "{report:#}");
    assert!(report["intact"].is_boolean(), "{report:#}");
    let strings = |value: &Value| {
        value
            .as_array()
            .unwrap_or_else(|| panic!("not an array: {value:#}"))
            .iter()
            .all(Value::is_string)
    };
    assert!(strings(&report["interrupted_transactions"]), "{report:#}");
    assert!(strings(&report["unowned"]), "{report:#}");
    let distributions = report["distributions"].as_array().expect("an array");
    for dist in distributions {
        assert_eq!(
            keys(dist),
            [
                "dist_info",
                "files",
                "missing",
                "modified",
                "name",
                "record_error",
                "status",
                "unlisted",
                "version"
            ],
            "{dist:#}"
        );
        for key in ["name", "version", "dist_info"] {
            assert!(dist[key].is_string(), "{key}: {dist:#}");
        }
        assert!(dist["files"].is_u64(), "{dist:#}");
        assert!(
            ["intact", "damaged", "no-record", "bad-record"]
                .contains(&dist["status"].as_str().expect("status")),
            "{dist:#}"
        );
        // Why RECORD is unusable, exactly when it is.
        assert_eq!(
            dist["record_error"].is_string(),
            dist["status"] == "bad-record",
            "{dist:#}"
        );
        assert!(strings(&dist["missing"]), "{dist:#}");
        assert!(strings(&dist["unlisted"]), "{dist:#}");
        for modified in dist["modified"].as_array().expect("modified") {
            assert_eq!(keys(modified), ["path", "reason"], "{dist:#}");
            assert!(modified["path"].is_string(), "{dist:#}");
            assert!(
                [
                    "size",
                    "hash",
                    "not-a-regular-file",
                    "symlinked-directory",
                    "unreadable"
                ]
                .contains(&modified["reason"].as_str().expect("reason")),
                "{dist:#}"
            );
        }
        // Intact means nothing found; damaged means something was.
        let findings = ["missing", "modified", "unlisted"]
            .iter()
            .map(|k| dist[k].as_array().map_or(0, Vec::len))
            .sum::<usize>();
        match dist["status"].as_str() {
            Some("intact") | Some("no-record") | Some("bad-record") => {
                assert_eq!(findings, 0, "{dist:#}")
            }
            _ => assert!(findings > 0, "{dist:#}"),
        }
    }
    let names: Vec<&str> = distributions
        .iter()
        .map(|d| d["name"].as_str().expect("name"))
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "distributions are sorted by name");
    let all_intact = distributions.iter().all(|d| d["status"] == "intact")
        && ["interrupted_transactions", "unowned"]
            .iter()
            .all(|key| report[key].as_array().is_some_and(Vec::is_empty));
    assert_eq!(report["intact"], all_intact, "{report:#}");
}

/// How many files verify checks for a distribution: its RECORD rows, less
/// RECORD's own (read independently of keel).
fn record_rows(dist_info: &Path) -> u64 {
    let text = fs_err::read_to_string(dist_info.join("RECORD")).expect("read RECORD");
    let own = format!(
        "{}/RECORD,",
        dist_info.file_name().expect("name").to_string_lossy()
    );
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with(&own))
        .count() as u64
}

/// Where the data wheel's header is installed:
/// `include/site/pythonX.Y/keel-demo-data/keel_demo_data.h`.
fn header_of_data(venv: &Path) -> PathBuf {
    let site = site_packages(venv);
    let version = site
        .parent()
        .and_then(Path::file_name)
        .expect("lib/pythonX.Y");
    venv.join("include/site")
        .join(version)
        .join("keel-demo-data/keel_demo_data.h")
}

/// Paths in the order verify lists unlisted files: a walk of each directory
/// sorted by file name, i.e. component by component.
fn sorted_as_walked(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut sorted = paths.to_vec();
    sorted.sort_by(|a, b| a.components().cmp(b.components()));
    sorted
}

/// The same bytes, one of them changed: same size, other hash.
fn flip_a_byte(path: &Path) {
    let mut bytes = fs_err::read(path).expect("read");
    assert!(!bytes.is_empty(), "{} is empty", path.display());
    let middle = bytes.len() / 2;
    // Never a NUL byte: Python would refuse the source outright.
    bytes[middle] = if bytes[middle] == b'#' { b'@' } else { b'#' };
    fs_err::write(path, bytes).expect("write");
}

/// Leaves a transaction behind as a keel killed mid-commit would (see
/// tests/transactions.rs): `paths` moved into its backup, a journal of
/// those moves, not committed.
fn interrupt_by_hand(venv: &Path, name: &str, paths: &[PathBuf]) -> PathBuf {
    InterruptedTransaction::new(venv, name)
        .summary("-keel-demo-ns-a==1.0")
        .moved_to_backup(paths)
        .journaled()
}

/// The user to run a command as so that file modes apply: ourselves
/// (`None`) unless root, else `$KEEL_TEST_UNPRIVILEGED_USER` (`bash .ci/run`
/// creates `keeltest` and sets it), else `keeltest` if that user exists.
/// Root with neither fails the test: a skipped test proves nothing.
fn unprivileged() -> Option<User> {
    if !running_as_root() {
        return None;
    }
    let name = configured_unprivileged_user().unwrap_or_else(|| {
        assert!(
            user_exists("keeltest"),
            "running as root, which ignores file modes: set KEEL_TEST_UNPRIVILEGED_USER to an \
             unprivileged user (`bash .ci/run` creates `keeltest` and sets it)"
        );
        "keeltest".to_string()
    });
    Some(user_named(&name))
}

/// `keel verify --venv VENV --json ARGS...` as an unprivileged user (see
/// [`unprivileged`]); the sandbox is made searchable for that user.
fn verify_unprivileged(sandbox: &Sandbox, venv: &Path, args: &[&str]) -> Output {
    let mut command = keel();
    command
        .arg("verify")
        .arg("--venv")
        .arg(venv)
        .arg("--json")
        .args(args);
    match unprivileged() {
        None => run(&mut command),
        Some(user) => {
            chmod(sandbox.path(), 0o755);
            run_as(command.current_dir("/"), user)
        }
    }
}

// ------------------------------------------------------------ clean envs

#[test]
fn verify_reports_a_clean_environment_as_intact() {
    let (_sandbox, venv) = installed(&SIDE_BY_SIDE);
    let site = site_packages(&venv);
    // The scripts and the .data destinations really are there to be checked.
    for file in [
        "bin/keel-hello",
        "bin/keel-many",
        "bin/keel-data-tool",
        "bin/keel-data-sh",
        "share/keel-demo-data/config.txt",
    ] {
        assert!(venv.join(file).is_file(), "{file} is not installed");
    }
    assert!(header_of_data(&venv).is_file());

    let (output, report) = verify_json(&venv, &[]);
    assert_exit(&output, 0);
    assert_eq!(report["intact"], true);
    assert_eq!(report["environment"], json!(venv));
    assert_eq!(report["interrupted_transactions"], json!([]));
    let distributions = report["distributions"].as_array().expect("distributions");
    let mut expected_lines = Vec::new();
    for (d, name_version) in distributions.iter().zip(SIDE_BY_SIDE_DISTS) {
        assert_eq!(
            format!(
                "{}=={}",
                d["name"].as_str().expect("name"),
                d["version"].as_str().expect("version")
            ),
            name_version
        );
        assert_eq!(d["status"], "intact", "{d:#}");
        let dist_info = PathBuf::from(d["dist_info"].as_str().expect("dist_info"));
        assert_eq!(dist_info.parent(), Some(site.as_path()));
        assert_eq!(d["files"], record_rows(&dist_info), "{d:#}");
        expected_lines.push(format!("{name_version}: intact ({} files)", d["files"]));
    }
    assert_eq!(distributions.len(), SIDE_BY_SIDE_DISTS.len());

    let output = verify(&venv, &[]);
    assert_exit(&output, 0);
    let lines: Vec<String> = stdout(&output).lines().map(str::to_string).collect();
    assert_eq!(lines, expected_lines);
    let summary = stderr(&output);
    assert_eq!(summary.lines().count(), 1, "{summary}");
    let total: u64 = distributions
        .iter()
        .filter_map(|d| d["files"].as_u64())
        .sum();
    assert!(
        summary.starts_with(&format!("Verified 6 packages ({total} files) in "))
            && summary.trim_end().ends_with(": all intact"),
        "{summary}"
    );

    // -q: nothing at all when everything is intact.
    let output = run(keel().args(["-q", "verify", "--venv"]).arg(&venv));
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "");
    assert_eq!(stderr(&output), "");
}

#[test]
fn verify_reports_an_upgraded_and_a_partly_uninstalled_environment_as_intact() {
    let (sandbox, venv) = installed(&[HELLO_V1, NS_A, NS_B]);
    sandbox.install_bundled_ok(&venv, &[HELLO_V2]);
    let uninstall = run(keel()
        .args(["uninstall", "--venv"])
        .arg(&venv)
        .arg("keel-demo-ns-a"));
    assert_success(&uninstall);
    let (output, report) = verify_json(&venv, &[]);
    assert_exit(&output, 0);
    let names: Vec<&str> = report["distributions"]
        .as_array()
        .expect("distributions")
        .iter()
        .map(|d| d["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["keel-demo-hello", "keel-demo-ns-b"]);
    assert_eq!(dist(&report, "keel-demo-hello")["version"], "2.0.0");
}

#[test]
fn verify_uses_virtual_env_when_no_venv_is_given() {
    let (sandbox, venv) = installed(&[HELLO_V1]);
    let output = run(keel()
        .arg("verify")
        .env("VIRTUAL_ENV", &venv)
        .current_dir(sandbox.path()));
    assert_exit(&output, 0);
    assert_intact_line(&output, "keel-demo-hello==1.0.0");

    // Not an environment at all: an error naming it, not an empty report.
    let elsewhere = sandbox.path().join("not-a-venv");
    fs_err::create_dir(&elsewhere).expect("mkdir");
    let output = verify(&elsewhere, &[]);
    assert_exit(&output, 1);
    assert_eq!(stdout(&output), "");
    assert_contains(&stderr(&output), "not a virtual environment");
    assert_contains(&stderr(&output), &elsewhere.display().to_string());

    // A usage error is exit 2.
    let output = run(keel().args(["verify", "--no-such-flag"]));
    assert_exit(&output, 2);
}

// ---------------------------------------------------------------- damage

#[test]
fn verify_reports_a_file_edited_after_install_as_modified() {
    let (_sandbox, venv) = installed(&SIDE_BY_SIDE);
    let site = site_packages(&venv);
    // Same size, other bytes: only the hash can tell.
    let before = fs_err::metadata(site.join("keel_demo_hello/__init__.py"))
        .expect("stat")
        .len();
    flip_a_byte(&site.join("keel_demo_hello/__init__.py"));
    flip_a_byte(&venv.join("bin/keel-hello"));
    assert_eq!(
        fs_err::metadata(site.join("keel_demo_hello/__init__.py"))
            .expect("stat")
            .len(),
        before
    );

    let output = verify(&venv, &[]);
    assert_exit(&output, 1);
    assert_damaged(
        &output,
        "keel-demo-hello==1.0.0",
        &[
            "  modified (hash): ../../../bin/keel-hello".to_string(),
            "  modified (hash): keel_demo_hello/__init__.py".to_string(),
        ],
    );
    for other in SIDE_BY_SIDE_DISTS
        .iter()
        .filter(|d| !d.starts_with("keel-demo-hello"))
    {
        assert_intact_line(&output, other);
    }
    assert_contains(
        &stderr(&output),
        ": 1 damaged, 0 interrupted transaction(s)",
    );

    let (output, report) = verify_json(&venv, &[]);
    assert_exit(&output, 1);
    assert_eq!(report["intact"], false);
    let hello = dist(&report, "keel-demo-hello");
    assert_eq!(hello["status"], "damaged");
    assert_eq!(
        hello["modified"],
        json!([
            {"path": "../../../bin/keel-hello", "reason": "hash"},
            {"path": "keel_demo_hello/__init__.py", "reason": "hash"},
        ])
    );
    assert_eq!(hello["missing"], json!([]));
    assert_eq!(hello["unlisted"], json!([]));
}

#[test]
fn verify_reports_a_file_that_changed_size_as_modified_by_size() {
    let (_sandbox, venv) = installed(&SIDE_BY_SIDE);
    let site = site_packages(&venv);
    let data_init = site.join("keel_demo_data/__init__.py");
    let mut grown = fs_err::read(&data_init).expect("read");
    grown.extend_from_slice(b"\nprint('tampered')\n");
    fs_err::write(&data_init, grown).expect("write");
    // A truncated header and an emptied data file, outside site-packages.
    let header = header_of_data(&venv);
    let mut bytes = fs_err::read(&header).expect("read");
    bytes.truncate(bytes.len() / 2);
    fs_err::write(&header, bytes).expect("write");
    fs_err::write(venv.join("share/keel-demo-data/config.txt"), "").expect("write");

    let output = verify(&venv, &[]);
    assert_exit(&output, 1);
    let version = header
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .expect("pythonX.Y")
        .to_string_lossy()
        .into_owned();
    let header_record = format!("../../../include/site/{version}/keel-demo-data/keel_demo_data.h");
    assert_damaged(
        &output,
        "keel-demo-data==0.3.0",
        &[
            format!("  modified (size): {header_record}"),
            "  modified (size): ../../../share/keel-demo-data/config.txt".to_string(),
            "  modified (size): keel_demo_data/__init__.py".to_string(),
        ],
    );
    assert_intact_line(&output, "keel-demo-hello==1.0.0");

    let (_, report) = verify_json(&venv, &[]);
    assert_eq!(
        dist(&report, "keel-demo-data")["modified"],
        json!([
            {"path": header_record, "reason": "size"},
            {"path": "../../../share/keel-demo-data/config.txt", "reason": "size"},
            {"path": "keel_demo_data/__init__.py", "reason": "size"},
        ])
    );
}

#[test]
fn verify_reports_a_deleted_file_as_missing() {
    let (_sandbox, venv) = installed(&SIDE_BY_SIDE);
    let site = site_packages(&venv);
    fs_err::remove_file(site.join("keel_demo_hello/sub/util.py")).expect("rm");
    fs_err::remove_file(venv.join("bin/keel-data-tool")).expect("rm");
    fs_err::remove_file(site.join("keel_demo_legacy.py")).expect("rm");
    // A whole package directory of many files.
    fs_err::remove_dir_all(site.join("keel_demo_many")).expect("rm -r");

    let output = verify(&venv, &[]);
    assert_exit(&output, 1);
    assert_damaged(
        &output,
        "keel-demo-hello==1.0.0",
        &["  missing: keel_demo_hello/sub/util.py".to_string()],
    );
    assert_damaged(
        &output,
        "keel-demo-data==0.3.0",
        &["  missing: ../../../bin/keel-data-tool".to_string()],
    );
    assert_damaged(
        &output,
        "keel-demo-legacy==0.9",
        &["  missing: keel_demo_legacy.py".to_string()],
    );
    let many = block(&output, "keel-demo-many==1.0.0");
    assert_eq!(many[0], "keel-demo-many==1.0.0: damaged");
    assert!(
        many[1..]
            .iter()
            .all(|l| l.starts_with("  missing: keel_demo_many/")),
        "{many:#?}"
    );
    assert_intact_line(&output, "keel-demo-ns-a==1.0");
    assert_contains(
        &stderr(&output),
        ": 4 damaged, 0 interrupted transaction(s)",
    );

    let (_, report) = verify_json(&venv, &[]);
    let hello = dist(&report, "keel-demo-hello");
    assert_eq!(hello["missing"], json!(["keel_demo_hello/sub/util.py"]));
    assert_eq!(hello["modified"], json!([]));
    // Every listed file of the removed package, sorted, nothing else.
    let many = dist(&report, "keel-demo-many");
    let missing: Vec<&str> = many["missing"]
        .as_array()
        .expect("missing")
        .iter()
        .map(|m| m.as_str().expect("a path"))
        .collect();
    let dist_info = PathBuf::from(many["dist_info"].as_str().expect("dist_info"));
    let record = fs_err::read_to_string(dist_info.join("RECORD")).expect("RECORD");
    let mut expected: Vec<&str> = record
        .lines()
        .filter_map(|l| l.split(',').next())
        .filter(|p| p.starts_with("keel_demo_many/"))
        .collect();
    expected.sort();
    assert!(expected.len() > 300, "{}", expected.len());
    assert_eq!(missing, expected);
    assert_eq!(many["unlisted"], json!([]));
}

#[test]
fn verify_reports_a_file_dropped_into_a_package_as_unlisted() {
    let (_sandbox, venv) = installed(&SIDE_BY_SIDE);
    let site = site_packages(&venv);
    let dropped = [
        site.join("keel_demo_hello/evil.py"),
        site.join("keel_demo_hello/sub/notes.txt"),
        site.join("keel_demo_hello-1.0.0.dist-info/EXTRA"),
    ];
    for path in &dropped {
        fs_err::write(path, "not from the wheel\n").expect("write");
    }
    // An empty directory is no file.
    fs_err::create_dir(site.join("keel_demo_hello/empty")).expect("mkdir");

    let output = verify(&venv, &[]);
    assert_exit(&output, 1);
    let walked = sorted_as_walked(&dropped);
    let lines: Vec<String> = walked
        .iter()
        .map(|p| format!("  unlisted: {}", p.display()))
        .collect();
    assert_damaged(&output, "keel-demo-hello==1.0.0", &lines);
    assert_intact_line(&output, "keel-demo-data==0.3.0");

    let (_, report) = verify_json(&venv, &[]);
    let hello = dist(&report, "keel-demo-hello");
    assert_eq!(hello["unlisted"], json!(walked));
    assert_eq!(hello["missing"], json!([]));
    assert_eq!(hello["modified"], json!([]));
}

#[test]
fn verify_reports_a_pth_file_or_module_dropped_into_site_packages_as_unowned() {
    let (_sandbox, venv) = installed(&SIDE_BY_SIDE);
    compile_everything(&venv);
    let site = site_packages(&venv);
    // Bytecode of a listed top-level module is its module's.
    let top_level_bytecode = fs_err::read_dir(site.join("__pycache__"))
        .expect("site-packages/__pycache__")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("keel_demo_legacy."))
        .count();
    assert!(top_level_bytecode > 0, "nothing compiled at the top level");
    assert_exit(&verify(&venv, &[]), 0);

    // What a supply-chain attack or a stray copy leaves at the top: code that
    // runs at every interpreter start, belonging to no distribution.
    let dropped = [
        site.join("zz-startup-hook.pth"),
        site.join("sitecustomize.py"),
        site.join("stray_package"),
        site.join("__pycache__/sitecustomize.cpython-311.pyc"),
    ];
    fs_err::write(&dropped[0], "import os; os.system('true')\n").expect("write");
    fs_err::write(&dropped[1], "x = 1\n").expect("write");
    fs_err::create_dir(&dropped[2]).expect("mkdir");
    fs_err::write(dropped[2].join("__init__.py"), "").expect("write");
    fs_err::write(&dropped[3], b"\x00").expect("write");

    let output = verify(&venv, &[]);
    assert_exit(&output, 1);
    for dist in SIDE_BY_SIDE_DISTS {
        assert_intact_line(&output, dist);
    }
    let mut expected = dropped.to_vec();
    expected.sort();
    let lines: Vec<String> = stdout(&output)
        .lines()
        .filter(|l| l.starts_with("unowned: "))
        .map(str::to_string)
        .collect();
    let want: Vec<String> = expected
        .iter()
        .map(|p| format!("unowned: {} (no distribution lists it)", p.display()))
        .collect();
    assert_eq!(lines, want);
    assert_contains(
        &stderr(&output),
        ": 0 damaged, 0 interrupted transaction(s), 4 unowned",
    );
    let (output, report) = verify_json(&venv, &[]);
    assert_exit(&output, 1);
    assert_eq!(report["intact"], false);
    assert_eq!(report["unowned"], json!(expected));

    // Asked about one distribution, keel answers about that one only.
    let (output, report) = verify_json(&venv, &["keel-demo-hello"]);
    assert_exit(&output, 0);
    assert_eq!(report["unowned"], json!([]));
}

#[test]
fn verify_judges_unlisted_files_against_every_record() {
    // keel_demo_ns/ is shared: a.py is ns-a's, b.py is ns-b's. Neither is
    // unlisted for the other, even when only one is verified.
    let (_sandbox, venv) = installed(&[NS_A, NS_B]);
    let site = site_packages(&venv);
    for name in ["keel-demo-ns-a", "keel-demo-ns-b", "Keel.Demo.NS_A"] {
        let output = verify(&venv, &[name]);
        assert_exit(&output, 0);
    }
    let stray = site.join("keel_demo_ns/c.py");
    fs_err::write(&stray, "x = 1\n").expect("write");
    let (output, report) = verify_json(&venv, &["keel-demo-ns-a"]);
    assert_exit(&output, 1);
    assert_eq!(
        dist(&report, "keel-demo-ns-a")["unlisted"],
        json!([stray.clone()])
    );
}

#[test]
fn verify_reports_a_file_replaced_by_a_directory_or_symlink_as_not_a_regular_file() {
    let (sandbox, venv) = installed(&SIDE_BY_SIDE);
    let site = site_packages(&venv);
    // A module replaced by a directory.
    fs_err::remove_file(site.join("keel_demo_legacy.py")).expect("rm");
    fs_err::create_dir(site.join("keel_demo_legacy.py")).expect("mkdir");
    // A module replaced by a symlink to a byte-identical copy: following it
    // would find the right hash, so it must not be followed.
    let init = site.join("keel_demo_hello/__init__.py");
    let copy = sandbox.path().join("copy-of-init.py");
    fs_err::copy(&init, &copy).expect("copy");
    fs_err::remove_file(&init).expect("rm");
    fs_err::os::unix::fs::symlink(&copy, &init).expect("symlink");
    // A script replaced by a symlink to another script, a dangling symlink.
    fs_err::remove_file(venv.join("bin/keel-data-sh")).expect("rm");
    fs_err::os::unix::fs::symlink("/bin/sh", venv.join("bin/keel-data-sh")).expect("symlink");
    fs_err::remove_file(site.join("keel_demo_ns/a.py")).expect("rm");
    fs_err::os::unix::fs::symlink("nowhere.py", site.join("keel_demo_ns/a.py")).expect("symlink");

    let output = verify(&venv, &[]);
    assert_exit(&output, 1);
    assert_damaged(
        &output,
        "keel-demo-legacy==0.9",
        &["  modified (not-a-regular-file): keel_demo_legacy.py".to_string()],
    );
    assert_damaged(
        &output,
        "keel-demo-hello==1.0.0",
        &["  modified (not-a-regular-file): keel_demo_hello/__init__.py".to_string()],
    );
    assert_damaged(
        &output,
        "keel-demo-data==0.3.0",
        &["  modified (not-a-regular-file): ../../../bin/keel-data-sh".to_string()],
    );
    assert_damaged(
        &output,
        "keel-demo-ns-a==1.0",
        &["  modified (not-a-regular-file): keel_demo_ns/a.py".to_string()],
    );
    assert_intact_line(&output, "keel-demo-ns-b==1.0");

    let (_, report) = verify_json(&venv, &[]);
    assert_eq!(
        dist(&report, "keel-demo-legacy")["modified"],
        json!([{"path": "keel_demo_legacy.py", "reason": "not-a-regular-file"}])
    );
    assert_eq!(
        dist(&report, "keel-demo-hello")["modified"],
        json!([{"path": "keel_demo_hello/__init__.py", "reason": "not-a-regular-file"}])
    );
    assert_eq!(
        dist(&report, "keel-demo-data")["modified"],
        json!([{"path": "../../../bin/keel-data-sh", "reason": "not-a-regular-file"}])
    );
    assert_eq!(dist(&report, "keel-demo-ns-a")["missing"], json!([]));
}

#[test]
fn verify_reports_a_package_directory_replaced_by_a_symlink_to_an_identical_copy() {
    let (sandbox, venv) = installed(&SIDE_BY_SIDE);
    let site = site_packages(&venv);
    // Byte-identical copies elsewhere: following the links would find every
    // hash right, yet what runs is no longer what was installed here.
    let elsewhere = sandbox.path().join("elsewhere");
    for dir in ["keel_demo_hello/sub", "keel_demo_many"] {
        let copy = elsewhere.join(dir);
        fs_err::create_dir_all(copy.parent().expect("parent")).expect("mkdir");
        assert_success(&run(Command::new("cp")
            .arg("-a")
            .arg(site.join(dir))
            .arg(&copy)));
        fs_err::remove_dir_all(site.join(dir)).expect("rm -r");
        fs_err::os::unix::fs::symlink(&copy, site.join(dir)).expect("symlink");
    }

    let output = verify(&venv, &[]);
    assert_exit(&output, 1);
    assert_damaged(
        &output,
        "keel-demo-hello==1.0.0",
        &["  modified (symlinked-directory): keel_demo_hello/sub".to_string()],
    );
    assert_damaged(
        &output,
        "keel-demo-many==1.0.0",
        &["  modified (symlinked-directory): keel_demo_many".to_string()],
    );
    assert_intact_line(&output, "keel-demo-data==0.3.0");

    let (_, report) = verify_json(&venv, &[]);
    let hello = dist(&report, "keel-demo-hello");
    assert_eq!(
        hello["modified"],
        json!([{"path": "keel_demo_hello/sub", "reason": "symlinked-directory"}])
    );
    assert_eq!(hello["missing"], json!([]));
    assert_eq!(hello["unlisted"], json!([]));
    assert_eq!(report["unowned"], json!([]));
}

#[test]
fn verify_reports_a_deleted_record_as_no_record() {
    let (_sandbox, venv) = installed(&SIDE_BY_SIDE);
    let site = site_packages(&venv);
    let dist_info = site.join("keel_demo_hello-1.0.0.dist-info");
    fs_err::remove_file(dist_info.join("RECORD")).expect("rm RECORD");

    let output = verify(&venv, &[]);
    assert_exit(&output, 1);
    let lines = block(&output, "keel-demo-hello==1.0.0");
    assert_eq!(
        lines,
        [format!(
            "keel-demo-hello==1.0.0: no RECORD ({})",
            dist_info.display()
        )]
    );
    // Its files are nobody else's business.
    for other in SIDE_BY_SIDE_DISTS
        .iter()
        .filter(|d| !d.starts_with("keel-demo-hello"))
    {
        assert_intact_line(&output, other);
    }
    assert_contains(
        &stderr(&output),
        ": 1 damaged, 0 interrupted transaction(s)",
    );

    let (output, report) = verify_json(&venv, &[]);
    assert_exit(&output, 1);
    assert_eq!(report["intact"], false);
    assert_eq!(
        dist(&report, "keel-demo-hello"),
        &json!({
            "name": "keel-demo-hello",
            "version": "1.0.0",
            "dist_info": dist_info,
            "status": "no-record",
            "files": 0,
            "record_error": null,
            "missing": [],
            "modified": [],
            "unlisted": [],
        })
    );
}

#[test]
fn verify_reports_a_malformed_or_unreadable_record_and_still_checks_the_rest() {
    let (sandbox, venv) = installed(&SIDE_BY_SIDE);
    let site = site_packages(&venv);
    // A RECORD an editor mangled: a row of five fields on its last line.
    let hello_record = site.join("keel_demo_hello-1.0.0.dist-info/RECORD");
    let mut text = fs_err::read_to_string(&hello_record).expect("RECORD");
    let lines = text.lines().count() + 1;
    text.push_str("keel_demo_hello/x.py,,,,\n");
    fs_err::write(&hello_record, text).expect("write");
    // A RECORD nobody may read.
    let legacy_record = site.join("Keel_Demo_Legacy-0.9.dist-info/RECORD");
    chmod(&legacy_record, 0o000);
    // And an ordinary damage elsewhere, which must still be found.
    fs_err::remove_file(venv.join("bin/keel-data-tool")).expect("rm");

    let output = verify_unprivileged(&sandbox, &venv, &[]);
    chmod(&legacy_record, 0o644);
    assert_exit(&output, 1);
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_report_shape(&report);
    assert_eq!(report["intact"], false);
    let hello = dist(&report, "keel-demo-hello");
    assert_eq!(hello["status"], "bad-record", "{hello:#}");
    assert_eq!(hello["files"], 0);
    assert_eq!(
        hello["record_error"],
        format!(
            "`{}` is malformed: malformed RECORD row on line {lines}: expected 3 fields, found 5",
            hello_record.display()
        )
    );
    let legacy = dist(&report, "keel-demo-legacy");
    assert_eq!(legacy["status"], "bad-record", "{legacy:#}");
    let why = legacy["record_error"].as_str().expect("record_error");
    assert!(
        why.contains(&legacy_record.display().to_string()) && why.contains("ermission denied"),
        "{why}"
    );
    assert_eq!(
        dist(&report, "keel-demo-data")["missing"],
        json!(["../../../bin/keel-data-tool"])
    );
    assert_eq!(dist(&report, "keel-demo-ns-a")["status"], "intact");
    assert_eq!(dist(&report, "keel-demo-ns-a")["record_error"], Value::Null);

    // The text report names the file and the rule.
    let output = verify(&venv, &[]);
    assert_exit(&output, 1);
    assert_eq!(
        block(&output, "keel-demo-hello==1.0.0"),
        [format!(
            "keel-demo-hello==1.0.0: unusable RECORD: `{}` is malformed: malformed RECORD row on line {lines}: expected 3 fields, found 5",
            hello_record.display()
        )]
    );
    assert_intact_line(&output, "keel-demo-legacy==0.9");
    assert_contains(
        &stderr(&output),
        ": 2 damaged, 0 interrupted transaction(s)",
    );
}

#[test]
fn verify_reports_what_it_cannot_read_as_unreadable_not_missing() {
    let (sandbox, venv) = installed(&SIDE_BY_SIDE);
    let site = site_packages(&venv);
    // A package directory nobody may enter: its files are there, unreadable.
    let sub = site.join("keel_demo_hello/sub");
    // A package directory that may be entered but not listed, hiding an
    // unlisted file: not provably intact.
    let data_pkg = site.join("keel_demo_data");
    fs_err::write(data_pkg.join("hidden.py"), "x = 1\n").expect("write");
    // A module nobody may read.
    let legacy = site.join("keel_demo_legacy.py");
    chmod(&sub, 0o000);
    chmod(&data_pkg, 0o311);
    chmod(&legacy, 0o000);

    let output = verify_unprivileged(&sandbox, &venv, &[]);
    chmod(&sub, 0o755);
    chmod(&data_pkg, 0o755);
    chmod(&legacy, 0o644);
    assert_exit(&output, 1);
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_report_shape(&report);
    let hello = dist(&report, "keel-demo-hello");
    assert_eq!(hello["missing"], json!([]), "{hello:#}");
    assert_eq!(
        hello["modified"],
        json!([
            {"path": "keel_demo_hello/sub", "reason": "unreadable"},
            {"path": "keel_demo_hello/sub/__init__.py", "reason": "unreadable"},
            {"path": "keel_demo_hello/sub/util.py", "reason": "unreadable"},
        ])
    );
    let data = dist(&report, "keel-demo-data");
    assert_eq!(data["status"], "damaged", "{data:#}");
    assert_eq!(
        data["modified"],
        json!([{"path": "keel_demo_data", "reason": "unreadable"}])
    );
    assert_eq!(
        dist(&report, "keel-demo-legacy")["modified"],
        json!([{"path": "keel_demo_legacy.py", "reason": "unreadable"}])
    );
    assert_eq!(dist(&report, "keel-demo-ns-a")["status"], "intact");

    // With the modes back, the one real finding is the hidden file.
    let (output, report) = verify_json(&venv, &[]);
    assert_exit(&output, 1);
    assert_eq!(
        dist(&report, "keel-demo-data")["unlisted"],
        json!([data_pkg.join("hidden.py")])
    );
    assert_eq!(dist(&report, "keel-demo-hello")["status"], "intact");
}

#[test]
fn verify_works_for_a_user_who_cannot_write_the_environment() {
    let (sandbox, venv) = installed(&SIDE_BY_SIDE);
    // Read-only for everyone (root owns it anyway when run as another user).
    let mut dirs = Vec::new();
    for entry in walkdir::WalkDir::new(&venv).follow_links(false) {
        let entry = entry.expect("walk");
        if entry.file_type().is_dir() {
            dirs.push(entry.path().to_path_buf());
        }
    }
    for dir in &dirs {
        chmod(dir, 0o555);
    }
    let output = verify_unprivileged(&sandbox, &venv, &[]);
    for dir in &dirs {
        chmod(dir, 0o755);
    }
    assert_exit(&output, 0);
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["intact"], true, "{report:#}");
}

// ------------------------------------------------------------------ JSON

#[test]
fn verify_json_report_has_the_documented_shape() {
    let (_sandbox, venv) = installed(&[DATA, HELLO_V1, LEGACY, NS_A, NS_B]);
    let site = site_packages(&venv);
    flip_a_byte(&site.join("keel_demo_hello/__init__.py"));
    fs_err::write(site.join("keel_demo_hello/sub/__init__.py"), "# shorter\n").expect("write");
    fs_err::remove_file(venv.join("bin/keel-hello-gui")).expect("rm");
    fs_err::write(site.join("keel_demo_hello/dropped.txt"), "x").expect("write");
    fs_err::remove_file(site.join("keel_demo_legacy.py")).expect("rm");
    fs_err::os::unix::fs::symlink("elsewhere.py", site.join("keel_demo_legacy.py"))
        .expect("symlink");
    fs_err::remove_file(site.join("keel_demo_data-0.3.0.dist-info/RECORD")).expect("rm");
    let tx = InterruptedTransaction::new(&venv, "tx-left-behind")
        .summary("+x==1")
        .journaled();

    let (output, report) = verify_json(&venv, &[]);
    assert_exit(&output, 1);
    let dist_info = |name: &str| json!(site.join(name));
    let hello_files = record_rows(&site.join("keel_demo_hello-1.0.0.dist-info"));
    let legacy_files = record_rows(&site.join("Keel_Demo_Legacy-0.9.dist-info"));
    let ns_a_files = record_rows(&site.join("keel_demo_ns_a-1.0.dist-info"));
    let ns_b_files = record_rows(&site.join("keel_demo_ns_b-1.0.dist-info"));
    let expected = json!({
        "environment": venv,
        "intact": false,
        "interrupted_transactions": [tx],
        "distributions": [
            {
                "name": "keel-demo-data",
                "version": "0.3.0",
                "dist_info": dist_info("keel_demo_data-0.3.0.dist-info"),
                "status": "no-record",
                "files": 0,
                "missing": [],
                "modified": [],
                "unlisted": [],
                "record_error": null,
            },
            {
                "name": "keel-demo-hello",
                "version": "1.0.0",
                "dist_info": dist_info("keel_demo_hello-1.0.0.dist-info"),
                "status": "damaged",
                "files": hello_files,
                "missing": ["../../../bin/keel-hello-gui"],
                "modified": [
                    {"path": "keel_demo_hello/__init__.py", "reason": "hash"},
                    {"path": "keel_demo_hello/sub/__init__.py", "reason": "size"},
                ],
                "unlisted": [site.join("keel_demo_hello/dropped.txt")],
                "record_error": null,
            },
            {
                "name": "keel-demo-legacy",
                "version": "0.9",
                "dist_info": dist_info("Keel_Demo_Legacy-0.9.dist-info"),
                "status": "damaged",
                "files": legacy_files,
                "missing": [],
                "modified": [{"path": "keel_demo_legacy.py", "reason": "not-a-regular-file"}],
                "unlisted": [],
                "record_error": null,
            },
            {
                "name": "keel-demo-ns-a",
                "version": "1.0",
                "dist_info": dist_info("keel_demo_ns_a-1.0.dist-info"),
                "status": "intact",
                "files": ns_a_files,
                "missing": [],
                "modified": [],
                "unlisted": [],
                "record_error": null,
            },
            {
                "name": "keel-demo-ns-b",
                "version": "1.0",
                "dist_info": dist_info("keel_demo_ns_b-1.0.dist-info"),
                "status": "intact",
                "files": ns_b_files,
                "missing": [],
                "modified": [],
                "unlisted": [],
                "record_error": null,
            },
        ],
        // Without RECORD, keel-demo-data's own files belong to nothing.
        "unowned": [site.join("keel_demo_data"), site.join("keel_demo_data_extra.py")],
    });
    assert_eq!(
        report, expected,
        "got:\n{report:#}\nexpected:\n{expected:#}"
    );
    // stdout is the JSON alone; stderr has nothing to say.
    assert_eq!(stderr(&output), "");

    // The same report from a relative --venv: paths stay absolute.
    let output = run(keel()
        .args(["verify", "--json", "--venv", "venv"])
        .current_dir(venv.parent().expect("parent")));
    assert_exit(&output, 1);
    let relative: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(relative, expected);
}

// ----------------------------------------------------------------- names

#[test]
fn verify_restricts_the_report_to_the_names_given_in_any_spelling() {
    let (_sandbox, venv) = installed(&SIDE_BY_SIDE);
    let site = site_packages(&venv);
    flip_a_byte(&site.join("keel_demo_data/__init__.py"));

    let output = verify(&venv, &["Keel_Hello_Nope"]);
    assert_exit(&output, 1);
    let output = verify(&venv, &["Keel_Demo_Hello", "keel.demo.LEGACY"]);
    assert_exit(&output, 0);
    assert_eq!(
        stdout(&output),
        format!(
            "keel-demo-hello==1.0.0: intact ({} files)\nkeel-demo-legacy==0.9: intact ({} files)\n",
            record_rows(&site.join("keel_demo_hello-1.0.0.dist-info")),
            record_rows(&site.join("Keel_Demo_Legacy-0.9.dist-info")),
        )
    );
    assert_contains(&stderr(&output), "Verified 2 packages (");

    let (output, report) = verify_json(&venv, &["KEEL-DEMO-HELLO", "keel_demo_hello"]);
    assert_exit(&output, 0);
    let names: Vec<&Value> = report["distributions"]
        .as_array()
        .expect("distributions")
        .iter()
        .map(|d| &d["name"])
        .collect();
    assert_eq!(names, [&json!("keel-demo-hello")]);
    assert_eq!(report["intact"], true);

    // The damaged one, named: exit 1.
    let output = verify(&venv, &["keel_demo_data"]);
    assert_exit(&output, 1);
    assert_damaged(
        &output,
        "keel-demo-data==0.3.0",
        &["  modified (hash): keel_demo_data/__init__.py".to_string()],
    );
    assert!(!stdout(&output).contains("keel-demo-hello"));
}

#[test]
fn verify_refuses_an_unknown_name_naming_it() {
    let (_sandbox, venv) = installed(&[HELLO_V1]);
    let output = verify(&venv, &["Keel_Demo_Hello", "Keel_Nope"]);
    assert_exit(&output, 1);
    assert_eq!(stdout(&output), "");
    let text = stderr(&output);
    assert_eq!(
        text.trim_end(),
        "error: no distribution named `Keel_Nope` is installed"
    );

    let output = verify(&venv, &["left-pad", "keel-demo-hello", "Right_Pad"]);
    assert_exit(&output, 1);
    assert_eq!(
        stderr(&output).trim_end(),
        "error: no distributions named `left-pad`, `Right_Pad` are installed"
    );

    // --json: no half report on stdout, the error on stderr.
    let output = run(keel()
        .args(["verify", "--json", "--venv"])
        .arg(&venv)
        .arg("Keel_Nope"));
    assert_exit(&output, 1);
    assert_eq!(stdout(&output), "");
    assert_contains(&stderr(&output), "`Keel_Nope`");
}

// -------------------------------------------------------------- bytecode

/// Runs `python -m compileall -q` over the whole environment at every
/// optimization level, and the console scripts (which import the packages).
fn compile_everything(venv: &Path) {
    compile_at_every_level(venv, venv);
    assert_eq!(
        script(venv, "keel-hello", &[]).trim(),
        "hello from keel_demo_hello 1.0.0"
    );
}

#[test]
fn verify_does_not_report_compiled_bytecode_of_listed_sources() {
    let (_sandbox, venv) = installed(&SIDE_BY_SIDE);
    compile_everything(&venv);
    let site = site_packages(&venv);
    let pycs: Vec<PathBuf> = walkdir::WalkDir::new(&site)
        .into_iter()
        .map(|e| e.expect("walk").into_path())
        .filter(|p| p.extension() == Some(OsStr::new("pyc")))
        .collect();
    for dir in [
        "keel_demo_hello/__pycache__",
        "keel_demo_hello/sub/__pycache__",
        "keel_demo_many",
        "keel_demo_ns/__pycache__",
    ] {
        assert!(
            pycs.iter().any(|p| p.starts_with(site.join(dir))),
            "no bytecode under {dir}: {pycs:#?}"
        );
    }
    assert!(
        pycs.iter()
            .any(|p| p.to_string_lossy().ends_with(".opt-2.pyc")),
        "{pycs:#?}"
    );

    let output = verify(&venv, &[]);
    assert_exit(&output, 0);
    for dist in SIDE_BY_SIDE_DISTS {
        assert_intact_line(&output, dist);
    }
    // The bytecode of a listed source that was then deleted is still not
    // unlisted: the source is reported missing, and that is all.
    fs_err::remove_file(site.join("keel_demo_hello/sub/util.py")).expect("rm");
    let (output, report) = verify_json(&venv, &["keel-demo-hello"]);
    assert_exit(&output, 1);
    let hello = dist(&report, "keel-demo-hello");
    assert_eq!(hello["missing"], json!(["keel_demo_hello/sub/util.py"]));
    assert_eq!(hello["unlisted"], json!([]));
}

#[test]
fn verify_reports_stray_bytecode_of_no_listed_source_as_unlisted() {
    let (_sandbox, venv) = installed(&SIDE_BY_SIDE);
    compile_everything(&venv);
    let site = site_packages(&venv);
    let cache = site.join("keel_demo_hello/__pycache__");
    let real = fs_err::read_dir(&cache)
        .expect("__pycache__")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            let name = p.file_name().expect("name").to_string_lossy();
            name.starts_with("__init__.") && name.ends_with(".pyc") && !name.contains(".opt-")
        })
        .expect("bytecode of __init__.py");
    let tag = real
        .file_name()
        .expect("name")
        .to_string_lossy()
        .split('.')
        .nth(1)
        .expect("cache tag")
        .to_string();
    let strays = [
        // Bytecode of a module that no RECORD lists.
        cache.join(format!("ghost.{tag}.pyc")),
        // Not a name Python gives bytecode, though it starts like one.
        cache.join(format!("__init__.{tag}.evil.pyc")),
        // Sourceless bytecode beside the sources: importable as is.
        site.join("keel_demo_hello/ghost.pyc"),
        site.join("keel_demo_hello/sub/__pycache__/util.pyc"),
    ];
    for stray in &strays {
        fs_err::copy(&real, stray).expect("copy bytecode");
    }
    let output =
        run(Command::new(venv.join("bin/python")).args(["-c", "import keel_demo_hello.ghost"]));
    assert_success(&output);

    let output = verify(&venv, &[]);
    assert_exit(&output, 1);
    let lines: Vec<String> = sorted_as_walked(&strays)
        .iter()
        .map(|p| format!("  unlisted: {}", p.display()))
        .collect();
    assert_damaged(&output, "keel-demo-hello==1.0.0", &lines);
    for dist in SIDE_BY_SIDE_DISTS
        .iter()
        .filter(|d| !d.starts_with("keel-demo-hello"))
    {
        assert_intact_line(&output, dist);
    }
}

// ------------------------------------------------------- transactions

#[test]
fn verify_reports_an_interrupted_transaction_and_changes_nothing() {
    let (_sandbox, venv) = installed(&[HELLO_V1, NS_A, NS_B]);
    let site = site_packages(&venv);

    // A journal of no moves: the installed files are all fine, and still
    // the environment is not intact until `keel recover` has run.
    let empty = InterruptedTransaction::new(&venv, "tx-empty")
        .summary("+keel-demo-x==1")
        .journaled();
    let before = snapshot(&venv);
    let output = verify(&venv, &[]);
    assert_exit(&output, 1);
    assert_same_tree(&before, &snapshot(&venv));
    for dist in [
        "keel-demo-hello==1.0.0",
        "keel-demo-ns-a==1.0",
        "keel-demo-ns-b==1.0",
    ] {
        assert_intact_line(&output, dist);
    }
    assert_contains(
        &stdout(&output),
        &format!(
            "interrupted transaction: {} (run `keel recover`)\n",
            empty.display()
        ),
    );
    assert_contains(
        &stderr(&output),
        ": 0 damaged, 1 interrupted transaction(s)",
    );
    let (output, report) = verify_json(&venv, &[]);
    assert_exit(&output, 1);
    assert_eq!(report["intact"], false);
    assert_eq!(report["interrupted_transactions"], json!([empty.clone()]));
    // Restricting to names does not hide it.
    let (output, report) = verify_json(&venv, &["keel-demo-hello"]);
    assert_exit(&output, 1);
    assert_eq!(report["interrupted_transactions"], json!([empty.clone()]));
    assert_same_tree(&before, &snapshot(&venv));
    assert_success(&run(keel().args(["recover", "--venv"]).arg(&venv)));
    assert_exit(&verify(&venv, &[]), 0);

    // Killed halfway through removing ns-a: its files are in the backup.
    let a = site.join("keel_demo_ns/a.py");
    let a_dist_info = site.join("keel_demo_ns_a-1.0.dist-info");
    let tx = interrupt_by_hand(&venv, "tx-manual", &[a.clone(), a_dist_info.clone()]);
    let before = snapshot(&venv);
    let (output, report) = verify_json(&venv, &[]);
    assert_exit(&output, 1);
    assert_eq!(report["interrupted_transactions"], json!([tx.clone()]));
    let names: Vec<&Value> = report["distributions"]
        .as_array()
        .expect("distributions")
        .iter()
        .map(|d| &d["name"])
        .collect();
    assert_eq!(names, [&json!("keel-demo-hello"), &json!("keel-demo-ns-b")]);
    let output = verify(&venv, &[]);
    assert_exit(&output, 1);
    assert_contains(
        &stdout(&output),
        &format!("interrupted transaction: {}", tx.display()),
    );
    // verify neither rolled it back nor touched anything else.
    assert_same_tree(&before, &snapshot(&venv));
    assert!(!a.exists() && tx.join("journal.json").is_file());

    // Recovery puts ns-a back, and then everything is intact.
    assert_success(&run(keel().args(["recover", "--venv"]).arg(&venv)));
    assert!(a.is_file());
    let (output, report) = verify_json(&venv, &[]);
    assert_exit(&output, 0);
    assert_eq!(report["interrupted_transactions"], json!([]));
    assert_eq!(dist(&report, "keel-demo-ns-a")["status"], "intact");
}

#[test]
fn verify_never_writes_into_the_environment() {
    // A fresh environment that no keel command has touched (no .keel/) and
    // one after installs; clean, then damaged.
    let sandbox = Sandbox::new();
    let fresh = std::path::absolute(sandbox.venv("fresh")).expect("absolute");
    let venv = std::path::absolute(sandbox.venv("venv")).expect("absolute");
    sandbox.install_bundled_ok(&venv, &SIDE_BY_SIDE);
    let runs: [&[&str]; 6] = [
        &[],
        &["--json"],
        &["keel-demo-hello", "Keel_Demo_Legacy"],
        &["--json", "keel-demo-nope"],
        &["-q"],
        &["-vv"],
    ];
    let check = |env: &Path| {
        let before = snapshot(env);
        for args in runs {
            verify(env, args);
        }
        assert_same_tree(&before, &snapshot(env));
    };
    check(&fresh);
    assert!(!fresh.join(".keel").exists());
    assert_exit(&verify(&fresh, &[]), 0);
    check(&venv);

    // Bytecode written, then damage of every kind.
    compile_everything(&venv);
    check(&venv);
    let site = site_packages(&venv);
    flip_a_byte(&site.join("keel_demo_hello/__init__.py"));
    fs_err::remove_file(site.join("keel_demo_hello/sub/util.py")).expect("rm");
    fs_err::write(site.join("keel_demo_hello/x.py"), "").expect("write");
    fs_err::remove_file(site.join("keel_demo_ns_b-1.0.dist-info/RECORD")).expect("rm");
    InterruptedTransaction::new(&venv, "tx-left").journaled();
    check(&venv);
    assert_exit(&verify(&venv, &[]), 1);
}

// ------------------------------------------------------ a real environment

// The pinned real PyPI wheels (`common::pypi::real_wheels`): missing wheels
// fail these tests, as in tests/pypi.rs: a skipped test proves nothing.

#[test]
fn verify_checks_a_large_real_environment_and_catches_one_edit() {
    let real = real_wheels();
    let wheels = &real.wheels;
    // A sandbox whose cache is its own; the bundled wheels are not built.
    let sandbox = Sandbox::without_wheels("keel-audit-pypi-");
    let venv = std::path::absolute(sandbox.venv("venv")).expect("absolute");
    assert_success(&sandbox.install_paths(&venv, wheels, &[]));
    // Python has run: bytecode everywhere, as in real life.
    let output = run(Command::new(venv.join("bin/python"))
        .args(["-m", "compileall", "-q"])
        .arg(&venv));
    assert_success(&output);

    let (output, report) = verify_json(&venv, &[]);
    assert_exit(&output, 0);
    let distributions = report["distributions"].as_array().expect("distributions");
    assert_eq!(distributions.len(), wheels.len());
    let files: u64 = distributions
        .iter()
        .map(|d| d["files"].as_u64().expect("files"))
        .sum();
    assert!(files > 5000, "only {files} files checked");
    assert!(distributions.iter().all(|d| d["status"] == "intact"));

    // One byte of one of thousands of files.
    let site = site_packages(&venv);
    let target = site.join("django/db/models/query.py");
    flip_a_byte(&target);
    let before = snapshot(&venv);
    let output = verify(&venv, &[]);
    assert_exit(&output, 1);
    assert_same_tree(&before, &snapshot(&venv));
    let (_, django_version) = wheel_name_version(real.wheel("django"));
    let django = format!("django=={django_version}");
    assert_eq!(
        block(&output, &django),
        [
            format!("{django}: damaged"),
            "  modified (hash): django/db/models/query.py".to_string(),
        ]
    );
    let (_, report) = verify_json(&venv, &[]);
    let damaged: Vec<&Value> = report["distributions"]
        .as_array()
        .expect("distributions")
        .iter()
        .filter(|d| d["status"] != "intact")
        .collect();
    assert_eq!(damaged.len(), 1, "{damaged:#?}");
    assert_eq!(
        damaged[0]["modified"],
        json!([{"path": "django/db/models/query.py", "reason": "hash"}])
    );
}

#[test]
fn verify_accepts_an_environment_installed_by_pip() {
    // pip's RECORD spells things its own way (bytecode listed, console
    // scripts rewritten): verify judges any installer's work, not just keel's.
    let wheels = real_wheels().wheels;
    let dir = tempfile::Builder::new()
        .prefix("keel-audit-pip-")
        .tempdir()
        .expect("tempdir");
    let venv = dir.path().join("venv");
    create_venv(&venv);
    pip_install(&venv, &[], &wheels);
    let (output, report) = verify_json(&venv, &[]);
    assert_exit(&output, 0);
    assert_eq!(
        report["distributions"].as_array().map(Vec::len),
        Some(wheels.len())
    );
    let site = site_packages(&venv);
    fs_err::write(site.join("requests/api.py"), "").expect("truncate");
    let (output, report) = verify_json(&venv, &["requests"]);
    assert_exit(&output, 1);
    assert_eq!(
        dist(&report, "requests")["modified"],
        json!([{"path": "requests/api.py", "reason": "size"}])
    );
}

/// A transaction in progress (its process holds the environment lock) is
/// not an interrupted one: verify waits for it, says so, and then reports
/// what the finished transaction left, not the transaction.
#[test]
fn verify_waits_for_a_running_transaction_instead_of_reporting_it() {
    let (_sandbox, venv) = installed(&[NS_A]);
    let tx = InterruptedTransaction::new(&venv, "tx-running")
        .with_staging()
        .journaled();
    // The running "keel": holds the lock, finishes its transaction, exits.
    let script = format!("sleep 2; rm -rf '{}'", tx.to_str().expect("utf-8 path"));
    let mut holder = Command::new("flock")
        .arg("-x")
        .arg(&venv)
        .args(["sh", "-c", &script])
        .spawn()
        .expect("spawn flock");
    // Until flock holds the lock, verify would not wait: poll for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while run(Command::new("flock")
        .args(["-n", "-s"])
        .arg(&venv)
        .arg("true"))
    .status
    .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "flock never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let start = std::time::Instant::now();
    let output = verify(&venv, &[]);
    let waited = start.elapsed();
    assert!(holder.wait().expect("wait for flock").success());
    assert_exit(&output, 0);
    assert_contains(
        &stderr(&output),
        "waiting for another keel process to finish with",
    );
    assert!(
        !stdout(&output).contains("interrupted transaction"),
        "{}",
        stdout(&output)
    );
    assert!(
        waited >= std::time::Duration::from_millis(500),
        "verify did not wait ({waited:?})"
    );
}
