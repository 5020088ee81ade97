//! keel's installer: puts wheels into a virtual environment through the
//! verified, self-healing archive cache, all or nothing.
//!
//! The flow (`shared/design.md` § Flow of one install):
//!
//! 1. **Lookup**: each wheel's pointer leads to its archive; a miss unpacks
//!    the wheel (every byte hashed against RECORD as it is written).
//! 2. **Stage**: every archive file is linked (clone → hardlink → copy) into
//!    `<venv>/.keel/tx-<id>/staging/`, laid out like the environment.
//! 3. **Verify**: every staged file is proven against RECORD, by a stamp
//!    that still holds or by hashing (`--verify`: always by hashing). A
//!    missing, truncated or altered archive file makes keel warn, re-extract
//!    that wheel from its `.whl` into a fresh archive, and stage it again.
//! 4. **Generate** scripts, `INSTALLER`, `REQUESTED`, `direct_url.json` and
//!    the new RECORD.
//! 5. **Commit**: replaced versions move to a backup area, staged trees are
//!    renamed into place, `.dist-info` last; an error undoes every move.
//!
//! # Example
//!
//! ```no_run
//! use keel_installer::{install, InstallOptions};
//!
//! let options = InstallOptions::new("/path/to/venv", "/path/to/cache");
//! let report = install(&["dist/example-1.0-py3-none-any.whl"], &options)?;
//! for dist in &report.installed {
//!     println!("+ {}=={}", dist.name, dist.version);
//! }
//! for repair in &report.repaired {
//!     eprintln!("repaired the cached archive of {}: {}", repair.wheel, repair.reason);
//! }
//! # Ok::<(), keel_installer::Error>(())
//! ```

mod commit;
mod fault;
mod journal;
mod link;
mod lock;
mod phases;
mod scripts;
mod stage;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use keel_cache::{Cache, Lookup, Unpack, WheelSource};
use keel_venv::{Environment, InstalledDistribution};
use keel_wheel::normalize_name;
use rayon::prelude::*;

pub use commit::Takeover;
pub use fault::enable_from_env as enable_fault_injection;
pub use journal::Recovery;
pub use link::LinkMode;
pub use lock::EnvironmentLock;

use crate::commit::Planner;
use crate::stage::{Layout, Staged, WheelJob};

/// Everything that can go wrong during an install. Every variant names the
/// wheel, file or directory it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Environment(#[from] keel_venv::Error),

    #[error(transparent)]
    Cache(#[from] keel_cache::Error),

    /// A wheel breaks a rule; the error names the wheel, entry and rule.
    #[error(transparent)]
    InvalidWheel(keel_wheel::Error),

    #[error("`{}` and `{}` are both versions of `{name}`; install one at a time", first.display(), second.display())]
    SameDistributionTwice {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },

    #[error("`{}` and `{}` both install `{}`", first.display(), second.display(), path.display())]
    WheelsOverlap {
        path: PathBuf,
        first: PathBuf,
        second: PathBuf,
    },

    #[error("invalid wheel `{}`: entry point `{name}` in entry_points.txt: {reason}", wheel.display())]
    ScriptName {
        wheel: PathBuf,
        name: String,
        reason: &'static str,
    },

    #[error(
        "the cached archive of `{}` is damaged again right after re-extracting it (`{entry}`: {reason}); is something else writing to the cache?",
        wheel.display()
    )]
    StillDamaged {
        wheel: PathBuf,
        entry: String,
        reason: String,
    },

    #[error("cannot install over `{}`: {reason}", path.display())]
    Conflict { path: PathBuf, reason: String },

    #[error("`{}` is not an absolute path", path.display())]
    NotAbsolute { path: PathBuf },

    #[error("the transaction failed while moving files into place; every change was undone")]
    CommitRolledBack(#[source] Box<Error>),

    #[error(
        "the transaction failed while moving files into place and {failures} move(s) could not be undone; `keel recover` will retry from `{}`",
        transaction.display()
    )]
    CommitIncomplete {
        failures: usize,
        transaction: PathBuf,
        #[source]
        source: Box<Error>,
    },

    #[error("the journal `{}` is unreadable: {reason}", path.display())]
    Journal { path: PathBuf, reason: String },

    #[error("could not roll back the interrupted transaction `{}`: {failures} move(s) failed", transaction.display())]
    RecoveryFailed {
        transaction: PathBuf,
        failures: usize,
    },

    #[error("cannot uninstall {name}: its RECORD `{}` is missing, so keel cannot know which files are its own", path.display())]
    NoRecord { name: String, path: PathBuf },

    #[error("`{}` belongs to {owner}; installing {installing} would overwrite it (use --force to let {installing} take it over)", path.display())]
    FileOwned {
        path: PathBuf,
        owner: String,
        installing: String,
    },

    #[error("interrupted; nothing was changed")]
    Interrupted,

    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// How staged files are proven against RECORD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verification {
    /// Hash a file only when its archive stamp no longer holds.
    #[default]
    Stamps,
    /// Hash every byte of every file (`--verify`).
    Full,
}

