//! The probe's environment: no `PYTHON*` variables, an empty private
//! working directory, stdin closed. Its own test binary, because it sets
//! variables in the process environment (one test, so no other thread reads
//! the environment meanwhile).

use std::os::unix::fs::PermissionsExt as _;

use keel_python::Interpreter;

#[test]
fn the_probe_runs_without_python_variables_in_an_empty_directory() {
    // SAFETY: the only test of this binary; nothing else reads the environment.
    unsafe {
        std::env::set_var("PYTHONPATH", "/somewhere/else");
        std::env::set_var("PYTHONHOME", "/broken/home");
        std::env::set_var("KEEL_PYTHON_TEST_KEPT", "1");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let recorded = dir.path().join("recorded.json");
    let line = include_str!("data/probes.jsonl")
        .lines()
        .find(|l| l.contains("\"3.12.1\""))
        .expect("a recorded 3.12 probe");
    fs_err::write(&recorded, line).expect("write");
    let seen = dir.path().join("seen");
    let body = format!(
        "#!/bin/sh\nenv > '{seen}.env'\npwd > '{seen}.cwd'\nls -A > '{seen}.ls'\n\
         cat > '{seen}.stdin'\necho \"$1 $2 $3\" > '{seen}.args'\ncat '{rec}' > \"$5\"\n",
        seen = seen.display(),
        rec = recorded.display()
    );
    let python = dir.path().join("python");
    fs_err::write(&python, body).expect("write");
    fs_err::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    Interpreter::probe(&python, None).expect("probe");

    let read =
        |ext: &str| fs_err::read_to_string(format!("{}.{ext}", seen.display())).expect("read");
    let env = read("env");
    assert!(!env.lines().any(|l| l.starts_with("PYTHON")), "{env}");
    assert!(env.lines().any(|l| l == "KEEL_PYTHON_TEST_KEPT=1"), "{env}");
    let cwd = read("cwd");
    assert!(cwd.trim().ends_with("/cwd"), "{cwd}");
    assert!(!cwd.starts_with(&dir.path().display().to_string()), "{cwd}");
    assert_eq!(read("ls"), "", "the working directory is empty");
    assert_eq!(read("stdin"), "", "stdin is closed");
    assert_eq!(read("args").trim(), "-I -B -c");
    // The scratch directory is gone afterwards.
    assert!(!std::path::Path::new(cwd.trim()).exists());
}
