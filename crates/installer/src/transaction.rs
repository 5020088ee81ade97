//! The transaction: the one place where install, sync and uninstall begin
//! and end.
//!
//! [`Transaction::begin`] opens the environment, takes its lock and
//! recovers whatever a killed keel left behind; [`Transaction::create_staging`]
//! makes `<venv>/.keel/tx-XXXX/` when the first change is staged;
//! [`Transaction::commit`] plans the moves (leaving distributions out,
//! staged trees in, `.dist-info` last), journals them and carries them out.
//! Cancellation (SIGINT) is checked between phases until the commit starts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use keel_venv::{Environment, InstalledDistribution, InstalledIndex};

use crate::journal::{self, Journal, TRANSACTION_PREFIX};
use crate::moves::MovePlanner;
use crate::report::Takeover;
use crate::stopwatch::Stopwatch;
use crate::{EnvironmentLock, Error, Recovery};

/// One transaction on one environment, from its lock to its commit.
pub(crate) struct Transaction {
    /// Declared (so dropped) before the lock: a transaction that fails
    /// removes its directory while it still holds the lock, whose release
    /// then removes the emptied `.keel/`.
    dir: Option<tempfile::TempDir>,
    env: Environment,
    _lock: EnvironmentLock,
    recovered: Vec<Recovery>,
    cancel: Option<Arc<AtomicBool>>,
    stopwatch: Stopwatch,
}

/// What one commit does: the distributions that leave, and the staged trees
/// (site-packages-shaped, prefix-shaped) that come in, with the name of the
/// distribution each installs (for conflict messages).
pub(crate) struct Changes<'a> {
    pub leaving: &'a [InstalledDistribution],
    pub arriving: Vec<Arriving<'a>>,
    /// What the transaction installs and removes (`+a==1 -b==2`).
    pub summary: String,
    /// Let arriving files take over files other distributions own.
    pub force: bool,
}

/// One staged distribution.
pub(crate) struct Arriving<'a> {
    /// `name version`, for messages.
    pub label: String,
    /// Staged like site-packages.
    pub site_packages: &'a Path,
    /// Staged like the environment root (scripts, headers, data), if any.
    pub prefix: &'a Path,
}

impl Transaction {
    /// Opens the environment at `venv`, takes its lock (saying once that it
    /// waits) and finishes or undoes what a killed keel left there.
    pub(crate) fn begin(venv: &Path, cancel: Option<Arc<AtomicBool>>) -> Result<Self, Error> {
        let stopwatch = Stopwatch::start();
        let env = Environment::open(venv)?;
        let lock = EnvironmentLock::acquire(&env)?;
        let recovered = recover_locked(&env)?;
        Ok(Transaction {
            env,
            _lock: lock,
            recovered,
            dir: None,
            cancel,
            stopwatch,
        })
    }

    /// The environment.
    pub(crate) fn env(&self) -> &Environment {
        &self.env
    }

    /// What recovery did when the transaction began.
    pub(crate) fn recovered(&self) -> &[Recovery] {
        &self.recovered
    }

    /// The installed distributions, read now (under the lock).
    pub(crate) fn index(&self) -> Result<InstalledIndex, Error> {
        Ok(InstalledIndex::read(&self.env)?)
    }

    /// Ends the phase `name` on the stopwatch (`keel -v` prints them).
    pub(crate) fn mark(&mut self, name: &'static str) {
        self.stopwatch.mark(name);
    }

    /// Whether cancellation was asked for.
    pub(crate) fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst))
    }

    /// `Err(Interrupted)` once cancellation was asked for.
    pub(crate) fn check_cancelled(&self) -> Result<(), Error> {
        if self.cancelled() {
            return Err(Error::Interrupted);
        }
        Ok(())
    }

    /// Creates the transaction's `staging/` (and its directory); removed
    /// with it on drop unless the commit took it over.
    pub(crate) fn create_staging(&mut self) -> Result<PathBuf, Error> {
        let staging = self.dir()?.join("staging");
        fs_err::create_dir(&staging)?;
        Ok(staging)
    }

    /// `<venv>/.keel/tx-XXXX/<name>/`, created now and gone with the
    /// transaction (a scratch cache for `--no-cache`).
    pub(crate) fn scratch_dir(&mut self, name: &str) -> Result<PathBuf, Error> {
        let dir = self.dir()?.join(name);
        fs_err::create_dir(&dir)?;
        Ok(dir)
    }

    /// `<venv>/.keel/tx-XXXX/`, created on first use.
    fn dir(&mut self) -> Result<PathBuf, Error> {
        if let Some(dir) = &self.dir {
            return Ok(dir.path().to_path_buf());
        }
        let keel_dir = self.env.ensure_keel_dir()?;
        let dir = keel_fs::tempdir_in(&keel_dir, TRANSACTION_PREFIX)?;
        let path = dir.path().to_path_buf();
        self.dir = Some(dir);
        Ok(path)
    }

    /// Plans every move of `changes`, journals them and carries them out;
    /// on error every move is undone (or left to `keel recover`, which the
    /// error names). Returns the files taken over (`--force`).
    pub(crate) fn commit(mut self, changes: Changes<'_>) -> Result<Vec<Takeover>, Error> {
        let backup = self.dir()?.join("backup");
        let env = self.env.clone();
        let mut planner = MovePlanner::new(&env, backup, changes.leaving, changes.force);
        for old in changes.leaving {
            planner.remove_distribution(old)?;
        }
        let mut last = Vec::new();
        for arriving in &changes.arriving {
            planner.current = arriving.label.clone();
            planner.install_tree(arriving.site_packages, env.site_packages(), &mut last)?;
            if arriving.prefix.exists() {
                planner.install_tree(arriving.prefix, env.root(), &mut last)?;
            }
        }
        for (from, to) in last {
            planner.place(&from, &to, true, &mut Vec::new())?;
        }
        let (journal, takeovers) = planner.finish(changes.summary);
        for takeover in &takeovers {
            tracing::warn!(
                "`{}` belonged to {}; it is now installed by this transaction (the RECORD of {} still lists it)",
                takeover.path.display(),
                takeover.owner,
                takeover.owner
            );
        }
        self.mark("plan commit");
        if let Some(dir) = self.dir.take() {
            run_commit(&self.env, &journal, dir.keep())?;
        }
        self.mark("commit");
        self.stopwatch.report();
        Ok(takeovers)
    }

    /// Ends a transaction that changes nothing.
    pub(crate) fn finish_unchanged(self) {
        self.stopwatch.report();
    }
}

/// Runs a planned commit; removes the transaction once it is done or
/// completely undone.
fn run_commit(env: &Environment, journal: &Journal, transaction: PathBuf) -> Result<(), Error> {
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

/// Finishes or undoes every interrupted transaction of `env` (lock held),
/// saying so in one line each.
fn recover_locked(env: &Environment) -> Result<Vec<Recovery>, Error> {
    let recovered = journal::recover(env)?;
    for recovery in &recovered {
        tracing::warn!("{recovery} in {}", env.root().display());
    }
    Ok(recovered)
}
