//! `keel install --compile-bytecode`: every module of the transaction's
//! wheels compiled in staging by the environment's own Python, so that the
//! commit lands with its bytecode or not at all. Checked against CPython
//! 3.8–3.13 (pyenv), with hostile `PYTHON*` variables, with fake
//! interpreters that misbehave, across same-size upgrades, uninstalls by
//! pip and keel, and aborts at every mutation of a compiled upgrade.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::fault_keel::{fault_keel, fault_keel_path, normal_keel};
use common::journal::{Left, left_behind};
use common::*;
use keel_fixtures::WheelBuilder;

// ---------------------------------------------------------------- helpers

/// A wheel with modules at every depth, a Python 2 module, a top-level
/// module, a `.data/purelib` module (all of which land in site-packages)
/// and `.py` files among its scripts and data (which must not be compiled).
fn compiled_wheel(dir: &Path, version: &str, value: &str) -> PathBuf {
    let data = format!("compiled-{version}.data");
    WheelBuilder::new("compiled", version)
        .file(
            "compiled/__init__.py",
            "from compiled.sub.deep import ANSWER\n",
        )
        .file("compiled/sub/__init__.py", "")
        .file("compiled/sub/deep.py", "ANSWER = 42\n")
        .file("compiled/value.py", format!("VALUE = {value}\n"))
        .file("compiled/legacy_py2.py", "print 'written for Python 2'\n")
        .file("compiled_top.py", "TOP = 1\n")
        .file(&format!("{data}/purelib/compiled_extra.py"), "EXTRA = 3\n")
        .executable(
            &format!("{data}/scripts/compiled-tool.py"),
            "#!python\nprint('tool')\n",
        )
        .file(&format!("{data}/data/share/compiled/example.py"), "X = 2\n")
        .build(dir)
        .expect("build the compiled wheel")
}

/// The modules of [`compiled_wheel`] that must get bytecode, relative to
/// site-packages.
const COMPILED_MODULES: [&str; 6] = [
    "compiled/__init__.py",
    "compiled/sub/__init__.py",
    "compiled/sub/deep.py",
    "compiled/value.py",
    "compiled_top.py",
    "compiled_extra.py",
];

/// Checks, with the environment's own Python, every `.py` a distribution's
/// RECORD lists in site-packages: its bytecode exists (unless named in
/// argv[3:]), is listed in RECORD without hash or size, is accepted by
/// importlib's own checks against the source (timestamp: mtime and size;
/// checked hash: the source's hash), and names the source's final path.
const CHECK_BYTECODE: &str = r#"
import csv, importlib.util, marshal, os, sys
from importlib._bootstrap_external import _classify_pyc, _validate_hash_pyc, _validate_timestamp_pyc
site, dist_info, skipped = sys.argv[1], sys.argv[2], set(sys.argv[3:])
with open(os.path.join(site, dist_info, "RECORD"), newline="") as f:
    rows = {row[0]: row for row in csv.reader(f)}
checked = 0
for path in sorted(rows):
    if not path.endswith(".py") or path.startswith(".."):
        continue
    source = os.path.join(site, path)
    pyc = importlib.util.cache_from_source(source)
    listed = os.path.relpath(pyc, site)
    if path in skipped:
        assert not os.path.exists(pyc), pyc
        assert listed not in rows, listed
        continue
    assert rows.get(listed, [None])[1:] == ["", ""], (listed, rows.get(listed))
    with open(pyc, "rb") as f:
        data = f.read()
    details = {"name": path, "path": pyc}
    flags = _classify_pyc(data, path, details)
    with open(source, "rb") as f:
        source_bytes = f.read()
    if flags & 1:
        _validate_hash_pyc(data, importlib.util.source_hash(source_bytes), path, details)
        kind = "checked-hash" if flags & 2 else "unchecked-hash"
    else:
        st = os.stat(source)
        _validate_timestamp_pyc(data, int(st.st_mtime), st.st_size, path, details)
        kind = "timestamp"
    code = marshal.loads(data[16:])
    assert code.co_filename == source, (code.co_filename, source)
    checked += 1
pycs = [p for p in rows if p.endswith(".pyc")]
assert len(pycs) == checked, (pycs, checked)
print(checked, kind)
"#;

