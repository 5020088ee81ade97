//! Interrupted transactions written the way a killed keel leaves them, so
//! that tests never hand-write keel's journal format: `<venv>/.keel/<name>/`
//! with `journal.json` (`{"version": 1, "moves", "prune", "summary"}`) and,
//! once committed, an empty `committed` file.

use std::path::{Path, PathBuf};

/// The journal format keel writes (`crates/installer/src/journal.rs`).
pub const JOURNAL_VERSION: u32 = 1;

/// A transaction directory in `.keel/`, as a killed keel leaves it.
pub struct InterruptedTransaction {
    venv: PathBuf,
    dir: PathBuf,
    moves: Vec<(PathBuf, PathBuf)>,
    prune: Vec<PathBuf>,
    summary: String,
}

impl InterruptedTransaction {
    /// `<venv>/.keel/<name>/` (`name` like `tx-manual`), nothing in it yet.
    pub fn new(venv: &Path, name: &str) -> Self {
        let venv = std::path::absolute(venv).expect("absolute venv");
        let dir = venv.join(".keel").join(name);
        fs_err::create_dir_all(&dir).expect("create the transaction directory");
        InterruptedTransaction {
            venv,
            dir,
            moves: Vec::new(),
            prune: Vec::new(),
            summary: String::new(),
        }
    }

    /// What the journal says the transaction does (`+a==1 -b==2`).
    pub fn summary(mut self, summary: &str) -> Self {
        self.summary = summary.to_string();
        self
    }

    /// Really moves each environment path into the transaction's backup
    /// area (same relative path), journaling each move.
    pub fn moved_to_backup(mut self, paths: &[PathBuf]) -> Self {
        for path in paths {
            let relative = path
                .strip_prefix(&self.venv)
                .expect("a path inside the venv");
            let to = self.dir.join("backup").join(relative);
            fs_err::create_dir_all(to.parent().expect("parent")).expect("create backup dir");
            fs_err::rename(path, &to).expect("move to the backup");
            self.moves.push((path.clone(), to));
        }
        self
    }

    /// Directories the journal prunes once committed.
    pub fn pruning(mut self, dirs: &[PathBuf]) -> Self {
        self.prune.extend(dirs.iter().cloned());
        self
    }

    /// A `staging/` directory, as an install that had begun staging has.
    pub fn with_staging(self) -> Self {
        fs_err::create_dir_all(self.dir.join("staging")).expect("create staging");
        self
    }

    /// Writes the journal (not committed); returns the directory.
    pub fn journaled(self) -> PathBuf {
        let moves: Vec<serde_json::Value> = self
            .moves
            .iter()
            .map(|(from, to)| serde_json::json!({"from": from, "to": to}))
            .collect();
        let journal = serde_json::json!({
            "version": JOURNAL_VERSION,
            "moves": moves,
            "prune": self.prune,
            "summary": self.summary,
        });
        fs_err::write(self.dir.join("journal.json"), journal.to_string()).expect("write journal");
        self.dir
    }

    /// Writes the journal and the commit record; returns the directory.
    pub fn committed(self) -> PathBuf {
        let dir = self.journaled();
        fs_err::write(dir.join("committed"), "").expect("write the commit record");
        dir
    }
}

/// What an interrupted keel left in `<venv>/.keel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// No transaction and no trash.
    Nothing,
    /// A transaction still staging (no journal): nothing was changed.
    Staging,
    /// A journaled transaction without its commit record: rolls back.
    Uncommitted,
    /// A committed transaction: rolls forward.
    Committed,
    /// Only the trash of a finished transaction.
    Trash,
}

/// What `venv`'s `.keel` holds (at most one transaction).
pub fn left_behind(venv: &std::path::Path) -> Left {
    let found = super::leftover_transactions(venv);
    let transactions: Vec<&String> = found.iter().filter(|n| n.starts_with("tx-")).collect();
    assert!(
        transactions.len() <= 1,
        "more than one transaction in {}: {found:?}",
        venv.display()
    );
    match transactions.first() {
        None if found.is_empty() => Left::Nothing,
        None => Left::Trash,
        Some(tx) => {
            let tx = venv.join(".keel").join(tx);
            if tx.join("committed").exists() {
                Left::Committed
            } else if tx.join("journal.json").exists() {
                Left::Uncommitted
            } else {
                Left::Staging
            }
        }
    }
}

/// What `keel recover` must say after finding `left`; returns its stderr.
#[track_caller]
pub fn assert_recovery_said(
    output: &std::process::Output,
    venv: &std::path::Path,
    left: Left,
) -> String {
    super::assert_success(output);
    let said = super::stderr(output);
    let expected = match left {
        Left::Uncommitted => "rolled back an interrupted transaction",
        Left::Committed => "finished an interrupted transaction that had committed",
        Left::Staging => "removed the staging of an interrupted transaction",
        Left::Trash | Left::Nothing => "Nothing to recover",
    };
    assert!(
        said.contains(expected),
        "recovering {} ({left:?}): expected {expected:?} in:\n{said}",
        venv.display()
    );
    said
}
