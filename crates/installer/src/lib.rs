//! keel's installer: puts wheels into a virtual environment through the
//! verified, self-healing archive cache, all or nothing.
//!
//! An install is a sequence of phases with typed hand-offs, inside one
//! [`Transaction`](transaction) (environment lock, recovery of a killed
//! keel, cancellation, commit):
//!
//! 1. **Plan** (no side effects): from the request and the
//!    [`InstalledIndex`](keel_venv::InstalledIndex), which wheels to
//!    install, which are installed already, which distributions leave.
//! 2. **Archives**: each wheel's pointer leads to its archive; a miss
//!    unpacks the wheel, every byte hashed against RECORD as it is written
//!    ([`keel_cache::Cache::obtain`]).
//! 3. **Destinations**: every archive file mapped to its place in the
//!    environment's scheme (*Binary distribution format § Installing a
//!    wheel*); two wheels may not install one file.
//! 4. **Stage and prove**: every file linked (clone → hardlink → copy) into
//!    `<venv>/.keel/tx-<id>/staging/` and proven against RECORD, by a stamp
//!    that still holds or by hashing (`--verify`: always by hashing). A
//!    damaged archive is warned about, re-extracted from its `.whl`, and
//!    staged again.
//! 5. **Generate** scripts, `INSTALLER`, `REQUESTED`, `direct_url.json` and
//!    the new RECORD.
//! 6. **Commit**: the moves planned (replaced files to a backup area,
//!    staged trees into place, `.dist-info` last), journaled durably, and
//!    carried out; an error undoes every move, and a kill at any instant is
//!    rolled back or forward by the next keel command.
//!
//! The principal types: [`InstallOptions`] (what and how), [`InstallReport`]
//! (what happened, with [`Repair`]s of damaged archives), [`Recovery`] (what
//! recovery did), [`LinkMode`] and [`Verification`].
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
#![deny(missing_docs)]

mod bytecode;
mod cache_set;
mod closure;
mod compat;
mod destinations;
mod env_lock;
mod error;
mod fault;
mod generate;
mod journal;
mod link;
mod locked;
mod moves;
mod options;
mod origin;
mod pinned;
mod plan;
mod provenance;
mod repair;
mod report;
mod scripts;
mod stage;
mod stopwatch;
mod transaction;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use keel_cache::{ArchiveOrigin, Cache, Obtained, WheelSource};
use keel_venv::Environment;

pub use env_lock::EnvironmentLock;
pub use error::Error;
pub use fault::enable_from_env as enable_fault_injection;
pub use journal::Recovery;
pub use link::LinkMode;
pub use locked::{LockedRequest, install_locked};
pub use options::{DEFAULT_COMPILE_TIMEOUT, InstallOptions, Reporter, Verification};
pub use origin::{Origin, WheelRequest};
pub use report::{
    InstallReport, InstalledWheel, NameVersion, Repair, RepairReason, Takeover, UninstallReport,
};

use crate::cache_set::CacheSet;
use crate::destinations::{Layout, WheelJob};
use crate::plan::{Plan, Request};
use crate::repair::StageSettings;
use crate::transaction::{Arriving, Changes, Transaction};

/// Installs `wheels` into `options.venv` as one transaction.
///
/// Returns what was installed, reused and repaired. On error the
/// environment is as it was before the call.
pub fn install(
    wheels: &[impl AsRef<Path>],
    options: &InstallOptions,
) -> Result<InstallReport, Error> {
    let requests: Vec<WheelRequest> = wheels
        .iter()
        .map(|w| WheelRequest::local(w.as_ref()))
        .collect();
    install_requests(&requests, options)
}

/// Installs the requested wheels into `options.venv` as one transaction,
/// each recorded with its [`Origin`] (a lock's wheels are not direct URL
/// references; a lock's archives are). See [`install`].
pub fn install_requests(
    requests: &[WheelRequest],
    options: &InstallOptions,
) -> Result<InstallReport, Error> {
    install_with_caches(requests, options, &CacheSet::of(options))
}