/// [`CHECK_BYTECODE`] on `compiled`'s dist-info; returns `(checked, kind)`.
#[track_caller]
fn check_bytecode(venv: &Path, version: &str, skipped: &[&str]) -> (usize, String) {
    let site = site_packages(venv);
    let output = run(Command::new(venv.join("bin/python"))
        .arg("-I")
        .arg("-c")
        .arg(CHECK_BYTECODE)
        .arg(&site)
        .arg(format!("compiled-{version}.dist-info"))
        .args(skipped));
    assert_success_of(&output, "the bytecode check");
    let text = stdout(&output);
    let (count, kind) = text.trim().split_once(' ').expect("`N kind`");
    (count.parse().expect("a count"), kind.to_string())
}

/// Every `.pyc` under `dir`, relative to it, sorted.
fn bytecode_files(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = snapshot(dir)
        .into_keys()
        .filter(|p| p.extension().is_some_and(|e| e == "pyc"))
        .collect();
    found.sort();
    found
}

/// Every `.pyc` in site-packages that no RECORD lists (bytecode keel wrote
/// and lost track of).
fn orphan_bytecode(venv: &Path) -> Vec<PathBuf> {
    let site = site_packages(venv);
    let mut listed = std::collections::HashSet::new();
    for dist_info in dist_infos(venv) {
        let record =
            fs_err::read_to_string(site.join(&dist_info).join("RECORD")).unwrap_or_default();
        listed.extend(
            record
                .lines()
                .filter_map(|l| l.split(',').next())
                .map(PathBuf::from),
        );
    }
    bytecode_files(&site)
        .into_iter()
        .filter(|p| !listed.contains(p))
        .collect()
}

/// `keel install --compile-bytecode` of `wheels`, with `KEEL_COMPILE_*`
/// and `SOURCE_DATE_EPOCH` from this machine removed.
fn compile_install(venv: &Path, cache: &Path, wheels: &[impl AsRef<std::ffi::OsStr>]) -> Command {
    let mut command = keel_install(venv, cache);
    command
        .arg("--compile-bytecode")
        .args(wheels)
        .env_remove("KEEL_COMPILE_BYTECODE")
        .env_remove("KEEL_COMPILE_BYTECODE_TIMEOUT")
        .env_remove("SOURCE_DATE_EPOCH");
    command
}

/// A venv of CPython 3.`minor` from pyenv (never skipped: `.ci/run` checks
/// they are all there).
fn venv_of(sandbox: &Sandbox, minor: u32) -> PathBuf {
    let python = keel_fixtures::python::required_python(minor);
    let venv = sandbox.path().join(format!("venv-3.{minor}"));
    let output = run(Command::new(python)
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv));
    assert_success_of(&output, "python -m venv");
    venv
}

// ------------------------------------------------------------------ tests

fn every_module_gets_bytecode_python_accepts_on(minor: u32) {
    let sandbox = Sandbox::without_wheels("keel-bytecode-");
    let wheel = compiled_wheel(sandbox.path(), "1.0", "1");
    let venv = venv_of(&sandbox, minor);
    let output = run(compile_install(&venv, &sandbox.cache, &[wheel]).arg("-v"));
    assert_success(&output);
    // The Python 2 module is skipped, named under -v, and the install goes on.
    assert_contains(&stderr(&output), "legacy_py2.py");
    let (checked, kind) = check_bytecode(&venv, "1.0", &["compiled/legacy_py2.py"]);
    assert_eq!(
        (checked, kind.as_str()),
        (COMPILED_MODULES.len(), "timestamp")
    );

    // Scripts and data are not modules of site-packages: no bytecode.
    assert!(!venv.join("bin/__pycache__").exists());
    assert!(!venv.join("share/compiled/__pycache__").exists());

    // Python itself takes the bytecode: `python -v` says it matches.
    let imported = run(Command::new(venv.join("bin/python")).args([
        "-v",
        "-c",
        "import compiled, compiled.value, compiled_top, compiled_extra; print(compiled.ANSWER)",
    ]));
    assert_success(&imported);
    assert_eq!(stdout(&imported).trim(), "42");
    let trace = stderr(&imported);
    for module in COMPILED_MODULES {
        let stem = module
            .trim_end_matches(".py")
            .rsplit('/')
            .next()
            .unwrap_or(module);
        assert!(
            trace
                .lines()
                .any(|l| l.contains("matches") && l.contains(&format!("/{stem}.py"))),
            "python -v does not say the bytecode of {module} matches:\n{trace}"
        );
    }
    // Nothing was written at import: the bytecode was already complete.
    assert!(
        orphan_bytecode(&venv).is_empty(),
        "{:?}",
        orphan_bytecode(&venv)
    );
    let verify = run(keel().arg("verify").arg("--venv").arg(&venv));
    assert_success_of(&verify, "keel verify of a compiled install");
}

