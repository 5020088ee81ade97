//! The move planner: which renames put a transaction in place.
//!
//! The planner walks the staged trees and the environment *without changing
//! anything*, and writes down every rename: files of replaced or removed
//! distributions into the transaction's backup area, then staged trees into
//! place (package directories first, `.dist-info` last, so a distribution is
//! only visible once its files are). The result is a [`Journal`], which
//! [`Journal::commit`] carries out.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use keel_venv::{Environment, InstalledDistribution};

use crate::Error;
use crate::journal::{Journal, Move};
use crate::report::Takeover;

/// Whether the directory `dir` holds nothing but files of `leaving` and
/// directories that do (memoized in `covered`). Symlinks are entries like
/// files: one counts only if it is itself in `leaving`.
fn holds_only(
    dir: &Path,
    leaving: &HashSet<PathBuf>,
    covered: &mut HashMap<PathBuf, bool>,
) -> Result<bool, Error> {
    if let Some(known) = covered.get(dir) {
        return Ok(*known);
    }
    let mut only = true;
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let is_dir = entry.file_type()?.is_dir();
        if !(leaving.contains(&path) || is_dir && holds_only(&path, leaving, covered)?) {
            only = false;
            break;
        }
    }
    covered.insert(dir.to_path_buf(), only);
    Ok(only)
}

/// Plans the renames of one transaction, changing nothing: see the module
/// documentation.
pub(crate) struct MovePlanner<'a> {
    env: &'a Environment,
    backup: PathBuf,
    journal: Journal,
    /// Environment paths the plan moves out (files, and whole `.dist-info`s).
    gone: HashSet<PathBuf>,
    /// Environment directories the plan moves in, and the staged directory
    /// each comes from.
    appearing: HashMap<PathBuf, PathBuf>,
    /// `.dist-info` directories of the distributions being replaced or removed.
    leaving: HashSet<PathBuf>,
    /// Owner of every file of every installed distribution that stays;
    /// read only when an install meets an existing file.
    owners: Option<HashMap<PathBuf, String>>,
    force: bool,
    /// Directories known to be (or not be) symlinks.
    symlinked: HashMap<PathBuf, bool>,
    /// The new distribution being installed (for conflict messages).
    pub current: String,
    takeovers: Vec<Takeover>,
}

impl<'a> MovePlanner<'a> {
    pub(crate) fn new(
        env: &'a Environment,
        backup: PathBuf,
        leaving: &[InstalledDistribution],
        force: bool,
    ) -> Self {
        MovePlanner {
            env,
            backup,
            journal: Journal::default(),
            gone: HashSet::new(),
            appearing: HashMap::new(),
            leaving: leaving.iter().map(|d| d.dist_info.clone()).collect(),
            owners: None,
            force,
            symlinked: HashMap::new(),
            current: String::new(),
            takeovers: Vec::new(),
        }
    }

    pub(crate) fn finish(mut self, summary: String) -> (Journal, Vec<Takeover>) {
        self.journal.summary = summary;
        // Directories a removal may empty, up to (not including) the roots
        // of the scheme.
        let mut prune = BTreeSet::new();
        for dir in &self.journal.prune {
            for ancestor in dir.ancestors() {
                if self.is_scheme_boundary(ancestor) {
                    break;
                }
                prune.insert(ancestor.to_path_buf());
            }
        }
        self.journal.prune = prune;
        (self.journal, self.takeovers)
    }

    /// site-packages, bin, include, the environment root, the directories
    /// above them, and everything outside the environment: directories a
    /// removal never removes, however empty it leaves them.
    fn is_scheme_boundary(&self, dir: &Path) -> bool {
        self.env.site_packages().starts_with(dir)
            || self.env.scripts_dir().starts_with(dir)
            || dir == self.env.root().join("include")
            || !dir.starts_with(self.env.root())
    }

    fn plan_move(&mut self, from: &Path, to: &Path) {
        self.journal.moves.push(Move {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
        });
    }

    /// Plans moving an environment path into the backup area (same relative path).
    fn back_up(&mut self, path: &Path) -> Result<(), Error> {
        let relative = path.strip_prefix(self.env.root()).unwrap_or(path);
        let target = self.backup.join(relative);
        if let Some(parent) = target.parent() {
            // Inside the transaction's own directory: not a change to the environment.
            fs_err::create_dir_all(parent)?;
        }
        self.plan_move(path, &target);
        self.gone.insert(path.to_path_buf());
        if let Some(parent) = path.parent() {
            self.journal.prune.insert(parent.to_path_buf());
        }
        Ok(())
    }

