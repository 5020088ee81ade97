//! Bytecode for keel: the modules of an install compiled by the
//! environment's own interpreter, inside the transaction.
//!
//! - [`Pool`]: long-lived workers of one interpreter, started with
//!   [`Pool::start`] (at once, so that they start while keel links files)
//!   and fed by [`Pool::compile`], one file per request and one reply per
//!   file, over every worker at once. Each worker runs isolated
//!   (`python -I -S -B`: no `site`, so no `.pth` file runs; no user site; a
//!   private working directory holding only keel's script; every `PYTHON*`
//!   variable removed, so `PYTHONPYCACHEPREFIX`, `PYTHONOPTIMIZE`,
//!   `PYTHONDONTWRITEBYTECODE` or `PYTHONSTARTUP` cannot redirect or skip
//!   anything), greets keel with its magic number and cache tag, which must
//!   be the probe's, and is killed and reaped when it takes longer than the
//!   timeout, when it misbehaves, and when the pool is dropped.
//! - [`Settings`]: the interpreter, what the probe says of it, how many
//!   workers, the timeout, and the [`Invalidation`] mode (PEP 552:
//!   checked-hash `.pyc` when `SOURCE_DATE_EPOCH` is set, as `py_compile`
//!   does).
//! - [`Job`]: one source, where its bytecode goes, and the path the code
//!   object names (the source's final place, not staging).
//! - [`Outcome`]: compiled, or not compilable (a `SyntaxError`, null bytes,
//!   a bad encoding): no `.pyc`, and the install goes on, as pip's and uv's
//!   do. Anything wrong with a worker is an [`Error`].
//!
//! ```no_run
//! use std::path::PathBuf;
//! use keel_bytecode::{Invalidation, Job, Outcome, Pool, Settings};
//!
//! let settings = Settings {
//!     python: PathBuf::from("/venv/bin/python"),
//!     magic_number: *b"\xa7\x0d\x0d\x0a",
//!     cache_tag: "cpython-311".into(),
//!     workers: 2,
//!     timeout: Some(std::time::Duration::from_secs(60)),
//!     invalidation: Invalidation::from_env(),
//! };
//! let mut pool = Pool::start(settings)?;
//! let jobs = [Job {
//!     source: "/venv/.keel/tx/staging/pkg/mod.py".into(),
//!     bytecode: "/venv/.keel/tx/staging/pkg/__pycache__/mod.cpython-311.pyc".into(),
//!     named: "/venv/lib/python3.11/site-packages/pkg/mod.py".into(),
//!     earlier: None,
//! }];
//! let outcomes = pool.compile(&jobs, &|| false)?;
//! assert!(matches!(outcomes[0], Outcome::Compiled | Outcome::NotCompiled { .. }));
//! # Ok::<(), keel_bytecode::Error>(())
//! ```
#![deny(missing_docs)]

mod error;
mod worker;

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

pub use error::Error;
use worker::Worker;

/// The worker script, written into the pool's private directory.
const WORKER_SCRIPT: &str = include_str!("compile_worker.py");

/// PEP 552: how a `.pyc` is tied to its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// By the source's mtime and size (the default).
    Timestamp,
    /// By the source's hash, checked at import (reproducible builds).
    CheckedHash,
}

impl Invalidation {
    /// `CheckedHash` when `SOURCE_DATE_EPOCH` is set, as `py_compile`
    /// decides (keel removes no such variable: it is not a `PYTHON*` one,
    /// but it decides here, not in the worker).
    pub fn from_env() -> Self {
        match std::env::var_os("SOURCE_DATE_EPOCH") {
            Some(_) => Invalidation::CheckedHash,
            None => Invalidation::Timestamp,
        }
    }

    /// The `py_compile.PycInvalidationMode` member name.
    fn python_name(self) -> &'static str {
        match self {
            Invalidation::Timestamp => "TIMESTAMP",
            Invalidation::CheckedHash => "CHECKED_HASH",
        }
    }
}

/// What a pool compiles with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The environment's interpreter.
    pub python: PathBuf,
    /// `importlib.util.MAGIC_NUMBER`, from the probe.
    pub magic_number: [u8; 4],
    /// `sys.implementation.cache_tag`, from the probe.
    pub cache_tag: String,
    /// How many workers (at least one).
    pub workers: usize,
    /// The limit on a worker's start and on each file; `None`: no limit.
    pub timeout: Option<Duration>,
    /// How the `.pyc` files are tied to their sources.
    pub invalidation: Invalidation,
}