#[test]
fn every_module_gets_bytecode_python_accepts_on_cpython_3_8() {
    every_module_gets_bytecode_python_accepts_on(8);
}

#[test]
fn every_module_gets_bytecode_python_accepts_on_cpython_3_9() {
    every_module_gets_bytecode_python_accepts_on(9);
}

#[test]
fn every_module_gets_bytecode_python_accepts_on_cpython_3_10() {
    every_module_gets_bytecode_python_accepts_on(10);
}

#[test]
fn every_module_gets_bytecode_python_accepts_on_cpython_3_11() {
    every_module_gets_bytecode_python_accepts_on(11);
}

#[test]
fn every_module_gets_bytecode_python_accepts_on_cpython_3_12() {
    every_module_gets_bytecode_python_accepts_on(12);
}

#[test]
fn every_module_gets_bytecode_python_accepts_on_cpython_3_13() {
    every_module_gets_bytecode_python_accepts_on(13);
}

#[test]
fn without_the_option_no_bytecode_is_written_and_the_variable_turns_it_on() {
    let sandbox = Sandbox::without_wheels("keel-bytecode-");
    let wheel = compiled_wheel(sandbox.path(), "1.0", "1");
    let plain = sandbox.venv("plain");
    assert_success(&sandbox.install_paths(&plain, &[&wheel], &[]));
    assert!(
        bytecode_files(&plain).is_empty(),
        "{:?}",
        bytecode_files(&plain)
    );

    let by_variable = sandbox.venv("by-variable");
    let output = run(keel_install(&by_variable, &sandbox.cache)
        .arg(&wheel)
        .env("KEEL_COMPILE_BYTECODE", "1"));
    assert_success(&output);
    check_bytecode(&by_variable, "1.0", &["compiled/legacy_py2.py"]);

    // --no-compile-bytecode wins over the variable.
    let overridden = sandbox.venv("overridden");
    let output = run(keel_install(&overridden, &sandbox.cache)
        .arg("--no-compile-bytecode")
        .arg(&wheel)
        .env("KEEL_COMPILE_BYTECODE", "1"));
    assert_success(&output);
    assert!(bytecode_files(&overridden).is_empty());
}

#[test]
fn source_date_epoch_gives_checked_hash_bytecode() {
    let sandbox = Sandbox::without_wheels("keel-bytecode-");
    let wheel = compiled_wheel(sandbox.path(), "1.0", "1");
    let venv = sandbox.venv("venv");
    let output =
        run(compile_install(&venv, &sandbox.cache, &[wheel]).env("SOURCE_DATE_EPOCH", "1"));
    assert_success(&output);
    let (checked, kind) = check_bytecode(&venv, "1.0", &["compiled/legacy_py2.py"]);
    assert_eq!(
        (checked, kind.as_str()),
        (COMPILED_MODULES.len(), "checked-hash")
    );
}

