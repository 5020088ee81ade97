//! The second step: every listed file against its RECORD row, hashed on
//! every core; none through a directory that has become a symbolic link.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use keel_venv::Environment;
use keel_wheel::{FileProblem, RecordHash};
use rayon::prelude::*;

use crate::Modified;
use crate::records::Check;

/// What is wrong with a listed file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Finding {
    /// Not there: the path as RECORD spells it.
    Missing(String),
    /// There, but not as RECORD says (or a symlinked directory above it).
    Modified(Modified),
}

/// The directories strictly inside `root` on the way to a checked file that
/// are symbolic links (one `lstat` per directory).
pub(crate) fn symlinked_directories(root: &Path, checks: &[Check]) -> HashSet<PathBuf> {
    let mut seen: HashSet<&Path> = HashSet::new();
    for check in checks {
        for dir in check.path.ancestors().skip(1) {
            if dir == root || !dir.starts_with(root) || !seen.insert(dir) {
                break;
            }
        }
    }
    seen.into_iter()
        .filter(|dir| fs_err::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()))
        .map(Path::to_path_buf)
        .collect()
}

/// Drops the checks behind a `symlinked` directory, and reports each such
/// directory once per distribution (by report index, in check order): a
/// directory on the way to listed files that is now a symbolic link points
/// them elsewhere, so whatever is found there is not what was installed
/// here.
pub(crate) fn skip_symlinked(
    env: &Environment,
    symlinked: &HashSet<PathBuf>,
    checks: &mut Vec<Check>,
) -> Vec<(usize, Finding)> {
    let mut findings = Vec::new();
    let mut reported: HashSet<(usize, &Path)> = HashSet::new();
    checks.retain(|check| {
        let Some(dir) = check.path.ancestors().find_map(|a| symlinked.get(a)) else {
            return true;
        };
        if reported.insert((check.dist, dir.as_path())) {
            findings.push((
                check.dist,
                Finding::Modified(Modified {
                    path: env.record_spelling(dir),
                    reason: FileProblem::SymlinkedDirectory,
                }),
            ));
        }
        false
    });
    findings
}

/// Checks every file on every core: the findings, by report index, in
/// check order.
pub(crate) fn check_files(checks: &[Check]) -> impl ParallelIterator<Item = (usize, Finding)> {
    checks
        .par_iter()
        .filter_map(|check| check_file(check).map(|finding| (check.dist, finding)))
}

/// What is wrong with one listed file, if anything: one `lstat`, then a
/// read only when the size is right and RECORD holds a hash.
fn check_file(check: &Check) -> Option<Finding> {
    let modified = |reason: FileProblem| {
        Some(Finding::Modified(Modified {
            path: check.record_path.clone(),
            reason,
        }))
    };
    let metadata = match fs_err::symlink_metadata(&check.path) {
        Ok(metadata) => metadata,
        // Not there, or a parent directory is now a file.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Some(Finding::Missing(check.record_path.clone()));
        }
        // There, maybe, behind a directory this user may not search.
        Err(_) => return modified(FileProblem::Unreadable),
    };
    if !metadata.is_file() {
        return modified(FileProblem::NotARegularFile);
    }
    if check.size.is_some_and(|size| size != metadata.len()) {
        return modified(FileProblem::Size);
    }
    let expected = check.hash.as_ref()?;
    let hashed = fs_err::File::open(&check.path)
        .and_then(|file| RecordHash::of_reader(expected.algorithm, file));
    match hashed {
        Ok((hash, _)) if hash == *expected => None,
        Ok(_) => modified(FileProblem::Hash),
        Err(_) => modified(FileProblem::Unreadable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_wheel::HashAlgorithm;

    fn check(dist: usize, record_path: &str, path: PathBuf, bytes: Option<&[u8]>) -> Check {
        Check {
            dist,
            record_path: record_path.to_string(),
            path,
            hash: bytes.map(|b| RecordHash::of(HashAlgorithm::Sha256, b)),
            size: bytes.map(|b| b.len() as u64),
        }
    }

    fn modified(path: &str, reason: FileProblem) -> Option<Finding> {
        Some(Finding::Modified(Modified {
            path: path.to_string(),
            reason,
        }))
    }

    #[test]
    fn a_file_is_judged_by_its_type_then_size_then_hash() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.py");
        fs_err::write(&file, "abcd").unwrap();
        fs_err::os::unix::fs::symlink(&file, dir.path().join("link.py")).unwrap();
        let at = |name: &str| dir.path().join(name);
        assert_eq!(
            check_file(&check(0, "f.py", file.clone(), Some(b"abcd"))),
            None
        );
        assert_eq!(check_file(&check(0, "f.py", file.clone(), None)), None);
        assert_eq!(
            check_file(&check(0, "f.py", file.clone(), Some(b"wxyz"))),
            modified("f.py", FileProblem::Hash)
        );
        assert_eq!(
            check_file(&check(0, "f.py", file.clone(), Some(b"abc"))),
            modified("f.py", FileProblem::Size)
        );
        assert_eq!(
            check_file(&check(0, "link.py", at("link.py"), Some(b"abcd"))),
            modified("link.py", FileProblem::NotARegularFile)
        );
        assert_eq!(
            check_file(&check(0, "gone.py", at("gone.py"), None)),
            Some(Finding::Missing("gone.py".to_string()))
        );
        // A parent directory that is now a file: missing, too.
        assert_eq!(
            check_file(&check(0, "f.py/x", at("f.py/x"), None)),
            Some(Finding::Missing("f.py/x".to_string()))
        );
    }

    #[test]
    fn a_symlinked_directory_is_reported_once_per_distribution() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("pyvenv.cfg"), "version = 3.11.7\n").unwrap();
        let site = dir.path().join("lib/python3.11/site-packages");
        fs_err::create_dir_all(site.join("pkg")).unwrap();
        fs_err::create_dir_all(dir.path().join("elsewhere/deep")).unwrap();
        fs_err::os::unix::fs::symlink(dir.path().join("elsewhere"), site.join("pkg/sub")).unwrap();
        let env = Environment::open(dir.path()).unwrap();
        let mut checks = vec![
            check(0, "pkg/a.py", site.join("pkg/a.py"), None),
            check(0, "pkg/sub/b.py", site.join("pkg/sub/b.py"), None),
            check(0, "pkg/sub/deep/c.py", site.join("pkg/sub/deep/c.py"), None),
            check(1, "pkg/sub/d.py", site.join("pkg/sub/d.py"), None),
        ];
        let symlinked = symlinked_directories(env.root(), &checks);
        assert_eq!(symlinked, HashSet::from([site.join("pkg/sub")]));
        let findings = skip_symlinked(&env, &symlinked, &mut checks);
        let kept: Vec<&str> = checks.iter().map(|c| c.record_path.as_str()).collect();
        assert_eq!(kept, ["pkg/a.py"]);
        let symlinked_dir = |dist| {
            (
                dist,
                modified("pkg/sub", FileProblem::SymlinkedDirectory).unwrap(),
            )
        };
        assert_eq!(findings, [symlinked_dir(0), symlinked_dir(1)]);
    }
}
