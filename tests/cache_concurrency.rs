//! Guarantee 5, *concurrency*, with real processes sharing one cache: many
//! installs of the real PyPI wheels at once from a cold cache with `keel
//! cache prune` or `keel cache clean` running beside them, many unpacks of
//! the same wheels at once, the cache's `flock`s held (and killed) by
//! `flock(1)`, a lock file removed while someone waits for it, and
//! age-based cleaners (`tmpwatch`, `systemd-tmpfiles`: files older than T
//! deleted, directories kept) running between installs and during one.
//!
//! Every keel process runs under a time limit, so a deadlock fails the test
//! instead of hanging it. The real wheels come from `$KEEL_PYPI_WHEELS`,
//! else `fixtures/pypi/wheels`, as in `tests/pypi.rs`; missing wheels fail
//! these tests (a skipped test proves nothing).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use common::ageing::{backdate, backdate_files_under, sweep_files_older_than_in_use};
use common::pypi::{assert_versions_and_imports, dist_name, fixture_tsv, real_wheels};
use common::time_limit::wait_or_kill;
use common::*;

/// The longest any one keel process may take; beyond it, it is killed and
/// the test fails (8 cold installs of the real set take ~15 s on 2 busy cores).
const LIMIT: Duration = Duration::from_secs(150);

/// `cache clean` / `prune` waiting for installs (`LockKind::CacheExclusive`).
const CLEAN_WAITS: &str = "waiting for other keel processes to finish with the cache at";
/// An install waiting for a clean, prune or repair (`LockKind::CacheShared`).
const INSTALL_WAITS_FOR_CLEAN: &str = "waiting for a `keel cache` clean, prune or repair of";
/// An unpack waiting for its turn (`LockKind::Unpack`).
const UNPACK_WAITS: &str = "waiting for another keel process unpacking into";

const DAY: Duration = Duration::from_secs(24 * 3600);

/// A scratch directory with a (cold) cache path; no fixture wheels built.
fn scratch() -> Sandbox {
    Sandbox::without_wheels("keel-concurrency-")
}

/// A few light real wheels for the lock tests.
const SMALL: [&str; 3] = ["idna", "certifi", "mdurl"];

/// Distributions whose imports are checked in every environment of the
/// many-environment tests (every version is checked everywhere); one of
/// them, markupsafe, has a compiled extension.
const FEW_IMPORTS: [&str; 6] = [
    "certifi",
    "idna",
    "jinja2",
    "markupsafe",
    "typing-extensions",
    "click",
];

// ---------------------------------------------------------------------------
// Processes under a time limit
// ---------------------------------------------------------------------------

/// A child process, watched by a thread that records when it ended and
/// kills it once it has run for longer than its limit.
struct Proc {
    label: String,
    pid: u32,
    started: Instant,
    limit: Duration,
    log: PathBuf,
    watcher: JoinHandle<(Option<ExitStatus>, Instant)>,
}

/// A process that ended (within its limit).
struct Finished {
    label: String,
    status: ExitStatus,
    started: Instant,
    ended: Instant,
    stdout: String,
    stderr: String,
}

impl Proc {
    /// Spawns `command` with stdout and stderr into `logs/<label>.out|.err`.
    fn spawn(label: &str, mut command: Command, logs: &Path, limit: Duration) -> Proc {
        fs_err::create_dir_all(logs).unwrap();
        let out = logs.join(format!("{label}.out"));
        let err = logs.join(format!("{label}.err"));
        command
            .stdin(Stdio::null())
            .stdout(fs_err::File::create(&out).unwrap().into_parts().0)
            .stderr(fs_err::File::create(&err).unwrap().into_parts().0);
        let started = Instant::now();
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
        let pid = child.id();
        let watcher = std::thread::spawn(move || {
            let status = wait_or_kill(&mut child, limit.saturating_sub(started.elapsed()));
            (status, Instant::now())
        });
        Proc {
            label: label.to_string(),
            pid,
            started,
            limit,
            log: logs.join(label),
            watcher,
        }
    }

    fn running(&self) -> bool {
        !self.watcher.is_finished()
    }

    /// What it has written to stderr so far.
    fn stderr_so_far(&self) -> String {
        fs_err::read_to_string(self.log.with_extension("err")).unwrap_or_default()
    }