#[test]
fn hostile_python_variables_and_start_up_files_change_nothing() {
    let sandbox = Sandbox::without_wheels("keel-bytecode-");
    let wheel = compiled_wheel(sandbox.path(), "1.0", "1");
    let reference = sandbox.venv("reference");
    assert_success(&run(&mut compile_install(
        &reference,
        &sandbox.cache,
        &[&wheel],
    )));

    let venv = sandbox.venv("hostile");
    let marker = sandbox.path().join("something-ran");
    let prefix = sandbox.path().join("pycache-prefix");
    let startup = sandbox.path().join("startup.py");
    let hook = format!(
        "open({:?}, 'a').write('ran\\n')\n",
        marker.display().to_string()
    );
    fs_err::write(&startup, &hook).expect("write");
    let path_dir = sandbox.path().join("on-pythonpath");
    fs_err::create_dir(&path_dir).expect("mkdir");
    fs_err::write(path_dir.join("py_compile.py"), &hook).expect("a py_compile that hijacks");
    fs_err::write(path_dir.join("sitecustomize.py"), &hook).expect("write");
    // A .pth file in the environment runs at every start of its Python
    // with `site`; keel's interpreter probe runs `site` (it must see
    // site-packages), so this one writes only when a bytecode worker runs it.
    let pth_hook = format!(
        "import sys; 'compile_worker' in ' '.join(sys.argv) and open({:?}, 'a').write('pth ran\\n')\n",
        marker.display().to_string()
    );
    fs_err::write(site_packages(&venv).join("evil.pth"), pth_hook).expect("write a .pth");
    let output = run(compile_install(&venv, &sandbox.cache, &[wheel])
        .env("PYTHONPYCACHEPREFIX", &prefix)
        .env("PYTHONOPTIMIZE", "2")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONSTARTUP", &startup)
        .env("PYTHONPATH", &path_dir)
        .env("PYTHONINSPECT", "1")
        .env("PYTHONVERBOSE", "1"));
    assert_success(&output);
    assert!(
        !marker.exists(),
        "a start-up hook ran in the bytecode workers"
    );
    assert!(!prefix.exists(), "PYTHONPYCACHEPREFIX redirected bytecode");
    let site = |v: &Path| {
        bytecode_files(&site_packages(v))
            .into_iter()
            .collect::<Vec<_>>()
    };
    assert_eq!(site(&venv), site(&reference));
    check_bytecode(&venv, "1.0", &["compiled/legacy_py2.py"]);
}

/// A venv whose `bin/python` runs the real interpreter for everything but
/// keel's bytecode worker (`-I -S -B …/compile_worker.py MODE`), for which
/// it runs `worker` (a shell command) instead. It notes its PID in `pids`.
fn venv_with_fake_worker(sandbox: &Sandbox, name: &str, worker: &str) -> PathBuf {
    let venv = sandbox.venv(name);
    let real = fs_err::read_dir(venv.join("bin"))
        .expect("bin")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("python3.") && n.len() > "python3.".len())
        })
        .expect("bin/python3.X");
    let wrapper = format!(
        "#!/bin/sh\ncase \"$4\" in\n  *compile_worker.py) echo $$ >> '{pids}'; {worker} ;;\nesac\nexec '{real}' \"$@\"\n",
        pids = sandbox.path().join(format!("{name}.pids")).display(),
        real = real.display(),
    );
    let python = venv.join("bin/python");
    fs_err::remove_file(&python).expect("remove bin/python");
    fs_err::write(&python, wrapper).expect("write the wrapper");
    chmod(&python, 0o755);
    venv
}

/// A fake worker that greets as the real one would, then never answers.
const GREET_THEN_HANG: &str = "exec python3 -c 'import struct,sys,time,importlib.util as u; \
    g=(\"keel-bytecode 1 %s %s\" % (u.MAGIC_NUMBER.hex(), sys.implementation.cache_tag)).encode(); \
    sys.stdout.buffer.write(struct.pack(\">BI\",0,len(g))+g); sys.stdout.flush(); time.sleep(600)'";

