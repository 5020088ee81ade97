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

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use keel_bytecode::{Invalidation, Job, Outcome, Pool, Settings};

use crate::Error;
use crate::compat::Target;
use crate::destinations::{Action, Layout, WheelJob};

/// How many modules make one more worker worth starting.
const MODULES_PER_WORKER: usize = 100;

/// What to compile: for each module, its job's index, its bytecode's
/// destination (relative to the environment root) and the [`Job`].
pub(crate) struct Compilation {
    modules: Vec<(usize, PathBuf, Job)>,
    pool: Pool,
}

/// Plans the modules of `jobs` and starts the pool, so that the workers
/// start while staging runs. `None` when there is nothing to compile, or
/// the interpreter writes no bytecode (`sys.implementation.cache_tag` is
/// `None`).
pub(crate) fn start(
    jobs: &[WheelJob],
    layout: &Layout,
    target: &Target,
    timeout: Option<Duration>,
) -> Result<Option<Compilation>, Error> {
    let Some(cache_tag) = target.interpreter.cache_tag() else {
        tracing::warn!(
            "not compiling bytecode: `{}` writes none (its sys.implementation.cache_tag is None)",
            layout.python.display()
        );
        return Ok(None);
    };
    let modules = modules(jobs, layout, cache_tag);
    if modules.is_empty() {
        return Ok(None);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let settings = Settings {
        python: layout.python.clone(),
        magic_number: target.interpreter.magic_number(),
        cache_tag: cache_tag.to_string(),
        workers: modules.len().div_ceil(MODULES_PER_WORKER).clamp(1, cores),
        timeout,
        invalidation: Invalidation::from_env(),
    };
    let pool = Pool::start(settings).map_err(Error::Bytecode)?;
    Ok(Some(Compilation { modules, pool }))
}

/// Every `.py` file a job links into site-packages, unless the wheel
/// itself ships a file where its bytecode would go.
fn modules(jobs: &[WheelJob], layout: &Layout, cache_tag: &str) -> Vec<(usize, PathBuf, Job)> {
    let mut modules = Vec::new();
    for (j, job) in jobs.iter().enumerate() {
        let shipped: HashSet<&PathBuf> = job.files.iter().map(|f| &f.dest).collect();
        for file in &job.files {
            let compiles =
                file.action == Action::Link && file.dest.starts_with(&layout.site_packages);
            let Some(bytecode) = compiles
                .then(|| keel_venv::bytecode::cache_path(&file.dest, cache_tag))
                .flatten()
            else {
                continue;
            };
            if shipped.contains(&bytecode) {
                continue;
            }
            let job_of_file = Job {
                source: job.staged_path(&file.dest),
                bytecode: job.staged_path(&bytecode),
                named: layout.env.root().join(&file.dest),
            };
            let size = job.archive.manifest.files[file.index].size;
            modules.push((size, (j, bytecode, job_of_file)));
        }
    }
    // Largest first, so that no worker is left with a large file at the end
    // while the others idle.
    modules.sort_by_key(|(size, _)| std::cmp::Reverse(*size));
    modules.into_iter().map(|(_, module)| module).collect()
}

impl Compilation {
    /// Compiles every module and notes each `.pyc` written in its job. A
    /// module that does not compile gets none (`-v` names it); any worker
    /// error fails the install, before the commit.
    pub(crate) fn run(
        mut self,
        jobs: &mut [WheelJob],
        cancelled: &(dyn Fn() -> bool + Sync),
    ) -> Result<usize, Error> {
        let started = Instant::now();
        let work: Vec<Job> = self.modules.iter().map(|(_, _, job)| job.clone()).collect();
        let outcomes = self.pool.compile(&work, cancelled).map_err(|e| match e {
            keel_bytecode::Error::Interrupted => Error::Interrupted,
            other => Error::Bytecode(other),
        })?;
        let workers = self.pool.workers();
        drop(self.pool);
        let mut compiled = 0;
        for ((j, bytecode, job), outcome) in self.modules.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Compiled => {
                    jobs[j].compiled.push(bytecode);
                    compiled += 1;
                }
                Outcome::NotCompiled { reason } => tracing::info!(
                    "no bytecode for `{}`: {}",
                    job.named.display(),
                    reason.lines().last().unwrap_or_default().trim()
                ),
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            "time: compile {compiled} of {} modules in {:.1}ms on {workers} workers ({:.0} files/s per worker)",
            work.len(),
            seconds * 1000.0,
            work.len() as f64 / seconds.max(1e-9) / workers as f64
        );
        Ok(compiled)
    }
}
