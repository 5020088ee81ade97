//! Guarantee 3, all or nothing, with real wheels from PyPI: a transaction
//! that upgrades several distributions and removes another (`keel sync`)
//! is interrupted at every one of its file-system mutations (fault
//! injection: the process aborts, as under `kill -9`), during its recovery
//! too, and by real SIGKILLs during a large upgrade; each time `keel
//! recover` must leave exactly the environment before or the environment
//! after, matching its RECORD files, importable, with no transaction left.
//! A transaction that fails before its commit must not change one byte.
//!
//! The wheels are `fixtures/pypi/wheels/*.whl` (the newer versions) and
//! `fixtures/pypi/wheels/older/*.whl` (`fixtures/pypi/older.txt`), both
//! downloaded by `fixtures/pypi/download.sh` (or `$KEEL_PYPI_WHEELS`).
//!
//! The fault-injection binary is built by this test (cargo feature
//! `fault-injection`, into `<target dir>/fault-injection`), so that the
//! normal test build never has the fail points.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::fault_keel::{fault_keel, fault_keel_path, normal_keel};
use common::journal::{Left, assert_recovery_said, left_behind};
use common::pypi::{RealWheels, normalize_name, real_wheels, wheel_name_version, wheels_in};
use common::*;

/// Small wheels upgraded from `older/` to the main set in the exhaustive test.
const SMALL: [&str; 5] = ["blinker", "idna", "iniconfig", "itsdangerous", "packaging"];
/// A small distribution installed before, and removed by, that `keel sync`.
const REMOVED: &str = "mdurl";
/// Large wheels upgraded from `older/` to the main set in the SIGKILL test.
const LARGE: [&str; 2] = ["django", "pygments"];
/// Installed before and after the large upgrade, unchanged.
const LARGE_UNCHANGED: [&str; 2] = ["asgiref", "sqlparse"];

const SIGABRT: i32 = 6;
const SIGKILL: i32 = 9;

/// Installed distributions as `(normalized name, version)`.
type Dists = BTreeSet<(String, String)>;

// ---------------------------------------------------------------------------
// Wheels

/// The real wheels, newer versions (`fixtures/pypi/requirements.txt`) and
/// older ones (`older/` beside them, `fixtures/pypi/older.txt`).
struct Wheels {
    real: RealWheels,
    older: PathBuf,
}

impl Wheels {
    /// Fails unless both sets are there.
    fn find() -> Self {
        let real = real_wheels();
        let older = real.dir.join("older");
        assert!(
            older.is_dir(),
            "the older real PyPI wheels are missing: {} must hold the wheels of \
             fixtures/pypi/older.txt; run `bash fixtures/pypi/download.sh` \
             (or set KEEL_PYPI_WHEELS to a directory it filled)",
            older.display()
        );
        Wheels { real, older }
    }

    /// The newer wheel of `project`.
    fn newer(&self, project: &str) -> PathBuf {
        self.real.wheel(project).to_path_buf()
    }

    /// The one older wheel of `project`.
    fn older(&self, project: &str) -> PathBuf {
        let mut found: Vec<PathBuf> = wheels_in(&self.older)
            .into_iter()
            .filter(|w| wheel_name_version(w).0 == project)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected exactly one wheel of {project} in {} (run `bash fixtures/pypi/download.sh`), found {found:?}",
            self.older.display()
        );
        found.remove(0)
    }
}

/// `(name, version)` of each wheel, from its file name.
fn dists_of(wheels: &[PathBuf]) -> Dists {
    wheels.iter().map(|w| wheel_name_version(w)).collect()
}

// ---------------------------------------------------------------------------
// The two binaries

fn sync(keel: Command, venv: &Path, cache: &Path, wheels: &[PathBuf]) -> Command {
    let mut command = keel_with_venv_and_cache(keel, "sync", venv, cache);
    command.args(wheels);
    command
}

fn recover(mut command: Command, venv: &Path) -> Command {
    command.arg("recover").arg("--venv").arg(venv);
    command
}

/// Whether a fault-injection run completed or aborted at its fail point;
/// anything else (an error, another signal) fails the test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    Completed,
    Aborted,
}

#[track_caller]
fn outcome(output: &Output, what: &str) -> Run {
    if output.status.success() {
        Run::Completed
    } else if output.status.signal() == Some(SIGABRT) {
        Run::Aborted
    } else {
        panic!(
            "{what}: neither completed nor aborted at the fail point ({:?})\nstdout:\n{}\nstderr:\n{}",
            output.status,
            stdout(output),
            stderr(output)
        )
    }
}