/// Hooks for a front end to show progress; every method has a no-op default.
pub trait Reporter: Send + Sync {
    /// A wheel is being unpacked into the cache (`bytes`: size of the `.whl`).
    fn on_unpack_start(&self, _wheel: &str, _bytes: u64) {}
    fn on_unpack_complete(&self, _wheel: &str) {}
}

/// What to install into, and how.
#[derive(Clone)]
pub struct InstallOptions {
    /// The virtual environment's root.
    pub venv: PathBuf,
    /// The cache root.
    pub cache_dir: PathBuf,
    pub link_mode: LinkMode,
    pub verification: Verification,
    /// Install even a version that is already installed.
    pub reinstall: bool,
    /// Let an installed wheel take over files another distribution owns.
    pub force: bool,
    /// Remove every installed distribution that is not among the wheels, in
    /// the same transaction (`keel sync`).
    pub exact: bool,
    pub reporter: Option<Arc<dyn Reporter>>,
    /// Size limits a wheel must keep to when it is unpacked (a decompression
    /// bomb is refused before it fills the disk).
    pub limits: keel_wheel::Limits,
    /// Set (e.g. by a SIGINT handler) to cancel: honoured until the commit
    /// starts; a commit that has started finishes.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl InstallOptions {
    pub fn new(venv: impl Into<PathBuf>, cache_dir: impl Into<PathBuf>) -> Self {
        InstallOptions {
            venv: venv.into(),
            cache_dir: cache_dir.into(),
            link_mode: LinkMode::default(),
            verification: Verification::default(),
            reinstall: false,
            force: false,
            exact: false,
            reporter: None,
            limits: keel_wheel::Limits::default(),
            cancel: None,
        }
    }
}

/// A distribution the install put in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledWheel {
    /// Normalized name.
    pub name: String,
    pub version: String,
    /// The version it replaced (equal to `version` for a reinstall).
    pub replaced: Option<String>,
    pub wheel: PathBuf,
}

/// A cached archive that was found damaged and rebuilt from its wheel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// The wheel's file name.
    pub wheel: String,
    /// What was wrong, in words (`flask/app.py: missing`).
    pub reason: String,
}

/// What an install did.
#[derive(Debug, Clone, Default)]
pub struct InstallReport {
    pub installed: Vec<InstalledWheel>,
    /// `(name, version)` already installed, left alone.
    pub unchanged: Vec<(String, String)>,
    /// Wheels unpacked into the cache for the first time.
    pub unpacked: Vec<String>,
    /// Wheels served from an intact cached archive.
    pub reused: Vec<String>,
    pub repaired: Vec<Repair>,
    /// The link mode actually used.
    pub link_mode: Option<LinkMode>,
    /// Files proven by hashing, and by a stamp that still held.
    pub files_hashed: usize,
    pub files_trusted: usize,
    /// `(name, version)` removed because they were not among the wheels
    /// (`exact`).
    pub removed: Vec<(String, String)>,
    /// Interrupted transactions finished or undone before this one.
    pub recovered: Vec<Recovery>,
    /// Files taken over from other distributions (`--force`).
    pub takeovers: Vec<Takeover>,
}

