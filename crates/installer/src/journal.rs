//! The transaction journal, and recovery from a transaction that a crash or
//! `kill -9` interrupted.
//!
//! A transaction lives in `<venv>/.keel/tx-XXXX/`:
//!
//! ```text
//! staging/        the wheels, laid out like the environment
//! backup/         the files the commit moves out of the environment
//! journal.json    every move of the commit, in order; written and fsynced
//!                 before the first change to the environment
//! committed       present once every move is done and durable
//! ```
//!
//! Every move is a `rename` within one file system, so each one either
//! happened or did not, and which is visible: a move happened when its
//! destination exists and its source does not. A transaction without
//! `committed` is rolled back (moves undone newest first); one with it is
//! finished (directories it emptied removed). Either way the environment
//! ends in the state before or the state after the transaction, never in
//! between. Finished transactions are renamed to `.keel/trash-XXXX` before
//! their directory is deleted, so a half-deleted transaction is never
//! mistaken for an interrupted one.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use keel_venv::Environment;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::fault;

pub(crate) const JOURNAL: &str = "journal.json";
pub(crate) const COMMITTED: &str = "committed";
/// The name prefix of a transaction directory in `.keel/`.
pub(crate) const TRANSACTION_PREFIX: &str = "tx-";
/// The name prefix a finished transaction is renamed to before deletion.
const TRASH_PREFIX: &str = "trash-";
/// The journal format this keel writes and reads. A journal without a
/// version was written by keel before the field existed, in this format.
pub(crate) const JOURNAL_VERSION: u32 = 1;

/// One rename of a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Move {
    pub from: PathBuf,
    pub to: PathBuf,
}

impl Move {
    /// Whether the rename happened: its destination exists and its source
    /// does not (each rename is atomic, so nothing in between is possible).
    fn happened(&self) -> bool {
        fs_err::symlink_metadata(&self.to).is_ok()
            && fs_err::symlink_metadata(&self.from)
                .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// What a commit will do, recorded before it does any of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Journal {
    /// The format version ([`JOURNAL_VERSION`]).
    #[serde(default = "unversioned")]
    pub version: u32,
    /// The renames, in order.
    pub moves: Vec<Move>,
    /// Directories to remove once committed, if the commit left them empty.
    pub prune: BTreeSet<PathBuf>,
    /// What the transaction installs and removes, for messages.
    pub summary: String,
}

/// What a rollback did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Rollback {
    /// Moves undone.
    pub undone: usize,
    /// Moves that could not be undone.
    pub failures: usize,
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            version: JOURNAL_VERSION,
            moves: Vec::new(),
            prune: BTreeSet::new(),
            summary: String::new(),
        }
    }
}

fn unversioned() -> u32 {
    JOURNAL_VERSION
}

/// Whether to make the journal, the moves and the commit record durable.
/// Only benchmarks turn this off (`KEEL_UNSAFE_NO_FSYNC=1`), to measure
/// what durability costs.
pub(crate) fn durable() -> bool {
    std::env::var_os("KEEL_UNSAFE_NO_FSYNC").is_none_or(|v| v.is_empty() || v == "0")
}

fn fsync_dir(dir: &Path) -> Result<(), Error> {
    if durable() {
        keel_fs::sync_dir(dir)?;
    }
    Ok(())
}

fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    let path = dir.join(name);
    if durable() {
        keel_fs::write_durable(&path, bytes)?;
    } else {
        keel_fs::write_atomic(&path, bytes)?;
    }
    Ok(())
}

