//! keel knows the environment's interpreter: installs into venvs of
//! CPython 3.8, 3.11, 3.12 and 3.13 (from pyenv) import and run; a wheel
//! whose tags or Requires-Python the interpreter does not support is
//! refused before anything changes; pip's versioned script names follow
//! the environment's Python; `keel verify` is clean on every kind of venv.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::pypi::{pip_install, real_wheels, real_wheels_dir};
use common::*;
use keel_fixtures::bundled;

/// CPython 3.`minor` from pyenv; fails (never skips) when it is missing:
/// `.ci/run` checks that every one is there.
fn pyenv_python(minor: u32) -> PathBuf {
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".pyenv"));
    let versions = root.join("versions");
    let found = fs_err::read_dir(&versions)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path().join(format!("bin/python3.{minor}")))
                .filter(|p| {
                    p.parent()
                        .and_then(Path::parent)
                        .and_then(Path::file_name)
                        .and_then(|n| n.to_str())
                        .is_some_and(|v| v.starts_with(&format!("3.{minor}.")))
                        && p.is_file()
                })
                .min()
        })
        .ok()
        .flatten();
    found.unwrap_or_else(|| {
        panic!(
            "CPython 3.{minor} is not installed under {} (pyenv install 3.{minor})",
            versions.display()
        )
    })
}

/// A fresh `python3.X -m venv --without-pip` (or another creator's command).
fn venv_made_by(sandbox: &Sandbox, name: &str, command: &mut Command) -> PathBuf {
    let venv = sandbox.path().join(name);
    let output = run(command.arg(&venv));
    assert_success_of(&output, "creating the venv");
    venv
}

fn venv_of(sandbox: &Sandbox, minor: u32) -> PathBuf {
    let python = pyenv_python(minor);
    venv_made_by(
        sandbox,
        &format!("venv-3.{minor}"),
        Command::new(python).args(["-m", "venv", "--without-pip"]),
    )
}

/// The full version the venv's interpreter reports (`3.13.0`).
fn full_version(venv: &Path) -> String {
    python(venv, "import platform; print(platform.python_version())")
        .trim()
        .to_string()
}

fn pure_wheels_install_import_and_run_on(minor: u32) {
    let sandbox = Sandbox::new();
    let venv = venv_of(&sandbox, minor);
    let output = sandbox.install_bundled(&venv, &ALL_BUNDLED_DISTRIBUTIONS, &[]);
    assert_success(&output);
    assert_eq!(
        site_packages(&venv),
        venv.join(format!("lib/python3.{minor}/site-packages"))
    );
    assert_eq!(
        script(&venv, "keel-hello", &[]).trim(),
        "hello from keel_demo_hello 1.0.0"
    );
    python(
        &venv,
        "import keel_demo_hello, keel_demo_many, keel_demo_legacy",
    );
    assert_environment_matches_record(&venv);
    let verify = run(keel().args(["verify", "--venv"]).arg(&venv));
    assert_success(&verify);
}

#[test]
fn pure_python_wheels_install_import_and_run_on_cpython_3_8() {
    pure_wheels_install_import_and_run_on(8);
}

#[test]
fn pure_python_wheels_install_import_and_run_on_cpython_3_11() {
    pure_wheels_install_import_and_run_on(11);
}

#[test]
fn pure_python_wheels_install_import_and_run_on_cpython_3_12() {
    pure_wheels_install_import_and_run_on(12);
}

#[test]
fn pure_python_wheels_install_import_and_run_on_cpython_3_13() {
    pure_wheels_install_import_and_run_on(13);
}

/// What the archive cache holds (the interpreter facts keel caches beside
/// it are not archives).
fn cached_archives(sandbox: &Sandbox) -> Vec<String> {
    ["archives-v1", "pointers-v1"]
        .iter()
        .flat_map(|dir| names_in(&sandbox.cache.join(dir)))
        .collect()
}

#[test]
fn a_cp311_wheel_is_refused_by_a_python_3_13_environment_and_nothing_changes() {
    let sandbox = Sandbox::new();
    let venv = venv_of(&sandbox, 13);
    let real = real_wheels();
    let cp311 = real.wheel("charset-normalizer");
    // Installed first, so that the refused transaction would also replace
    // something if it went ahead.
    assert_success(&sandbox.install_bundled(&venv, &[bundled::HELLO_V1], &[]));
    let before = snapshot(&venv);
    let archives = cached_archives(&sandbox);
    for flags in [&[][..], &["--force"][..], &["--ignore-requires-python"][..]] {
        let output = run(keel_install(&venv, &sandbox.cache)
            .args(flags)
            .arg(sandbox.wheel(bundled::HELLO_V2))
            .arg(cp311));
        assert_exit(&output, 1);
        let said = stderr(&output);
        let wheel = cp311.file_name().and_then(|n| n.to_str()).expect("name");
        assert_contains(&said, &format!("error: {wheel} is not supported by"));
        assert_contains(&said, &venv.join("bin/python").display().to_string());
        assert_contains(&said, &format!("(CPython {})", full_version(&venv)));
        assert_contains(&said, "none of its tags cp311-cp311-manylinux");
        assert_contains(&said, "is among the interpreter's");
        assert_same_tree(&before, &snapshot(&venv));
        assert_eq!(cached_archives(&sandbox), archives, "the cache changed");
    }
    assert_eq!(
        script(&venv, "keel-hello", &[]).trim(),
        "hello from keel_demo_hello 1.0.0"
    );
}