    /// Waits (at most `within`) until its stderr contains `needle`; fails if
    /// it ends or the time runs out first.
    #[track_caller]
    fn wait_for_stderr(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.stderr_so_far().contains(needle) {
            assert!(
                self.running(),
                "`{}` ended without saying {needle:?}:\n{}",
                self.label,
                self.stderr_so_far()
            );
            assert!(
                Instant::now() < deadline,
                "`{}` did not say {needle:?} within {within:?}:\n{}",
                self.label,
                self.stderr_so_far()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends SIGKILL (by its process id: it is our child).
    fn kill(&self) {
        kill_pid(self.pid);
    }

    /// Waits for it; fails the test if it had to be killed at its limit.
    #[track_caller]
    fn finish(self) -> Finished {
        let (status, ended) = self.watcher.join().expect("watcher thread");
        let read =
            |ext: &str| fs_err::read_to_string(self.log.with_extension(ext)).unwrap_or_default();
        let Some(status) = status else {
            panic!(
                "`{}` was still running after {:?} (a deadlock?) and was killed\nstderr:\n{}",
                self.label,
                self.limit,
                read("err")
            );
        };
        Finished {
            label: self.label,
            status,
            started: self.started,
            ended,
            stdout: read("out"),
            stderr: read("err"),
        }
    }
}

fn kill_pid(pid: u32) {
    let output = run(Command::new("kill").arg("-KILL").arg(pid.to_string()));
    assert_success(&output);
}

impl Finished {
    fn success(&self) -> bool {
        self.status.success()
    }

    fn said(&self, needle: &str) -> bool {
        self.stderr.contains(needle)
    }

    fn took(&self) -> Duration {
        self.ended - self.started
    }

    fn describe(&self) -> String {
        format!(
            "`{}` ({:?}, {:?})\nstdout:\n{}\nstderr:\n{}",
            self.label,
            self.status,
            self.took(),
            self.stdout,
            self.stderr
        )
    }

    #[track_caller]
    fn assert_success(&self) {
        assert!(self.success(), "{}", self.describe());
    }

    /// The `warning:` lines that are not about waiting for a lock.
    fn other_warnings(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("warning:") && !l.contains("waiting for"))
            .collect()
    }

    /// N of `Unpacked N packages into the cache` (0 without that line).
    fn unpacked(&self) -> usize {
        self.stderr
            .lines()
            .find_map(|l| l.strip_prefix("Unpacked "))
            .and_then(|rest| rest.split_whitespace().next())
            .map_or(0, |n| n.parse().expect("a count"))
    }
}

/// Starts `keel install --venv VENV --cache-dir CACHE WHEELS...` under the
/// limit, logging into `logs/<label>.out|.err`.
fn spawn_install(sandbox: &Sandbox, label: &str, venv: &Path, wheels: &[PathBuf]) -> Proc {
    let mut command = keel_install(venv, &sandbox.cache);
    command.args(wheels);
    Proc::spawn(label, command, &logs(sandbox), LIMIT)
}

/// Starts `keel cache SUBCOMMAND --cache-dir CACHE` under the limit, logging
/// into `logs/<label>.out|.err`.
fn spawn_cache(sandbox: &Sandbox, label: &str, subcommand: &str) -> Proc {
    let command = cache_command(&sandbox.cache, &[subcommand]);
    Proc::spawn(label, command, &logs(sandbox), LIMIT)
}

/// Runs `keel install` to its end (under the limit), asserting success.
#[track_caller]
fn spawned_install_ok(sandbox: &Sandbox, label: &str, venv: &Path, wheels: &[PathBuf]) -> Finished {
    let done = spawn_install(sandbox, label, venv, wheels).finish();
    done.assert_success();
    done
}

fn logs(sandbox: &Sandbox) -> PathBuf {
    sandbox.path().join("logs")
}

/// Sets a flag when dropped, also when a panic unwinds: stops helper loops.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------
// flock(1) holders
// ---------------------------------------------------------------------------

/// `flock FLAGS PATH sh -c 'echo $$; exec sleep SECONDS'`, returned once
/// the lock is held: flock(1) runs its command only then, and the command
/// prints its process id (that of the `sleep`).
struct Holder {
    flock: Proc,
    command_pid: u32,
    /// When the command was seen to run: the lock was taken no later.
    locked_seen: Instant,
    seconds: u64,
}

/// A holder that let go of its lock.
struct Released {
    /// When its end was noticed (by polling: a little after it let go).
    ended: Instant,
    /// A time before which the lock was certainly still held: the `sleep`
    /// ran `seconds` from just before it was seen to run. Comparing other
    /// processes' end times with this, not with `ended`, proves they waited
    /// without racing the polling of two watchers.
    held_until_at_least: Instant,
}

/// How late the holder's command may be seen to run after it started.
const SEEN_LATE_BY_AT_MOST: Duration = Duration::from_millis(250);

fn hold(sandbox: &Sandbox, label: &str, flags: &[&str], path: &Path, seconds: u64) -> Holder {
    let mut command = Command::new("flock");
    command
        .args(flags)
        .arg(path)
        .arg("sh")
        .arg("-c")
        .arg(format!("echo $$; exec sleep {seconds}"));
    let flock = Proc::spawn(
        label,
        command,
        &logs(sandbox),
        Duration::from_secs(seconds + 60),
    );
    let out = flock.log.with_extension("out");
    let deadline = Instant::now() + Duration::from_secs(30);
    let command_pid = loop {
        let text = fs_err::read_to_string(&out).unwrap_or_default();
        if text.ends_with('\n') {
            break text.trim().parse().expect("the command's pid");
        }
        assert!(
            flock.running(),
            "flock {flags:?} {} ended before its command ran:\n{}",
            path.display(),
            flock.stderr_so_far()
        );
        assert!(
            Instant::now() < deadline,
            "flock {flags:?} {} did not get the lock",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    Holder {
        flock,
        command_pid,
        locked_seen: Instant::now(),
        seconds,
    }
}

impl Holder {
    /// SIGKILL to the process holding the lock (flock(1) itself, which with
    /// `-o` is the only holder), then to its leftover `sleep`.
    fn kill(self) {
        self.flock.kill();
        let done = self.flock.finish();
        assert!(!done.success(), "{}", done.describe());
        kill_pid(self.command_pid);
    }

    /// Waits for the holder to end (its `sleep` ran out).
    #[track_caller]
    fn finish(self) -> Released {
        let done = self.flock.finish();
        done.assert_success();
        Released {
            ended: done.ended,
            held_until_at_least: self.locked_seen + Duration::from_secs(self.seconds)
                - SEEN_LATE_BY_AT_MOST,
        }
    }
}

// ---------------------------------------------------------------------------
// Environments
// ---------------------------------------------------------------------------

/// Runs `f` over `items` on three threads (a panic in one fails the test).
fn in_parallel<T: Sync>(items: &[T], f: impl Fn(&T) + Sync) {
    let chunk = items.len().div_ceil(3).max(1);
    std::thread::scope(|scope| {
        for part in items.chunks(chunk) {
            let f = &f;
            scope.spawn(move || part.iter().for_each(f));
        }
    });
}

/// Fresh virtual environments `<prefix>-0` … `<prefix>-(n-1)`.
fn venvs(sandbox: &Sandbox, prefix: &str, n: usize) -> Vec<PathBuf> {
    let paths: Vec<PathBuf> = (0..n)
        .map(|i| sandbox.path().join(format!("{prefix}-{i}")))
        .collect();
    in_parallel(&paths, |path| create_venv(path));
    paths
}

/// `keel verify` exit 0, the independent RECORD check, `dists`
/// distributions, no transaction left.
#[track_caller]
fn assert_verified(venv: &Path, dists: usize) {
    let output = run(keel().arg("verify").arg("--venv").arg(venv));
    assert_success_of(&output, &format!("keel verify {}", venv.display()));
    assert_environment_matches_record(venv);
    assert_eq!(dist_infos(venv).len(), dists, "{:?}", dist_infos(venv));
    assert_eq!(leftover_transactions(venv), Vec::<String>::new());
}

/// Checks the version of every distribution of import-names.tsv that is
/// installed and imports the modules of those in `only` (every one when
/// `only` is empty), in one Python process run from an empty directory.
#[track_caller]
fn assert_imports(venv: &Path, installed: &[PathBuf], only: &[&str]) {
    let names: BTreeSet<String> = installed.iter().map(|w| dist_name(w)).collect();
    let rows: Vec<String> = fixture_tsv("import-names.tsv", 3)
        .into_iter()
        .filter(|fields| names.contains(&fields[0]))
        .map(|fields| {
            let modules = if only.is_empty() || only.contains(&fields[0].as_str()) {
                fields[2].as_str()
            } else {
                "-"
            };
            format!("{}\t{}\t{modules}", fields[0], fields[1])
        })
        .collect();
    assert_eq!(
        rows.len(),
        names.len(),
        "import-names.tsv lacks some of {names:?}"
    );
    let empty = venv.with_extension("cwd");
    fs_err::create_dir_all(&empty).unwrap();
    assert_versions_and_imports(venv, &rows, &empty);
}

// ---------------------------------------------------------------------------
// The cache
// ---------------------------------------------------------------------------

/// Exactly one archive (with its manifest) and one pointer per wheel, no
/// other distribution, and nothing in `tmp/`.
#[track_caller]
fn assert_one_archive_per_wheel(cache: &Path, wheels: &[PathBuf]) {
    let expected: BTreeSet<String> = wheels.iter().map(|w| dist_name(w)).collect();
    for top in ["archives-v1", "pointers-v1"] {
        let found: BTreeSet<String> = names_in(&cache.join(top)).into_iter().collect();
        assert_eq!(found, expected, "the distributions in {top}/");
    }
    for name in &expected {
        let archives = names_in(&cache.join("archives-v1").join(name));
        assert_eq!(
            archives.len(),
            1,
            "archives-v1/{name}/ should hold one archive: {archives:?}"
        );
        let manifest = cache
            .join("archives-v1")
            .join(name)
            .join(&archives[0])
            .join(common::MANIFEST);
        assert!(manifest.is_file(), "{} is missing", manifest.display());
        let pointers = names_in(&cache.join("pointers-v1").join(name));
        assert_eq!(
            pointers.len(),
            1,
            "pointers-v1/{name}/ should hold one pointer: {pointers:?}"
        );
    }
    assert_eq!(names_in(&cache.join("tmp")), Vec::<String>::new(), "tmp/");
}

/// `keel cache verify` exit 0.
#[track_caller]
fn assert_cache_healthy(cache: &Path) {
    let output = run(&mut cache_command(cache, &["verify"]));
    assert_success_of(&output, "keel cache verify");
}

// ---------------------------------------------------------------------------
// Eight installs at once, with prune or clean beside them
// ---------------------------------------------------------------------------

/// Eight installs of all the real wheels into eight fresh environments at
/// once from one cold cache, while `keel cache prune` runs over and over
/// beside them: every install lands, every environment verifies and
/// imports, each wheel was unpacked exactly once, and prune (which waits
/// for the installs) never finds anything to remove from under them.
#[test]
fn eight_installs_of_the_real_wheels_at_once_from_a_cold_cache_with_prune_running_beside_them() {
    let real = real_wheels();
    let sandbox = scratch();
    let venvs = venvs(&sandbox, "venv", 8);

    let stop = AtomicBool::new(false);
    let (prunes, installs) = std::thread::scope(|scope| {
        let pruner = scope.spawn(|| {
            let mut runs = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let label = format!("prune-{}", runs.len());
                runs.push(spawn_cache(&sandbox, &label, "prune").finish());
                std::thread::sleep(Duration::from_millis(20));
            }
            runs
        });
        let _stop_pruning = SetOnDrop(&stop);
        // Let the first prunes run on no cache at all.
        std::thread::sleep(Duration::from_millis(100));
        let procs: Vec<Proc> = venvs
            .iter()
            .enumerate()
            .map(|(i, venv)| spawn_install(&sandbox, &format!("install-{i}"), venv, &real.wheels))
            .collect();
        let installs: Vec<Finished> = procs.into_iter().map(Proc::finish).collect();
        // One more prune once every install is done.
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::SeqCst);
        (pruner.join().expect("pruner"), installs)
    });

    for install in &installs {
        install.assert_success();
        assert_eq!(
            install.other_warnings(),
            Vec::<&str>::new(),
            "{}",
            install.describe()
        );
    }
    let unpacked: usize = installs.iter().map(Finished::unpacked).sum();
    assert_eq!(
        unpacked,
        real.wheels.len(),
        "each wheel should be unpacked by exactly one of the eight installs"
    );
    let waited = prunes.iter().filter(|p| p.said(CLEAN_WAITS)).count();
    for prune in &prunes {
        prune.assert_success();
        assert!(
            !prune.said("Removed"),
            "prune removed something while installs shared the cache:\n{}",
            prune.describe()
        );
    }
    eprintln!(
        "{} prunes ran, {waited} of them waited for installs; installs took {:?}",
        prunes.len(),
        installs.iter().map(Finished::took).max()
    );
    assert!(
        waited >= 1,
        "no prune ran while the installs held the cache: the test proved nothing"
    );

    assert_one_archive_per_wheel(&sandbox.cache, &real.wheels);
    in_parallel(&venvs, |venv| {
        assert_verified(venv, real.wheels.len());
        assert_imports(venv, &real.wheels, &FEW_IMPORTS);
    });
}

/// Whether a process holds the environment lock (a `flock` on the
/// environment's directory): a shared `flock -n` of it fails.
fn environment_is_locked(venv: &Path) -> bool {
    !run(Command::new("flock")
        .args(["-n", "-s"])
        .arg(venv)
        .arg("true"))
    .status
    .success()
}

/// `keel cache clean` started while installs run, with more installs
/// started right after it and again while it removes the cache: every
/// install either lands whole (and verifies) or fails with an `error:` and
/// leaves its environment exactly as it was; clean says it waits, and
/// really waits for the installs that were running.
#[test]
fn installs_with_cache_clean_started_in_the_middle_land_whole_or_change_nothing() {
    let real = real_wheels();
    let sandbox = scratch();
    let all = venvs(&sandbox, "venv", 10);
    let before: Vec<_> = all
        .iter()
        .map(|v| env_snapshot_outside_keel_dir(v))
        .collect();
    let spawn = |i: usize| spawn_install(&sandbox, &format!("install-{i}"), &all[i], &real.wheels);

    // Wave A: four installs, until each has taken its environment's lock
    // and the cache's unpacks are under way.
    let wave_a: Vec<Proc> = (0..4).map(spawn).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(all[..4].iter().all(|v| environment_is_locked(v))
        && names_in(&sandbox.cache.join("tmp"))
            .iter()
            .any(|n| n.starts_with("unpack-")))
    {
        assert!(
            Instant::now() < deadline && wave_a.iter().all(Proc::running),
            "the first installs never got to unpacking"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(200));
    let running_at_clean: Vec<bool> = wave_a.iter().map(Proc::running).collect();
    assert!(
        running_at_clean.iter().any(|r| *r),
        "the installs ended too early"
    );
    let clean = spawn_cache(&sandbox, "clean", "clean");
    // Wave B: four more, right after clean.
    let wave_b: Vec<Proc> = (4..8).map(spawn).collect();
    // Wave C: two more as soon as A and B are done, that is while clean
    // removes the cache (it gets the lock the moment the last install
    // releases it).
    while wave_a.iter().chain(&wave_b).any(Proc::running) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let clean_running_at_c = clean.running();
    let wave_c: Vec<Proc> = (8..10).map(spawn).collect();

    let clean = clean.finish();
    let installs: Vec<Finished> = wave_a
        .into_iter()
        .chain(wave_b)
        .chain(wave_c)
        .map(Proc::finish)
        .collect();

    clean.assert_success();
    assert!(
        clean.said(CLEAN_WAITS),
        "clean started while installs held the cache's lock and did not say it waited:\n{}",
        clean.describe()
    );
    assert!(clean.said("Removed"), "{}", clean.describe());
    for (install, was_running) in installs.iter().zip(&running_at_clean) {
        // A wave-A install that did not wait for clean held the cache when
        // clean asked for it: clean must have waited for it to end.
        if *was_running && !install.said(INSTALL_WAITS_FOR_CLEAN) {
            assert!(
                install.ended <= clean.ended,
                "clean finished {:?} before {} which was running, so clean did not wait for it\n{}",
                install.ended - clean.ended,
                install.label,
                install.describe()
            );
        }
    }
    let mut landed = 0;
    for ((install, venv), before) in installs.iter().zip(&all).zip(&before) {
        if install.said(INSTALL_WAITS_FOR_CLEAN) {
            assert!(
                install.ended >= clean.ended,
                "{} said it waited for clean, yet ended before clean did",
                install.label
            );
        }
        if install.success() {
            landed += 1;
            continue;
        }
        assert_eq!(install.status.code(), Some(1), "{}", install.describe());
        assert!(
            install.stderr.lines().any(|l| l.starts_with("error: ")),
            "a failed install must say why in an `error:` line\n{}",
            install.describe()
        );
        assert_eq!(leftover_transactions(venv), Vec::<String>::new());
        assert_eq!(dist_infos(venv), Vec::<String>::new());
        assert_same_tree(before, &env_snapshot_outside_keel_dir(venv));
    }
    let waited_for_clean: Vec<&str> = installs
        .iter()
        .filter(|i| i.said(INSTALL_WAITS_FOR_CLEAN))
        .map(|i| i.label.as_str())
        .collect();
    eprintln!(
        "{landed} of {} installs landed; clean took {:?} (still running when wave C started: {clean_running_at_c}); waited for clean: {waited_for_clean:?}",
        installs.len(),
        clean.took()
    );
    let landed_venvs: Vec<&PathBuf> = installs
        .iter()
        .zip(&all)
        .filter(|(i, _)| i.success())
        .map(|(_, v)| v)
        .collect();
    in_parallel(&landed_venvs, |venv| {
        assert_verified(venv, real.wheels.len());
        assert_imports(venv, &real.wheels, &FEW_IMPORTS);
    });
    // Whatever the cache holds now is sound.
    assert_cache_healthy(&sandbox.cache);
    assert!(
        names_in(&sandbox.cache.join("tmp")).is_empty(),
        "{:?}",
        names_in(&sandbox.cache.join("tmp"))
    );
}

// ---------------------------------------------------------------------------
// The same wheels unpacked by several processes (and threads) at once
// ---------------------------------------------------------------------------

/// Six processes install the same bundled and real wheels at once from a
/// cold cache: one archive per distribution, each wheel unpacked once, no
/// error, no warning but "waiting", nothing left in `tmp/`.
#[test]
fn six_processes_unpacking_the_same_wheels_at_once_make_one_archive_each_and_no_error() {
    let real = real_wheels();
    let sandbox = Sandbox::new();
    let mut wheels = sandbox.wheels(&ALL_BUNDLED_DISTRIBUTIONS);
    wheels.extend(real.some(&[
        "django",
        "pydantic-core",
        "certifi",
        "markupsafe",
        "charset-normalizer",
        "typing-extensions",
    ]));
    let venvs = venvs(&sandbox, "venv", 6);
    let procs: Vec<Proc> = venvs
        .iter()
        .enumerate()
        .map(|(i, venv)| spawn_install(&sandbox, &format!("install-{i}"), venv, &wheels))
        .collect();
    let installs: Vec<Finished> = procs.into_iter().map(Proc::finish).collect();
    for install in &installs {
        install.assert_success();
        assert_eq!(
            install.other_warnings(),
            Vec::<&str>::new(),
            "{}",
            install.describe()
        );
        assert!(!install.said("error:"), "{}", install.describe());
    }
    assert_eq!(
        installs.iter().map(Finished::unpacked).sum::<usize>(),
        wheels.len(),
        "each wheel should be unpacked by exactly one process"
    );
    eprintln!(
        "{} of 6 installs waited for another's unpack",
        installs.iter().filter(|i| i.said(UNPACK_WAITS)).count()
    );
    assert_one_archive_per_wheel(&sandbox.cache, &wheels);
    let real_only: Vec<PathBuf> = wheels[6..].to_vec();
    in_parallel(&venvs, |venv| {
        assert_verified(venv, wheels.len());
        assert_imports(venv, &real_only, &[]);
        assert_eq!(
            script(venv, "keel-hello", &[]).trim(),
            "hello from keel_demo_hello 1.0.0"
        );
    });
}

/// Eight threads of one process unpack the same wheel at once through the
/// library: one of them unpacks, seven find its archive ready.
#[test]
fn eight_threads_unpacking_the_same_wheel_at_once_make_one_archive() {
    let real = real_wheels();
    let sandbox = scratch();
    let wheel = real.some(&["django"]).remove(0);
    let source = keel_cache::WheelSource::new(&wheel).unwrap();
    keel_cache::Cache::open(&sandbox.cache).unwrap();
    let barrier = std::sync::Barrier::new(8);
    let results: Vec<(bool, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    let cache = keel_cache::Cache::at(&sandbox.cache).unwrap();
                    barrier.wait();
                    match cache.unpack(&source, None).expect("unpack") {
                        keel_cache::Unpack::Fresh(archive) => (true, archive.id),
                        keel_cache::Unpack::FoundReady(archive) => (false, archive.id),
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let fresh = results.iter().filter(|(fresh, _)| *fresh).count();
    assert_eq!(fresh, 1, "{results:?}");
    let ids: BTreeSet<&String> = results.iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), 1, "{results:?}");
    assert_one_archive_per_wheel(&sandbox.cache, &[wheel]);
    assert_cache_healthy(&sandbox.cache);
}

// ---------------------------------------------------------------------------
// The locks, held by flock(1)
// ---------------------------------------------------------------------------

/// `flock -s <cache>/.lock` (what an install holds) makes `keel cache
/// clean` wait, say so, and only then remove the cache.
#[test]
fn cache_clean_waits_for_a_shared_flock_on_the_cache_lock_and_says_so() {
    let real = real_wheels();
    let sandbox = scratch();
    let venv = sandbox.path().join("venv");
    create_venv(&venv);
    spawned_install_ok(&sandbox, "warm", &venv, &real.some(&SMALL));

    let holder = hold(&sandbox, "holder", &["-s"], &sandbox.cache.join(".lock"), 3);
    let clean = spawn_cache(&sandbox, "clean", "clean");
    let held = holder.finish();
    let clean = clean.finish();
    clean.assert_success();
    assert!(
        clean.said(&format!("{CLEAN_WAITS} {}", sandbox.cache.display())),
        "{}",
        clean.describe()
    );
    assert!(
        clean.ended >= held.held_until_at_least && clean.took() >= Duration::from_secs(2),
        "clean took {:?} and ended {:?} before the lock's holder: it did not wait",
        clean.took(),
        held.held_until_at_least
            .saturating_duration_since(clean.ended)
    );
    assert!(
        !sandbox.cache.exists(),
        "clean left {:?}",
        names_in(&sandbox.cache)
    );
    // The environment does not depend on the cache.
    assert_verified(&venv, SMALL.len());
}

/// `flock -x <cache>/.lock` (what clean, prune and repair hold) makes an
/// install wait, say it waits for a clean, and then land.
#[test]
fn an_install_waits_for_an_exclusive_flock_on_the_cache_lock_and_says_so() {
    let real = real_wheels();
    let sandbox = scratch();
    fs_err::create_dir_all(&sandbox.cache).unwrap();
    let venv = sandbox.path().join("venv");
    create_venv(&venv);
    let wheels = real.some(&SMALL);

    let holder = hold(&sandbox, "holder", &["-x"], &sandbox.cache.join(".lock"), 2);
    let install = spawn_install(&sandbox, "install", &venv, &wheels);
    let held = holder.finish();
    let install = install.finish();
    install.assert_success();
    assert!(
        install.said(&format!(
            "{INSTALL_WAITS_FOR_CLEAN} {} to finish",
            sandbox.cache.display()
        )),
        "{}",
        install.describe()
    );
    assert!(
        install.ended >= held.held_until_at_least,
        "the install did not wait"
    );
    assert_verified(&venv, wheels.len());
    assert_imports(&venv, &wheels, &[]);
    assert_one_archive_per_wheel(&sandbox.cache, &wheels);
}

/// `flock <cache>/archives-v1/<name>/` (a directory: the turn lock of an
/// unpack of that distribution) makes an install of that wheel from a cold
/// cache wait for its turn, say so, and then unpack it once.
#[test]
fn an_unpack_waits_for_a_flock_on_its_distribution_directory_and_says_so() {
    let real = real_wheels();
    let sandbox = scratch();
    let venv = sandbox.path().join("venv");
    create_venv(&venv);
    let wheels = real.some(&SMALL);
    let turn = sandbox.cache.join("archives-v1").join("certifi");
    fs_err::create_dir_all(&turn).unwrap();

    let holder = hold(&sandbox, "holder", &[], &turn, 2);
    let install = spawn_install(&sandbox, "install", &venv, &wheels);
    let held = holder.finish();
    let install = install.finish();
    install.assert_success();
    assert!(
        install.said(&format!("{UNPACK_WAITS} {}", turn.display())),
        "{}",
        install.describe()
    );
    assert!(
        install.ended >= held.held_until_at_least,
        "the install did not wait"
    );
    assert_eq!(install.unpacked(), wheels.len(), "{}", install.describe());
    assert_one_archive_per_wheel(&sandbox.cache, &wheels);
    assert_verified(&venv, wheels.len());
}

/// A `flock` holder killed with SIGKILL never blocks: not the cache lock
/// (shared or exclusive), not an unpack's turn lock. The next keel command
/// proceeds at once, without a word about waiting.
#[test]
fn a_cache_or_unpack_lock_whose_flock_holder_was_killed_never_blocks() {
    let real = real_wheels();
    let sandbox = scratch();
    fs_err::create_dir_all(&sandbox.cache).unwrap();
    let lock = sandbox.cache.join(".lock");
    let prompt = Duration::from_secs(10);
    let venvs = venvs(&sandbox, "venv", 2);

    // The cache lock, exclusive (a killed clean): an install proceeds.
    hold(&sandbox, "exclusive", &["-o", "-x"], &lock, 60).kill();
    let first = spawned_install_ok(&sandbox, "install-0", &venvs[0], &real.some(&["idna"]));
    assert!(!first.said("waiting"), "{}", first.describe());
    assert!(first.took() < prompt, "{}", first.describe());

    // An unpack's turn lock (a killed unpack): an install of it proceeds.
    let turn = sandbox.cache.join("archives-v1").join("certifi");
    fs_err::create_dir_all(&turn).unwrap();
    hold(&sandbox, "turn", &["-o"], &turn, 60).kill();
    let second = spawned_install_ok(&sandbox, "install-1", &venvs[1], &real.some(&["certifi"]));
    assert!(!second.said("waiting"), "{}", second.describe());
    assert!(second.took() < prompt, "{}", second.describe());
    assert_eq!(second.unpacked(), 1);

    // The cache lock, shared (a killed install): clean proceeds.
    hold(&sandbox, "shared", &["-o", "-s"], &lock, 60).kill();
    let clean = spawn_cache(&sandbox, "clean", "clean").finish();
    clean.assert_success();
    assert!(!clean.said("waiting"), "{}", clean.describe());
    assert!(clean.took() < prompt, "{}", clean.describe());
    assert!(!sandbox.cache.exists());
    assert_verified(&venvs[0], 1);
    assert_verified(&venvs[1], 1);
}

/// `.lock` removed while an install waits for it: once the holder lets go,
/// the install notices that the file it waited for is gone and locks
/// whatever is at the path now. When nothing is, it proceeds; when another
/// process has meanwhile locked a new `.lock` there, it waits for that one.
#[test]
fn a_cache_lock_file_removed_while_an_install_waits_is_locked_afresh() {
    let real = real_wheels();
    let sandbox = scratch();
    fs_err::create_dir_all(&sandbox.cache).unwrap();
    let lock = sandbox.cache.join(".lock");
    let venvs = venvs(&sandbox, "venv", 2);

    // Removed, and nothing in its place.
    let holder = hold(&sandbox, "holder-0", &["-x"], &lock, 2);
    let install = spawn_install(&sandbox, "install-0", &venvs[0], &real.some(&["idna"]));
    install.wait_for_stderr(INSTALL_WAITS_FOR_CLEAN, Duration::from_secs(30));
    fs_err::remove_file(&lock).unwrap();
    let held = holder.finish();
    let install = install.finish();
    install.assert_success();
    assert!(install.ended >= held.held_until_at_least);
    let after = install.ended.saturating_duration_since(held.ended);
    assert!(
        after < Duration::from_secs(10),
        "the install took {after:?} after the lock was released"
    );
    assert!(lock.is_file(), "the install locks a new `.lock`");
    assert_verified(&venvs[0], 1);

    // Removed, and a new `.lock` locked by someone else meanwhile.
    let first = hold(&sandbox, "holder-1", &["-x"], &lock, 2);
    let install = spawn_install(&sandbox, "install-1", &venvs[1], &real.some(&["certifi"]));
    install.wait_for_stderr(INSTALL_WAITS_FOR_CLEAN, Duration::from_secs(30));
    fs_err::remove_file(&lock).unwrap();
    let second = hold(&sandbox, "holder-2", &["-x"], &lock, 3);
    let first = first.finish();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        install.running(),
        "the install went ahead while another process held the new lock file:\n{}",
        install.stderr_so_far()
    );
    let second = second.finish();
    let install = install.finish();
    install.assert_success();
    assert!(
        install.ended >= first.held_until_at_least && install.ended >= second.held_until_at_least
    );
    assert_verified(&venvs[1], 1);
}

/// A lock file that `tmpwatch` ages out while an install holds it (a
/// cache last used a month ago: `.lock` is never written, so its mtime is a
/// month old, however often it is locked) must still keep `keel cache
/// prune` from running beside that install (README § Locks: "clean,
/// prune and verify --repair ... wait for running installs").
#[test]
fn a_cache_lock_file_aged_out_by_tmpwatch_while_an_install_holds_it_still_makes_prune_wait() {
    let real = real_wheels();
    let sandbox = scratch();
    let venvs = venvs(&sandbox, "venv", 2);
    spawned_install_ok(&sandbox, "warm", &venvs[0], &real.some(&["idna"]));
    backdate_files_under(&sandbox.cache, SystemTime::now() - 30 * DAY);

    // An install under way: it holds the cache lock (shared) and waits for
    // its turn to unpack certifi, which a `flock` holds.
    let turn = sandbox.cache.join("archives-v1").join("certifi");
    fs_err::create_dir_all(&turn).unwrap();
    let holder = hold(&sandbox, "turn", &[], &turn, 4);
    let install = spawn_install(&sandbox, "install", &venvs[1], &real.some(&["certifi"]));
    install.wait_for_stderr(UNPACK_WAITS, Duration::from_secs(30));

    // tmpwatch's nightly run: files older than a week go, directories stay.
    let deleted = sweep_files_older_than_in_use(&sandbox.cache, SystemTime::now() - 7 * DAY);
    eprintln!(
        "tmpwatch deleted {} files, .lock among them: {}",
        deleted.len(),
        deleted.contains(&sandbox.cache.join(".lock"))
    );
    // cron's `keel cache prune`, while the install still runs.
    let prune = spawn_cache(&sandbox, "prune", "prune");
    let held = holder.finish();
    let install = install.finish();
    let prune = prune.finish();
    prune.assert_success();
    install.assert_success();
    // The install held the cache lock until after the turn holder let go
    // (it still had to unpack then), so prune must outlast the turn lock.
    assert!(
        prune.ended >= held.held_until_at_least && prune.said(CLEAN_WAITS),
        "prune ran beside a running install (it ended {:?} before the install did, {:?} before the install's unpack could even start) once tmpwatch had removed the `.lock` the install held\nprune: {}",
        install.ended.saturating_duration_since(prune.ended),
        held.held_until_at_least
            .saturating_duration_since(prune.ended),
        prune.describe()
    );
    assert_verified(&venvs[1], 1);
}

/// README § Locks: clean, prune and repair "wait for running installs and
/// say so, and installs started meanwhile wait for them". An install held
/// by `flock -s`, a clean waiting for it, then a new install: the new one
/// must wait for the clean (else a stream of installs starves clean for
/// as long as it lasts).
#[test]
fn an_install_started_while_cache_clean_waits_for_running_installs_waits_for_the_clean() {
    let real = real_wheels();
    let sandbox = scratch();
    let wheels = real.some(&["idna"]);
    let venvs = venvs(&sandbox, "venv", 2);
    spawned_install_ok(&sandbox, "warm", &venvs[0], &wheels);

    let running = hold(
        &sandbox,
        "running",
        &["-s"],
        &sandbox.cache.join(".lock"),
        3,
    );
    let clean = spawn_cache(&sandbox, "clean", "clean");
    clean.wait_for_stderr(CLEAN_WAITS, Duration::from_secs(30));
    let install = spawn_install(&sandbox, "install", &venvs[1], &wheels);
    let held = running.finish();
    let clean = clean.finish();
    let install = install.finish();
    clean.assert_success();
    install.assert_success();
    assert!(
        clean.ended >= held.held_until_at_least,
        "clean did not wait for the running install"
    );
    assert!(
        install.said(INSTALL_WAITS_FOR_CLEAN) && install.ended >= clean.ended,
        "an install started while clean waited went ahead of it (it ended {:?} before clean did): clean waits as long as new installs keep starting\ninstall: {}",
        clean.ended.saturating_duration_since(install.ended),
        install.describe()
    );
    assert_verified(&venvs[1], wheels.len());
}

// ---------------------------------------------------------------------------
// Age-based cleanup (tmpwatch, systemd-tmpfiles) between installs and during one
// ---------------------------------------------------------------------------

/// A cache not used for a month, `tmpwatch` deleting every file older than
/// a week — archive files, pointers, manifests, `.lock`, `CACHEDIR.TAG` —
/// *while* an install of the real wheels runs from it (the sweep starts as
/// soon as the install's transaction exists, so some archives are looked up and staged
/// before their files go, some after): the install heals what it needs and
/// lands, the environment verifies and imports. Then, once tmpwatch has
/// finished, prune tidies the skeletons, the next install unpacks again
/// what lost its pointer, and the one after is silent and unpacks nothing.
#[test]
fn age_based_cleanup_running_during_an_install_from_an_aged_cache_is_healed() {
    let real = real_wheels();
    let sandbox = scratch();
    let venvs = venvs(&sandbox, "venv", 3);
    let warm = sandbox.path().join("warm");
    create_venv(&warm);
    spawned_install_ok(&sandbox, "warm", &warm, &real.wheels);
    let aged = backdate_files_under(&sandbox.cache, SystemTime::now() - 30 * DAY);

    let stop = AtomicBool::new(false);
    let (install, deleted, passes) = std::thread::scope(|scope| {
        let sweeper = scope.spawn(|| {
            // Once the install's transaction exists (its archives are being
            // looked up and staged), not after a fixed delay: a warm install
            // can finish in less time than any fixed delay.
            let started = Instant::now();
            while leftover_transactions(&venvs[0]).is_empty()
                && started.elapsed() < Duration::from_secs(5)
                && !stop.load(Ordering::SeqCst)
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut deleted = Vec::new();
            let mut passes = 0;
            while !stop.load(Ordering::SeqCst) {
                let cutoff = SystemTime::now() - 7 * DAY;
                deleted.extend(sweep_files_older_than_in_use(&sandbox.cache, cutoff));
                passes += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            (deleted, passes)
        });
        let _stop = SetOnDrop(&stop);
        let install = spawn_install(&sandbox, "install", &venvs[0], &real.wheels).finish();
        stop.store(true, Ordering::SeqCst);
        let (deleted, passes) = sweeper.join().expect("sweeper");
        (install, deleted, passes)
    });
    install.assert_success();
    assert!(!install.said("error:"), "{}", install.describe());
    eprintln!(
        "{aged} files aged, {} deleted in {passes} sweeps during the install ({:?}; .lock deleted: {}); {} unpacked, {} damaged archives healed",
        deleted.len(),
        install.took(),
        deleted.contains(&sandbox.cache.join(".lock")),
        install.unpacked(),
        install.other_warnings().len()
    );
    assert!(!deleted.is_empty(), "the sweep deleted nothing");
    assert_verified(&venvs[0], real.wheels.len());
    assert_imports(&venvs[0], &real.wheels, &[]);

    // tmpwatch finishes its run; prune removes the skeletons; the next
    // install unpacks, silently, the wheels whose pointers went.
    sweep_files_older_than_in_use(&sandbox.cache, SystemTime::now() - 7 * DAY);
    let prune = spawn_cache(&sandbox, "prune", "prune").finish();
    prune.assert_success();
    let next = spawned_install_ok(&sandbox, "install-next", &venvs[1], &real.wheels);
    assert_eq!(
        next.other_warnings(),
        Vec::<&str>::new(),
        "{}",
        next.describe()
    );
    assert_verified(&venvs[1], real.wheels.len());
    assert_one_archive_per_wheel(&sandbox.cache, &real.wheels);
    assert_cache_healthy(&sandbox.cache);
    let silent = spawned_install_ok(&sandbox, "install-silent", &venvs[2], &real.wheels);
    assert_eq!(silent.unpacked(), 0, "{}", silent.describe());
    assert_eq!(
        silent.other_warnings(),
        Vec::<&str>::new(),
        "{}",
        silent.describe()
    );
    assert_verified(&venvs[2], real.wheels.len());
}

/// Between two installs, an age-based cleaner deletes every file of the
/// wheels nobody used for a month — their archive files *and* their
/// pointers and manifests — plus the never-written `.lock` and
/// `CACHEDIR.TAG`, and keeps the recently used wheels and every directory.
/// (tests/vandalism.rs ages out archive files only, and deletes every file
/// of a cache at once.) The next install unpacks exactly the aged wheels
/// again, silently (no pointer is a plain miss), reuses the others,
/// recreates the lock and the tag; prune then removes the skeletons.
#[test]
fn age_based_cleanup_between_installs_ageing_out_the_lock_tag_pointers_and_manifests_of_unused_wheels()
 {
    let real = real_wheels();
    let sandbox = scratch();
    let venvs = venvs(&sandbox, "venv", 3);
    spawned_install_ok(&sandbox, "warm", &venvs[0], &real.wheels);

    let recent: BTreeSet<&str> = [
        "certifi",
        "click",
        "idna",
        "jinja2",
        "markupsafe",
        "urllib3",
    ]
    .into_iter()
    .collect();
    let month_ago = SystemTime::now() - 30 * DAY;
    let mut aged_names = Vec::new();
    for wheel in &real.wheels {
        let name = dist_name(wheel);
        if recent.contains(name.as_str()) {
            continue;
        }
        backdate_files_under(&sandbox.cache.join("archives-v1").join(&name), month_ago);
        backdate_files_under(&sandbox.cache.join("pointers-v1").join(&name), month_ago);
        aged_names.push(name);
    }
    backdate(&sandbox.cache.join(".lock"), month_ago);
    backdate(&sandbox.cache.join("CACHEDIR.TAG"), month_ago);

    let deleted = sweep_files_older_than_in_use(&sandbox.cache, SystemTime::now() - 7 * DAY);
    let relative: BTreeSet<PathBuf> = deleted
        .iter()
        .map(|p| p.strip_prefix(&sandbox.cache).unwrap().to_path_buf())
        .collect();
    assert!(relative.contains(Path::new(".lock")));
    assert!(relative.contains(Path::new("CACHEDIR.TAG")));
    for name in &aged_names {
        assert!(
            relative
                .iter()
                .any(|p| p.starts_with(format!("pointers-v1/{name}"))),
            "{name}'s pointer survived"
        );
        assert!(
            relative
                .iter()
                .any(|p| p.starts_with(format!("archives-v1/{name}"))
                    && p.ends_with(common::MANIFEST)),
            "{name}'s manifest survived"
        );
    }
    for name in &recent {
        assert!(
            !relative.iter().any(|p| p
                .components()
                .nth(1)
                .is_some_and(|c| c.as_os_str() == *name)),
            "a file of the recently used {name} was deleted"
        );
    }

    let install = spawned_install_ok(&sandbox, "install", &venvs[1], &real.wheels);
    assert_eq!(
        install.other_warnings(),
        Vec::<&str>::new(),
        "{}",
        install.describe()
    );
    assert_eq!(
        install.unpacked(),
        aged_names.len(),
        "{}",
        install.describe()
    );
    assert!(sandbox.cache.join(".lock").is_file());
    assert!(sandbox.cache.join("CACHEDIR.TAG").is_file());
    assert_verified(&venvs[1], real.wheels.len());
    assert_imports(&venvs[1], &real.wheels, &[]);

    let prune = spawn_cache(&sandbox, "prune", "prune").finish();
    prune.assert_success();
    assert!(
        prune.said(&format!("Removed {} damaged archives", aged_names.len())),
        "{}",
        prune.describe()
    );
    assert_one_archive_per_wheel(&sandbox.cache, &real.wheels);
    assert_cache_healthy(&sandbox.cache);
    let later = spawned_install_ok(&sandbox, "later", &venvs[2], &real.wheels);
    assert_eq!(later.unpacked(), 0, "{}", later.describe());
    assert_eq!(later.other_warnings(), Vec::<&str>::new());
    assert_verified(&venvs[2], real.wheels.len());
}