// ---------------------------------------------------------------------------
// The environment

/// What site-packages holds, by its `.dist-info` directories.
fn installed(venv: &Path) -> Dists {
    let mut dists = Dists::new();
    for entry in fs_err::read_dir(site_packages(venv)).expect("site-packages") {
        let name = entry.expect("entry").file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".dist-info") {
            let (project, version) = stem.split_once('-').expect("name-version.dist-info");
            dists.insert((normalize_name(project), version.to_owned()));
        }
    }
    dists
}

/// The transactions (`tx-*`) and trash (`trash-*`) in `<venv>/.keel`.
fn leftovers(venv: &Path) -> Vec<PathBuf> {
    leftover_transactions(venv)
        .into_iter()
        .map(|name| venv.join(".keel").join(name))
        .collect()
}

/// Python code that imports every distribution (module = name with `_`)
/// and checks the version Python sees.
fn import_code(dists: &Dists) -> String {
    let list = dists
        .iter()
        .map(|(name, version)| format!("({name:?}, {version:?})"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "import importlib, importlib.metadata as m\n\
         for dist, version in [{list}]:\n\
         \x20   importlib.import_module(dist.replace('-', '_'))\n\
         \x20   assert m.version(dist) == version, (dist, m.version(dist), version)\n\
         print('ok')"
    )
}

/// Imports every installed distribution in one interpreter.
#[track_caller]
fn assert_imports(venv: &Path, dists: &Dists) {
    assert_eq!(python(venv, &import_code(dists)).trim(), "ok");
}

/// One upgrade: `before` wheels installed into fresh environments, `after`
/// wheels `keel sync`ed over them.
struct Upgrade {
    sandbox: Sandbox,
    before_wheels: Vec<PathBuf>,
    after_wheels: Vec<PathBuf>,
    before: Dists,
    after: Dists,
}

impl Upgrade {
    fn new(before_wheels: Vec<PathBuf>, after_wheels: Vec<PathBuf>) -> Self {
        let before = dists_of(&before_wheels);
        let after = dists_of(&after_wheels);
        assert_ne!(before, after);
        Upgrade {
            sandbox: Sandbox::new(),
            before_wheels,
            after_wheels,
            before,
            after,
        }
    }

    /// [`SMALL`] and [`REMOVED`] from `older/` upgraded to [`SMALL`] alone
    /// from the main set: upgrades and a removal in one `keel sync`.
    fn of_the_small_wheels(wheels: &Wheels) -> Self {
        let mut before_wheels: Vec<PathBuf> = SMALL.iter().map(|p| wheels.older(p)).collect();
        before_wheels.push(wheels.newer(REMOVED));
        let after_wheels: Vec<PathBuf> = SMALL.iter().map(|p| wheels.newer(p)).collect();
        Upgrade::new(before_wheels, after_wheels)
    }

    /// A fresh environment at a fresh path (scripts embed the path, so
    /// environments are never copied) with the `before` wheels installed
    /// (and imported once, so that `__pycache__` files exist, as they do
    /// in a used environment). This install is not under test: it skips
    /// the fsyncs.
    fn prepare(&self, name: &str) -> PathBuf {
        let venv = self.sandbox.venv(name);
        let mut command =
            keel_with_venv_and_cache(normal_keel(), "install", &venv, &self.sandbox.cache);
        command
            .env("KEEL_UNSAFE_NO_FSYNC", "1")
            .arg("-q")
            .args(&self.before_wheels);
        assert_success(&run(&mut command));
        assert_eq!(installed(&venv), self.before);
        let output = run(Command::new(venv.join("bin/python"))
            .env_remove("PYTHONDONTWRITEBYTECODE")
            .arg("-c")
            .arg(import_code(&self.before)));
        assert_success(&output);
        let site = site_packages(&venv);
        assert!(
            walkdir::WalkDir::new(&site)
                .into_iter()
                .any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "pyc"))),
            "importing wrote no bytecode into {}",
            site.display()
        );
        venv
    }

    /// The checks after every recovery: exactly the `before` or the `after`
    /// distributions (the one `expected`, when known), every file as its
    /// RECORD says, no transaction or trash left, everything importable.
    #[track_caller]
    fn assert_before_or_after(
        &self,
        venv: &Path,
        expected: Option<&Dists>,
        context: &str,
    ) -> Dists {
        let (before, after) = (&self.before, &self.after);
        let found = installed(venv);
        assert!(
            found == *before || found == *after,
            "{context}: {} holds neither the state before nor after:\n  found  {found:?}\n  before {before:?}\n  after  {after:?}",
            venv.display()
        );
        if let Some(expected) = expected {
            assert_eq!(
                &found,
                expected,
                "{context}: {} recovered to the wrong state",
                venv.display()
            );
        }
        assert_environment_matches_record(venv);
        let left = leftovers(venv);
        assert!(
            left.is_empty(),
            "{context}: recovery left {left:?} in {}",
            venv.display()
        );
        assert_imports(venv, &found);
        found
    }

    fn sync(&self, command: Command, venv: &Path) -> Command {
        sync(command, venv, &self.sandbox.cache, &self.after_wheels)
    }

    fn expected(&self, left: Left) -> Option<&Dists> {
        match left {
            Left::Staging | Left::Uncommitted => Some(&self.before),
            Left::Committed | Left::Trash => Some(&self.after),
            Left::Nothing => None,
        }
    }

    /// `keel recover` (normal binary); checks it said what it did.
    #[track_caller]
    fn recover(&self, venv: &Path, left: Left) -> String {
        assert_recovery_said(&run(&mut recover(normal_keel(), venv)), venv, left)
    }
}

