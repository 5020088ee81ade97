//! The pool against the machine's real Python, and against fake
//! interpreters that misbehave in each way a worker can.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{Error, Invalidation, Job, Outcome, Pool, Settings};

/// The machine's Python 3, its magic number and cache tag (asked once).
fn real_python() -> (PathBuf, [u8; 4], String) {
    let python = PathBuf::from("/usr/bin/python3");
    let output = std::process::Command::new(&python)
        .args(["-I", "-c", "import importlib.util, sys; print(importlib.util.MAGIC_NUMBER.hex(), sys.implementation.cache_tag)"])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let (magic, tag) = text.trim().split_once(' ').expect("magic and tag");
    let bytes: Vec<u8> = (0..4)
        .map(|i| u8::from_str_radix(&magic[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    (python, bytes.try_into().expect("4 bytes"), tag.to_string())
}

fn settings(python: PathBuf, magic_number: [u8; 4], cache_tag: &str, workers: usize) -> Settings {
    Settings {
        python,
        magic_number,
        cache_tag: cache_tag.to_string(),
        workers,
        timeout: Some(Duration::from_secs(2)),
        invalidation: Invalidation::Timestamp,
    }
}

fn job(dir: &Path, name: &str, tag: &str) -> Job {
    let stem = name.trim_end_matches(".py");
    Job {
        source: dir.join(name),
        bytecode: dir.join("__pycache__").join(format!("{stem}.{tag}.pyc")),
        named: PathBuf::from("/final/site-packages").join(name),
        earlier: None,
    }
}

/// A fake interpreter: a shell script whose body misbehaves, which notes
/// its PID in `pids`.
fn fake_python(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("python");
    let script = format!(
        "#!/bin/sh\necho $$ >> '{}'\n{body}\n",
        dir.join("pids").display()
    );
    fs_err::write(&path, script).expect("write the fake");
    fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// Whether every process the fake started is gone: neither running nor
/// a zombie left unreaped.
fn all_gone(dir: &Path) -> bool {
    let pids = fs_err::read_to_string(dir.join("pids")).unwrap_or_default();
    pids.lines()
        .all(|pid| !Path::new("/proc").join(pid.trim()).exists())
}

#[test]
fn every_good_module_is_compiled_and_a_broken_one_is_reported_not_fatal() {
    let (python, magic, tag) = real_python();
    let dir = tempfile::tempdir().expect("tempdir");
    fs_err::write(dir.path().join("good.py"), "VALUE = 1\n").expect("write");
    fs_err::write(dir.path().join("py2.py"), "print 'hello'\n").expect("write");
    fs_err::write(dir.path().join("nul.py"), b"x = 1\0\n").expect("write");
    fs_err::write(
        dir.path().join("latin.py"),
        b"# coding: ascii\nx = '\xe9'\n",
    )
    .expect("write");
    let jobs: Vec<Job> = ["good.py", "py2.py", "nul.py", "latin.py"]
        .iter()
        .map(|name| job(dir.path(), name, &tag))
        .collect();
    let mut pool = Pool::start(settings(python, magic, &tag, 2)).expect("start");
    let outcomes = pool.compile(&jobs, &|| false).expect("compile");
    assert_eq!(outcomes[0], Outcome::Compiled);
    for (outcome, job) in outcomes[1..].iter().zip(&jobs[1..]) {
        assert!(
            matches!(outcome, Outcome::NotCompiled { .. }),
            "{outcome:?}"
        );
        assert!(!job.bytecode.exists(), "{} written", job.bytecode.display());
    }
    let pyc = fs_err::read(&jobs[0].bytecode).expect("the good module's bytecode");
    assert_eq!(pyc[..4], magic);
    // Timestamp-based (PEP 552 flags 0), naming the final path.
    assert_eq!(pyc[4..8], [0, 0, 0, 0]);
    let named = b"/final/site-packages/good.py";
    assert!(pyc.windows(named.len()).any(|w| w == named));
}

#[test]
fn checked_hash_bytecode_when_asked() {
    let (python, magic, tag) = real_python();
    let dir = tempfile::tempdir().expect("tempdir");
    fs_err::write(dir.path().join("m.py"), "VALUE = 2\n").expect("write");
    let mut settings = settings(python, magic, &tag, 1);
    settings.invalidation = Invalidation::CheckedHash;
    let jobs = [job(dir.path(), "m.py", &tag)];
    let outcomes = Pool::start(settings)
        .expect("start")
        .compile(&jobs, &|| false);
    assert_eq!(outcomes.expect("compile"), vec![Outcome::Compiled]);
    let pyc = fs_err::read(&jobs[0].bytecode).expect("bytecode");
    assert_eq!(pyc[4..8], [3, 0, 0, 0], "flags: hash-based, checked");
}

#[test]
fn a_file_name_that_is_not_utf8_works() {
    use std::os::unix::ffi::OsStrExt as _;
    let (python, magic, tag) = real_python();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9 mod.py");
    fs_err::write(dir.path().join(name), "X = 3\n").expect("write");
    let bytecode_name = [b"caf\xe9 mod.".as_slice(), tag.as_bytes(), b".pyc"].concat();
    let jobs = [Job {
        source: dir.path().join(name),
        bytecode: dir
            .path()
            .join("__pycache__")
            .join(std::ffi::OsStr::from_bytes(&bytecode_name)),
        named: dir.path().join(name),
        earlier: None,
    }];
    let outcomes = Pool::start(settings(python, magic, &tag, 1))
        .expect("start")
        .compile(&jobs, &|| false)
        .expect("compile");
    assert_eq!(outcomes, vec![Outcome::Compiled]);
    assert!(jobs[0].bytecode.exists());
}

#[test]
fn an_interpreter_with_another_magic_number_is_refused() {
    let (python, mut magic, tag) = real_python();
    magic[0] ^= 0xff;
    let dir = tempfile::tempdir().expect("tempdir");
    fs_err::write(dir.path().join("m.py"), "X = 1\n").expect("write");
    let jobs = [job(dir.path(), "m.py", &tag)];
    let error = Pool::start(settings(python, magic, &tag, 1))
        .expect("start")
        .compile(&jobs, &|| false)
        .expect_err("a mismatch");
    assert!(matches!(error, Error::Handshake { .. }), "{error}");
    assert!(!jobs[0].bytecode.exists());
}

#[test]
fn a_worker_that_never_says_ready_fails_within_the_timeout_and_is_reaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = fake_python(dir.path(), "exec sleep 600");
    let jobs = [job(dir.path(), "m.py", "cpython-311")];
    let started = Instant::now();
    let mut pool = Pool::start(settings(fake, [0; 4], "cpython-311", 2)).expect("start");
    let error = pool.compile(&jobs, &|| false).expect_err("no greeting");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(error, Error::StartTimedOut { .. }), "{error}");
    drop(pool);
    assert!(all_gone(dir.path()), "a worker is left");
}

#[test]
fn a_worker_that_hangs_on_a_file_is_killed_and_the_file_named() {
    let (python, magic, tag) = real_python();
    let dir = tempfile::tempdir().expect("tempdir");
    // Greets like the real worker, then never answers.
    let greeting = format!(
        "keel-bytecode 1 {} {tag}",
        magic.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let body = format!(
        "exec {} -c 'import struct,sys,time; g=b\"{greeting}\"; sys.stdout.buffer.write(struct.pack(\">BI\",0,len(g))+g); sys.stdout.flush(); time.sleep(600)'",
        python.display()
    );
    let fake = fake_python(dir.path(), &body);
    fs_err::write(dir.path().join("m.py"), "X = 1\n").expect("write");
    let jobs = [job(dir.path(), "m.py", &tag)];
    let started = Instant::now();
    let mut pool = Pool::start(settings(fake, magic, &tag, 1)).expect("start");
    let error = pool.compile(&jobs, &|| false).expect_err("a hang");
    assert!(started.elapsed() < Duration::from_secs(10));
    match &error {
        Error::FileTimedOut { file, .. } => assert_eq!(file, &jobs[0].source),
        other => panic!("{other}"),
    }
    drop(pool);
    assert!(all_gone(dir.path()), "a worker is left");
}

#[test]
fn a_worker_that_answers_garbage_or_dies_is_an_error_naming_the_file() {
    for body in [
        // Greets, then exits on the first request.
        "printf '\\000\\000\\000\\000\\003bad'; exit 3",
        // Greets with a status keel does not know.
        "printf '\\011\\000\\000\\000\\000'; sleep 600",
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let fake = fake_python(dir.path(), body);
        let jobs = [job(dir.path(), "m.py", "cpython-311")];
        let mut pool = Pool::start(settings(fake, [0; 4], "cpython-311", 1)).expect("start");
        let error = pool.compile(&jobs, &|| false).expect_err("misbehaviour");
        assert!(
            matches!(error, Error::Handshake { .. } | Error::WorkerFailed { .. }),
            "{body}: {error}"
        );
        drop(pool);
        assert!(all_gone(dir.path()), "{body}: a worker is left");
    }
}

#[test]
fn a_missing_interpreter_cannot_start() {
    let error = Pool::start(settings("/nonexistent/python".into(), [0; 4], "x", 1))
        .err()
        .expect("no interpreter");
    assert!(matches!(error, Error::Spawn { .. }), "{error}");
    assert!(error.to_string().contains("/nonexistent/python"));
}

#[test]
fn an_unwritable_bytecode_directory_is_an_error_not_a_skip() {
    let (python, magic, tag) = real_python();
    let dir = tempfile::tempdir().expect("tempdir");
    fs_err::write(dir.path().join("m.py"), "X = 1\n").expect("write");
    // A file where the __pycache__ directory must go.
    fs_err::write(dir.path().join("__pycache__"), "").expect("write");
    let jobs = [job(dir.path(), "m.py", &tag)];
    let error = Pool::start(settings(python, magic, &tag, 1))
        .expect("start")
        .compile(&jobs, &|| false)
        .expect_err("cannot write");
    assert!(matches!(error, Error::Write { .. }), "{error}");
}

#[test]
fn earlier_bytecode_is_relocated_to_name_the_new_place_and_bad_bytecode_is_compiled() {
    let (python, magic, tag) = real_python();
    let dir = tempfile::tempdir().expect("tempdir");
    fs_err::write(dir.path().join("m.py"), "VALUE = 7\n").expect("write");
    let first = job(dir.path(), "m.py", &tag);
    let mut pool = Pool::start(settings(python, magic, &tag, 1)).expect("start");
    assert_eq!(
        pool.compile(std::slice::from_ref(&first), &|| false)
            .expect("compile"),
        vec![Outcome::Compiled]
    );
    let earlier = fs_err::read(&first.bytecode).expect("bytecode");
    let moved = Job {
        bytecode: dir.path().join("elsewhere").join(format!("m.{tag}.pyc")),
        named: PathBuf::from("/second/site-packages/m.py"),
        earlier: Some(first.bytecode.clone()),
        ..first.clone()
    };
    assert_eq!(
        pool.compile(std::slice::from_ref(&moved), &|| false)
            .expect("relocate"),
        vec![Outcome::Compiled]
    );
    let relocated = fs_err::read(&moved.bytecode).expect("relocated bytecode");
    assert_eq!(relocated[..16], earlier[..16], "the header is kept");
    let named = b"/second/site-packages/m.py";
    assert!(relocated.windows(named.len()).any(|w| w == named));
    assert!(!relocated.windows(b"/final/".len()).any(|w| w == b"/final/"));

    // Earlier bytecode that does not load: the source is compiled.
    fs_err::write(
        &first.bytecode,
        b"not bytecode at all, longer than a header",
    )
    .expect("write");
    let again = Job {
        bytecode: dir.path().join("third").join(format!("m.{tag}.pyc")),
        ..moved
    };
    assert_eq!(
        pool.compile(std::slice::from_ref(&again), &|| false)
            .expect("compile"),
        vec![Outcome::Compiled]
    );
    assert_eq!(fs_err::read(&again.bytecode).expect("bytecode")[..4], magic);
}
