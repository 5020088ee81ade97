//! Guarantee 3, all or nothing, for installs from a lock file (issue 14:
//! "`kill -9` at any instant recovers as today"), with real processes and
//! real PyPI wheels served by `keel-testserver` on 127.0.0.1:
//!
//! - a SIGKILL while the lock's wheels download (one held back by a slow
//!   first byte, one cut short) leaves the environment byte for byte as it
//!   was, and no file in the download cache that looks complete without
//!   being the served file; the same install then succeeds, and the
//!   partial files the kill left are harmless until `keel cache prune`
//!   removes them once stale;
//! - an abort (fault injection, as under `kill -9`) at every Nth mutation
//!   of the commit of a lock install that upgrades, adds and keeps
//!   distributions, then `keel recover`, leaves exactly the tree of a
//!   reference environment before or after the install, never a mix;
//! - a download that fails its hash during an upgrade leaves the old
//!   version installed and the environment unchanged.
//!
//! The fault-injection binary is built as `tests/crash.rs` builds it (cargo
//! feature `fault-injection`, into `<target dir>/fault-injection`).

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::fault_keel::{fault_keel, fault_keel_path, normal_keel};
use common::journal::{Left, assert_recovery_said, left_behind};
use common::lock::*;
use common::pypi::{real_wheels, wheel_name_version, wheels_in};
use common::*;
use keel_testserver::Fault;

/// Small wheels that `fixtures/pypi/older.txt` also pins at an older
/// version: the lock upgrades them.
const UPGRADED: [&str; 5] = ["idna", "blinker", "itsdangerous", "iniconfig", "packaging"];
/// In the environment before and in the lock, at the same version.
const KEPT: &str = "click";
/// Only in the lock: a fresh install (with a C extension).
const ADDED: &str = "markupsafe";

const SIGABRT: i32 = 6;
const SIGKILL: i32 = 9;

/// `KEEL install --venv VENV --cache-dir CACHE -r LOCK`.
fn install_lock(keel: Command, venv: &Path, cache: &Path, lock: &Path) -> Command {
    let mut command = keel_with_venv_and_cache(keel, "install", venv, cache);
    command.arg("-r").arg(lock);
    command
}

// ---------------------------------------------------------------------------
// The download cache

/// Checks every file of the download cache: a `.partial-*` may be anything;
/// a `<file>.stamp` sits beside its file; every other file must be one of
/// `served`, filed under its own sha256
/// (`downloads-v1/sha256/<xx>/<rest>/<name>`), of its size and sha256.
/// Returns the names of the complete files, sorted, and the partial files.
#[track_caller]
fn assert_download_cache_sound(cache: &Path, served: &Served) -> (Vec<String>, Vec<PathBuf>) {
    let root = cache.join("downloads-v1");
    let mut complete = Vec::new();
    let mut partials = Vec::new();
    for entry in walkdir::WalkDir::new(&root).sort_by_file_name() {
        let entry = entry.expect("walk the download cache");
        if entry.file_type().is_dir() {
            continue;
        }
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            entry.file_type().is_file(),
            "{} is neither a file nor a directory",
            path.display()
        );
        if name.starts_with(".partial") {
            partials.push(path.to_path_buf());
            continue;
        }
        if let Some(file) = name.strip_suffix(".stamp") {
            // A stamp is written after its file was renamed into place.
            assert!(
                path.with_file_name(file).is_file(),
                "{} has no file beside it",
                path.display()
            );
            continue;
        }
        let original = served
            .wheels
            .iter()
            .find(|w| file_name(w) == name)
            .unwrap_or_else(|| {
                panic!(
                    "{} looks complete but is no file that was served",
                    path.display()
                )
            });
        let hex = sha256(original).hex().to_owned();
        let relative = path.strip_prefix(&root).expect("under the cache");
        assert_eq!(
            relative,
            Path::new("sha256")
                .join(&hex[..2])
                .join(&hex[2..])
                .join(&name),
            "{name} is filed under another digest than its own"
        );
        let size = fs_err::metadata(original).expect("stat").len();
        assert_eq!(
            entry.metadata().expect("stat").len(),
            size,
            "{} looks complete but has the wrong size",
            path.display()
        );
        assert_eq!(
            sha256(path).hex(),
            hex,
            "{} looks complete but has the wrong content",
            path.display()
        );
        complete.push(name);
    }
    complete.sort();
    (complete, partials)
}