impl Journal {
    /// Runs the commit: journal first (durable), then every move, then the
    /// moved entries' directories synced, then `committed` (durable).
    /// On error every move done so far is undone.
    pub(crate) fn commit(&self, transaction: &Path) -> Result<(), Error> {
        let bytes = serde_json::to_vec(self).map_err(|e| Error::Journal {
            path: transaction.join(JOURNAL),
            reason: e.to_string(),
        })?;
        let start = std::time::Instant::now();
        write_durably(transaction, JOURNAL, &bytes)?;
        let journaled = start.elapsed();
        let result = (|| -> Result<(), Error> {
            for step in &self.moves {
                fault::mutation();
                fs_err::rename(&step.from, &step.to)?;
            }
            let moved = start.elapsed();
            // A rename is durable once the directory it renamed into is
            // (what PostgreSQL's `durable_rename` does): each rename is one
            // atomic step of the file system's journal, its source side
            // included. One fsync per destination directory, not per
            // directory touched: each fsync costs a disk cache flush.
            let destinations: BTreeSet<&Path> =
                self.moves.iter().filter_map(|m| m.to.parent()).collect();
            for dir in destinations {
                fsync_dir(dir)?;
            }
            fault::mutation();
            write_durably(transaction, COMMITTED, b"")?;
            tracing::debug!(
                "journal of {} moves ({} bytes) durable after {journaled:.1?}, moves done after {moved:.1?}, committed after {:.1?}",
                self.moves.len(),
                bytes.len(),
                start.elapsed()
            );
            Ok(())
        })();
        if let Err(error) = result {
            let failures = self.roll_back().failures;
            if failures > 0 {
                return Err(Error::CommitIncomplete {
                    failures,
                    transaction: transaction.to_path_buf(),
                    source: Box::new(error),
                });
            }
            return Err(Error::CommitRolledBack(Box::new(error)));
        }
        Ok(())
    }

    /// Undoes the moves that happened, newest first (a move is judged only
    /// once the later ones are undone: undoing them can free its source).
    pub(crate) fn roll_back(&self) -> Rollback {
        let mut rollback = Rollback::default();
        for step in self.moves.iter().rev() {
            if !step.happened() {
                continue;
            }
            fault::mutation();
            match fs_err::rename(&step.to, &step.from) {
                Ok(()) => rollback.undone += 1,
                Err(e) => {
                    tracing::error!("could not undo a move: {e}");
                    rollback.failures += 1;
                }
            }
        }
        rollback
    }

    /// After the commit: removes the directories it left empty, deepest
    /// first, stopping at the first one that is not empty.
    pub(crate) fn prune_empty_dirs(&self) {
        for dir in self.prune.iter().rev() {
            let is_empty = fs_err::read_dir(dir)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if is_empty {
                fault::mutation();
                if let Err(e) = fs_err::remove_dir(dir) {
                    tracing::debug!("could not remove an emptied directory: {e}");
                }
            }
        }
    }
}

impl Journal {
    /// Reads a transaction's journal: `None` when it has none (it was
    /// interrupted before its commit began). A journal of a newer format is
    /// an error, never guessed at.
    pub(crate) fn read(transaction: &Path) -> Result<Option<Journal>, Error> {
        let path = transaction.join(JOURNAL);
        let bytes = match fs_err::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let journal = serde_json::from_slice::<Journal>(&bytes).map_err(|e| Error::Journal {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if journal.version != JOURNAL_VERSION {
            return Err(Error::Journal {
                path,
                reason: format!(
                    "it is in journal format {}, this keel knows format {JOURNAL_VERSION}; recover with the keel that wrote it",
                    journal.version
                ),
            });
        }
        Ok(Some(journal))
    }
}

/// Whether a `.keel/` entry is a transaction directory (for `keel verify`).
pub(crate) fn is_transaction(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(TRANSACTION_PREFIX))
}

/// Removes a finished transaction: renamed out of the way first, then deleted.
pub(crate) fn discard(env: &Environment, transaction: &Path) -> Result<(), Error> {
    let name = transaction
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("tx");
    let trash = env
        .keel_dir()
        .join(name.replacen(TRANSACTION_PREFIX, TRASH_PREFIX, 1));
    fault::mutation();
    fs_err::rename(transaction, &trash)?;
    fs_err::remove_dir_all(&trash)?;
    Ok(())
}

/// What recovery did with one interrupted transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Interrupted before its commit record: every move undone.
    RolledBack {
        /// The transaction directory.
        transaction: PathBuf,
        /// What it would have installed and removed.
        summary: String,
        /// How many moves had happened and were undone.
        moves_undone: usize,
    },
    /// Interrupted after its commit record: its clean-up finished.
    Completed {
        /// The transaction directory.
        transaction: PathBuf,
        /// What it installed and removed.
        summary: String,
    },
    /// Interrupted while staging, before any change: its staging removed.
    Discarded {
        /// The transaction directory.
        transaction: PathBuf,
    },
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recovery::RolledBack {
                summary,
                moves_undone,
                ..
            } => write!(
                f,
                "rolled back an interrupted transaction ({summary}; {moves_undone} move(s) undone)"
            ),
            Recovery::Completed { summary, .. } => {
                write!(
                    f,
                    "finished an interrupted transaction that had committed ({summary})"
                )
            }
            Recovery::Discarded { .. } => {
                write!(f, "removed the staging of an interrupted transaction")
            }
        }
    }
}

