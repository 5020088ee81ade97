//! Transactions seen from the command line: `keel uninstall` by RECORD,
//! upgrades and downgrades, `--force` takeovers, `keel sync`, `keel recover`
//! of a transaction interrupted by hand, two keel processes on one
//! environment, and SIGINT during an install.

mod common;

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::journal::InterruptedTransaction;
use common::time_limit::wait_with_limit;
use common::*;
use keel_fixtures::WheelBuilder;
use keel_fixtures::bundled::{DATA, HELLO_V1, HELLO_V2, MANY, NS_A, NS_B};

// ---------------------------------------------------------------- helpers

/// `keel <subcommand> --venv VENV ARGS...` (no `--cache-dir`: uninstall and
/// recover take none).
fn keel_in(subcommand: &str, venv: &Path, args: &[&str]) -> Output {
    run(keel().arg(subcommand).arg("--venv").arg(venv).args(args))
}

/// `keel sync --venv VENV --cache-dir CACHE WHEELS...`.
fn sync(sandbox: &Sandbox, venv: &Path, wheels: &[PathBuf]) -> Output {
    run(keel_with_venv_and_cache(keel(), "sync", venv, &sandbox.cache).args(wheels))
}

#[track_caller]
fn assert_stderr_contains(output: &Output, needle: &str) {
    let text = stderr(output);
    assert!(text.contains(needle), "stderr lacks {needle:?}:\n{text}");
}

#[track_caller]
fn assert_no_transactions(venv: &Path) {
    let left = leftover_transactions(venv);
    assert!(left.is_empty(), "left in .keel: {left:?}");
}

/// The path of `target` relative to `base`, with `..` (both absolute,
/// `base` a directory).
fn relative_path(base: &Path, target: &Path) -> String {
    let base: Vec<_> = base.components().collect();
    let target: Vec<_> = target.components().collect();
    let common = base.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_string(); base.len() - common];
    parts.extend(
        target[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// Appends rows to an installed RECORD.
fn append_to_record(record: &Path, rows: &[String]) {
    let mut text = fs_err::read_to_string(record).unwrap();
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    fs_err::write(record, text).unwrap();
}

/// `keel install` of `wheels` as a child process, stderr into `log`.
fn spawn_install(sandbox: &Sandbox, venv: &Path, wheels: &[&str], log: &Path) -> Child {
    keel_install(venv, &sandbox.cache)
        .args(sandbox.wheels(wheels))
        .stdout(Stdio::null())
        .stderr(fs_err::File::create(log).unwrap().into_parts().0)
        .spawn()
        .unwrap()
}

const WAITING: &str = "waiting for another keel process";

// ---------------------------------------------------------------- uninstall

#[test]
fn uninstall_removes_every_recorded_file_its_bytecode_scripts_and_emptied_dirs() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    sandbox.install_bundled_ok(&venv, &[HELLO_V1, DATA]);
    let site = site_packages(&venv);
    let package = site.join("keel_demo_hello");

    // Bytecode of every optimization level, as `python -m compileall` and
    // `python -O`/`-OO` leave it.
    compile_at_every_level(&venv, &package);
    for pyc in [
        "__pycache__/__init__.cpython-311.pyc",
        "__pycache__/__init__.cpython-311.opt-1.pyc",
        "__pycache__/__init__.cpython-311.opt-2.pyc",
        "sub/__pycache__/util.cpython-311.pyc",
        "sub/__pycache__/util.cpython-311.opt-1.pyc",
        "sub/__pycache__/util.cpython-311.opt-2.pyc",
    ] {
        assert!(
            package.join(pyc).is_file(),
            "compileall did not write {pyc}"
        );
    }
    let data_before = snapshot(&site.join("keel_demo_data"));

    let output = keel_in("uninstall", &venv, &["Keel_Demo.Hello"]);
    assert_success(&output);
    assert_stderr_contains(&output, "Uninstalled 1 package in ");
    assert_stderr_contains(&output, " - keel-demo-hello==1.0.0");
    assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));

    assert!(
        !package.exists(),
        "keel_demo_hello/ (and its __pycache__) remain"
    );
    assert!(!site.join("keel_demo_hello-1.0.0.dist-info").exists());
    assert!(!venv.join("bin/keel-hello").exists());
    assert!(!venv.join("bin/keel-hello-gui").exists());
    assert_eq!(dist_infos(&venv), ["keel_demo_data-0.3.0.dist-info"]);
    assert_same_tree(&data_before, &snapshot(&site.join("keel_demo_data")));
    assert!(venv.join("bin/keel-data-tool").is_file());
    assert!(site.is_dir() && venv.join("bin/python").exists());
    assert_no_transactions(&venv);
    assert_environment_matches_record(&venv);

    // Not installed (any more): one warning line, exit 0, nothing changed.
    let before = env_snapshot(&venv);
    let output = keel_in("uninstall", &venv, &["keel-demo-hello"]);
    assert_success(&output);
    let text = stderr(&output);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with("warning: ") && text.contains("keel-demo-hello"),
        "{text}"
    );
    assert_same_tree(&before, &env_snapshot(&venv));
}