/// Installs `wheels` into `options.venv` as one transaction.
///
/// Returns what was installed, reused and repaired. On error the
/// environment is as it was before the call.
pub fn install(
    wheels: &[impl AsRef<Path>],
    options: &InstallOptions,
) -> Result<InstallReport, Error> {
    let mut phases = phases::Phases::start();
    // The wheels are checked first: a bad argument changes nothing anywhere.
    let mut sources: Vec<WheelSource> = Vec::with_capacity(wheels.len());
    for wheel in wheels {
        let source = WheelSource::new(wheel.as_ref())?;
        // The same file named twice (overlapping globs) is one wheel.
        if !sources.iter().any(|s| s.path == source.path) {
            sources.push(source);
        }
    }
    let env = Environment::open(&options.venv)?;
    if options.link_mode == LinkMode::Symlink {
        tracing::warn!(
            "with --link-mode symlink the environment depends on the cache: `keel cache clean` breaks it"
        );
    }
    let _env_lock = EnvironmentLock::acquire(&env)?;
    let mut report = InstallReport {
        recovered: recover_locked(&env)?,
        ..InstallReport::default()
    };
    let cache = Cache::at(&options.cache_dir)?.with_limits(options.limits);
    let _cache_lock = cache.lock_shared()?;
    let cancelled = || {
        options
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst))
    };

    // Which wheels to install, and what each replaces.
    let mut by_name: HashMap<String, &WheelSource> = HashMap::new();
    for source in &sources {
        let name = source.filename.normalized_name();
        if let Some(first) = by_name.insert(name.clone(), source) {
            return Err(Error::SameDistributionTwice {
                name,
                first: first.path.clone(),
                second: source.path.clone(),
            });
        }
    }
    let installed: HashMap<String, InstalledDistribution> = env
        .installed()?
        .into_iter()
        .map(|d| (d.name.clone(), d))
        .collect();
    let mut todo: Vec<(WheelSource, Option<InstalledDistribution>)> = Vec::new();
    for source in sources {
        let current = installed.get(&source.filename.normalized_name()).cloned();
        if let Some(current) = &current
            && same_version(&current.version, &source.filename.version)
            && !options.reinstall
        {
            report
                .unchanged
                .push((current.name.clone(), source.filename.version.clone()));
            continue;
        }
        todo.push((source, current));
    }
    // `exact` (keel sync): every other installed distribution leaves.
    let removals: Vec<InstalledDistribution> = if options.exact {
        let wanted: std::collections::HashSet<String> = wheels
            .iter()
            .filter_map(|w| {
                let name = w.as_ref().file_name()?.to_str()?;
                Some(
                    name.parse::<keel_wheel::WheelFilename>()
                        .ok()?
                        .normalized_name(),
                )
            })
            .collect();
        let mut others: Vec<_> = installed
            .values()
            .filter(|d| !wanted.contains(&d.name))
            .cloned()
            .collect();
        others.sort_by(|a, b| a.name.cmp(&b.name));
        others
    } else {
        Vec::new()
    };
    phases.mark("open");
    if todo.is_empty() && removals.is_empty() {
        phases.report();
        return Ok(report);
    }

    // Archives: pointer lookups, then unpacks of misses and damaged archives
    // on every core. An unpack another process is doing right now is not
    // waited for on the pool (see `Cache::try_unpack`) but afterwards, here.
    let archives: Vec<Result<Obtained, Error>> = todo
        .par_iter()
        .map(|(source, _)| obtain_archive(&cache, source, options))
        .collect();
    let archives: Vec<Result<(keel_cache::Archive, ArchiveOrigin), Error>> = todo
        .iter()
        .zip(archives)
        .map(|((source, _), obtained)| match obtained? {
            Obtained::Ready(archive, origin) => Ok((archive, origin)),
            Obtained::Busy(origin) => {
                // The reporter heard of this unpack on the pool already.
                let archive = cache.unpack(source, None)?;
                Ok(match (archive, origin) {
                    (Unpack::FoundReady(archive), ArchiveOrigin::Unpacked) => {
                        (archive, ArchiveOrigin::Reused)
                    }
                    (archive, origin) => (archive.into_archive(), origin),
                })
            }
        })
        .collect();
    phases.mark("archives");
    if cancelled() {
        return Err(Error::Interrupted);
    }
    let mut jobs = Vec::with_capacity(todo.len());
    let layout = Layout::new(&env);
    let keel_dir = env.ensure_keel_dir()?;
    let transaction = tempfile::Builder::new()
        .prefix("tx-")
        .tempdir_in(&keel_dir)
        .map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("{e} at `{}`", keel_dir.display()),
            ))
        })?;
    let staging = transaction.path().join("staging");
    fs_err::create_dir(&staging)?;
    for (index, ((source, _), archive)) in todo.iter().zip(archives).enumerate() {
        let (archive, origin) = archive?;
        let wheel = source.filename.to_string();
        match origin {
            ArchiveOrigin::Reused => report.reused.push(wheel),
            ArchiveOrigin::Unpacked => report.unpacked.push(wheel),
            ArchiveOrigin::Repaired(reason) => report.repaired.push(Repair { wheel, reason }),
        }
        let root = staging.join(format!("{index}-{}", source.filename.normalized_name()));
        jobs.push(WheelJob::plan(source.clone(), archive, root, &layout)?);
    }
    check_overlaps(&jobs, &layout)?;
    phases.mark("plan");

    // Stage and verify; heal damaged archives and stage those wheels again.
    let mode = match jobs.first() {
        Some(job) => options
            .link_mode
            .probe(&job.archive.dir.join("manifest.json"), transaction.path()),
        None => options.link_mode,
    };
    report.link_mode = Some(mode);
    let hash_everything = options.verification == Verification::Full;
    let results = stage::stage(&mut jobs, &layout, mode, hash_everything, &cancelled)?;
    let mut damaged = Vec::new();
    for (index, result) in results.into_iter().enumerate() {
        match result {
            Staged::Ok {
                hashed,
                trusted,
                restamps,
            } => {
                report.files_hashed += hashed;
                report.files_trusted += trusted;
                if let Err(e) = cache.restamp(&jobs[index].archive, &restamps) {
                    tracing::debug!("could not record new stamps: {e}");
                }
            }
            Staged::Damaged {
                entry,
                damage,
                more,
            } => {
                let also = match more {
                    0 => String::new(),
                    1 => ", and 1 more file".to_string(),
                    n => format!(", and {n} more files"),
                };
                damaged.push((index, format!("{entry}: {damage}{also}")))
            }
        }
    }
    for (index, reason) in damaged {
        let job = &mut jobs[index];
        tracing::warn!(
            "the cached archive of {} is damaged ({reason}); re-extracting it from {}",
            job.source.filename,
            job.source.path.display()
        );
        report.repaired.push(Repair {
            wheel: job.source.filename.to_string(),
            reason,
        });
        stage::discard(job)?;
        let stale = Some(job.archive.id.as_str());
        let archive = reporting_unpack(&job.source, options, || cache.unpack(&job.source, stale))?
            .into_archive();
        let mut fresh = vec![WheelJob::plan(
            job.source.clone(),
            archive,
            job.root.clone(),
            &layout,
        )?];
        match stage::stage(&mut fresh, &layout, mode, hash_everything, &cancelled)?.pop() {
            Some(Staged::Ok {
                hashed, trusted, ..
            }) => {
                report.files_hashed += hashed;
                report.files_trusted += trusted;
            }
            Some(Staged::Damaged { entry, damage, .. }) => {
                return Err(Error::StillDamaged {
                    wheel: job.source.path.clone(),
                    entry,
                    reason: damage.to_string(),
                });
            }
            None => {}
        }
        *job = fresh.remove(0);
    }
    phases.mark("stage");
    jobs.par_iter()
        .try_for_each(|job| stage::write_generated(job, &layout))?;
    phases.mark("generate");

    // Commit.
    if cancelled() {
        return Err(Error::Interrupted);
    }
    let leaving: Vec<InstalledDistribution> = todo
        .iter()
        .filter_map(|(_, old)| old.clone())
        .chain(removals.iter().cloned())
        .collect();
    let mut planner = Planner::new(
        &env,
        transaction.path().join("backup"),
        &leaving,
        options.force,
    );
    for old in &leaving {
        planner.remove_distribution(old, false)?;
    }
    let mut last = Vec::new();
    for job in &jobs {
        planner.current = format!(
            "{} {}",
            job.archive.manifest.name, job.archive.manifest.version
        );
        planner.install_tree(&job.root, env.site_packages(), &mut last)?;
        if job.prefix_root.exists() {
            planner.install_tree(&job.prefix_root, env.root(), &mut last)?;
        }
    }
    for (from, to) in last {
        planner.place(&from, &to, true, &mut Vec::new())?;
    }
    let summary = jobs
        .iter()
        .map(|job| {
            format!(
                "+{}=={}",
                normalize_name(&job.archive.manifest.name),
                job.archive.manifest.version
            )
        })
        .chain(
            leaving
                .iter()
                .map(|old| format!("-{}=={}", old.name, old.version)),
        )
        .collect::<Vec<_>>()
        .join(" ");
    let (journal, takeovers) = planner.finish(summary);
    for takeover in &takeovers {
        tracing::warn!(
            "`{}` belonged to {}; it is now installed by this transaction (the RECORD of {} still lists it)",
            takeover.path.display(),
            takeover.owner,
            takeover.owner
        );
    }
    report.takeovers = takeovers;
    phases.mark("plan commit");
    commit_transaction(&env, &journal, transaction.keep())?;
    phases.mark("commit");
    phases.report();
    report.removed = removals.into_iter().map(|d| (d.name, d.version)).collect();
    for ((_, replaced), job) in todo.iter().zip(&jobs) {
        report.installed.push(InstalledWheel {
            name: normalize_name(&job.archive.manifest.name),
            version: job.archive.manifest.version.clone(),
            replaced: replaced.as_ref().map(|old| old.version.clone()),
            wheel: job.source.path.clone(),
        });
    }
    Ok(report)
}