#[test]
fn django_5_is_refused_by_python_3_8_unless_requires_python_is_ignored() {
    let sandbox = Sandbox::new();
    let venv = venv_of(&sandbox, 8);
    let real = real_wheels();
    let django = real.wheel("django");
    let before = snapshot(&venv);
    for flags in [&[][..], &["--force"][..]] {
        let output = run(keel_install(&venv, &sandbox.cache).args(flags).arg(django));
        assert_exit(&output, 1);
        let said = stderr(&output);
        let wheel = django.file_name().and_then(|n| n.to_str()).expect("name");
        assert_contains(
            &said,
            &format!(
                "error: {wheel} requires Python >=3.10; the environment has {}",
                full_version(&venv)
            ),
        );
        assert_contains(&said, "--ignore-requires-python");
        assert_same_tree(&before, &snapshot(&venv));
        assert!(
            cached_archives(&sandbox).is_empty(),
            "nothing may be unpacked"
        );
    }
    // A cached archive is checked too (the warm path reads the manifest).
    let venv311 = venv_of(&sandbox, 11);
    assert_success(&run(keel_install(&venv311, &sandbox.cache).arg(django)));
    let output = run(keel_install(&venv, &sandbox.cache).arg(django));
    assert_exit(&output, 1);
    assert_contains(&stderr(&output), "requires Python >=3.10");
    assert_same_tree(&before, &snapshot(&venv));

    let output = run(keel_install(&venv, &sandbox.cache)
        .arg("--ignore-requires-python")
        .arg(django));
    assert_success(&output);
    assert_contains(&stderr(&output), "--ignore-requires-python");
    assert!(
        venv.join("lib/python3.8/site-packages/django/__init__.py")
            .is_file()
    );
}

#[test]
fn the_pip_wheel_gets_the_environments_versioned_scripts_as_pip_gives_them() {
    let sandbox = Sandbox::new();
    let pip_wheel = real_wheels_dir().join("interpreters/pip-24.0-py3-none-any.whl");
    assert!(
        pip_wheel.is_file(),
        "{} is missing; run `bash fixtures/pypi/download.sh`",
        pip_wheel.display()
    );
    for minor in [8, 11, 13] {
        let by_keel = venv_of(&sandbox, minor);
        assert_success(&run(keel_install(&by_keel, &sandbox.cache).arg(&pip_wheel)));
        let by_pip = venv_made_by(
            &sandbox,
            &format!("pip-3.{minor}"),
            Command::new(pyenv_python(minor)).args(["-m", "venv", "--without-pip"]),
        );
        pip_install(&by_pip, &["--no-compile"], std::slice::from_ref(&pip_wheel));
        let pip_scripts = |venv: &Path| -> Vec<String> {
            names_in(&venv.join("bin"))
                .into_iter()
                .filter(|n| n.starts_with("pip"))
                .collect()
        };
        assert_eq!(
            pip_scripts(&by_keel),
            ["pip", "pip3", &format!("pip3.{minor}")],
            "3.{minor}"
        );
        assert_eq!(pip_scripts(&by_keel), pip_scripts(&by_pip), "3.{minor}");
        let version = script(&by_keel, &format!("pip3.{minor}"), &["--version"]);
        assert_contains(&version, "pip 24.0");
        assert_environment_matches_record(&by_keel);
    }
}

/// The tool that makes a venv, as its users run it.
fn creators(sandbox: &Sandbox) -> Vec<(String, Command)> {
    let tools = sandbox.path().join("tools");
    assert_success(&run(Command::new("python3")
        .args(["-m", "venv"])
        .arg(&tools)));
    // The pinned wheels of fixtures/pypi/interpreters.txt, never an index.
    let wheels = real_wheels_dir().join("interpreters");
    assert_success(&run(Command::new(tools.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-index",
        ])
        .arg("--find-links")
        .arg(&wheels)
        .args(["virtualenv==20.26.6", "uv==0.13.9"])));
    let python = |minor| pyenv_python(minor);
    let stdlib = |minor: u32, flags: &[&str]| {
        let mut command = Command::new(python(minor));
        command.args(["-m", "venv", "--without-pip"]).args(flags);
        command
    };
    let mut virtualenv = Command::new(tools.join("bin/virtualenv"));
    virtualenv
        .args(["--no-seed", "--quiet", "--python"])
        .arg(python(8));
    let mut uv = Command::new(tools.join("bin/uv"));
    uv.args(["venv", "--quiet", "--no-cache", "--python"])
        .arg(python(8));
    vec![
        ("venv".into(), stdlib(11, &[])),
        ("venv --copies".into(), stdlib(11, &["--copies"])),
        (
            "venv --system-site-packages".into(),
            stdlib(11, &["--system-site-packages"]),
        ),
        ("virtualenv".into(), virtualenv),
        ("uv venv".into(), uv),
    ]
}

#[test]
fn keel_verify_is_clean_on_every_kind_of_venv_before_and_after_an_install() {
    let sandbox = Sandbox::new();
    for (index, (kind, mut command)) in creators(&sandbox).into_iter().enumerate() {
        let venv = venv_made_by(&sandbox, &format!("kind-{index}"), &mut command);
        let verify = |when: &str| {
            let output = run(keel().args(["verify", "--venv"]).arg(&venv));
            assert!(
                output.status.success(),
                "{kind}, {when}: keel verify failed:\n{}{}",
                stdout(&output),
                stderr(&output)
            );
        };
        verify("fresh");
        let output = sandbox.install_bundled(&venv, &ALL_BUNDLED_DISTRIBUTIONS, &[]);
        assert_success_of(&output, &kind);
        assert_eq!(
            script(&venv, "keel-hello", &[]).trim(),
            "hello from keel_demo_hello 1.0.0"
        );
        verify("after an install");
    }
}