/// The transactions left in `.keel/` by processes that died: `tx-*` with
/// their state, `trash-*` to delete. Call with the environment lock held.
pub(crate) fn interrupted(env: &Environment) -> Result<Vec<PathBuf>, Error> {
    let mut found = Vec::new();
    let dir = env.keel_dir();
    let entries = match fs_err::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if (name.starts_with(TRANSACTION_PREFIX) || name.starts_with(TRASH_PREFIX))
            && entry.file_type()?.is_dir()
        {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// Finishes or undoes every interrupted transaction of the environment.
/// Call with the environment lock held.
pub(crate) fn recover(env: &Environment) -> Result<Vec<Recovery>, Error> {
    let mut done = Vec::new();
    for transaction in interrupted(env)? {
        let name = transaction
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with(TRASH_PREFIX) {
            fs_err::remove_dir_all(&transaction)?;
            continue;
        }
        let journal = Journal::read(&transaction)?;
        let recovery = match journal {
            None => Recovery::Discarded {
                transaction: transaction.clone(),
            },
            Some(journal) if transaction.join(COMMITTED).exists() => {
                journal.prune_empty_dirs();
                Recovery::Completed {
                    transaction: transaction.clone(),
                    summary: journal.summary.clone(),
                }
            }
            Some(journal) => {
                let Rollback {
                    undone: moves_undone,
                    failures,
                } = journal.roll_back();
                if failures > 0 {
                    return Err(Error::RecoveryFailed {
                        transaction,
                        failures,
                    });
                }
                // Undone moves renamed back into their sources' directories.
                let restored: BTreeSet<&Path> = journal
                    .moves
                    .iter()
                    .filter_map(|m| m.from.parent())
                    .collect();
                for dir in restored {
                    fsync_dir(dir).ok();
                }
                Recovery::RolledBack {
                    transaction: transaction.clone(),
                    summary: journal.summary.clone(),
                    moves_undone,
                }
            }
        };
        discard(env, &transaction)?;
        done.push(recovery);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeEnv {
        _dir: tempfile::TempDir,
        env: Environment,
    }

    fn fake_env() -> FakeEnv {
        let dir = tempfile::tempdir().expect("tempdir");
        fs_err::write(dir.path().join("pyvenv.cfg"), "version = 3.11.7\n").expect("cfg");
        fs_err::create_dir_all(dir.path().join("lib/python3.11/site-packages")).expect("site");
        let env = Environment::open(dir.path()).expect("env");
        FakeEnv { _dir: dir, env }
    }

    /// An interrupted transaction of `env`: the old `mod.py` moved to the
    /// backup (done), the new one staged and moved into place (done if
    /// `moved_in`); `committed` as given.
    fn interrupted_upgrade(env: &Environment, moved_in: bool, committed: bool) -> PathBuf {
        let tx = env.ensure_keel_dir().expect("keel dir").join("tx-test");
        for dir in ["staging", "backup"] {
            fs_err::create_dir_all(tx.join(dir)).expect("tx dirs");
        }
        let installed = env.site_packages().join("mod.py");
        let backup = tx.join("backup/mod.py");
        let staged = tx.join("staging/mod.py");
        fs_err::write(&backup, b"old").expect("old");
        let journal = Journal {
            moves: vec![
                Move {
                    from: installed.clone(),
                    to: backup,
                },
                Move {
                    from: staged.clone(),
                    to: installed.clone(),
                },
            ],
            summary: "+mod==2 -mod==1".into(),
            ..Journal::default()
        };
        let emptied = env.site_packages().join("gone_pkg");
        fs_err::create_dir(&emptied).expect("emptied dir");
        let journal = Journal {
            prune: [emptied].into_iter().collect(),
            ..journal
        };
        fs_err::write(if moved_in { &installed } else { &staged }, b"new").expect("new");
        fs_err::write(
            tx.join(JOURNAL),
            serde_json::to_vec(&journal).expect("json"),
        )
        .expect("j");
        if committed {
            fs_err::write(tx.join(COMMITTED), b"").expect("committed");
        }
        tx
    }

    fn installed_content(env: &Environment) -> Option<Vec<u8>> {
        fs_err::read(env.site_packages().join("mod.py")).ok()
    }

    #[test]
    fn an_uncommitted_transaction_is_rolled_back_whatever_moves_had_happened() {
        for moved_in in [false, true] {
            let fake = fake_env();
            let tx = interrupted_upgrade(&fake.env, moved_in, false);
            let recovered = recover(&fake.env).expect("recover");
            assert_eq!(installed_content(&fake.env).as_deref(), Some(&b"old"[..]));
            assert!(
                matches!(&recovered[..], [Recovery::RolledBack { moves_undone, .. }]
                    if *moves_undone == if moved_in { 2 } else { 1 }),
                "{recovered:?}"
            );
            assert!(!tx.exists(), "the transaction directory is removed");
            // Nothing was committed: directories are not pruned.
            assert!(fake.env.site_packages().join("gone_pkg").exists());
        }
    }

    #[test]
    fn a_committed_transaction_is_finished_not_undone() {
        let fake = fake_env();
        let tx = interrupted_upgrade(&fake.env, true, true);
        let recovered = recover(&fake.env).expect("recover");
        assert_eq!(installed_content(&fake.env).as_deref(), Some(&b"new"[..]));
        assert!(
            matches!(&recovered[..], [Recovery::Completed { summary, .. }] if summary == "+mod==2 -mod==1")
        );
        assert!(!tx.exists());
        assert!(
            !fake.env.site_packages().join("gone_pkg").exists(),
            "emptied directories pruned"
        );
    }

    #[test]
    fn a_transaction_without_journal_had_changed_nothing_and_is_discarded() {
        let fake = fake_env();
        let tx = fake
            .env
            .ensure_keel_dir()
            .expect("keel")
            .join("tx-staging-only");
        fs_err::create_dir_all(tx.join("staging/pkg")).expect("staging");
        let trash = fake.env.keel_dir().join("trash-half-deleted");
        fs_err::create_dir_all(trash.join("x")).expect("trash");
        let recovered = recover(&fake.env).expect("recover");
        assert!(
            matches!(&recovered[..], [Recovery::Discarded { .. }]),
            "{recovered:?}"
        );
        assert!(!tx.exists() && !trash.exists());
    }

    #[test]
    fn a_journal_of_an_unknown_format_is_refused_and_an_unversioned_one_read_as_version_1() {
        let fake = fake_env();
        let tx = interrupted_upgrade(&fake.env, true, false);
        let path = tx.join(JOURNAL);
        let mut value: serde_json::Value =
            serde_json::from_slice(&fs_err::read(&path).expect("read")).expect("json");
        value["version"] = 2.into();
        fs_err::write(&path, value.to_string()).expect("write");
        let error = recover(&fake.env).expect_err("format 2 is unknown");
        assert!(error.to_string().contains("journal format 2"), "{error}");
        assert!(tx.exists(), "an unknown journal is left alone");

        value.as_object_mut().expect("object").remove("version");
        fs_err::write(&path, value.to_string()).expect("write");
        let recovered = recover(&fake.env).expect("an unversioned journal is format 1");
        assert!(matches!(&recovered[..], [Recovery::RolledBack { .. }]));
        assert_eq!(installed_content(&fake.env).as_deref(), Some(&b"old"[..]));
    }

    #[test]
    fn a_written_journal_says_its_version() {
        let value = serde_json::to_value(Journal::default()).expect("json");
        assert_eq!(value["version"], JOURNAL_VERSION);
    }
}