    /// What an environment path will be when the moves planned so far are done.
    fn planned_metadata(&self, path: &Path) -> Option<std::fs::Metadata> {
        for ancestor in path.ancestors() {
            if let Some(staged) = self.appearing.get(ancestor) {
                let rest = path.strip_prefix(ancestor).unwrap_or(Path::new(""));
                return fs_err::symlink_metadata(staged.join(rest)).ok();
            }
            if self.gone.contains(ancestor) {
                return None;
            }
        }
        fs_err::symlink_metadata(path).ok()
    }

    /// Plans moving every file of an installed distribution (by its RECORD)
    /// into the backup area, with the `__pycache__` files of its `.py`
    /// files, then its `.dist-info`. A directory holding nothing but such
    /// files (a package directory of the distribution) moves in one rename:
    /// an upgrade of Django is a handful of renames, not thousands, and so
    /// is its journal and its `fsync`s.
    ///
    /// *Recording installed projects § Intentionally preventing changes*:
    /// paths outside the environment, and the environment's own files, are
    /// never touched, whatever RECORD says.
    ///
    /// A distribution without RECORD is refused, whether it is uninstalled,
    /// removed by `sync` or replaced by an upgrade: nothing says which
    /// files are its own, and removing only its `.dist-info` would leave
    /// its files behind, unowned, beside the new version's.
    pub(crate) fn remove_distribution(
        &mut self,
        dist: &InstalledDistribution,
    ) -> Result<(), Error> {
        match dist.record()? {
            None => {
                return Err(Error::NoRecord {
                    name: dist.name.clone(),
                    path: dist.record_path(),
                });
            }
            Some(rows) => {
                let mut leaving: Vec<PathBuf> = Vec::new();
                let mut seen = HashSet::new();
                for row in rows {
                    let path = dist.resolve(&row.path);
                    if !path.starts_with(self.env.root())
                        || self.env.is_own(&path)
                        || path == self.env.root()
                    {
                        tracing::warn!(
                            "not removing `{}` listed in the RECORD of {}: it is outside the environment or belongs to it",
                            row.path,
                            dist.name
                        );
                        continue;
                    }
                    if path.starts_with(&dist.dist_info) || !seen.insert(path.clone()) {
                        continue;
                    }
                    if let Some(owner) = self.owner_of(&path)? {
                        tracing::warn!(
                            "keeping `{}`: the RECORD of {owner} lists it too",
                            path.display()
                        );
                        continue;
                    }
                    if self.is_removable_file(&path) {
                        if path.extension().is_some_and(|e| e == "py") {
                            leaving.extend(self.bytecode_of(&path)?);
                        }
                        leaving.push(path);
                    }
                }
                let leaving: HashSet<PathBuf> = leaving.into_iter().collect();
                for dir in self.whole_directories(&leaving)? {
                    self.back_up(&dir)?;
                }
                let mut files: Vec<&PathBuf> = leaving.iter().collect();
                files.sort();
                for path in files {
                    if !self.is_gone(path) {
                        self.back_up(path)?;
                    }
                }
            }
        }
        if dist.dist_info.exists() {
            self.back_up(&dist.dist_info)?;
        }
        Ok(())
    }

    /// Whether `path` is a file (or symlink) the plan may move out: not
    /// moved already, not a directory, not reached through a symlink.
    fn is_removable_file(&mut self, path: &Path) -> bool {
        if self.is_gone(path) {
            return false;
        }
        if self.through_symlink(path) {
            tracing::warn!(
                "not removing `{}`: a directory on its path is a symlink, which keel never follows",
                path.display()
            );
            return false;
        }
        fs_err::symlink_metadata(path).is_ok_and(|metadata| !metadata.is_dir())
    }

    /// Whether the plan already moves `path` or a directory above it out.
    fn is_gone(&self, path: &Path) -> bool {
        path.ancestors().any(|a| self.gone.contains(a))
    }