/// [`install_requests`] through the caches `caches`.
pub(crate) fn install_with_caches(
    requests: &[WheelRequest],
    options: &InstallOptions,
    caches: &CacheSet,
) -> Result<InstallReport, Error> {
    // The wheels are checked first: a bad argument changes nothing anywhere.
    let (sources, origins) = read_sources(requests)?;
    if options.link_mode == LinkMode::Symlink && caches.writable.is_none() {
        return Err(Error::SymlinkWithoutCache);
    }
    let mut tx = Transaction::begin(&options.venv, options.cancel.clone())?;
    if options.link_mode == LinkMode::Symlink {
        tracing::warn!(
            "with --link-mode symlink the environment depends on the cache: `keel cache clean` breaks it"
        );
    }
    let opened = caches.open(options, || tx.scratch_dir("cache"))?;
    let cache = &opened.cache;
    let request = Request {
        wheels: sources,
        reinstall: options.reinstall,
        exact: options.exact,
    };
    let plan = plan::plan(request, &tx.index()?)?;
    tx.mark("open");
    let mut report = InstallReport {
        unchanged: plan.unchanged.clone(),
        recovered: tx.recovered().to_vec(),
        ..InstallReport::default()
    };
    if plan.is_empty() {
        tx.finish_unchanged();
        return Ok(report);
    }

    let target = probe_target(tx.env(), caches.probe_cache())?;
    tx.mark("probe");
    let sources: Vec<WheelSource> = plan.install.iter().map(|c| c.source.clone()).collect();
    let obtained = obtain_archives(cache, &sources, &target, options)?;
    tx.mark("archives");
    tx.check_cancelled()?;
    record_origins(&mut report, &obtained, &sources);

    let staging = tx.create_staging()?;
    let layout = Layout::new(tx.env());
    let mut jobs = plan_jobs(&plan, obtained, &origins, &staging, &layout)?;
    destinations::check_overlaps(&jobs, &layout)?;
    tx.mark("plan");

    // Started now, so that the workers start while files are linked.
    let compilation = bytecode::start(&jobs, &layout, &target, options)?;
    let mode = probe_link_mode(options.link_mode, &jobs, &staging);
    let hash_everything = options.verification == Verification::Full;
    let cancelled = || tx.cancelled();
    let settings = StageSettings {
        mode,
        hash_everything,
        observer: observer(options),
        cancelled: &cancelled,
    };
    let proven = repair::stage_and_repair(&mut jobs, cache, &layout, &settings)?;
    tx.mark("stage");
    if let Some(compilation) = compilation {
        report.bytecode_compiled =
            compilation.run(&mut jobs, cache, hash_everything, &|| tx.cancelled())?;
        tx.mark("compile");
    }
    generate::write_all(&jobs, &layout)?;
    tx.mark("generate");
    tx.check_cancelled()?;

    report.link_mode = Some(mode);
    report.files_hashed = proven.hashed;
    report.files_trusted = proven.trusted;
    report.repaired.extend(proven.repaired);
    report.takeovers = commit(tx, &plan, &jobs, options.force)?;
    report.removed = names_and_versions(&plan.remove);
    report.installed = installed_wheels(&plan, &jobs);
    Ok(report)
}

/// The archive of every wheel, once each wheel is known to fit the
/// interpreter (its tags, then its `Requires-Python`).
fn obtain_archives(
    cache: &Cache,
    sources: &[WheelSource],
    target: &compat::Target,
    options: &InstallOptions,
) -> Result<Vec<Obtained>, Error> {
    for source in sources {
        compat::check_tags(source, target)?;
    }
    let lookups =
        compat::check_requires_python(cache, sources, target, options.ignore_requires_python)?;
    let obtained = cache.obtain_looked_up(sources, lookups, observer(options))?;
    let hash_wheels = options.verification == Verification::Full;
    provenance::check(cache, sources, obtained, hash_wheels, observer(options))
}

/// The environment's interpreter (probed once, then cached by its path
/// and stat) and the tags it supports, in priority order.
fn probe_target(env: &Environment, cache_dir: Option<&Path>) -> Result<compat::Target, Error> {
    let interpreter = keel_python::Interpreter::probe(&env.python(), cache_dir)?;
    let tags = keel_python::Tags::new(&interpreter, keel_python::TagOrder::default());
    Ok(compat::Target { interpreter, tags })
}

/// Each wheel once (the same file named twice, by overlapping globs, is
/// one wheel), named and stat'ed, and the origin of each (by its path).
fn read_sources(
    requests: &[WheelRequest],
) -> Result<(Vec<WheelSource>, HashMap<PathBuf, Origin>), Error> {
    let mut sources: Vec<WheelSource> = Vec::with_capacity(requests.len());
    let mut origins = HashMap::with_capacity(requests.len());
    for request in requests {
        let mut source = WheelSource::new(&request.path)?;
        if let Some(sha256) = &request.sha256 {
            source = source.with_sha256(sha256.clone());
        }
        if !sources.iter().any(|s| s.path == source.path) {
            origins.insert(source.path.clone(), request.origin.clone());
            sources.push(source);
        }
    }
    Ok((sources, origins))
}

pub(crate) fn observer(options: &InstallOptions) -> &dyn Reporter {
    match &options.reporter {
        Some(reporter) => reporter.as_ref(),
        None => &(),
    }
}

/// Notes in the report where each archive came from.
fn record_origins(report: &mut InstallReport, obtained: &[Obtained], sources: &[WheelSource]) {
    for (obtained, source) in obtained.iter().zip(sources) {
        let wheel = source.filename.to_string();
        match &obtained.origin {
            ArchiveOrigin::Reused => report.reused.push(wheel),
            ArchiveOrigin::Unpacked => report.unpacked.push(wheel),
            ArchiveOrigin::Repaired(problem) => report.repaired.push(Repair {
                wheel,
                reason: RepairReason::Archive(problem.clone()),
            }),
        }
    }
}