/// The fault-injection binary, aborting at mutation number `n` (1-based).
fn fault_keel_at(n: usize) -> Command {
    fault_keel(Some(n - 1))
}

// ---------------------------------------------------------------------------
// Environments compared across paths

/// [`env_snapshot`] with the environment's own path in file contents and
/// link targets replaced by `<VENV>` (and then its own name by `<NAME>`),
/// so that environments with names of the same length compare equal when
/// they hold the same install (`pyvenv.cfg` and `bin/activate*` name their
/// path and name).
fn normalized_snapshot(venv: &Path) -> BTreeMap<PathBuf, Node> {
    let path = venv.as_os_str().as_encoded_bytes();
    let name = venv.file_name().expect("name").as_encoded_bytes();
    let own = |bytes: &[u8]| replace(&replace(bytes, path, b"<VENV>"), name, b"<NAME>");
    env_snapshot(venv)
        .into_iter()
        .map(|(path, node)| {
            let node = match node {
                Node::File {
                    mode,
                    size,
                    content,
                } if is_record(&path) => Node::File {
                    mode,
                    size,
                    content: without_script_hashes(&own(&content)),
                },
                Node::File {
                    mode,
                    size,
                    content,
                } => Node::File {
                    mode,
                    size,
                    content: own(&content),
                },
                Node::Symlink { target } => {
                    let bytes = own(target.as_os_str().as_encoded_bytes());
                    Node::Symlink {
                        target: PathBuf::from(String::from_utf8(bytes).expect("UTF-8 link")),
                    }
                }
                dir => dir,
            };
            (path, node)
        })
        .collect()
}

fn is_record(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "RECORD")
        && path
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|d| d.to_string_lossy().ends_with(".dist-info"))
}

/// A RECORD with the hashes of the scripts in `bin/` (whose shebang names
/// the environment's path) replaced by `<script>`: the scripts themselves
/// are compared, normalized, as files.
fn without_script_hashes(record: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(record.to_vec()).expect("RECORD is UTF-8");
    let mut out = String::new();
    for line in text.lines() {
        match line.split(',').collect::<Vec<_>>()[..] {
            [path, _hash, size] if path.starts_with("../../../bin/") => {
                out += &format!("{path},<script>,{size}\n");
            }
            _ => out += &format!("{line}\n"),
        }
    }
    out.into_bytes()
}

