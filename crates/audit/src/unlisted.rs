//! The last steps: files that no RECORD lists, inside a distribution's
//! directories (unlisted) and directly in site-packages (unowned). Both are
//! judged against every RECORD, not only the audited ones.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use keel_venv::Environment;
use keel_wheel::FileProblem;

use crate::{Error, Modified};

/// What a walk of a distribution's directories finds that no RECORD
/// vouches for.
#[derive(Debug, Default)]
pub(crate) struct Unlisted {
    /// Directories (or entries) that cannot be listed: what they hold is not
    /// provably intact.
    pub(crate) unreadable: Vec<Modified>,
    /// Files that no RECORD lists, in walk order.
    pub(crate) files: Vec<PathBuf>,
}

impl Unlisted {
    /// Whether the walk found nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.unreadable.is_empty() && self.files.is_empty()
    }
}

/// Walks `roots` (a distribution's top-level entries of site-packages, by
/// name; a `symlinked` one is skipped, it is reported already) for files
/// neither `claimed` nor bytecode of a claimed source.
pub(crate) fn unlisted_files(
    env: &Environment,
    roots: &BTreeSet<PathBuf>,
    symlinked: &HashSet<PathBuf>,
    claimed: &HashSet<PathBuf>,
) -> Unlisted {
    let mut found = Unlisted::default();
    for root in roots {
        if symlinked.contains(root) {
            continue;
        }
        for entry in walkdir::WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name()
        {
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    found.unreadable.extend(unlistable(env, &error));
                    continue;
                }
            };
            let path = entry.path();
            // A directory (or one made a link: reported above) is no file.
            if entry.file_type().is_dir() || symlinked.contains(path) {
                continue;
            }
            if claimed.contains(path) || is_bytecode_of_claimed(path, claimed) {
                continue;
            }
            found.files.push(path.to_path_buf());
        }
    }
    found
}

/// The finding a walk error makes. Gone (a removed package directory,
/// whose files are reported missing): none, there is nothing to list. Any
/// other error hides what the directory holds: not provably intact.
fn unlistable(env: &Environment, error: &walkdir::Error) -> Option<Modified> {
    let gone = error
        .io_error()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound);
    match (gone, error.path()) {
        (false, Some(path)) => Some(Modified {
            path: env.record_spelling(path),
            reason: FileProblem::Unreadable,
        }),
        _ => None,
    }
}

/// The entries directly in site-packages that no RECORD claims: a file (or
/// symlink) not listed, a directory under which nothing is listed, a
/// `__pycache__` file that is not bytecode of a listed module. A
/// `.dist-info` directory is a distribution, reported as one (even without
/// RECORD); everything else that an installer leaves is listed in a RECORD
/// (*Recording installed projects § The RECORD file*), `.pth` files
/// included.
pub(crate) fn unowned_entries(
    env: &Environment,
    claimed: &HashSet<PathBuf>,
    owned_tops: &HashSet<PathBuf>,
) -> Result<Vec<PathBuf>, Error> {
    let site = env.site_packages();
    let mut unowned = Vec::new();
    for entry in fs_err::read_dir(site)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let is_dir = entry.file_type()?.is_dir();
        if is_dir && name == "__pycache__" {
            unowned_bytecode(env, path, claimed, &mut unowned)?;
            continue;
        }
        let is_distribution = is_dir && name.to_string_lossy().ends_with(".dist-info");
        // The environment's own files (virtualenv's `_virtualenv.pth`) are
        // no distribution's, and nobody's stray either.
        if !is_distribution && !owned_tops.contains(&path) && !env.is_own(&path) {
            unowned.push(path);
        }
    }
    unowned.sort();
    Ok(unowned)
}

/// Adds to `unowned` the files of site-packages' own `__pycache__` that are
/// not bytecode of a claimed top-level module (or the directory itself,
/// when it cannot be listed).
fn unowned_bytecode(
    env: &Environment,
    pycache: PathBuf,
    claimed: &HashSet<PathBuf>,
    unowned: &mut Vec<PathBuf>,
) -> Result<(), Error> {
    // Bytecode of top-level modules is theirs; the rest is nobody's.
    match fs_err::read_dir(&pycache) {
        Ok(files) => {
            for file in files {
                let file = file?.path();
                if !claimed.contains(&file)
                    && !is_bytecode_of_claimed(&file, claimed)
                    && !env.is_own(&file)
                {
                    unowned.push(file);
                }
            }
        }
        // What cannot be listed cannot be shown to be bytecode.
        Err(_) => unowned.push(pycache),
    }
    Ok(())
}