#[test]
fn uninstall_of_one_namespace_distribution_keeps_the_other_and_the_shared_dir() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    sandbox.install_bundled_ok(&venv, &[NS_A, NS_B]);
    let ns = site_packages(&venv).join("keel_demo_ns");
    compile_at_every_level(&venv, &ns);
    assert!(ns.join("__pycache__/a.cpython-311.opt-2.pyc").is_file());

    let output = keel_in("uninstall", &venv, &["keel-demo-ns-a"]);
    assert_success(&output);
    assert_stderr_contains(&output, " - keel-demo-ns-a==1.0");

    assert!(!ns.join("a.py").exists());
    for level in ["", ".opt-1", ".opt-2"] {
        assert!(
            !ns.join(format!("__pycache__/a.cpython-311{level}.pyc"))
                .exists()
        );
        assert!(
            ns.join(format!("__pycache__/b.cpython-311{level}.pyc"))
                .is_file(),
            "the bytecode of b.py (another distribution's) was removed"
        );
    }
    assert!(ns.join("b.py").is_file());
    assert_eq!(dist_infos(&venv), ["keel_demo_ns_b-1.0.dist-info"]);
    assert_eq!(
        python(&venv, "import keel_demo_ns.b; print('ok')").trim(),
        "ok"
    );
    assert_no_transactions(&venv);
    assert_environment_matches_record(&venv);

    // The last one out removes the shared directory.
    assert_success(&keel_in("uninstall", &venv, &["keel-demo-ns-b"]));
    assert!(!ns.exists(), "keel_demo_ns/ remains after both left");
    assert_environment_matches_record(&venv);
}

#[test]
fn uninstall_refuses_a_distribution_without_record_and_changes_nothing() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    sandbox.install_bundled_ok(&venv, &[HELLO_V1, DATA]);
    let record = site_packages(&venv).join("keel_demo_hello-1.0.0.dist-info/RECORD");
    fs_err::remove_file(&record).unwrap();
    let before = env_snapshot(&venv);

    // Alone, and together with a distribution that could be removed: all
    // or nothing.
    for names in [
        &["keel-demo-hello"][..],
        &["keel-demo-data", "keel-demo-hello"],
    ] {
        let output = keel_in("uninstall", &venv, names);
        assert_exit(&output, 1);
        assert_stderr_contains(&output, "error: ");
        assert_stderr_contains(&output, "keel-demo-hello");
        assert_stderr_contains(&output, &record.display().to_string());
        assert!(!stderr(&output).contains("Uninstalled"));
        assert_same_tree(&before, &env_snapshot(&venv));
        assert_no_transactions(&venv);
    }
}