impl Settings {
    /// The greeting a worker of this interpreter must send.
    fn greeting(&self) -> String {
        let magic: String = self
            .magic_number
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("keel-bytecode 1 {magic} {}", self.cache_tag)
    }
}

/// One file to compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The source, where it is now.
    pub source: PathBuf,
    /// Where its bytecode goes (its directory is created if missing).
    pub bytecode: PathBuf,
    /// The path the code object names (`co_filename`): where the source
    /// will be once installed.
    pub named: PathBuf,
    /// Bytecode compiled earlier from this very source (same content, same
    /// mtime and size: its header must hold for `source`), to relocate
    /// instead of compiling: the worker renames its code objects to
    /// `named`. If it does not load, the source is compiled.
    pub earlier: Option<PathBuf>,
}

/// What became of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its bytecode is written.
    Compiled,
    /// It does not compile; no bytecode was written.
    NotCompiled {
        /// Python's message (`SyntaxError: …`).
        reason: String,
    },
}

/// A pool of workers of one interpreter.
pub struct Pool {
    settings: Settings,
    workers: Vec<Worker>,
    /// The private working directory, holding the script and the workers'
    /// stderr; removed with the pool.
    _scratch: tempfile::TempDir,
}

impl Pool {
    /// Starts `settings.workers` workers without waiting for them (their
    /// greetings are read by the first [`Pool::compile`]). Call it from the
    /// thread that lives as long as the pool: a worker is killed when the
    /// thread that started it ends.
    pub fn start(settings: Settings) -> Result<Pool, Error> {
        let scratch = keel_fs::tempdir_in(&std::env::temp_dir(), "keel-bytecode-")?;
        let cwd = scratch.path().join("cwd");
        fs_err::create_dir(&cwd)?;
        let script = cwd.join("compile_worker.py");
        fs_err::write(&script, WORKER_SCRIPT)?;
        let workers = (0..settings.workers.max(1))
            .map(|n| {
                let stderr = scratch.path().join(format!("stderr-{n}"));
                Worker::spawn(&settings, &cwd, &script, stderr)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Pool {
            settings,
            workers,
            _scratch: scratch,
        })
    }

    /// How many workers the pool has.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Compiles every job on every worker, one file per request; outcomes
    /// in the order of `jobs`. The first worker error stops every worker
    /// after its current file and is returned; so is an interruption
    /// (`cancelled` is asked before each file).
    pub fn compile(
        &mut self,
        jobs: &[Job],
        cancelled: &(dyn Fn() -> bool + Sync),
    ) -> Result<Vec<Outcome>, Error> {
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let outcomes: Vec<Mutex<Option<Outcome>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
        let settings = &self.settings;
        let errors: Vec<Error> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .workers
                .iter_mut()
                .map(|worker| {
                    let (next, stop, outcomes) = (&next, &stop, &outcomes);
                    scope.spawn(move || -> Result<(), Error> {
                        let outcome = feed(worker, settings, jobs, next, stop, outcomes, cancelled);
                        if outcome.is_err() {
                            stop.store(true, Ordering::Relaxed);
                        }
                        outcome
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| {
                    h.join()
                        .unwrap_or_else(|p| std::panic::resume_unwind(p))
                        .err()
                })
                .collect()
        });
        if let Some(error) = errors.into_iter().next() {
            return Err(error);
        }
        outcomes
            .into_iter()
            .map(|slot| {
                slot.into_inner()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .ok_or(Error::Interrupted)
            })
            .collect()
    }
}

/// One worker's share: greet, then take the next job until none is left
/// or another worker failed.
fn feed(
    worker: &mut Worker,
    settings: &Settings,
    jobs: &[Job],
    next: &AtomicUsize,
    stop: &AtomicBool,
    outcomes: &[Mutex<Option<Outcome>>],
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<(), Error> {
    worker.greet(settings)?;
    while !stop.load(Ordering::Relaxed) {
        let Some(index) = Some(next.fetch_add(1, Ordering::Relaxed)).filter(|&i| i < jobs.len())
        else {
            break;
        };
        if cancelled() {
            return Err(Error::Interrupted);
        }
        let outcome = worker.compile(&jobs[index], settings.timeout)?;
        *outcomes[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(outcome);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