/// One staging job per wheel, each in `staging/<n>-<name>/`.
fn plan_jobs(
    plan: &Plan,
    obtained: Vec<Obtained>,
    origins: &HashMap<PathBuf, Origin>,
    staging: &Path,
    layout: &Layout,
) -> Result<Vec<WheelJob>, Error> {
    plan.install
        .iter()
        .zip(obtained)
        .enumerate()
        .map(|(index, (change, obtained))| {
            let name = change.source.filename.normalized_name();
            let root = staging.join(format!("{index}-{name}"));
            let origin = origins
                .get(&change.source.path)
                .cloned()
                .unwrap_or_default();
            WheelJob::plan(
                change.source.clone(),
                origin,
                obtained.archive,
                root,
                layout,
            )
        })
        .collect()
}

/// The link mode this file system supports, tried once on a real archive
/// file.
fn probe_link_mode(requested: LinkMode, jobs: &[WheelJob], staging: &Path) -> LinkMode {
    match (jobs.first(), staging.parent()) {
        (Some(job), Some(scratch)) => requested.probe(&job.archive.manifest_path(), scratch),
        _ => requested,
    }
}

/// Commits the staged jobs and the plan's removals.
fn commit(
    tx: Transaction,
    plan: &Plan,
    jobs: &[WheelJob],
    force: bool,
) -> Result<Vec<Takeover>, Error> {
    let leaving = plan.leaving();
    let arriving = jobs
        .iter()
        .map(|job| Arriving {
            label: format!(
                "{} {}",
                job.archive.manifest.name, job.archive.manifest.version
            ),
            site_packages: &job.root,
            prefix: &job.prefix_root,
        })
        .collect();
    let summary = summary(
        plan.install
            .iter()
            .map(|c| (c.source.filename.normalized_name(), &c.version)),
        &leaving,
    );
    tx.commit(Changes {
        leaving: &leaving,
        arriving,
        summary,
        force,
    })
}

/// `+a==1 -b==2`: what a transaction installs and removes, for messages.
fn summary<'a>(
    arriving: impl Iterator<Item = (keel_wheel::PackageName, &'a keel_wheel::Version)>,
    leaving: &[keel_venv::InstalledDistribution],
) -> String {
    arriving
        .map(|(name, version)| format!("+{name}=={version}"))
        .chain(
            leaving
                .iter()
                .map(|d| format!("-{}=={}", d.name, d.version)),
        )
        .collect::<Vec<_>>()
        .join(" ")
}

fn installed_wheels(plan: &Plan, jobs: &[WheelJob]) -> Vec<InstalledWheel> {
    plan.install
        .iter()
        .zip(jobs)
        .map(|(change, job)| InstalledWheel {
            name: change.source.filename.normalized_name(),
            version: change.version.clone(),
            replaced: change.replaces.first().map(|old| old.version.clone()),
            wheel: job.source.path.clone(),
        })
        .collect()
}

fn names_and_versions(dists: &[keel_venv::InstalledDistribution]) -> Vec<NameVersion> {
    dists
        .iter()
        .map(|d| NameVersion {
            name: d.name.clone(),
            version: d.version.clone(),
        })
        .collect()
}

/// Removes distributions by their RECORD, as one transaction: every file
/// moves to the backup area under a journal, then the backup is deleted.
/// A distribution without RECORD is refused.
pub fn uninstall(venv: &Path, names: &[impl AsRef<str>]) -> Result<UninstallReport, Error> {
    let tx = Transaction::begin(venv, None)?;
    let (leaving, not_installed) = plan::plan_removal(names, &tx.index()?);
    let mut report = UninstallReport {
        not_installed,
        recovered: tx.recovered().to_vec(),
        ..UninstallReport::default()
    };
    if leaving.is_empty() {
        tx.finish_unchanged();
        return Ok(report);
    }
    tx.commit(Changes {
        leaving: &leaving,
        arriving: Vec::new(),
        summary: summary(std::iter::empty(), &leaving),
        force: false,
    })?;
    report.removed = names_and_versions(&leaving);
    Ok(report)
}

/// Finishes or undoes every transaction a killed keel left in the
/// environment (`keel recover`). Takes the environment lock.
pub fn recover(venv: &Path) -> Result<Vec<Recovery>, Error> {
    let tx = Transaction::begin(venv, None)?;
    Ok(tx.recovered().to_vec())
}

/// The transactions a killed keel left in the environment, without touching
/// them (for `keel verify`).
pub fn interrupted_transactions(venv: &Path) -> Result<Vec<PathBuf>, Error> {
    let env = Environment::open(venv)?;
    Ok(journal::interrupted(&env)?
        .into_iter()
        .filter(|p| journal::is_transaction(p))
        .collect())
}