#[test]
fn uninstall_never_removes_files_outside_the_environment_or_the_venvs_own() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    sandbox.install_bundled_ok(&venv, &[HELLO_V1]);
    let site = site_packages(&venv);
    let outside = sandbox.path().join("outside.txt");
    fs_err::write(&outside, "not keel's\n").unwrap();
    let outside_row = relative_path(&site, &outside);
    assert!(outside_row.starts_with("../../../../"), "{outside_row}");
    let own = [
        "pyvenv.cfg",
        "bin/python",
        "bin/python3",
        "bin/python3.11",
        "bin/activate",
        "bin/Activate.ps1",
        "lib64",
        ".keel/lock",
    ];
    let mut rows = vec![format!("{outside_row},,")];
    rows.extend(
        own.iter()
            .filter(|p| venv.join(p).symlink_metadata().is_ok())
            .map(|p| format!("../../../{p},,")),
    );
    append_to_record(&site.join("keel_demo_hello-1.0.0.dist-info/RECORD"), &rows);
    let own_before: Vec<_> = own
        .iter()
        .map(|p| (p, venv.join(p).symlink_metadata().is_ok()))
        .collect();

    let output = keel_in("uninstall", &venv, &["keel-demo-hello"]);
    assert_success(&output);
    assert_stderr_contains(&output, " - keel-demo-hello==1.0.0");
    assert_stderr_contains(&output, &format!("warning: not removing `{outside_row}`"));
    assert_stderr_contains(&output, "warning: not removing `../../../pyvenv.cfg`");
    assert_stderr_contains(&output, "warning: not removing `../../../bin/python`");

    assert_eq!(fs_err::read_to_string(&outside).unwrap(), "not keel's\n");
    for (path, existed) in own_before {
        assert_eq!(
            venv.join(path).symlink_metadata().is_ok(),
            existed,
            "the venv's own `{path}` was removed because a RECORD listed it"
        );
    }
    assert!(!site.join("keel_demo_hello").exists());
    assert_eq!(
        python(&venv, "import sys; print(sys.prefix != sys.base_prefix)").trim(),
        "True"
    );
    assert_no_transactions(&venv);
    assert_environment_matches_record(&venv);
}

#[test]
fn uninstall_never_follows_a_symlinked_directory_out_of_the_environment() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    sandbox.install_bundled_ok(&venv, &[HELLO_V1]);
    let site = site_packages(&venv);
    let outside_dir = sandbox.path().join("elsewhere");
    fs_err::create_dir(&outside_dir).unwrap();
    fs_err::write(outside_dir.join("precious.txt"), "keep me\n").unwrap();
    // A symlink inside the environment that leads out of it (a user's
    // `ln -s`, a development checkout, …).
    fs_err::os::unix::fs::symlink(&outside_dir, site.join("linked")).unwrap();
    append_to_record(
        &site.join("keel_demo_hello-1.0.0.dist-info/RECORD"),
        &["linked/precious.txt,,".to_string()],
    );

    let output = keel_in("uninstall", &venv, &["keel-demo-hello"]);
    assert_success(&output);
    assert!(
        outside_dir.join("precious.txt").is_file(),
        "keel removed `{}` (outside the environment) through the symlink `linked`\n{}",
        outside_dir.join("precious.txt").display(),
        stderr(&output)
    );
    assert!(!site.join("keel_demo_hello").exists());
    assert_no_transactions(&venv);
    assert_environment_matches_record(&venv);
}

#[test]
fn uninstall_removes_files_its_record_lists_by_absolute_path() {
    // Recording installed projects § RECORD: a path is relative to the
    // directory holding `.dist-info`, *or absolute*.
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    sandbox.install_bundled_ok(&venv, &[HELLO_V1]);
    let site = site_packages(&venv);
    let record = site.join("keel_demo_hello-1.0.0.dist-info/RECORD");
    let script = std::path::absolute(venv.join("bin/keel-hello")).unwrap();
    let text = fs_err::read_to_string(&record).unwrap().replace(
        "../../../bin/keel-hello,",
        &format!("{},", script.display()),
    );
    fs_err::write(&record, text).unwrap();
    assert_environment_matches_record(&venv);

    assert_success(&keel_in("uninstall", &venv, &["keel-demo-hello"]));
    assert!(
        !script.exists(),
        "`{}`, listed in RECORD by its absolute path, was left behind",
        script.display()
    );
    assert_environment_matches_record(&venv);
}

// ---------------------------------------------------------------- upgrades