/// Runs `work(n)` for n = `first`, `first + 1`, … on `workers` threads,
/// each taking the next number, until `past_end(n)`; returns every result by
/// its number. A panic stops every worker and is passed on.
fn work_through<T: Send>(
    workers: usize,
    first: usize,
    past_end: impl Fn(usize) -> bool + Sync,
    work: impl Fn(usize) -> T + Sync,
) -> BTreeMap<usize, T> {
    let next = AtomicUsize::new(first);
    let failed = AtomicBool::new(false);
    let results = Mutex::new(BTreeMap::new());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if past_end(n) || failed.load(Ordering::SeqCst) {
                        break;
                    }
                    match std::panic::catch_unwind(AssertUnwindSafe(|| work(n))) {
                        Ok(result) => {
                            results.lock().expect("lock").insert(n, result);
                        }
                        Err(panic) => {
                            failed.store(true, Ordering::SeqCst);
                            std::panic::resume_unwind(panic);
                        }
                    }
                }
            });
        }
    });
    results.into_inner().expect("results")
}

/// Runs `work` for 1, 2, 3, … on `workers` threads until `work` returns
/// `true` (done) for some number; returns the smallest such number and
/// every result. A panic stops every worker and is passed on.
fn run_until_done<T: Send>(
    workers: usize,
    work: impl Fn(usize) -> (bool, T) + Sync,
) -> (usize, BTreeMap<usize, T>) {
    let done_at = AtomicUsize::new(usize::MAX);
    let results = work_through(
        workers,
        1,
        |n| n > done_at.load(Ordering::SeqCst),
        |n| {
            assert!(n < 10_000, "no run completed after {n} attempts");
            let (done, result) = work(n);
            if done {
                done_at.fetch_min(n, Ordering::SeqCst);
            }
            result
        },
    );
    (done_at.into_inner(), results)
}

/// `work(i)` for every `i` in `0..count` on `workers` threads; the results
/// in order. A panic stops every worker and is passed on.
fn parallel_map<T: Send>(workers: usize, count: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    work_through(workers, 0, |i| i >= count, work)
        .into_values()
        .collect()
}

/// Threads per test: the runs mostly wait for the disk (fsync), so twice
/// the cores, at least 2 and at most 6.
fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| (2 * n.get()).clamp(2, 6))
}

// ---------------------------------------------------------------------------
// a) an abort at every mutation

