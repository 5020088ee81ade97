//! The commit: replaced versions are moved into the transaction's backup
//! area, then the staged trees are renamed into place (package directories
//! first, `.dist-info` last, so that a distribution is only visible once its
//! files are). Every step is recorded so that an error undoes them all.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use keel_venv::{Environment, InstalledDistribution};

use crate::Error;

/// One step the commit took, in the order taken.
#[derive(Debug)]
enum Step {
    Moved { from: PathBuf, to: PathBuf },
    RemovedDir(PathBuf),
}

/// The moves of one transaction, undone in reverse order on failure.
pub(crate) struct Commit<'a> {
    env: &'a Environment,
    backup: PathBuf,
    steps: Vec<Step>,
}

impl<'a> Commit<'a> {
    pub(crate) fn new(env: &'a Environment, backup: PathBuf) -> Self {
        Commit {
            env,
            backup,
            steps: Vec::new(),
        }
    }

    fn rename(&mut self, from: &Path, to: &Path) -> Result<(), Error> {
        fs_err::rename(from, to)?;
        self.steps.push(Step::Moved {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
        });
        Ok(())
    }

    /// Moves an environment path into the backup area, keeping its relative path.
    fn back_up(&mut self, path: &Path) -> Result<(), Error> {
        let relative = path.strip_prefix(self.env.root()).unwrap_or(path);
        let target = self.backup.join(relative);
        if let Some(parent) = target.parent() {
            fs_err::create_dir_all(parent)?;
        }
        self.rename(path, &target)
    }

    /// Moves every file of an installed distribution (by its RECORD) into the
    /// backup area, with the `__pycache__` files of its `.py` files, then its
    /// `.dist-info`, then removes the directories this left empty.
    ///
    /// *Recording installed projects § Intentionally preventing changes*:
    /// paths that resolve outside the environment are never touched,
    /// whatever RECORD says.
    pub(crate) fn remove_distribution(
        &mut self,
        dist: &InstalledDistribution,
    ) -> Result<(), Error> {
        let keel_dir = self.env.keel_dir();
        let mut emptied: BTreeSet<PathBuf> = BTreeSet::new();
        match dist.record()? {
            None => tracing::warn!(
                "{} {} has no RECORD; only its .dist-info is removed, other files of it may remain",
                dist.name,
                dist.version
            ),
            Some(rows) => {
                for row in rows {
                    let path = dist.resolve(&row.path);
                    if !path.starts_with(self.env.root())
                        || path.starts_with(&keel_dir)
                        || path == self.env.root()
                    {
                        tracing::warn!(
                            "not removing `{}` listed in the RECORD of {}: it is outside the environment",
                            row.path,
                            dist.name
                        );
                        continue;
                    }
                    if path.starts_with(&dist.dist_info) {
                        continue;
                    }
                    self.back_up_file(&path, &mut emptied)?;
                    if path.extension().is_some_and(|e| e == "py") {
                        self.back_up_bytecode(&path, &mut emptied)?;
                    }
                }
            }
        }
        if dist.dist_info.exists() {
            self.back_up(&dist.dist_info)?;
        }
        self.remove_empty_dirs(emptied)
    }

    fn back_up_file(&mut self, path: &Path, emptied: &mut BTreeSet<PathBuf>) -> Result<(), Error> {
        match fs_err::symlink_metadata(path) {
            Ok(metadata) if !metadata.is_dir() => {
                self.back_up(path)?;
                if let Some(parent) = path.parent() {
                    emptied.insert(parent.to_path_buf());
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// `__pycache__/<stem>.<tag>.pyc` and `.opt-N.pyc` for a removed `.py`
    /// (PEP 3147 and PEP 488 names).
    fn back_up_bytecode(
        &mut self,
        source: &Path,
        emptied: &mut BTreeSet<PathBuf>,
    ) -> Result<(), Error> {
        let (Some(dir), Some(stem)) =
            (source.parent(), source.file_stem().and_then(|s| s.to_str()))
        else {
            return Ok(());
        };
        let cache = dir.join("__pycache__");
        let Ok(entries) = fs_err::read_dir(&cache) else {
            return Ok(());
        };
        let prefix = format!("{stem}.");
        let mut compiled = Vec::new();
        for entry in entries {
            let name = entry?.file_name();
            if let Some(name) = name.to_str()
                && name.starts_with(&prefix)
                && name.ends_with(".pyc")
                && name[prefix.len()..name.len() - 4].split('.').count() <= 2
            {
                compiled.push(cache.join(name));
            }
        }
        for path in compiled {
            self.back_up_file(&path, emptied)?;
        }
        Ok(())
    }

    /// Removes directories left empty, deepest first, never a scheme root.
    fn remove_empty_dirs(&mut self, mut candidates: BTreeSet<PathBuf>) -> Result<(), Error> {
        let roots: BTreeSet<PathBuf> = self.env.scheme_dirs().into_iter().collect();
        while let Some(dir) = candidates.pop_last() {
            if roots.contains(&dir) || !dir.starts_with(self.env.root()) {
                continue;
            }
            let is_empty = fs_err::read_dir(&dir)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if is_empty {
                fs_err::remove_dir(&dir)?;
                self.steps.push(Step::RemovedDir(dir.clone()));
                if let Some(parent) = dir.parent() {
                    candidates.insert(parent.to_path_buf());
                }
            }
        }
        Ok(())
    }

    /// Renames a staged tree (laid out like the environment) into place.
    /// Where the environment has no such directory the whole subtree moves
    /// in one rename; where it has one, its entries are merged one by one.
    /// `.dist-info` directories are collected in `last` instead.
    pub(crate) fn install_tree(
        &mut self,
        staged: &Path,
        target: &Path,
        last: &mut Vec<(PathBuf, PathBuf)>,
    ) -> Result<(), Error> {
        let mut entries: Vec<_> = fs_err::read_dir(staged)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let from = entry.path();
            let to = target.join(entry.file_name());
            if target == self.env.site_packages()
                && entry.file_name().to_string_lossy().ends_with(".dist-info")
            {
                last.push((from, to));
                continue;
            }
            self.place(&from, &to, entry.file_type()?.is_dir(), last)?;
        }
        Ok(())
    }

    pub(crate) fn place(
        &mut self,
        from: &Path,
        to: &Path,
        from_is_dir: bool,
        last: &mut Vec<(PathBuf, PathBuf)>,
    ) -> Result<(), Error> {
        match fs_err::symlink_metadata(to) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.rename(from, to),
            Err(e) => Err(e.into()),
            Ok(existing) if existing.is_dir() && from_is_dir => self.install_tree(from, to, last),
            Ok(existing) if existing.is_dir() => Err(Error::Conflict {
                path: to.to_path_buf(),
                reason: "a directory is in the way of a file".into(),
            }),
            Ok(_) => {
                // A file (or a symlink, which is never written through) that no
                // replaced distribution owned: keep it in the backup, install ours.
                tracing::debug!("replacing unowned `{}`", to.display());
                self.back_up(to)?;
                self.rename(from, to)
            }
        }
    }

    /// Undoes every step, newest first. Returns how many could not be undone.
    pub(crate) fn roll_back(&mut self) -> usize {
        let mut failures = 0;
        while let Some(step) = self.steps.pop() {
            let result = match &step {
                Step::Moved { from, to } => fs_err::rename(to, from),
                Step::RemovedDir(dir) => fs_err::create_dir(dir),
            };
            if let Err(e) = result {
                tracing::error!("rollback failed to undo {step:?}: {e}");
                failures += 1;
            }
        }
        failures
    }
}