#[test]
fn upgrade_downgrade_and_reinstall_leave_no_transaction_behind() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    let site = site_packages(&venv);
    sandbox.install_bundled_ok(&venv, &[HELLO_V1]);
    compile_at_every_level(&venv, &site.join("keel_demo_hello"));

    let output = sandbox.install_bundled_ok(&venv, &[HELLO_V2]);
    assert_stderr_contains(&output, " - keel-demo-hello==1.0.0");
    assert_stderr_contains(&output, " + keel-demo-hello==2.0.0");
    assert!(!site.join("keel_demo_hello/sub/util.py").exists());
    assert!(
        !site
            .join("keel_demo_hello/sub/__pycache__/util.cpython-311.opt-1.pyc")
            .exists(),
        "the bytecode of the dropped util.py remains"
    );
    assert!(site.join("keel_demo_hello/newmod.py").is_file());
    assert_eq!(dist_infos(&venv), ["keel_demo_hello-2.0.0.dist-info"]);
    assert_eq!(
        script(&venv, "keel-hello", &[]).trim(),
        "hello from keel_demo_hello 2.0.0"
    );
    assert_no_transactions(&venv);
    assert_environment_matches_record(&venv);

    let output = sandbox.install_bundled_ok(&venv, &[HELLO_V1]);
    assert_stderr_contains(&output, " - keel-demo-hello==2.0.0");
    assert_stderr_contains(&output, " + keel-demo-hello==1.0.0");
    assert!(!site.join("keel_demo_hello/newmod.py").exists());
    assert!(site.join("keel_demo_hello/sub/util.py").is_file());
    assert_eq!(dist_infos(&venv), ["keel_demo_hello-1.0.0.dist-info"]);
    assert_eq!(
        script(&venv, "keel-hello", &[]).trim(),
        "hello from keel_demo_hello 1.0.0"
    );
    assert_no_transactions(&venv);
    assert_environment_matches_record(&venv);

    let output = sandbox.install(&venv, &[&"--reinstall", &sandbox.wheel(HELLO_V1)]);
    assert_success(&output);
    assert_stderr_contains(&output, " ~ keel-demo-hello==1.0.0");
    assert_eq!(dist_infos(&venv), ["keel_demo_hello-1.0.0.dist-info"]);
    assert_no_transactions(&venv);
    assert_environment_matches_record(&venv);
}

// ---------------------------------------------------------------- conflicts

#[test]
fn installing_over_another_distributions_file_is_refused_unless_forced() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    sandbox.install_bundled_ok(&venv, &[HELLO_V1]);
    let thief = WheelBuilder::new("keel-demo-thief", "1.0")
        .file("keel_demo_hello/__init__.py", "STOLEN = True\n")
        .file("keel_demo_thief/__init__.py", "")
        .build(&sandbox.path().join("extra"))
        .unwrap();
    let site = site_packages(&venv);
    let target = site.join("keel_demo_hello/__init__.py");
    let before = env_snapshot(&venv);

    let output = sandbox.install(&venv, &[&thief]);
    assert_exit(&output, 1);
    assert_stderr_contains(&output, "keel-demo-hello");
    assert_stderr_contains(&output, "keel-demo-thief");
    assert_stderr_contains(&output, &target.display().to_string());
    assert_stderr_contains(&output, "--force");
    assert_same_tree(&before, &env_snapshot(&venv));
    assert_no_transactions(&venv);

    let output = sandbox.install(&venv, &[&"--force", &thief]);
    assert_success(&output);
    assert_stderr_contains(&output, " + keel-demo-thief==1.0");
    let warning = stderr(&output)
        .lines()
        .find(|l| l.starts_with("warning: ") && l.contains("keel_demo_hello/__init__.py"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no takeover warning:\n{}", stderr(&output)));
    assert!(warning.contains("belonged to keel-demo-hello"), "{warning}");
    assert_eq!(fs_err::read_to_string(&target).unwrap(), "STOLEN = True\n");
    assert!(site.join("keel_demo_thief/__init__.py").is_file());
    assert_no_transactions(&venv);
    // Everything matches its RECORD except the one file taken over, which
    // keel-demo-hello's RECORD still lists with its old hash (as pip does).
    let report = run(Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/verify_record.py"))
        .arg(&venv));
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    let problems = report["problems"].as_array().unwrap();
    assert!(!problems.is_empty(), "{report}");
    for problem in problems {
        assert!(
            problem
                .as_str()
                .unwrap()
                .starts_with("keel_demo_hello-1.0.0.dist-info: keel_demo_hello/__init__.py: "),
            "{report}"
        );
    }
    assert_eq!(report["unclaimed"], serde_json::json!([]));
}

#[test]
fn a_script_another_distribution_owns_is_a_conflict_too() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    sandbox.install_bundled_ok(&venv, &[HELLO_V1]);
    let thief = WheelBuilder::new("keel-demo-thief", "1.0")
        .file(
            "keel_demo_thief/__init__.py",
            "def main():\n    print('thief')\n",
        )
        .entry_points("[console_scripts]\nkeel-hello = keel_demo_thief:main\n")
        .build(&sandbox.path().join("extra"))
        .unwrap();
    let before = env_snapshot(&venv);
    let output = sandbox.install(&venv, &[&thief]);
    assert_exit(&output, 1);
    assert_stderr_contains(&output, "keel-demo-hello");
    assert_stderr_contains(&output, "bin/keel-hello");
    assert_same_tree(&before, &env_snapshot(&venv));
    assert_no_transactions(&venv);
    assert_environment_matches_record(&venv);
}

