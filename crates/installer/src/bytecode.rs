//! Bytecode compiled inside the transaction: the `.py` files of this
//! transaction's wheels that land in site-packages (purelib/platlib; not
//! scripts, headers or data) are compiled in staging, after they are
//! proven and before RECORD is written, by a pool of the environment's own
//! interpreter ([`keel_bytecode::Pool`]). Each code object names the
//! file's final path. Staging is on the environment's file system and the
//! commit renames, which keep mtime and size, so timestamp-based `.pyc`
//! files stay valid once in place. RECORD lists each `.pyc` without hash
//! or size (*Recording installed projects § The RECORD file*: "it is
//! permissible for ... .pyc files to have no hash or size"), so that pip
//! and keel remove them with the distribution.
//!
//! The bytecode of an archive's modules is stored beside the archive
//! ([`keel_cache::CachedBytecode`]) for the interpreter's cache tag, magic
//! number and invalidation mode. A later install relocates it instead of
//! compiling (the worker renames its code objects to the final paths, as
//! importlib does when it loads moved bytecode; far cheaper than
//! compiling), each stored `.pyc` proven by its stamp (by its hash with
//! `--verify`) and its header checked against the staged source; only what
//! is missing or does not prove is compiled, and stored again.

use std::collections::HashSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use keel_bytecode::{Invalidation, Job, Outcome, Pool, Settings};
use keel_cache::{Cache, CachedBytecode, ManifestFile};

use crate::Error;
use crate::compat::Target;
use crate::destinations::{Action, Layout, WheelJob};

/// How many modules to compile make one more worker worth starting.
const MODULES_PER_WORKER: usize = 100;
/// How many stored `.pyc` files to relocate cost about one compile.
const RELOCATIONS_PER_COMPILE: usize = 10;

/// One module to give bytecode to.
struct Module {
    /// Its job's index.
    job: usize,
    /// Its bytecode's destination, relative to the environment root.
    bytecode: PathBuf,
    /// Its bytecode's path relative to the archive's tree (the store's key).
    stored_as: String,
    /// What the pool compiles.
    work: Job,
    /// Its bytecode in the store, if any: the file and what it was.
    stored: Option<(PathBuf, ManifestFile)>,
}

/// The modules of a transaction and the pool that compiles (or relocates)
/// their bytecode.
pub(crate) struct Compilation {
    modules: Vec<Module>,
    /// The store's name for this interpreter's bytecode.
    key: String,
    pool: Pool,
}

/// Plans the modules of `jobs`, finds their stored bytecode, and starts the
/// pool for the rest, so that the workers start while staging runs. `None`
/// unless `options.compile_bytecode`, when there is nothing to compile, or
/// when the interpreter writes no bytecode (`sys.implementation.cache_tag`
/// is `None`).
pub(crate) fn start(
    jobs: &[WheelJob],
    layout: &Layout,
    target: &Target,
    options: &crate::InstallOptions,
) -> Result<Option<Compilation>, Error> {
    if !options.compile_bytecode {
        return Ok(None);
    }
    let Some(cache_tag) = target.interpreter.cache_tag() else {
        tracing::warn!(
            "not compiling bytecode: `{}` writes none (its sys.implementation.cache_tag is None)",
            layout.python.display()
        );
        return Ok(None);
    };
    let invalidation = Invalidation::from_env();
    let magic: String = target
        .interpreter
        .magic_number()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mode = match invalidation {
        Invalidation::Timestamp => "timestamp",
        Invalidation::CheckedHash => "checked-hash",
    };
    let key = format!("{cache_tag}-{magic}-{mode}");
    let modules = modules(jobs, layout, cache_tag, &key);
    if modules.is_empty() {
        return Ok(None);
    }
    // Workers by the work expected: a stored `.pyc` to relocate costs a
    // tenth of a compile.
    let stored = modules.iter().filter(|m| m.stored.is_some()).count();
    let effort = modules.len() - stored + stored.div_ceil(RELOCATIONS_PER_COMPILE);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let settings = Settings {
        python: layout.python.clone(),
        magic_number: target.interpreter.magic_number(),
        cache_tag: cache_tag.to_string(),
        workers: effort.div_ceil(MODULES_PER_WORKER).clamp(1, cores),
        timeout: options.compile_timeout,
        invalidation,
    };
    let pool = Pool::start(settings).map_err(Error::Bytecode)?;
    Ok(Some(Compilation { modules, key, pool }))
}

/// Every `.py` file a job links into site-packages, unless the wheel
/// itself ships a file where its bytecode would go; largest first, so that
/// no worker is left with a large file at the end while the others idle.
fn modules(jobs: &[WheelJob], layout: &Layout, cache_tag: &str, key: &str) -> Vec<Module> {
    let mut modules = Vec::new();
    for (j, job) in jobs.iter().enumerate() {
        let shipped: HashSet<&Path> = job.files.iter().map(|f| &*f.dest).collect();
        let store: Option<CachedBytecode> = job.archive.bytecode(key);
        for file in &job.files {
            let compiles =
                file.action == Action::Link && file.dest.starts_with(&layout.site_packages);
            let entry = &job.archive.manifest.files[file.index];
            let paths = compiles
                .then(|| {
                    let bytecode = keel_venv::bytecode::cache_path(&file.dest, cache_tag)?;
                    let stored_as =
                        keel_venv::bytecode::cache_path(Path::new(&entry.path), cache_tag)?;
                    Some((bytecode, stored_as.to_str()?.to_string()))
                })
                .flatten();
            let Some((bytecode, stored_as)) = paths.filter(|(b, _)| !shipped.contains(b.as_path()))
            else {
                continue;
            };
            let stored = store.as_ref().and_then(|store| {
                let file = store.files.get(&stored_as)?;
                Some((store.tree.join(&stored_as), file.clone()))
            });
            let work = Job {
                source: job.staged_path(&file.dest),
                bytecode: job.staged_path(&bytecode),
                named: layout.env.root().join(&file.dest),
                earlier: None,
            };
            modules.push((
                entry.size,
                Module {
                    job: j,
                    bytecode,
                    stored_as,
                    work,
                    stored,
                },
            ));
        }
    }
    modules.sort_by_key(|(size, _)| std::cmp::Reverse(*size));
    modules.into_iter().map(|(_, module)| module).collect()
}