#[test]
fn crash_at_every_mutation_of_an_upgrade_with_a_removal_recovers_to_before_or_after() {
    let start = Instant::now();
    let wheels = Wheels::find();
    fault_keel_path();
    let upgrade = Upgrade::of_the_small_wheels(&wheels);

    // Warm the cache with both sets; the uninterrupted upgrade lands whole.
    let venv = upgrade.prepare("warm");
    assert_success(&run(&mut upgrade.sync(normal_keel(), &venv)));
    upgrade.assert_before_or_after(&venv, Some(&upgrade.after), "uninterrupted");

    // Abort at mutation n = 1, 2, 3, … until a run completes.
    let (completed_at, lefts) = run_until_done(workers(), |n| {
        let venv = upgrade.prepare(&format!("crash-{n}"));
        let output = run(&mut upgrade.sync(fault_keel(Some(n - 1)), &venv));
        let context = format!("abort at mutation {n}");
        match outcome(&output, &context) {
            Run::Completed => {
                upgrade.assert_before_or_after(&venv, Some(&upgrade.after), &context);
                (true, None)
            }
            Run::Aborted => {
                let left = left_behind(&venv);
                assert!(
                    matches!(left, Left::Uncommitted | Left::Committed),
                    "{context}: an abort in the commit left {left:?}"
                );
                upgrade.recover(&venv, left);
                upgrade.assert_before_or_after(&venv, upgrade.expected(left), &context);
                (false, Some(left))
            }
        }
    });
    let mutations = completed_at - 1;
    let crashed: Vec<Left> = (1..completed_at)
        .map(|n| lefts[&n].unwrap_or_else(|| panic!("mutation {n} completed")))
        .collect();
    let rolled_back = crashed
        .iter()
        .take_while(|l| **l == Left::Uncommitted)
        .count();
    let finished = crashed.len() - rolled_back;
    assert!(
        mutations > 10,
        "the upgrade made only {mutations} mutations: are the fail points compiled in?"
    );
    assert!(
        crashed[rolled_back..].iter().all(|l| *l == Left::Committed),
        "an uncommitted transaction after a committed one: {crashed:?}"
    );
    assert!(rolled_back > 0 && finished > 0, "{crashed:?}");
    eprintln!(
        "aborted at each of the {mutations} mutations of the upgrade: {rolled_back} rolled back, \
         {finished} finished ({:.1?})",
        start.elapsed()
    );

    // Aborts during recovery: at mutation m of `keel recover` after an
    // abort at mutation n of the upgrade, then recovered again. `n`: before
    // the first move; in the middle of the moves; after the last move
    // (everything to undo); after the commit record.
    let last_uncommitted = rolled_back;
    let cases = [
        1,
        last_uncommitted / 2,
        last_uncommitted,
        last_uncommitted + 1,
    ];
    let recovery_aborts = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for (case, n) in cases.into_iter().enumerate() {
            let upgrade = &upgrade;
            let recovery_aborts = &recovery_aborts;
            scope.spawn(move || {
                if n == last_uncommitted {
                    // Every recovery aborts at its second mutation (the
                    // first at its first): each run undoes one move.
                    let venv = upgrade.prepare(&format!("recover-chain-{n}"));
                    let output = run(&mut upgrade.sync(fault_keel(Some(n - 1)), &venv));
                    assert_eq!(outcome(&output, "chain"), Run::Aborted);
                    assert_eq!(left_behind(&venv), Left::Uncommitted);
                    let first = run(&mut recover(fault_keel(Some(0)), &venv));
                    assert_eq!(outcome(&first, "chain, first recovery"), Run::Aborted);
                    let mut runs = 1;
                    loop {
                        let output = run(&mut recover(fault_keel(Some(1)), &venv));
                        runs += 1;
                        if outcome(&output, "chained recovery") == Run::Completed {
                            break;
                        }
                        assert!(runs < 10_000, "recovery makes no progress");
                    }
                    recovery_aborts.fetch_add(runs - 1, Ordering::SeqCst);
                    upgrade.assert_before_or_after(
                        &venv,
                        Some(&upgrade.before),
                        "recovery aborted after each of its moves",
                    );
                    assert_success(&run(&mut upgrade.sync(normal_keel(), &venv)));
                    assert_eq!(installed(&venv), upgrade.after);
                    return;
                }
                // m = 1, 2, 3, 5, 8, … (every m for a short recovery).
                let mut m = 1;
                let mut previous = 0;
                loop {
                    let venv = upgrade.prepare(&format!("recover-{case}-{n}-{m}"));
                    let output = run(&mut upgrade.sync(fault_keel(Some(n - 1)), &venv));
                    assert_eq!(outcome(&output, "upgrade"), Run::Aborted);
                    let left = left_behind(&venv);
                    let context =
                        format!("abort at mutation {n}, then at mutation {m} of recovery");
                    let output = run(&mut recover(fault_keel(Some(m - 1)), &venv));
                    let done = outcome(&output, &context) == Run::Completed;
                    if !done {
                        recovery_aborts.fetch_add(1, Ordering::SeqCst);
                        upgrade.recover(&venv, left_behind(&venv));
                    }
                    upgrade.assert_before_or_after(&venv, upgrade.expected(left), &context);
                    // The next command works from there.
                    assert_success(&run(&mut upgrade.sync(normal_keel(), &venv)));
                    assert_eq!(installed(&venv), upgrade.after);
                    if done {
                        break;
                    }
                    // Every m for a short recovery, a Fibonacci sweep for a long one.
                    let step = if left == Left::Committed || n <= 12 {
                        1
                    } else {
                        previous.max(1)
                    };
                    (previous, m) = (m, m + step);
                }
            });
        }
    });
    eprintln!(
        "crash points tested: {mutations} in the upgrade, {} in recoveries ({:.1?} in all)",
        recovery_aborts.into_inner(),
        start.elapsed()
    );
}