/// Runs a planned commit; removes the transaction once it is done or
/// completely undone.
fn commit_transaction(
    env: &Environment,
    journal: &journal::Journal,
    transaction: PathBuf,
) -> Result<(), Error> {
    let result = journal.commit(&transaction);
    match &result {
        Ok(()) => journal.prune_empty_dirs(),
        // Nothing is left to recover: the commit was undone.
        Err(Error::CommitRolledBack(_)) => {}
        Err(_) => return result,
    }
    if let Err(e) = journal::discard(env, &transaction) {
        tracing::warn!(
            "could not remove the finished transaction `{}`: {e}",
            transaction.display()
        );
    }
    result
}

/// Finishes or undoes every transaction a killed keel left in the
/// environment (`keel recover`). Takes the environment lock.
pub fn recover(venv: &Path) -> Result<Vec<Recovery>, Error> {
    let env = Environment::open(venv)?;
    let _lock = EnvironmentLock::acquire(&env)?;
    recover_locked(&env)
}

fn recover_locked(env: &Environment) -> Result<Vec<Recovery>, Error> {
    let recovered = journal::recover(env)?;
    for recovery in &recovered {
        tracing::warn!("{recovery} in {}", env.root().display());
    }
    Ok(recovered)
}

/// The transactions a killed keel left in the environment, without touching
/// them (for `keel verify`).
pub fn interrupted_transactions(venv: &Path) -> Result<Vec<PathBuf>, Error> {
    let env = Environment::open(venv)?;
    Ok(journal::interrupted(&env)?
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("tx-"))
        })
        .collect())
}