fn replace(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while !rest.is_empty() {
        if rest.starts_with(needle) {
            out.extend_from_slice(with);
            rest = &rest[needle.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

/// The first difference between two snapshots, if any.
fn difference(a: &BTreeMap<PathBuf, Node>, b: &BTreeMap<PathBuf, Node>) -> Option<String> {
    for (path, node) in a {
        match b.get(path) {
            None => return Some(format!("{} is missing", path.display())),
            Some(other) if other != node => {
                return Some(format!(
                    "{} differs{}",
                    path.display(),
                    first_line_apart(node, other)
                ));
            }
            _ => {}
        }
    }
    b.keys()
        .find(|path| !a.contains_key(*path))
        .map(|path| format!("{} is extra", path.display()))
}

/// The first line two files differ in, when they are text: `: "…" vs "…"`.
fn first_line_apart(a: &Node, b: &Node) -> String {
    let (Node::File { content: a, .. }, Node::File { content: b, .. }) = (a, b) else {
        return format!(": {a:?} vs {b:?}");
    };
    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    let mut lines = a
        .lines()
        .zip(b.lines())
        .chain(std::iter::once(("<end>", "<end>")));
    match lines.find(|(x, y)| x != y) {
        Some((x, y)) => format!(": {x:?} vs {y:?}"),
        None => String::new(),
    }
}

/// Installed distributions as `(normalized name, version)`.
fn installed(venv: &Path) -> Vec<(String, String)> {
    let mut dists: Vec<(String, String)> = dist_infos(venv)
        .iter()
        .map(|info| {
            let stem = info.strip_suffix(".dist-info").expect(".dist-info");
            let (project, version) = stem.split_once('-').expect("name-version.dist-info");
            (common::pypi::normalize_name(project), version.to_owned())
        })
        .collect();
    dists.sort();
    dists
}

/// Imports every installed distribution (module = name with `_`) and checks
/// the version Python sees, without writing bytecode.
#[track_caller]
fn assert_imports(venv: &Path) {
    let list = installed(venv)
        .iter()
        .map(|(name, version)| format!("({name:?}, {version:?})"))
        .collect::<Vec<_>>()
        .join(", ");
    let code = format!(
        "import importlib, importlib.metadata as m\n\
         for dist, version in [{list}]:\n\
         \x20   importlib.import_module(dist.replace('-', '_'))\n\
         \x20   assert m.version(dist) == version, (dist, m.version(dist), version)\n\
         import idna\n\
         print('ok')"
    );
    let output = run(Command::new(venv.join("bin/python"))
        .arg("-B")
        .arg("-c")
        .arg(code));
    assert_success_of(&output, &format!("imports in {}", venv.display()));
    assert_eq!(stdout(&output).trim(), "ok");
}

/// One upgrade from a lock: environments with the older wheels installed,
/// the lock of the newer ones served.
struct Upgrade {
    sandbox: Sandbox,
    served: Served,
    lock: PathBuf,
    before_wheels: Vec<PathBuf>,
}

impl Upgrade {
    /// [`UPGRADED`] (older) and [`KEPT`] installed; the lock holds
    /// [`UPGRADED`] (newer), [`KEPT`] and [`ADDED`].
    fn new() -> Self {
        let real = real_wheels();
        let older = wheels_in(&real.dir.join("older"));
        let older_of = |project: &str| {
            let found: Vec<&PathBuf> = older
                .iter()
                .filter(|w| wheel_name_version(w).0 == project)
                .collect();
            assert_eq!(
                found.len(),
                1,
                "expected one older wheel of {project} in {}/older \
                 (run `bash fixtures/pypi/download.sh`)",
                real.dir.display()
            );
            found[0].clone()
        };
        let mut before_wheels: Vec<PathBuf> = UPGRADED.iter().map(|p| older_of(p)).collect();
        before_wheels.push(real.wheel(KEPT).to_path_buf());
        let mut locked: Vec<&str> = UPGRADED.to_vec();
        locked.extend([KEPT, ADDED]);
        let served = serve_wheels(&real.some(&locked));
        let sandbox = Sandbox::without_wheels("keel-lock-crash-");
        let lock = write(sandbox.path(), "pylock.toml", &pylock(&served));
        Upgrade {
            sandbox,
            served,
            lock,
            before_wheels,
        }
    }

    /// A fresh environment `name` with the older wheels installed (not under
    /// test: without fsyncs). Names of one length give paths of one length.
    fn prepare(&self, name: &str) -> PathBuf {
        let venv = self.sandbox.venv(name);
        let mut command =
            keel_with_venv_and_cache(normal_keel(), "install", &venv, &self.sandbox.cache);
        command
            .env("KEEL_UNSAFE_NO_FSYNC", "1")
            .arg("-q")
            .args(&self.before_wheels);
        assert_success(&run(&mut command));
        venv
    }

    fn install(&self, keel: Command, venv: &Path) -> Command {
        install_lock(keel, venv, &self.sandbox.cache, &self.lock)
    }
}

/// `keel recover` (normal binary); checks it said what it did.
#[track_caller]
fn recover(venv: &Path, left: Left) -> String {
    let mut command = normal_keel();
    command.arg("recover").arg("--venv").arg(venv);
    assert_recovery_said(&run(&mut command), venv, left)
}

// ---------------------------------------------------------------------------
// 1. SIGKILL during the downloads

#[test]
fn sigkill_during_the_downloads_of_a_lock_changes_nothing_and_leaves_no_false_download() {
    let served = serve(WEB);
    let sandbox = Sandbox::without_wheels("keel-lock-crash-");
    let lock = write(sandbox.path(), "pylock.toml", &pylock(&served));
    let venv = sandbox.venv("venv");
    let before = env_snapshot(&venv);
    let slow = file_name(served.wheel("werkzeug"));
    let cut = file_name(served.wheel("jinja2"));
    served.server.fault(
        &slow,
        Fault::SlowFirstByte {
            delay: Duration::from_secs(5),
            times: 1,
        },
    );
    served.server.fault(&cut, Fault::Truncate { times: 1 });

    let mut child = install_lock(normal_keel(), &venv, &sandbox.cache, &lock)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn keel");
    // Wait until every file was asked for (the slow one has not had a byte)
    // and a partial download exists, then a little longer for the cut body
    // to be asked for again, all well within the slow file's 5 s.
    let start = Instant::now();
    let requested = |name: &String| served.server.requests(name);
    let names: Vec<String> = served.wheels.iter().map(|w| file_name(w)).collect();
    let under_way =
        || names.iter().all(|n| requested(n) >= 1) && !partial_downloads(&sandbox.cache).is_empty();
    while !under_way() {
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("keel ended before the downloads were under way: {status:?}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "keel did not request every file within 20 s: {:?}",
            names.iter().map(|n| (n, requested(n))).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let under_way_at = Instant::now();
    while requested(&cut) < 2 && under_way_at.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(5));
    }
    // SIGKILL.
    child.kill().expect("kill keel");
    let status = child.wait().expect("wait");
    assert_eq!(
        status.signal(),
        Some(SIGKILL),
        "keel was not killed while it downloaded: {status:?}"
    );
    eprintln!(
        "killed {:.2?} after every file was asked for ({} {} times)",
        under_way_at.elapsed(),
        cut,
        requested(&cut)
    );

    // The environment is byte for byte as it was; no transaction was begun.
    assert_same_tree(&before, &env_snapshot(&venv));
    assert_eq!(leftover_transactions(&venv), Vec::<String>::new());
    // Nothing in the download cache looks complete without being right.
    let (complete, partials) = assert_download_cache_sound(&sandbox.cache, &served);
    assert!(
        !complete.contains(&slow),
        "{slow} was never served, yet it is in the cache"
    );
    assert!(!partials.is_empty(), "the kill left no partial download");
    eprintln!(
        "after the kill: {} complete downloads {complete:?}, {} partial",
        complete.len(),
        partials.len()
    );

    // The same install succeeds; the partial files do not get in its way.
    let output = run(&mut install_lock(
        normal_keel(),
        &venv,
        &sandbox.cache,
        &lock,
    ));
    assert_success(&output);
    assert_contains(&stderr(&output), "Installed 7 packages");
    assert_eq!(
        python(
            &venv,
            "import flask, markupsafe._speedups; print(flask.__version__)"
        )
        .trim(),
        "3.1.3"
    );
    assert_environment_matches_record(&venv);
    assert_eq!(leftover_transactions(&venv), Vec::<String>::new());
    assert_eq!(requested(&slow), 2, "{slow}: the killed request, then one");
    let (complete, partials) = assert_download_cache_sound(&sandbox.cache, &served);
    let mut all = names.clone();
    all.sort();
    assert_eq!(complete, all);

    // `keel cache prune` keeps a young partial (it may be a running
    // download) and removes a stale one.
    if !partials.is_empty() {
        assert_success(&run(&mut cache_command(&sandbox.cache, &["prune"])));
        for partial in &partials {
            assert!(
                partial.exists(),
                "prune removed {}, a partial download younger than an hour",
                partial.display()
            );
            common::ageing::backdate(
                partial,
                SystemTime::now() - Duration::from_secs(2 * 60 * 60),
            );
        }
        let output = run(&mut cache_command(&sandbox.cache, &["prune"]));
        assert_success(&output);
        assert_eq!(
            partial_downloads(&sandbox.cache),
            Vec::<PathBuf>::new(),
            "`keel cache prune` left the stale partial downloads of a killed keel:\n{}{}",
            stdout(&output),
            stderr(&output)
        );
    }
    let (complete, _) = assert_download_cache_sound(&sandbox.cache, &served);
    assert_eq!(complete, all, "prune removed a complete download");
    // And the lock installs offline from what is cached.
    let fresh = sandbox.venv("fresh");
    let mut offline = install_lock(normal_keel(), &fresh, &sandbox.cache, &lock);
    assert_success(&run(offline.arg("--offline")));
    python(&fresh, "import flask");
}

// ---------------------------------------------------------------------------
// 2. Aborts during the commit of a lock install

#[test]
fn an_abort_at_every_nth_mutation_of_a_lock_upgrade_recovers_to_exactly_before_or_after() {
    /// Abort at mutation 1, 1 + STEP, 1 + 2 STEP, … until a run completes,
    /// then at every mutation between the last that rolled back and the
    /// first that rolled forward (or completed): the commit record.
    const STEP: usize = 2;
    let start = Instant::now();
    fault_keel_path();
    let upgrade = Upgrade::new();

    // References, at paths of the same length as every other environment:
    // the environment before, and after an uninterrupted install (which
    // also fills the download cache, so that the runs below spend their
    // time in the commit).
    let reference_before = upgrade.prepare("v-before");
    let before = normalized_snapshot(&reference_before);
    let reference_after = upgrade.prepare("v-after0");
    assert_success(&run(&mut upgrade.install(normal_keel(), &reference_after)));
    let after = normalized_snapshot(&reference_after);
    assert!(difference(&before, &after).is_some());
    let mut expected_after: Vec<(String, String)> = upgrade
        .served
        .wheels
        .iter()
        .map(|w| wheel_name_version(w))
        .collect();
    expected_after.sort();
    assert_eq!(installed(&reference_after), expected_after);
    // Two environments with the same install compare equal.
    let again = upgrade.prepare("v-again0");
    assert_eq!(
        difference(&before, &normalized_snapshot(&again)),
        None,
        "two environments prepared alike differ"
    );

    // One abort at mutation `n`, recovered and checked: what the abort left
    // behind (`Nothing` when the run completed).
    let abort_at = |n: usize| -> Left {
        let venv = upgrade.prepare(&format!("v-{n:06}"));
        let output = run(&mut upgrade.install(fault_keel_at(n), &venv));
        let context = format!("abort at mutation {n}");
        let left = if output.status.success() {
            Left::Nothing
        } else {
            assert_eq!(
                output.status.signal(),
                Some(SIGABRT),
                "{context}: neither completed nor aborted at the fail point\n{}{}",
                stdout(&output),
                stderr(&output)
            );
            let left = left_behind(&venv);
            assert!(
                matches!(left, Left::Uncommitted | Left::Committed),
                "{context}: an abort in the commit left {left:?}"
            );
            left
        };
        recover(&venv, left);
        let found = normalized_snapshot(&venv);
        let (expected, other) = match left {
            Left::Uncommitted | Left::Staging => (&before, &after),
            _ => (&after, &before),
        };
        if let Some(diff) = difference(expected, &found) {
            let neither = difference(other, &found).is_some();
            panic!(
                "{context} ({left:?}), then `keel recover`: {} is not the state {} the \
                 install ({diff}){}",
                venv.display(),
                if expected == &before {
                    "before"
                } else {
                    "after"
                },
                if neither {
                    ", nor the other: a mix"
                } else {
                    ""
                }
            );
        }
        assert_eq!(leftover_transactions(&venv), Vec::<String>::new());
        assert_imports(&venv);
        left
    };

    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
    let mut results: BTreeMap<usize, Left> = BTreeMap::new();
    let mut next = 1;
    while !results.values().any(|l| *l == Left::Nothing) {
        assert!(next < 10_000, "no run completed");
        let batch: Vec<usize> = (0..workers).map(|i| next + i * STEP).collect();
        next += workers * STEP;
        let found: Vec<(usize, Left)> = std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .iter()
                .map(|&n| scope.spawn(move || (n, abort_at(n))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        results.extend(found);
    }
    let last_rolled_back = results
        .iter()
        .filter(|(_, l)| **l == Left::Uncommitted)
        .map(|(n, _)| *n)
        .max()
        .expect("no abort was rolled back");
    let first_finished = results
        .iter()
        .filter(|(_, l)| matches!(l, Left::Committed | Left::Nothing))
        .map(|(n, _)| *n)
        .min()
        .expect("a run completed");
    assert!(last_rolled_back < first_finished, "{results:?}");
    let gap: Vec<usize> = (last_rolled_back + 1..first_finished).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = gap
            .iter()
            .map(|&n| scope.spawn(move || (n, abort_at(n))))
            .collect();
        for handle in handles {
            let (n, left) = handle
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            results.insert(n, left);
        }
    });
    // Every abort before the commit record rolls back, every one after it
    // rolls forward.
    let aborted: Vec<(usize, Left)> = results
        .iter()
        .filter(|(_, l)| **l != Left::Nothing)
        .map(|(n, l)| (*n, *l))
        .collect();
    let boundary = aborted
        .iter()
        .position(|(_, l)| *l == Left::Committed)
        .unwrap_or_else(|| panic!("no abort after the commit record: {results:?}"));
    assert!(
        aborted[..boundary]
            .iter()
            .all(|(_, l)| *l == Left::Uncommitted)
            && aborted[boundary..]
                .iter()
                .all(|(_, l)| *l == Left::Committed),
        "an uncommitted transaction after a committed one: {aborted:?}"
    );
    assert!(
        aborted.len() >= 8,
        "only {} abort points: are the fail points compiled in? {results:?}",
        aborted.len()
    );
    eprintln!(
        "aborted at {} of the commit's mutations ({} rolled back, up to mutation {}; \
         {} finished, from mutation {}; a run with no abort before mutation {} completes), \
         {:.1?}",
        aborted.len(),
        boundary,
        aborted[boundary - 1].0,
        aborted.len() - boundary,
        aborted[boundary].0,
        results
            .iter()
            .find(|(_, l)| **l == Left::Nothing)
            .map_or(0, |(n, _)| *n),
        start.elapsed()
    );
}

// ---------------------------------------------------------------------------
// 3. A failed download in an upgrade

#[test]
fn a_lock_upgrade_whose_new_wheel_fails_its_hash_leaves_the_old_version_and_every_byte() {
    let upgrade = Upgrade::new();
    let venv = upgrade.prepare("venv");
    // Used, as environments are: bytecode written by imports.
    let output = run(Command::new(venv.join("bin/python"))
        .env_remove("PYTHONDONTWRITEBYTECODE")
        .arg("-c")
        .arg("import idna, blinker, itsdangerous, iniconfig, packaging, click"));
    assert_success(&output);
    let before = env_snapshot(&venv);
    let dists_before = installed(&venv);
    let idna = upgrade.served.wheel("idna").to_path_buf();
    let idna_name = file_name(&idna);
    upgrade.served.server.fault(&idna_name, Fault::WrongBytes);

    let output = run(&mut upgrade.install(normal_keel(), &venv));
    assert_exit(&output, 1);
    let said = stderr(&output);
    assert_contains(&said, &upgrade.served.server.file_url(&idna_name));
    assert_contains(&said, &sha256(&idna).hex());
    assert_same_tree(&before, &env_snapshot(&venv));
    assert_eq!(leftover_transactions(&venv), Vec::<String>::new());
    assert_eq!(installed(&venv), dists_before);
    assert_eq!(
        python(
            &venv,
            "import idna, importlib.metadata as m; print(m.version('idna'))"
        )
        .trim(),
        "3.10"
    );
    // Nothing of the wrong bytes is kept as a download.
    let (complete, partials) = assert_download_cache_sound(&upgrade.sandbox.cache, &upgrade.served);
    assert!(!complete.contains(&idna_name), "{complete:?}");
    assert_eq!(partials, Vec::<PathBuf>::new());

    // Served right, the same install upgrades.
    upgrade.served.server.clear_faults();
    assert_success(&run(&mut upgrade.install(normal_keel(), &venv)));
    assert_eq!(
        python(
            &venv,
            "import importlib.metadata as m; print(m.version('idna'))"
        )
        .trim(),
        "3.20"
    );
    assert_environment_matches_record(&venv);
}