// ---------------------------------------------------------------------------
// b) SIGKILL

#[test]
fn sigkill_during_a_large_upgrade_then_recover_leaves_before_or_after() {
    let start = Instant::now();
    let wheels = Wheels::find();
    let unchanged = LARGE_UNCHANGED.iter().map(|p| wheels.newer(p));
    let before_wheels: Vec<PathBuf> = LARGE
        .iter()
        .map(|p| wheels.older(p))
        .chain(unchanged.clone())
        .collect();
    let after_wheels: Vec<PathBuf> = LARGE
        .iter()
        .map(|p| wheels.newer(p))
        .chain(unchanged)
        .collect();
    let upgrade = Upgrade::new(before_wheels, after_wheels);
    let django_version = |dists: &Dists| {
        dists
            .iter()
            .find(|(name, _)| name == "django")
            .map(|(_, v)| v.clone())
            .expect("django")
    };

    // Warm the cache, then time one whole upgrade.
    let venv = upgrade.prepare("warm");
    assert_success(&run(&mut upgrade.sync(normal_keel(), &venv)));
    let venv = upgrade.prepare("timed");
    let timer = Instant::now();
    assert_success(&run(&mut upgrade.sync(normal_keel(), &venv)));
    let full = timer.elapsed();
    upgrade.assert_before_or_after(&venv, Some(&upgrade.after), "uninterrupted");

    // Kill one upgrade after `delay`, recover, check; returns what the kill
    // left behind, whether the environment ended before, and a report line.
    let kill_after = |name: String, delay: Duration| -> (Left, bool, String) {
        let venv = upgrade.prepare(&name);
        let mut child = upgrade
            .sync(normal_keel(), &venv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn keel");
        std::thread::sleep(delay);
        // SIGKILL on Unix; an error (ignored) if it has already exited.
        let _ = child.kill();
        let status = child.wait().expect("wait");
        let killed = status.signal() == Some(SIGKILL);
        assert!(killed || status.success(), "keel sync failed: {status:?}");
        let left = left_behind(&venv);
        let said = upgrade.recover(&venv, left);
        let expected = if killed {
            upgrade.expected(left)
        } else {
            Some(&upgrade.after)
        };
        let context = format!("SIGKILL after {delay:.2?}");
        let found = upgrade.assert_before_or_after(&venv, expected, &context);
        // The scripts work and name the version that is installed.
        assert_eq!(
            script(&venv, "django-admin", &["--version"]).trim(),
            django_version(&found)
        );
        let is_before = found == upgrade.before;
        let line = format!(
            "  {:>9}: {:<8} left {:<11} -> {:<6} ({})",
            format!("{delay:.2?}"),
            if killed { "killed" } else { "finished" },
            format!("{left:?}"),
            if is_before { "before" } else { "after" },
            said.lines().next().unwrap_or("").trim()
        );
        (left, is_before, line)
    };

    // Delays spread from 0 to 1.2 times the whole run (a few upgrades at a
    // time: they mostly wait for the disk).
    let kills = 8;
    let mut results: Vec<(Duration, Left, bool, String)> =
        parallel_map(workers().min(4), kills, |i| {
            let delay = full.mul_f64(1.2 * i as f64 / (kills - 1) as f64);
            let (left, is_before, line) = kill_after(format!("kill-{i}"), delay);
            (delay, left, is_before, line)
        });
    // Had no kill hit the commit itself, aim between the last kill that
    // left the environment before and the first that left it after.
    for extra in 0..4 {
        let in_commit = |l: &Left| matches!(l, Left::Uncommitted | Left::Committed);
        if results.iter().any(|(_, left, ..)| in_commit(left)) {
            break;
        }
        let low = results
            .iter()
            .filter(|(_, _, before, _)| *before)
            .map(|(delay, ..)| *delay)
            .max()
            .unwrap_or_default();
        let high = results
            .iter()
            .filter(|(delay, _, before, _)| !*before && *delay > low)
            .map(|(delay, ..)| *delay)
            .min()
            .unwrap_or(full);
        let delay = (low + high) / 2;
        let (left, is_before, line) = kill_after(format!("kill-extra-{extra}"), delay);
        results.push((delay, left, is_before, line));
    }
    results.sort_by_key(|(delay, ..)| *delay);
    let table: Vec<&str> = results.iter().map(|(.., line)| line.as_str()).collect();
    assert!(
        results
            .iter()
            .any(|(_, left, ..)| !matches!(left, Left::Nothing)),
        "no SIGKILL interrupted the upgrade:\n{}",
        table.join("\n")
    );
    eprintln!(
        "one upgrade ({} -> {}) takes {full:.2?}; {} SIGKILLs:\n{}\n({:.1?} in all)",
        django_version(&upgrade.before),
        django_version(&upgrade.after),
        results.len(),
        table.join("\n"),
        start.elapsed()
    );
}

// ---------------------------------------------------------------------------
// c) failures before the commit

#[test]
fn staging_failure_leaves_environment_byte_for_byte_unchanged() {
    let wheels = Wheels::find();
    let upgrade = Upgrade::of_the_small_wheels(&wheels);
    let venv = upgrade.prepare("venv");
    let before = snapshot(&venv);
    let out = upgrade.sandbox.path().join("bad");

    // A wheel whose RECORD lies about one file's hash, among valid upgrades
    // (and a removal): refused while unpacking, after the others were.
    let real = b"VALUE = 1\n";
    let corrupt = keel_fixtures::WheelBuilder::new("keel-crash-corrupt", "1.0")
        .file(
            "keel_crash_corrupt/__init__.py",
            "from .data import VALUE\n",
        )
        .file("keel_crash_corrupt/data.py", real.as_slice())
        .override_record(move |record| {
            record.replace(
                &keel_fixtures::record_hash(real),
                &keel_fixtures::record_hash(b"VALUE = 2\n"),
            )
        })
        .build(&out)
        .expect("build the corrupt wheel");
    // A wheel that would overwrite a file of mdurl, which stays installed:
    // refused while planning the commit, after everything was staged.
    let clash = keel_fixtures::WheelBuilder::new("keel-crash-clash", "1.0")
        .file("keel_crash_clash/__init__.py", "")
        .file("mdurl/__init__.py", "raise ImportError('overwritten')\n")
        .build(&out)
        .expect("build the clashing wheel");

    let mut wheels = upgrade.after_wheels.clone();
    wheels.push(corrupt.clone());
    let output = run(&mut sync(
        normal_keel(),
        &venv,
        &upgrade.sandbox.cache,
        &wheels,
    ));
    let mut install =
        keel_with_venv_and_cache(normal_keel(), "install", &venv, &upgrade.sandbox.cache);
    install.args(&upgrade.after_wheels).arg(&clash);
    for (output, bad) in [(output, &corrupt), (run(&mut install), &clash)] {
        let name = bad.file_name().and_then(|n| n.to_str()).expect("name");
        assert_eq!(
            output.status.code(),
            Some(1),
            "{name}: expected exit 1:\n{}",
            stderr(&output)
        );
        let said = stderr(&output);
        assert!(
            said.contains(name) || said.contains("mdurl/__init__.py"),
            "the error does not name the wheel or file:\n{said}"
        );
        assert_same_tree(&before, &snapshot(&venv));
        assert!(leftovers(&venv).is_empty(), "{:?}", leftovers(&venv));
        eprintln!(
            "{name}: refused, environment unchanged: {}",
            said.lines().next().unwrap_or("")
        );
    }
    upgrade.assert_before_or_after(
        &venv,
        Some(&upgrade.before),
        "after the refused transactions",
    );
}