/// What an uninstall did.
#[derive(Debug, Clone, Default)]
pub struct UninstallReport {
    /// `(name, version)` removed.
    pub removed: Vec<(String, String)>,
    /// Names that were not installed.
    pub not_installed: Vec<String>,
    pub recovered: Vec<Recovery>,
}

/// Removes distributions by their RECORD, as one transaction: every file
/// moves to the backup area under a journal, then the backup is deleted.
/// A distribution without RECORD is refused.
pub fn uninstall(venv: &Path, names: &[impl AsRef<str>]) -> Result<UninstallReport, Error> {
    let env = Environment::open(venv)?;
    let _lock = EnvironmentLock::acquire(&env)?;
    let mut report = UninstallReport {
        recovered: recover_locked(&env)?,
        ..UninstallReport::default()
    };
    let installed: HashMap<String, InstalledDistribution> = env
        .installed()?
        .into_iter()
        .map(|d| (d.name.clone(), d))
        .collect();
    let mut leaving = Vec::new();
    for name in names {
        let normalized = normalize_name(name.as_ref());
        match installed.get(&normalized) {
            Some(dist) if !leaving.contains(dist) => leaving.push(dist.clone()),
            Some(_) => {}
            None => report.not_installed.push(name.as_ref().to_string()),
        }
    }
    if leaving.is_empty() {
        return Ok(report);
    }
    env.ensure_keel_dir()?;
    let transaction = tempfile::Builder::new()
        .prefix("tx-")
        .tempdir_in(env.keel_dir())
        .map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("{e} at `{}`", env.keel_dir().display()),
            ))
        })?;
    let mut planner = Planner::new(&env, transaction.path().join("backup"), &leaving, false);
    for dist in &leaving {
        planner.remove_distribution(dist, true)?;
    }
    let summary = leaving
        .iter()
        .map(|d| format!("-{}=={}", d.name, d.version))
        .collect::<Vec<_>>()
        .join(" ");
    let (journal, _) = planner.finish(summary);
    commit_transaction(&env, &journal, transaction.keep())?;
    report.removed = leaving.into_iter().map(|d| (d.name, d.version)).collect();
    Ok(report)
}