// ---------------------------------------------------------------- sync

#[test]
fn sync_installs_replaces_and_removes_in_one_transaction() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    sandbox.install_bundled_ok(&venv, &[HELLO_V1, MANY]);
    let site = site_packages(&venv);

    let output = sync(
        &sandbox,
        &venv,
        &[sandbox.wheel(HELLO_V2), sandbox.wheel(DATA)],
    );
    assert_success(&output);
    assert_stderr_contains(
        &output,
        "Installed 2 packages and uninstalled 1 package in ",
    );
    assert_stderr_contains(&output, " - keel-demo-many==1.0.0");
    assert_stderr_contains(&output, " - keel-demo-hello==1.0.0");
    assert_stderr_contains(&output, " + keel-demo-hello==2.0.0");
    assert_stderr_contains(&output, " + keel-demo-data==0.3.0");
    assert_eq!(
        dist_infos(&venv),
        [
            "keel_demo_data-0.3.0.dist-info",
            "keel_demo_hello-2.0.0.dist-info"
        ]
    );
    assert!(!site.join("keel_demo_many").exists());
    assert!(!venv.join("bin/keel-many").exists());
    assert_eq!(
        script(&venv, "keel-hello", &[]).trim(),
        "hello from keel_demo_hello 2.0.0"
    );
    assert_no_transactions(&venv);
    assert_environment_matches_record(&venv);

    // Already in sync: nothing changes.
    let before = env_snapshot(&venv);
    let output = sync(
        &sandbox,
        &venv,
        &[sandbox.wheel(DATA), sandbox.wheel(HELLO_V2)],
    );
    assert_success(&output);
    assert!(!stderr(&output).contains(" - "), "{}", stderr(&output));
    assert_same_tree(&before, &env_snapshot(&venv));
}

// ---------------------------------------------------------------- recover

/// Hand-made interrupted transaction `.keel/tx-manual`: moves every listed
/// environment path into its backup area (really moving them), writes the
/// journal, and the commit record if `committed`.
fn interrupt_by_hand(venv: &Path, paths: &[PathBuf], prune: &[PathBuf], committed: bool) {
    let tx = InterruptedTransaction::new(venv, "tx-manual")
        .summary("-keel-demo-ns-a==1.0")
        .moved_to_backup(paths)
        .pruning(prune);
    if committed {
        tx.committed();
    } else {
        tx.journaled();
    }
}

#[test]
fn recover_rolls_back_an_uncommitted_transaction_and_finishes_a_committed_one() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    sandbox.install_bundled_ok(&venv, &[NS_A, NS_B]);
    let site = std::path::absolute(site_packages(&venv)).unwrap();
    let a = site.join("keel_demo_ns/a.py");
    let a_dist_info = site.join("keel_demo_ns_a-1.0.dist-info");
    let a_content = fs_err::read(&a).unwrap();
    let removal = [a.clone(), a_dist_info.clone()];
    let prune = [site.join("keel_demo_ns")];

    // Not committed: rolled back.
    interrupt_by_hand(&venv, &removal, &prune, false);
    assert!(!a.exists());
    let output = keel_in("recover", &venv, &[]);
    assert_success(&output);
    let text = stderr(&output);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("rolled back"), "{text}");
    assert!(text.contains("-keel-demo-ns-a==1.0"), "{text}");
    assert_eq!(fs_err::read(&a).unwrap(), a_content);
    assert!(a_dist_info.is_dir());
    assert_no_transactions(&venv);
    assert_environment_matches_record(&venv);

    let output = keel_in("recover", &venv, &[]);
    assert_success(&output);
    assert_stderr_contains(&output, "Nothing to recover");
    assert_eq!(stderr(&output).lines().count(), 1);

    // Committed: finished, the moved state kept.
    interrupt_by_hand(&venv, &removal, &prune, true);
    let output = keel_in("recover", &venv, &[]);
    assert_success(&output);
    let text = stderr(&output);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("finished an interrupted transaction"),
        "{text}"
    );
    assert!(!a.exists() && !a_dist_info.exists());
    assert!(site.join("keel_demo_ns/b.py").is_file());
    assert_eq!(dist_infos(&venv), ["keel_demo_ns_b-1.0.dist-info"]);
    assert_no_transactions(&venv);
    assert_environment_matches_record(&venv);
}

