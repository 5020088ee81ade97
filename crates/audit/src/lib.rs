//! Auditing an installed environment: is every file of every distribution
//! still what its RECORD says?
//!
//! *Recording installed projects § The RECORD file*: every installed file is
//! listed with its hash and size. The audit checks, per distribution,
//! that each listed file exists as a regular file with that size and hash,
//! and which files inside the distribution's own directories no RECORD
//! lists. It reads nothing but the environment, and hashes on every core.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use keel_venv::{Environment, InstalledDistribution, InstalledIndex};
use keel_wheel::{FileProblem, PackageName, RecordHash, Version};
use rayon::prelude::*;
use serde::Serialize;

/// Everything that can stop an audit (damage is a finding, not an error).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Environment(#[from] keel_venv::Error),
    /// Names given on the command line, as the user spelled them, that match
    /// no installed distribution (in the order given).
    #[error("{}", not_installed_message(names))]
    NotInstalled { names: Vec<String> },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn not_installed_message(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.as_slice() {
        [one] => format!("no distribution named {one} is installed"),
        _ => format!("no distributions named {} are installed", quoted.join(", ")),
    }
}

/// The state of one distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Intact,
    Damaged,
    /// No RECORD: nothing can be checked.
    NoRecord,
    /// A RECORD that cannot be read or parsed: nothing can be checked
    /// (`record_error` says why).
    BadRecord,
}

/// A listed file whose content is not what RECORD says, or that cannot be
/// read; or a directory of the distribution that cannot be listed (so its
/// unlisted files cannot be looked for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Modified {
    /// The path as RECORD spells it (a directory: relative to the directory
    /// holding `.dist-info`, `/`-separated, as RECORD would spell it).
    pub path: String,
    /// `size`, `hash`, `not-a-regular-file`, `symlinked-directory` (a
    /// directory of the distribution replaced by a symbolic link), or
    /// `unreadable`.
    pub reason: FileProblem,
}

/// The audit of one distribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DistributionReport {
    /// Normalized name.
    pub name: PackageName,
    /// The version its `.dist-info` names.
    pub version: Version,
    /// Its `.dist-info` directory.
    pub dist_info: PathBuf,
    /// Intact, damaged, or uncheckable.
    pub status: Status,
    /// Listed files that do not exist.
    pub missing: Vec<String>,
    pub modified: Vec<Modified>,
    /// Files in the distribution's own directories that no RECORD lists
    /// (compiled bytecode of listed sources excepted).
    pub unlisted: Vec<PathBuf>,
    /// How many listed files were checked.
    pub files: usize,
    /// Why RECORD could not be used (status `bad-record`; null otherwise).
    pub record_error: Option<String>,
}

/// The audit of an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The environment's root.
    pub environment: PathBuf,
    /// One report per audited distribution, by name.
    pub distributions: Vec<DistributionReport>,
    /// Top-level entries of site-packages that no distribution owns: a
    /// `.pth` file or module dropped there runs or imports with every
    /// interpreter start, yet belongs to nothing that could be checked.
    /// Looked for only when every distribution is audited.
    pub unowned: Vec<PathBuf>,
}

impl Report {
    /// Whether every audited file is intact and nothing is unowned.
    pub fn is_intact(&self) -> bool {
        self.unowned.is_empty()
            && self
                .distributions
                .iter()
                .all(|d| d.status == Status::Intact)
    }
}

/// One listed file to check.
struct Check {
    dist: usize,
    record_path: String,
    path: PathBuf,
    hash: Option<RecordHash>,
    size: Option<u64>,
}

/// Audits the distributions named (all when `names` is empty).
pub fn audit(env: &Environment, names: &[String]) -> Result<Report, Error> {
    let index = InstalledIndex::read(env)?;
    let all: Vec<InstalledDistribution> = index.iter().cloned().collect();
    if names.is_empty() {
        return audit_distributions(env, &all, None);
    }
    let wanted: HashSet<PackageName> = names.iter().map(|n| PackageName::new(n)).collect();
    // Named as the user spelled them, in their order, each once.
    let mut unknown: Vec<String> = Vec::new();
    for name in names {
        let normalized = PackageName::new(name);
        if index.get(&normalized).is_empty()
            && !unknown.iter().any(|u| PackageName::new(u) == normalized)
        {
            unknown.push(name.clone());
        }
    }
    if !unknown.is_empty() {
        return Err(Error::NotInstalled { names: unknown });
    }
    audit_distributions(env, &all, Some(&wanted))
}