impl Compilation {
    /// Gives every module its bytecode, from the store where it proves,
    /// compiled otherwise, and notes each `.pyc` written in its job. A
    /// module that does not compile gets none (`-v` names it); any worker
    /// error fails the install, before the commit. Newly compiled bytecode
    /// is stored for the next install (a failure to store is a warning).
    pub(crate) fn run(
        mut self,
        jobs: &mut [WheelJob],
        cache: &Cache,
        hash_everything: bool,
        cancelled: &(dyn Fn() -> bool + Sync),
    ) -> Result<usize, Error> {
        let started = Instant::now();
        let mut relocated = 0;
        for module in &mut self.modules {
            module.work.earlier = proven_stored(module, hash_everything);
            relocated += usize::from(module.work.earlier.is_some());
        }
        let work: Vec<Job> = self.modules.iter().map(|m| m.work.clone()).collect();
        let outcomes = self.pool.compile(&work, cancelled).map_err(|e| match e {
            keel_bytecode::Error::Interrupted => Error::Interrupted,
            other => Error::Bytecode(other),
        })?;
        let workers = self.pool.workers();
        // The workers are done: stopped and reaped now, before the commit.
        drop(self.pool);
        let mut has_bytecode = vec![false; self.modules.len()];
        for ((module, outcome), has) in self.modules.iter().zip(outcomes).zip(&mut has_bytecode) {
            match outcome {
                Outcome::Compiled => *has = true,
                Outcome::NotCompiled { reason } => tracing::info!(
                    "no bytecode for `{}`: {}",
                    module.work.named.display(),
                    reason.lines().last().unwrap_or_default().trim()
                ),
            }
        }
        // Only bytecode compiled now is news to the store (a module that
        // does not compile is tried again next time, and stores nothing).
        let compiled: Vec<usize> = (0..self.modules.len())
            .filter(|&i| has_bytecode[i] && self.modules[i].work.earlier.is_none())
            .collect();
        store(
            &self.modules,
            &self.key,
            jobs,
            cache,
            &compiled,
            &has_bytecode,
        );
        let mut count = 0;
        for (module, _) in self
            .modules
            .iter()
            .zip(&has_bytecode)
            .filter(|(_, has)| **has)
        {
            jobs[module.job].compiled.push(module.bytecode.clone());
            count += 1;
        }
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            "time: bytecode for {count} of {} modules in {:.1}ms on {workers} workers: {relocated} relocated from the cache, {} compiled ({:.0} files/s per worker)",
            work.len(),
            seconds * 1000.0,
            work.len() - relocated,
            work.len() as f64 / seconds.max(1e-9) / workers.max(1) as f64
        );
        Ok(count)
    }
}

/// Stores the bytecode of every archive that had a module compiled now.
fn store(
    modules: &[Module],
    key: &str,
    jobs: &[WheelJob],
    cache: &Cache,
    compiled: &[usize],
    has: &[bool],
) {
    let touched: HashSet<usize> = compiled.iter().map(|&i| modules[i].job).collect();
    for j in touched {
        let files: Vec<(String, PathBuf)> = modules
            .iter()
            .zip(has)
            .filter(|(module, has)| module.job == j && **has)
            .map(|(module, _)| (module.stored_as.clone(), module.work.bytecode.clone()))
            .collect();
        if let Err(e) = cache.store_bytecode(&jobs[j].archive, key, &files) {
            tracing::warn!(
                "cannot keep the bytecode of {} in the cache: {e}",
                jobs[j].archive.id
            );
        }
    }
}

/// A module's stored bytecode, if it proves (its stamp, or its hash with
/// `hash_everything`) and its header holds for the staged source (a
/// timestamp `.pyc` names the source's mtime and size; a hash-based one
/// names its content, which RECORD proved).
fn proven_stored(module: &Module, hash_everything: bool) -> Option<PathBuf> {
    let (stored, expected) = module.stored.as_ref()?;
    keel_cache::check_file(stored, expected, hash_everything).ok()?;
    header_matches(stored, &module.work.source).then(|| stored.clone())
}

/// PEP 552: whether the `.pyc` at `bytecode` is valid for `source` as it
/// is: a timestamp `.pyc` (flags 0) names the source's mtime and size.
fn header_matches(bytecode: &Path, source: &Path) -> bool {
    let mut header = [0u8; 16];
    let read = keel_cache::open_no_follow(bytecode).and_then(|mut f| f.read_exact(&mut header));
    let Ok(metadata) = fs_err::metadata(source) else {
        return false;
    };
    if read.is_err() {
        return false;
    }
    let word = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    use std::os::unix::fs::MetadataExt as _;
    match word(4) {
        0 => word(8) == metadata.mtime() as u32 && word(12) == metadata.size() as u32,
        _ => true,
    }
}