#[test]
fn a_committed_transaction_prunes_the_directories_it_emptied() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    sandbox.install_bundled_ok(&venv, &[NS_A]);
    let site = std::path::absolute(site_packages(&venv)).unwrap();
    interrupt_by_hand(
        &venv,
        &[
            site.join("keel_demo_ns/a.py"),
            site.join("keel_demo_ns_a-1.0.dist-info"),
        ],
        &[site.join("keel_demo_ns")],
        true,
    );
    assert_success(&keel_in("recover", &venv, &[]));
    assert!(!site.join("keel_demo_ns").exists());
    assert!(site.is_dir());
    assert_eq!(dist_infos(&venv), Vec::<String>::new());
    assert_no_transactions(&venv);
    assert_environment_matches_record(&venv);
}

#[test]
fn install_recovers_an_interrupted_transaction_first() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    sandbox.install_bundled_ok(&venv, &[NS_A, NS_B]);
    let site = std::path::absolute(site_packages(&venv)).unwrap();
    let a = site.join("keel_demo_ns/a.py");
    interrupt_by_hand(
        &venv,
        &[a.clone(), site.join("keel_demo_ns_a-1.0.dist-info")],
        &[],
        false,
    );
    // Leftovers of other deaths: a transaction killed while staging (no
    // journal) and one killed while being deleted (trash).
    fs_err::create_dir_all(venv.join(".keel/tx-staging-only/staging/0-x")).unwrap();
    fs_err::create_dir_all(venv.join(".keel/trash-half-deleted/backup")).unwrap();

    let output = sandbox.install_bundled_ok(&venv, &[DATA]);
    let text = stderr(&output);
    let rolled_back: Vec<&str> = text.lines().filter(|l| l.contains("rolled back")).collect();
    assert_eq!(rolled_back.len(), 1, "{text}");
    assert!(rolled_back[0].starts_with("warning: "), "{text}");
    let first_install_line = text
        .lines()
        .position(|l| l.starts_with("Installed"))
        .unwrap();
    let rolled_back_line = text
        .lines()
        .position(|l| l.contains("rolled back"))
        .unwrap();
    assert!(rolled_back_line < first_install_line, "{text}");
    assert_stderr_contains(&output, " + keel-demo-data==0.3.0");
    assert!(a.is_file());
    assert_eq!(
        dist_infos(&venv),
        [
            "keel_demo_data-0.3.0.dist-info",
            "keel_demo_ns_a-1.0.dist-info",
            "keel_demo_ns_b-1.0.dist-info"
        ]
    );
    assert_no_transactions(&venv);
    assert_environment_matches_record(&venv);
}

// ---------------------------------------------------------------- concurrency