    /// The topmost directories that hold nothing but `leaving` files (and
    /// directories of such files), below the scheme's roots: those move
    /// whole. A directory with anything else in it (another distribution's
    /// file, a file no RECORD lists, a symlink to a directory) does not.
    fn whole_directories(&mut self, leaving: &HashSet<PathBuf>) -> Result<Vec<PathBuf>, Error> {
        let mut candidates: BTreeSet<&Path> = BTreeSet::new();
        for path in leaving {
            for dir in path.ancestors().skip(1) {
                if self.is_scheme_boundary(dir) || !candidates.insert(dir) {
                    break;
                }
            }
        }
        let mut covered: HashMap<PathBuf, bool> = HashMap::new();
        let mut whole: Vec<PathBuf> = Vec::new();
        // Shallowest first, so that a directory inside a chosen one is skipped.
        let mut by_depth: Vec<&Path> = candidates.into_iter().collect();
        by_depth.sort_by_key(|dir| dir.components().count());
        for dir in by_depth {
            if whole.iter().any(|chosen| dir.starts_with(chosen))
                || self.env.is_own(dir)
                || self.through_symlink(dir)
                || self.is_gone(dir)
            {
                continue;
            }
            if holds_only(dir, leaving, &mut covered)? {
                whole.push(dir.to_path_buf());
            }
        }
        Ok(whole)
    }

    /// The bytecode of a removed `.py` in its `__pycache__`, of every cache
    /// tag and optimization level (the strict PEP 3147/488 names of
    /// [`keel_venv::bytecode`]).
    fn bytecode_of(&mut self, source: &Path) -> Result<Vec<PathBuf>, Error> {
        let (Some(dir), Some(stem)) =
            (source.parent(), source.file_stem().and_then(|s| s.to_str()))
        else {
            return Ok(Vec::new());
        };
        let cache = dir.join("__pycache__");
        let Ok(entries) = fs_err::read_dir(&cache) else {
            return Ok(Vec::new());
        };
        let mut compiled = Vec::new();
        for entry in entries {
            let name = entry?.file_name();
            if let Some(name) = name.to_str()
                && keel_venv::bytecode::is_bytecode_of(name, stem)
            {
                let path = cache.join(name);
                if self.is_removable_file(&path) {
                    compiled.push(path);
                }
            }
        }
        Ok(compiled)
    }