/// Where an archive came from.
enum ArchiveOrigin {
    Reused,
    Unpacked,
    Repaired(String),
}

/// An archive, or a wheel another process is unpacking right now.
enum Obtained {
    Ready(keel_cache::Archive, ArchiveOrigin),
    /// Its origin if this process ends up unpacking it.
    Busy(ArchiveOrigin),
}

/// Looks the wheel up and, on a miss or damage, unpacks it unless another
/// process is doing so. Runs on the thread pool, so it never waits.
fn obtain_archive(
    cache: &Cache,
    source: &WheelSource,
    options: &InstallOptions,
) -> Result<Obtained, Error> {
    let origin = match cache.lookup(source)? {
        Lookup::Hit(archive) => return Ok(Obtained::Ready(archive, ArchiveOrigin::Reused)),
        Lookup::Miss => ArchiveOrigin::Unpacked,
        Lookup::Damaged { reason } => {
            tracing::warn!(
                "the cached archive of {} is damaged ({reason}); re-extracting it from {}",
                source.filename,
                source.path.display()
            );
            ArchiveOrigin::Repaired(reason)
        }
    };
    let unpacked = reporting_unpack(source, options, || cache.try_unpack(source, None))?;
    Ok(match (unpacked, origin) {
        (None, origin) => Obtained::Busy(origin),
        // Another process unpacked it just before this one's turn.
        (Some(Unpack::FoundReady(archive)), ArchiveOrigin::Unpacked) => {
            Obtained::Ready(archive, ArchiveOrigin::Reused)
        }
        (Some(archive), origin) => Obtained::Ready(archive.into_archive(), origin),
    })
}

/// Runs an unpack of `source`, telling the reporter when it starts and ends.
fn reporting_unpack<T>(
    source: &WheelSource,
    options: &InstallOptions,
    unpack: impl FnOnce() -> Result<T, keel_cache::Error>,
) -> Result<T, Error> {
    let name = source.filename.to_string();
    if let Some(reporter) = &options.reporter {
        reporter.on_unpack_start(&name, source.size);
    }
    let unpacked = unpack();
    if let Some(reporter) = &options.reporter {
        reporter.on_unpack_complete(&name);
    }
    Ok(unpacked?)
}

/// Two wheels of one transaction may not install the same file.
fn check_overlaps(jobs: &[WheelJob], layout: &Layout) -> Result<(), Error> {
    let mut owners: HashMap<PathBuf, &Path> = HashMap::new();
    for job in jobs {
        for dest in job.destinations(layout) {
            if let Some(first) = owners.insert(dest.clone(), &job.source.path) {
                return Err(Error::WheelsOverlap {
                    path: dest,
                    first: first.to_path_buf(),
                    second: job.source.path.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Versions compared as `.dist-info` names spell them (`-` escaped to `_`,
/// case-insensitive).
fn same_version(a: &str, b: &str) -> bool {
    a.replace('-', "_")
        .eq_ignore_ascii_case(&b.replace('-', "_"))
}