/// Whether a process the fake worker of `name` started is still there
/// (running, or a zombie nobody reaped).
fn fake_workers_left(sandbox: &Sandbox, name: &str) -> Vec<String> {
    let pids =
        fs_err::read_to_string(sandbox.path().join(format!("{name}.pids"))).unwrap_or_default();
    pids.lines()
        .filter(|pid| Path::new("/proc").join(pid.trim()).exists())
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_worker_that_never_starts_hangs_or_answers_wrong_fails_in_time_and_changes_nothing() {
    let sandbox = Sandbox::without_wheels("keel-bytecode-");
    let wheel = compiled_wheel(sandbox.path(), "1.0", "1");
    let cases = [
        (
            "never-ready",
            "exec sleep 600",
            "did not start compiling within 2 s",
        ),
        ("hangs", GREET_THEN_HANG, "took longer than 2 s"),
        (
            "wrong-magic",
            "printf '\\000\\000\\000\\000\\042keel-bytecode 1 00000000 cpython-0'; sleep 600",
            "is not the interpreter keel probed",
        ),
        (
            "crashes",
            "echo 'Fatal Python error: boom' >&2; exit 134",
            "Fatal Python error: boom",
        ),
    ];
    for (name, worker, message) in cases {
        let venv = venv_with_fake_worker(&sandbox, name, worker);
        let before = env_snapshot(&venv);
        let started = Instant::now();
        let output = run(compile_install(&venv, &sandbox.cache, &[&wheel])
            .env("KEEL_COMPILE_BYTECODE_TIMEOUT", "2"));
        let took = started.elapsed();
        assert_exit(&output, 1);
        let text = stderr(&output);
        assert_contains(&text, message);
        assert_contains(&text, "--no-compile-bytecode");
        assert!(took < Duration::from_secs(30), "{name}: took {took:?}");
        assert_same_tree(&before, &env_snapshot(&venv));
        assert!(leftover_transactions(&venv).is_empty(), "{name}");
        assert!(
            fake_workers_left(&sandbox, name).is_empty(),
            "{name}: a worker is left"
        );
        // Without bytecode the same install works.
        let output = run(keel_install(&venv, &sandbox.cache)
            .arg("--no-compile-bytecode")
            .arg(&wheel));
        assert_success(&output);
    }
}

#[test]
fn sigkill_during_compilation_leaves_no_worker_and_nothing_installed() {
    let sandbox = Sandbox::without_wheels("keel-bytecode-");
    let wheel = compiled_wheel(sandbox.path(), "1.0", "1");
    let name = "slow";
    // A worker that greets, then takes forever on its first file.
    let venv = venv_with_fake_worker(&sandbox, name, GREET_THEN_HANG);
    let before = env_snapshot(&venv);
    let mut child = compile_install(&venv, &sandbox.cache, &[wheel])
        .env("KEEL_COMPILE_BYTECODE_TIMEOUT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start keel");
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake_workers_left(&sandbox, name).is_empty() {
        assert!(Instant::now() < deadline, "the worker never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    child.kill().expect("SIGKILL keel");
    child.wait().expect("reap keel");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fake_workers_left(&sandbox, name).is_empty() {
        assert!(Instant::now() < deadline, "the worker outlived keel");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The next keel command cleans up; nothing was installed.
    assert_success(&run(keel().arg("recover").arg("--venv").arg(&venv)));
    assert_same_tree(&before, &env_snapshot(&venv));
}

#[test]
fn a_same_size_upgrade_with_identical_zip_timestamps_never_runs_stale_bytecode() {
    for compile in [false, true] {
        let sandbox = Sandbox::without_wheels("keel-bytecode-");
        let v1 = compiled_wheel(sandbox.path(), "1.0", "1");
        let v2 = compiled_wheel(sandbox.path(), "2.0", "2");
        let venv = sandbox.venv("venv");
        let install = |wheel: &PathBuf| {
            let mut command = keel_install(&venv, &sandbox.cache);
            command.args(["--link-mode", "copy"]).arg(wheel);
            if compile {
                command.arg("--compile-bytecode");
            }
            assert_success(&run(&mut command));
        };
        install(&v1);
        // Python writes (or checks) the bytecode of value.py at import.
        assert_eq!(
            python(&venv, "import compiled.value as v; print(v.VALUE)").trim(),
            "1"
        );
        let source = site_packages(&venv).join("compiled/value.py");
        let old_mtime = fs_err::metadata(&source)
            .expect("stat")
            .modified()
            .expect("mtime");
        install(&v2);
        // Give the new source the old one's mtime (same size, same zip
        // timestamps): only bytecode of the old source left behind could
        // still pass Python's check.
        let file = fs_err::File::options()
            .write(true)
            .open(&source)
            .expect("open");
        file.set_modified(old_mtime).expect("set mtime");
        drop(file);
        assert_eq!(
            python(&venv, "import compiled.value as v; print(v.VALUE)").trim(),
            "2",
            "stale bytecode ran (compile: {compile})"
        );
    }
}

#[test]
fn pip_and_keel_uninstall_a_compiled_install_leaving_no_bytecode_or_empty_directory() {
    let sandbox = Sandbox::without_wheels("keel-bytecode-");
    let wheel = compiled_wheel(sandbox.path(), "1.0", "1");
    // pip removes a directory whose every file it removes: without a
    // neighbour that would be site-packages itself, whoever installed.
    let neighbour = WheelBuilder::new("neighbour", "1.0")
        .file("neighbour_module.py", "N = 1\n")
        .build(sandbox.path())
        .expect("build");
    for uninstaller in ["pip", "keel"] {
        let venv = sandbox.venv(uninstaller);
        assert_success(&sandbox.install_paths(&venv, &[&neighbour], &[]));
        let before = (env_snapshot(&venv), snapshot(&site_packages(&venv)));
        assert_success(&run(&mut compile_install(&venv, &sandbox.cache, &[&wheel])));
        assert!(!bytecode_files(&venv).is_empty());
        let output = match uninstaller {
            "pip" => run(Command::new("python3")
                .args(["-m", "pip", "--python"])
                .arg(venv.join("bin/python"))
                .args(["uninstall", "-y", "-q", "compiled"])
                .env("PIP_CONFIG_FILE", "/dev/null")
                .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")),
            _ => run(keel()
                .arg("uninstall")
                .arg("--venv")
                .arg(&venv)
                .arg("compiled")),
        };
        assert_success_of(&output, uninstaller);
        assert!(
            bytecode_files(&venv).is_empty(),
            "{uninstaller}: {:?}",
            bytecode_files(&venv)
        );
        match uninstaller {
            // pip leaves the emptied directories of data files (`share/`)
            // behind, bytecode or not; site-packages is as it was.
            "pip" => assert_same_tree(&before.1, &snapshot(&site_packages(&venv))),
            _ => assert_same_tree(&before.0, &env_snapshot(&venv)),
        }
    }
}

#[test]
fn an_upgrade_keeps_another_distributions_bytecode_in_a_shared_directory() {
    let sandbox = Sandbox::without_wheels("keel-bytecode-");
    let other = WheelBuilder::new("neighbour", "1.0")
        .file("neighbour_module.py", "N = 1\n")
        .build(sandbox.path())
        .expect("build");
    let v1 = compiled_wheel(sandbox.path(), "1.0", "1");
    let v2 = compiled_wheel(sandbox.path(), "2.0", "2");
    let venv = sandbox.venv("venv");
    assert_success(&run(&mut compile_install(
        &venv,
        &sandbox.cache,
        &[other, v1],
    )));
    let neighbour = bytecode_files(&site_packages(&venv))
        .into_iter()
        .find(|p| p.to_string_lossy().contains("neighbour_module"))
        .expect("the neighbour's bytecode in site-packages/__pycache__");
    assert_success(&run(&mut compile_install(&venv, &sandbox.cache, &[v2])));
    assert!(
        site_packages(&venv).join(&neighbour).is_file(),
        "the neighbour's bytecode went"
    );
    check_bytecode(&venv, "2.0", &["compiled/legacy_py2.py"]);
    assert!(
        orphan_bytecode(&venv).is_empty(),
        "{:?}",
        orphan_bytecode(&venv)
    );
}

#[test]
fn keel_verify_never_calls_recompiled_bytecode_tampering_but_names_bytecode_of_no_module() {
    let sandbox = Sandbox::without_wheels("keel-bytecode-");
    let wheel = compiled_wheel(sandbox.path(), "1.0", "1");
    let venv = sandbox.venv("venv");
    assert_success(&run(&mut compile_install(&venv, &sandbox.cache, &[wheel])));
    // Recompiled by Python (other bytes, same module): not tampering.
    let output = run(Command::new(venv.join("bin/python"))
        .args(["-m", "compileall", "-q", "-f"])
        .arg(site_packages(&venv).join("compiled/sub")));
    assert_success(&output);
    assert_success_of(
        &run(keel().arg("verify").arg("--venv").arg(&venv)),
        "verify",
    );
    // Bytecode deleted (`find -name '*.pyc' -delete`) is a cache emptied,
    // not damage: Python writes it again.
    let pyc = site_packages(&venv).join(format!(
        "compiled/__pycache__/value.{}.pyc",
        python(&venv, "import sys; print(sys.implementation.cache_tag)").trim()
    ));
    fs_err::remove_file(&pyc).expect("remove a .pyc");
    assert_success_of(
        &run(keel().arg("verify").arg("--venv").arg(&venv)),
        "verify",
    );
    // The source of a compiled module is gone: that is damage.
    fs_err::remove_file(site_packages(&venv).join("compiled/sub/deep.py")).expect("remove");
    let output = run(keel().arg("verify").arg("--venv").arg(&venv));
    assert_exit(&output, 1);
    assert_contains(&stdout(&output), "compiled/sub/deep.py");
}

/// The abort points of a compiled upgrade (1.0 → 2.0, both compiled), each
/// recovered: the environment is 1.0 or 2.0 with all of its bytecode, and
/// no bytecode no RECORD lists.
#[test]
fn crash_at_every_mutation_of_a_compiled_upgrade_recovers_to_before_or_after() {
    fault_keel_path();
    let sandbox = Sandbox::without_wheels("keel-bytecode-crash-");
    let v1 = compiled_wheel(sandbox.path(), "1.0", "1");
    let v2 = compiled_wheel(sandbox.path(), "2.0", "2");
    let upgrade = |keel: Command, venv: &Path| -> Output {
        let mut command = keel_with_venv_and_cache(keel, "install", venv, &sandbox.cache);
        command.arg("--compile-bytecode").arg(&v2);
        run(&mut command)
    };
    let prepare = |n: usize| -> PathBuf {
        let venv = sandbox.venv(&format!("crash-{n}"));
        let mut command = keel_with_venv_and_cache(normal_keel(), "install", &venv, &sandbox.cache);
        assert_success(&run(command.arg("--compile-bytecode").arg(&v1)));
        venv
    };
    let mut outcomes = Vec::new();
    for n in 1.. {
        assert!(n < 200, "the upgrade never completed");
        let venv = prepare(n);
        let output = upgrade(fault_keel(Some(n - 1)), &venv);
        let completed = output.status.success();
        if !completed {
            let left = left_behind(&venv);
            assert!(
                matches!(left, Left::Uncommitted | Left::Committed),
                "abort at mutation {n} left {left:?}"
            );
            outcomes.push(left);
            assert_success(&run(keel().arg("recover").arg("--venv").arg(&venv)));
        }
        let value = python(&venv, "import compiled.value as v; print(v.VALUE)");
        let version = if value.trim() == "2" { "2.0" } else { "1.0" };
        assert_eq!(
            dist_infos(&venv),
            [format!("compiled-{version}.dist-info")],
            "mutation {n}"
        );
        let (checked, _) = check_bytecode(&venv, version, &["compiled/legacy_py2.py"]);
        assert_eq!(checked, COMPILED_MODULES.len(), "mutation {n}");
        assert!(
            orphan_bytecode(&venv).is_empty(),
            "mutation {n}: {:?}",
            orphan_bytecode(&venv)
        );
        assert!(leftover_transactions(&venv).is_empty(), "mutation {n}");
        if completed {
            break;
        }
    }
    assert!(
        outcomes.len() > 5,
        "only {} mutations: are the fail points compiled in?",
        outcomes.len()
    );
    assert!(
        outcomes.contains(&Left::Uncommitted) && outcomes.contains(&Left::Committed),
        "{outcomes:?}"
    );
}

/// `(relocated, compiled)` from keel's `-v` bytecode line.
fn bytecode_sources(output: &Output) -> (usize, usize) {
    let text = stderr(output);
    let line = text
        .lines()
        .find(|l| l.contains("time: bytecode for"))
        .unwrap_or_else(|| panic!("no bytecode line:\n{text}"));
    let number_before = |word: &str| -> usize {
        let at = line
            .find(word)
            .unwrap_or_else(|| panic!("{word} in {line}"));
        line[..at]
            .split_whitespace()
            .last()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a number before {word} in {line}"))
    };
    (number_before("relocated"), number_before("compiled ("))
}

/// The stored `.pyc` of `compiled/value.py` in the archive cache.
fn stored_value_bytecode(cache: &Path) -> PathBuf {
    let found: Vec<PathBuf> = snapshot(cache)
        .into_keys()
        .filter(|p| {
            let text = p.to_string_lossy();
            text.contains("/bytecode-")
                && text.ends_with(".pyc")
                && text.contains("compiled/__pycache__/value.")
        })
        .map(|p| cache.join(p))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

#[test]
fn the_next_install_relocates_stored_bytecode_and_names_its_own_paths() {
    let sandbox = Sandbox::without_wheels("keel-bytecode-");
    let wheel = compiled_wheel(sandbox.path(), "1.0", "1");
    let first = sandbox.venv("first");
    let output = run(compile_install(&first, &sandbox.cache, &[&wheel]).arg("-v"));
    assert_success(&output);
    assert_eq!(bytecode_sources(&output), (0, COMPILED_MODULES.len() + 1));

    let second = sandbox.venv("second");
    let output = run(compile_install(&second, &sandbox.cache, &[&wheel]).arg("-v"));
    assert_success(&output);
    // Every compiled module comes from the store; the Python 2 one, which
    // has no stored bytecode, is tried again.
    assert_eq!(bytecode_sources(&output), (COMPILED_MODULES.len(), 1));
    // Checked against the second venv's sources, naming the second venv's
    // paths (not the first's, where the stored bytecode was compiled).
    check_bytecode(&second, "1.0", &["compiled/legacy_py2.py"]);
    let imported =
        run(Command::new(second.join("bin/python")).args(["-v", "-c", "import compiled.value"]));
    assert_contains(&stderr(&imported), "matches");
}

#[test]
fn stored_bytecode_that_is_gone_or_altered_is_compiled_again() {
    let sandbox = Sandbox::without_wheels("keel-bytecode-");
    let wheel = compiled_wheel(sandbox.path(), "1.0", "1");
    let install = |name: &str, extra: &[&str]| -> (PathBuf, Output) {
        let venv = sandbox.venv(name);
        let output = run(compile_install(&venv, &sandbox.cache, &[&wheel])
            .arg("-v")
            .args(extra));
        assert_success(&output);
        (venv, output)
    };
    install("fill", &[]);
    let modules = COMPILED_MODULES.len();

    // tmpwatch deleted one stored .pyc: that module is compiled, and stored again.
    fs_err::remove_file(stored_value_bytecode(&sandbox.cache)).expect("remove");
    let (venv, output) = install("after-tmpwatch", &[]);
    assert_eq!(bytecode_sources(&output), (modules - 1, 2));
    check_bytecode(&venv, "1.0", &["compiled/legacy_py2.py"]);
    let (_, output) = install("restored", &[]);
    assert_eq!(bytecode_sources(&output), (modules, 1));

    // Altered in place, its mtime put back: the stamp still holds, so only
    // --verify (which hashes) catches it; the code that runs is the wheel's.
    let stored = stored_value_bytecode(&sandbox.cache);
    let mtime = fs_err::metadata(&stored)
        .expect("stat")
        .modified()
        .expect("mtime");
    let mut bytes = fs_err::read(&stored).expect("read");
    let at = bytes.len() - 1;
    bytes[at] ^= 0x01;
    fs_err::write(&stored, &bytes).expect("alter");
    fs_err::File::options()
        .write(true)
        .open(&stored)
        .expect("open")
        .set_modified(mtime)
        .expect("put the mtime back");
    let (venv, output) = install("verified", &["--verify"]);
    assert_eq!(bytecode_sources(&output), (modules - 1, 2));
    assert_eq!(
        python(&venv, "import compiled.value as v; print(v.VALUE)").trim(),
        "1"
    );

    // Altered without hiding it: the stamp fails, and it is compiled.
    fs_err::write(stored_value_bytecode(&sandbox.cache), b"garbage").expect("alter");
    let (venv, output) = install("stamp", &[]);
    assert_eq!(bytecode_sources(&output), (modules - 1, 2));
    check_bytecode(&venv, "1.0", &["compiled/legacy_py2.py"]);
}