    /// Whether a directory between the environment root and `path` is a
    /// symlink (a RECORD path through it could reach outside). Memoized.
    fn through_symlink(&mut self, path: &Path) -> bool {
        let Ok(relative) = path.strip_prefix(self.env.root()) else {
            return true;
        };
        let mut dir = self.env.root().to_path_buf();
        let parents = relative
            .parent()
            .map(|p| p.components().count())
            .unwrap_or(0);
        for component in relative.components().take(parents) {
            dir.push(component);
            let is_link = *self.symlinked.entry(dir.clone()).or_insert_with(|| {
                fs_err::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink())
            });
            if is_link {
                return true;
            }
        }
        false
    }

    /// Plans renaming a staged tree (laid out like the environment) into
    /// place. Where the environment has no such directory the whole subtree
    /// moves in one rename; where it has one, entries are merged one by one.
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
        match self.planned_metadata(to) {
            None => {
                self.plan_move(from, to);
                if from_is_dir {
                    self.appearing.insert(to.to_path_buf(), from.to_path_buf());
                }
                Ok(())
            }
            Some(existing) if existing.is_dir() && from_is_dir => self.install_tree(from, to, last),
            Some(existing) if existing.is_dir() => Err(Error::Conflict {
                path: to.to_path_buf(),
                reason: "a directory is in the way of a file",
            }),
            Some(_) => {
                // A file (or a symlink: never written through) that no
                // replaced distribution owns.
                if let Some(owner) = self.owner_of(to)? {
                    if !self.force {
                        return Err(Error::FileOwned {
                            path: to.to_path_buf(),
                            owner,
                            installing: self.current.clone(),
                        });
                    }
                    self.takeovers.push(Takeover {
                        path: to.to_path_buf(),
                        owner,
                    });
                } else {
                    tracing::debug!("replacing `{}`, which no distribution owns", to.display());
                }
                self.back_up(to)?;
                self.plan_move(from, to);
                Ok(())
            }
        }
    }

    fn owner_of(&mut self, path: &Path) -> Result<Option<String>, Error> {
        if self.owners.is_none() {
            let mut owners = HashMap::new();
            for dist in keel_venv::InstalledIndex::read(self.env)?.iter() {
                if self.leaving.contains(&dist.dist_info) {
                    continue;
                }
                for row in dist.record()?.unwrap_or_default() {
                    owners.insert(
                        dist.resolve(&row.path),
                        format!("{} {}", dist.name, dist.version),
                    );
                }
            }
            self.owners = Some(owners);
        }
        Ok(self.owners.as_ref().and_then(|o| o.get(path).cloned()))
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use keel_venv::{Environment, InstalledDistribution, InstalledIndex};
    use keel_wheel::PackageName;

    use super::*;

    /// A directory laid out like a venv, with distributions installed by
    /// hand: each file written and listed in its RECORD.
    struct FakeEnv {
        dir: tempfile::TempDir,
        env: Environment,
    }

    impl FakeEnv {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            fs_err::write(dir.path().join("pyvenv.cfg"), "version = 3.11.7\n").expect("cfg");
            fs_err::create_dir_all(dir.path().join("lib/python3.11/site-packages")).expect("site");
            fs_err::create_dir_all(dir.path().join("bin")).expect("bin");
            let env = Environment::open(dir.path()).expect("env");
            FakeEnv { dir, env }
        }

        fn site(&self, relative: &str) -> PathBuf {
            self.env.site_packages().join(relative)
        }

        fn write(&self, path: &Path) {
            fs_err::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs_err::write(path, b"x").expect("write");
        }

        /// Installs `name-version` owning `files` (RECORD spellings),
        /// writing each one that lies inside the environment.
        fn install(&self, name: &str, files: &[&str]) -> InstalledDistribution {
            let dist_info = self.site(&format!("{name}-1.0.dist-info"));
            fs_err::create_dir_all(&dist_info).expect("dist-info");
            let mut record = String::new();
            for file in files {
                let path = self.resolve(file);
                if path.starts_with(self.dir.path()) && !path.exists() {
                    self.write(&path);
                }
                record.push_str(&format!("{file},,\n"));
            }
            record.push_str(&format!("{name}-1.0.dist-info/RECORD,,\n"));
            fs_err::write(dist_info.join("RECORD"), record).expect("RECORD");
            self.dist(name)
        }

        fn resolve(&self, record_path: &str) -> PathBuf {
            InstalledDistribution {
                name: PackageName::new("x"),
                version: "1".parse().expect("v"),
                dist_info: self.site("x-1.dist-info"),
            }
            .resolve(record_path)
        }

        fn dist(&self, name: &str) -> InstalledDistribution {
            let index = InstalledIndex::read(&self.env).expect("index");
            index.get(&PackageName::new(name))[0].clone()
        }

        fn planner(&self, leaving: &[InstalledDistribution], force: bool) -> MovePlanner<'_> {
            let backup = self.dir.path().join(".keel/tx-test/backup");
            MovePlanner::new(&self.env, backup, leaving, force)
        }

        /// A staged tree shaped like site-packages holding `files`.
        fn staged(&self, files: &[&str]) -> PathBuf {
            let root = self.dir.path().join(".keel/tx-test/staging/0-new");
            for file in files {
                self.write(&root.join(file));
            }
            root
        }
    }

    fn moved_out(journal: &Journal, env: &FakeEnv) -> Vec<String> {
        journal
            .moves
            .iter()
            .filter(|m| m.to.to_string_lossy().contains("/backup/"))
            .map(|m| env.env.record_spelling(&m.from))
            .collect()
    }

    #[test]
    fn a_package_directory_holding_only_the_leaving_files_moves_in_one_rename() {
        let env = FakeEnv::new();
        let dist = env.install("pkg", &["pkg/__init__.py", "pkg/sub/a.py", "pkg/sub/b.py"]);
        let mut planner = env.planner(std::slice::from_ref(&dist), false);
        planner.remove_distribution(&dist).expect("plan");
        let (journal, _) = planner.finish(String::new());
        assert_eq!(moved_out(&journal, &env), ["pkg", "pkg-1.0.dist-info"]);
    }

    #[test]
    fn a_directory_shared_with_another_file_moves_file_by_file() {
        let env = FakeEnv::new();
        let dist = env.install("pkg", &["pkg/__init__.py", "pkg/a.py"]);
        env.write(&env.site("pkg/stranger.py"));
        let mut planner = env.planner(std::slice::from_ref(&dist), false);
        planner.remove_distribution(&dist).expect("plan");
        let (journal, _) = planner.finish(String::new());
        assert_eq!(
            moved_out(&journal, &env),
            ["pkg/__init__.py", "pkg/a.py", "pkg-1.0.dist-info"]
        );
        assert!(journal.prune.contains(&env.site("pkg")));
    }

    #[test]
    fn the_environments_own_files_are_never_removed_whatever_record_says() {
        let env = FakeEnv::new();
        env.write(&env.dir.path().join("bin/python"));
        let dist = env.install(
            "evil",
            &[
                "evil.py",
                "../../../pyvenv.cfg",
                "../../../bin/python",
                "/etc/passwd",
            ],
        );
        let mut planner = env.planner(std::slice::from_ref(&dist), false);
        planner.remove_distribution(&dist).expect("plan");
        let (journal, _) = planner.finish(String::new());
        assert_eq!(moved_out(&journal, &env), ["evil.py", "evil-1.0.dist-info"]);
    }

    #[test]
    fn python_named_bytecode_of_a_removed_module_goes_and_nothing_else() {
        let env = FakeEnv::new();
        let dist = env.install("pkg", &["pkg/mod.py", "pkg/keep.txt"]);
        env.write(&env.site("other.txt"));
        for name in [
            "mod.cpython-311.pyc",
            "mod.cpython-313.opt-2.pyc",
            "mod.cpython-311.evil.pyc",
            "other.cpython-311.pyc",
        ] {
            env.write(&env.site(&format!("pkg/__pycache__/{name}")));
        }
        let mut planner = env.planner(std::slice::from_ref(&dist), false);
        planner.remove_distribution(&dist).expect("plan");
        let (journal, _) = planner.finish(String::new());
        assert_eq!(
            moved_out(&journal, &env),
            [
                "pkg/__pycache__/mod.cpython-311.pyc",
                "pkg/__pycache__/mod.cpython-313.opt-2.pyc",
                "pkg/keep.txt",
                "pkg/mod.py",
                "pkg-1.0.dist-info"
            ]
        );
    }

    #[test]
    fn a_distribution_without_record_is_refused() {
        let env = FakeEnv::new();
        let dist = env.install("old", &["old.py"]);
        fs_err::remove_file(dist.record_path()).expect("rm RECORD");
        let mut planner = env.planner(std::slice::from_ref(&dist), false);
        let error = planner.remove_distribution(&dist).expect_err("no RECORD");
        assert!(matches!(error, Error::NoRecord { .. }), "{error}");
    }

    #[test]
    fn a_new_tree_moves_whole_where_the_environment_lacks_it_and_merges_where_it_has_it() {
        let env = FakeEnv::new();
        env.write(&env.site("shared_ns/existing.py"));
        let staged = env.staged(&[
            "newpkg/a.py",
            "newpkg/b.py",
            "shared_ns/new.py",
            "new-1.0.dist-info/RECORD",
        ]);
        let mut planner = env.planner(&[], false);
        let mut last = Vec::new();
        planner
            .install_tree(&staged, env.env.site_packages(), &mut last)
            .expect("plan");
        let (journal, _) = planner.finish(String::new());
        let targets: Vec<String> = journal
            .moves
            .iter()
            .map(|m| env.env.record_spelling(&m.to))
            .collect();
        assert_eq!(targets, ["newpkg", "shared_ns/new.py"]);
        // `.dist-info` directories are held back, to move last.
        assert_eq!(last.len(), 1);
        assert!(last[0].1.ends_with("new-1.0.dist-info"));
    }

    #[test]
    fn a_file_another_distribution_owns_is_a_conflict_unless_forced() {
        let env = FakeEnv::new();
        env.install("owner", &["shared.py"]);
        let staged = env.staged(&["shared.py"]);
        let mut planner = env.planner(&[], false);
        planner.current = "newcomer 1.0".into();
        let error = planner
            .install_tree(&staged, env.env.site_packages(), &mut Vec::new())
            .expect_err("owned by another distribution");
        assert!(
            matches!(&error, Error::FileOwned { owner, .. } if owner == "owner 1.0"),
            "{error}"
        );

        let mut forced = env.planner(&[], true);
        forced
            .install_tree(&staged, env.env.site_packages(), &mut Vec::new())
            .expect("forced");
        let (journal, takeovers) = forced.finish(String::new());
        assert_eq!(takeovers.len(), 1);
        assert_eq!(takeovers[0].owner, "owner 1.0");
        // The old file goes to the backup first, then the new one moves in.
        assert_eq!(journal.moves.len(), 2);
        assert!(journal.moves[0].to.to_string_lossy().contains("/backup/"));
    }
}