/// Audits those of `all` that are `wanted` (every one when `None`; only then
/// are unowned entries looked for). Unlisted files are judged against every
/// RECORD, so all of them are read, each once.
fn audit_distributions(
    env: &Environment,
    all: &[InstalledDistribution],
    wanted: Option<&HashSet<PackageName>>,
) -> Result<Report, Error> {
    let site = env.site_packages();
    let mut dists: Vec<&InstalledDistribution> = Vec::new();
    let mut reports = Vec::new();
    let mut checks = Vec::new();
    let mut claimed: HashSet<PathBuf> = HashSet::new();
    // The top-level entries of site-packages that hold a claimed path.
    let mut owned_tops: HashSet<PathBuf> = HashSet::new();
    let mut roots: Vec<BTreeSet<PathBuf>> = Vec::new();
    for dist in all {
        // A RECORD that cannot be used is that distribution's finding, not
        // the end of the audit: the others are still checked.
        let (status, rows, record_error) = match dist.record() {
            Ok(Some(rows)) => (Status::Intact, rows, None),
            Ok(None) => (Status::NoRecord, Vec::new(), None),
            Err(error) => (Status::BadRecord, Vec::new(), Some(error.to_string())),
        };
        let audited = wanted.is_none_or(|wanted| wanted.contains(&dist.name));
        let mut own_roots = BTreeSet::new();
        let mut files = 0;
        for row in rows {
            let path = dist.resolve(&row.path);
            // The top-level entry of site-packages this file lives in.
            if let Ok(inside) = path.strip_prefix(site)
                && let Some(first) = inside.components().next()
            {
                let top = site.join(first);
                if audited {
                    own_roots.insert(top.clone());
                }
                owned_tops.insert(top);
            }
            claimed.insert(path.clone());
            // RECORD cannot hold its own hash; that it exists was just read.
            if !audited || path == dist.record_path() {
                continue;
            }
            files += 1;
            checks.push(Check {
                dist: reports.len(),
                record_path: row.path,
                path,
                hash: row.hash,
                size: row.size,
            });
        }
        if !audited {
            continue;
        }
        dists.push(dist);
        roots.push(own_roots);
        reports.push(DistributionReport {
            name: dist.name.clone(),
            version: dist.version.clone(),
            dist_info: dist.dist_info.clone(),
            status,
            missing: Vec::new(),
            modified: Vec::new(),
            unlisted: Vec::new(),
            files,
            record_error,
        });
    }

    // A directory on the way to listed files that is now a symbolic link
    // points them elsewhere: whatever is found there, it is not what was
    // installed here. Reported once per distribution; its files unchecked.
    let symlinked = symlinked_directories(env.root(), &checks);
    let mut findings: Vec<(usize, Finding)> = Vec::new();
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
    findings.par_extend(
        checks
            .par_iter()
            .filter_map(|check| check_file(check).map(|finding| (check.dist, finding))),
    );
    for (dist, finding) in findings {
        let report = &mut reports[dist];
        report.status = Status::Damaged;
        match finding {
            Finding::Missing(path) => report.missing.push(path),
            Finding::Modified(modified) => report.modified.push(modified),
        }
    }

    for (report, own_roots) in reports.iter_mut().zip(&roots) {
        if matches!(report.status, Status::NoRecord | Status::BadRecord) {
            continue;
        }
        for root in own_roots {
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
                        // Gone (a removed package directory, whose files are
                        // reported missing): nothing to list. Any other error
                        // hides what the directory holds: not provably intact.
                        let gone = error
                            .io_error()
                            .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound);
                        if let (false, Some(path)) = (gone, error.path()) {
                            report.modified.push(Modified {
                                path: env.record_spelling(path),
                                reason: FileProblem::Unreadable,
                            });
                            report.status = Status::Damaged;
                        }
                        continue;
                    }
                };
                let path = entry.path();
                // A directory (or one made a link: reported above) is no file.
                if entry.file_type().is_dir() || symlinked.contains(path) {
                    continue;
                }
                if claimed.contains(path) || is_bytecode_of_claimed(path, &claimed) {
                    continue;
                }
                report.unlisted.push(path.to_path_buf());
                report.status = Status::Damaged;
            }
        }
        report.missing.sort();
        report.modified.sort_by(|a, b| a.path.cmp(&b.path));
    }
    let unowned = if wanted.is_none() {
        unowned_entries(site, &claimed, &owned_tops)?
    } else {
        Vec::new()
    };
    Ok(Report {
        environment: env.root().to_path_buf(),
        distributions: reports,
        unowned,
    })
}

/// The entries directly in site-packages that no RECORD claims: a file (or
/// symlink) not listed, a directory under which nothing is listed, a
/// `__pycache__` file that is not bytecode of a listed module. A
/// `.dist-info` directory is a distribution, reported as one (even without
/// RECORD); everything else that an installer leaves is listed in a RECORD
/// (*Recording installed projects § The RECORD file*), `.pth` files
/// included.
fn unowned_entries(
    site: &Path,
    claimed: &HashSet<PathBuf>,
    owned_tops: &HashSet<PathBuf>,
) -> Result<Vec<PathBuf>, Error> {
    let mut unowned = Vec::new();
    for entry in fs_err::read_dir(site)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let is_dir = entry.file_type()?.is_dir();
        if is_dir && name == "__pycache__" {
            // Bytecode of top-level modules is theirs; the rest is nobody's.
            match fs_err::read_dir(&path) {
                Ok(files) => {
                    for file in files {
                        let file = file?.path();
                        if !claimed.contains(&file) && !is_bytecode_of_claimed(&file, claimed) {
                            unowned.push(file);
                        }
                    }
                }
                // What cannot be listed cannot be shown to be bytecode.
                Err(_) => unowned.push(path),
            }
            continue;
        }
        let is_distribution = is_dir && name.to_string_lossy().ends_with(".dist-info");
        if !is_distribution && !owned_tops.contains(&path) {
            unowned.push(path);
        }
    }
    unowned.sort();
    Ok(unowned)
}

/// The directories strictly inside `root` on the way to a checked file that
/// are symbolic links (one `lstat` per directory).
fn symlinked_directories(root: &Path, checks: &[Check]) -> HashSet<PathBuf> {
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

enum Finding {
    Missing(String),
    Modified(Modified),
}

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

    #[test]
    fn unknown_names_are_reported_as_spelled() {
        let one = Error::NotInstalled {
            names: vec!["Keel_Nope".to_string()],
        };
        assert_eq!(
            one.to_string(),
            "no distribution named `Keel_Nope` is installed"
        );
        let two = Error::NotInstalled {
            names: vec!["a".to_string(), "B.c".to_string()],
        };
        assert_eq!(
            two.to_string(),
            "no distributions named `a`, `B.c` are installed"
        );
    }
}