#[test]
fn two_installs_into_one_environment_take_turns() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    // The environment lock is a flock on the environment's directory.
    let lock = fs_err::File::open(&venv).unwrap();
    lock.file().lock().unwrap();

    let logs = [sandbox.path().join("a.log"), sandbox.path().join("b.log")];
    let first = spawn_install(&sandbox, &venv, &[MANY, HELLO_V1], &logs[0]);
    let second = spawn_install(&sandbox, &venv, &[DATA, NS_A], &logs[1]);
    let mut children = [first, second];
    // Each says that it waits (however loaded the machine), and then does.
    for log in &logs {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !fs_err::read_to_string(log).unwrap().contains(WAITING) {
            assert!(Instant::now() < deadline, "no `{WAITING}` in {log:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    for (child, log) in children.iter_mut().zip(&logs) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "keel finished while another process held the environment lock:\n{}",
            fs_err::read_to_string(log).unwrap()
        );
        let text = fs_err::read_to_string(log).unwrap();
        assert!(text.contains(WAITING), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
    }
    assert_eq!(dist_infos(&venv), Vec::<String>::new());

    // Released: both run, one after the other.
    lock.file().unlock().unwrap();
    let [first, second] = children;
    let statuses = [
        wait_with_limit(first, Duration::from_secs(30), "the first install"),
        wait_with_limit(second, Duration::from_secs(30), "the second install"),
    ];
    for (status, log) in statuses.iter().zip(&logs) {
        assert!(
            status.success(),
            "{status:?}\n{}",
            fs_err::read_to_string(log).unwrap()
        );
    }
    assert_eq!(
        dist_infos(&venv),
        [
            "keel_demo_data-0.3.0.dist-info",
            "keel_demo_hello-1.0.0.dist-info",
            "keel_demo_many-1.0.0.dist-info",
            "keel_demo_ns_a-1.0.dist-info"
        ]
    );
    assert_no_transactions(&venv);
    assert_environment_matches_record(&venv);
}

#[test]
fn two_installs_started_together_both_land() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    let logs = [sandbox.path().join("a.log"), sandbox.path().join("b.log")];
    let first = spawn_install(&sandbox, &venv, &[MANY], &logs[0]);
    let second = spawn_install(&sandbox, &venv, &[DATA, HELLO_V1], &logs[1]);
    for (child, log) in [first, second].into_iter().zip(&logs) {
        let status = wait_with_limit(child, Duration::from_secs(30), "an install");
        assert!(
            status.success(),
            "{status:?}\n{}",
            fs_err::read_to_string(log).unwrap()
        );
    }
    assert_eq!(dist_infos(&venv).len(), 3, "{:?}", dist_infos(&venv));
    assert_no_transactions(&venv);
    assert_environment_matches_record(&venv);
}

#[test]
fn a_lock_held_by_a_killed_process_never_blocks() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    let mut holder = Command::new("python3")
        .arg("-c")
        .arg(
            "import fcntl, os, sys, time\n\
             f = os.open(sys.argv[1], os.O_RDONLY)\n\
             fcntl.flock(f, fcntl.LOCK_EX)\n\
             print('locked', flush=True)\n\
             time.sleep(60)\n",
        )
        .arg(&venv)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    holder.kill().unwrap(); // SIGKILL
    holder.wait().unwrap();

    let start = Instant::now();
    let log = sandbox.path().join("install.log");
    let child = spawn_install(&sandbox, &venv, &[HELLO_V1], &log);
    let status = wait_with_limit(
        child,
        Duration::from_secs(20),
        "install after the holder died",
    );
    let text = fs_err::read_to_string(&log).unwrap();
    assert!(status.success(), "{text}");
    assert!(!text.contains(WAITING), "{text}");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_environment_matches_record(&venv);
}

// ---------------------------------------------------------------- SIGINT

#[test]
fn sigint_or_sigterm_during_an_install_leaves_the_environment_before_or_after() {
    let sandbox = Sandbox::new();
    let wheels = sandbox.wheels(&[MANY, DATA, HELLO_V1, NS_A, NS_B]);
    let mut interrupted = 0;
    for (attempt, delay_ms) in [0u64, 5, 20, 60, 150, 300, 450, 700]
        .into_iter()
        .enumerate()
    {
        let venv = sandbox.venv(&format!("venv-{attempt}"));
        // A cold cache for each attempt, so the signal can land in an unpack.
        let cache = sandbox.path().join(format!("cache-{attempt}"));
        let before = env_snapshot(&venv);
        let child = keel_install(&venv, &cache)
            .args(&wheels)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        // Ctrl-C and a service manager's stop are handled alike.
        let signal = if attempt % 2 == 0 { "-INT" } else { "-TERM" };
        assert_success(&run(Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())));
        let output = child.wait_with_output().unwrap();
        assert_no_transactions(&venv);
        if dist_infos(&venv).is_empty() {
            interrupted += 1;
            assert!(
                !output.status.success(),
                "{signal}: interrupted before anything was installed, yet exit 0:\n{}",
                stderr(&output)
            );
            assert_same_tree(&before, &env_snapshot(&venv));
            // The next install, with the cache the interrupted one left, works.
            let output = run(keel_install(&venv, &cache).args(&wheels));
            assert_success(&output);
        } else {
            assert_eq!(dist_infos(&venv).len(), wheels.len(), "{}", stderr(&output));
        }
        assert_environment_matches_record(&venv);
    }
    eprintln!("{interrupted} of 8 attempts were interrupted before the commit");
}