/// `pkg/__pycache__/mod.cpython-311.pyc` (or `.opt-1.pyc`) of a claimed
/// `pkg/mod.py`: Python writes these at import time. The name must have the
/// shape Python gives it ([`keel_venv::bytecode`]); anything else in
/// `__pycache__` is a file no RECORD lists.
fn is_bytecode_of_claimed(path: &Path, claimed: &HashSet<PathBuf>) -> bool {
    keel_venv::bytecode::source_of(path).is_some_and(|source| claimed.contains(&source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytecode_of_a_listed_source_is_not_unlisted() {
        let claimed: HashSet<PathBuf> = [PathBuf::from("/s/pkg/mod.py")].into_iter().collect();
        assert!(is_bytecode_of_claimed(
            Path::new("/s/pkg/__pycache__/mod.cpython-311.pyc"),
            &claimed
        ));
        assert!(is_bytecode_of_claimed(
            Path::new("/s/pkg/__pycache__/mod.cpython-311.opt-2.pyc"),
            &claimed
        ));
        assert!(!is_bytecode_of_claimed(
            Path::new("/s/pkg/__pycache__/other.cpython-311.pyc"),
            &claimed
        ));
        assert!(!is_bytecode_of_claimed(
            Path::new("/s/pkg/mod.pyc"),
            &claimed
        ));
    }

    fn touch(path: &Path) {
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(path, "").unwrap();
    }

    fn fake_site() -> (tempfile::TempDir, Environment) {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("pyvenv.cfg"), "version = 3.11.7\n").unwrap();
        fs_err::create_dir_all(dir.path().join("lib/python3.11/site-packages")).unwrap();
        let env = Environment::open(dir.path()).unwrap();
        (dir, env)
    }

    #[test]
    fn a_walk_lists_what_no_record_claims_in_name_order() {
        let (_dir, env) = fake_site();
        let site = env.site_packages();
        for file in [
            "pkg/__init__.py",
            "pkg/z_extra.py",
            "pkg/__pycache__/__init__.cpython-311.pyc",
            "pkg/__pycache__/__init__.cpython-311.evil.pyc",
            "pkg/sub/a_extra.txt",
            "linked/x.py",
        ] {
            touch(&site.join(file));
        }
        let claimed = HashSet::from([site.join("pkg/__init__.py")]);
        let symlinked = HashSet::from([site.join("linked")]);
        // A root that is gone has nothing to list.
        let roots = BTreeSet::from([site.join("pkg"), site.join("linked"), site.join("gone")]);
        let found = unlisted_files(&env, &roots, &symlinked, &claimed);
        assert!(found.unreadable.is_empty());
        assert_eq!(
            found.files,
            [
                site.join("pkg/__pycache__/__init__.cpython-311.evil.pyc"),
                site.join("pkg/sub/a_extra.txt"),
                site.join("pkg/z_extra.py"),
            ]
        );
        assert!(!found.is_empty());
    }

    #[test]
    fn unowned_entries_are_top_level_entries_and_stray_bytecode() {
        let (_dir, env) = fake_site();
        let site = env.site_packages();
        for file in [
            "six.py",
            "__pycache__/six.cpython-311.pyc",
            "__pycache__/seven.cpython-311.pyc",
            "pkg/__init__.py",
            "nobody/__init__.py",
            "evil.pth",
            "a-1.0.dist-info/METADATA",
            "b-1.0.dist-info/METADATA",
        ] {
            touch(&site.join(file));
        }
        let claimed = HashSet::from([
            site.join("six.py"),
            site.join("pkg/__init__.py"),
            site.join("a-1.0.dist-info/RECORD"),
        ]);
        let owned_tops = HashSet::from([
            site.join("six.py"),
            site.join("pkg"),
            site.join("a-1.0.dist-info"),
        ]);
        assert_eq!(
            unowned_entries(&env, &claimed, &owned_tops).unwrap(),
            [
                site.join("__pycache__/seven.cpython-311.pyc"),
                site.join("evil.pth"),
                site.join("nobody"),
            ]
        );
    }
}
