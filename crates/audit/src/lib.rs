//! Auditing an installed environment: is every file of every distribution
//! still what its RECORD says?
//!
//! *Recording installed projects § The RECORD file*: every installed file is
//! listed with its hash and size. The audit checks, per distribution,
//! that each listed file exists as a regular file with that size and hash,
//! and which files inside the distribution's own directories no RECORD
//! lists. It reads nothing but the environment, and hashes on every core.

use std::collections::{BTreeSet, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use keel_venv::{Environment, InstalledDistribution};
use keel_wheel::{Hasher, RecordHash, normalize_name};
use rayon::prelude::*;
use serde::Serialize;

/// Everything that can stop an audit (damage is a finding, not an error).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Environment(#[from] keel_venv::Error),
    #[error("no distribution named `{name}` is installed")]
    NotInstalled { name: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The state of one distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Intact,
    Damaged,
    /// No RECORD: nothing can be checked.
    NoRecord,
}

/// A listed file whose content is not what RECORD says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Modified {
    /// The path as RECORD spells it.
    pub path: String,
    /// `size`, `hash`, or `not-a-regular-file`.
    pub reason: &'static str,
}

/// The audit of one distribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DistributionReport {
    pub name: String,
    pub version: String,
    pub dist_info: PathBuf,
    pub status: Status,
    /// Listed files that do not exist.
    pub missing: Vec<String>,
    pub modified: Vec<Modified>,
    /// Files in the distribution's own directories that no RECORD lists
    /// (compiled bytecode of listed sources excepted).
    pub unlisted: Vec<PathBuf>,
    /// How many listed files were checked.
    pub files: usize,
}

/// The audit of an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub environment: PathBuf,
    pub distributions: Vec<DistributionReport>,
}

impl Report {
    pub fn is_intact(&self) -> bool {
        self.distributions
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
    let mut dists = env.installed()?;
    if !names.is_empty() {
        let wanted: HashSet<String> = names.iter().map(|n| normalize_name(n)).collect();
        for name in &wanted {
            if !dists.iter().any(|d| &d.name == name) {
                return Err(Error::NotInstalled { name: name.clone() });
            }
        }
        // Unlisted files are judged against every RECORD, so read them all.
        let all = dists.clone();
        dists.retain(|d| wanted.contains(&d.name));
        return audit_distributions(env, &dists, &all);
    }
    let all = dists.clone();
    audit_distributions(env, &dists, &all)
}

fn audit_distributions(
    env: &Environment,
    dists: &[InstalledDistribution],
    all: &[InstalledDistribution],
) -> Result<Report, Error> {
    let mut reports = Vec::with_capacity(dists.len());
    let mut checks = Vec::new();
    let mut claimed: HashSet<PathBuf> = HashSet::new();
    let mut roots: Vec<BTreeSet<PathBuf>> = Vec::with_capacity(dists.len());
    for dist in all {
        for row in dist.record()?.unwrap_or_default() {
            claimed.insert(dist.resolve(&row.path));
        }
    }
    for (index, dist) in dists.iter().enumerate() {
        let record = dist.record()?;
        let mut own_roots = BTreeSet::new();
        let status = if record.is_some() {
            Status::Intact
        } else {
            Status::NoRecord
        };
        let mut files = 0;
        for row in record.unwrap_or_default() {
            let path = dist.resolve(&row.path);
            // The top-level entry of site-packages this file lives in.
            if let Ok(inside) = path.strip_prefix(env.site_packages())
                && let Some(first) = inside.components().next()
            {
                own_roots.insert(env.site_packages().join(first));
            }
            if row.hash.is_none() && row.path.ends_with("RECORD") {
                continue;
            }
            files += 1;
            checks.push(Check {
                dist: index,
                record_path: row.path,
                path,
                hash: row.hash,
                size: row.size,
            });
        }
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
        });
    }

    let findings: Vec<(usize, Finding)> = checks
        .par_iter()
        .filter_map(|check| check_file(check).map(|finding| (check.dist, finding)))
        .collect();
    for (dist, finding) in findings {
        let report = &mut reports[dist];
        report.status = Status::Damaged;
        match finding {
            Finding::Missing(path) => report.missing.push(path),
            Finding::Modified(modified) => report.modified.push(modified),
        }
    }

    for (report, own_roots) in reports.iter_mut().zip(&roots) {
        if report.status == Status::NoRecord {
            continue;
        }
        for root in own_roots {
            for entry in walkdir::WalkDir::new(root)
                .follow_links(false)
                .sort_by_file_name()
            {
                let Ok(entry) = entry else { continue };
                if entry.file_type().is_dir() {
                    continue;
                }
                let path = entry.path();
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
    Ok(Report {
        environment: env.root().to_path_buf(),
        distributions: reports,
    })
}

enum Finding {
    Missing(String),
    Modified(Modified),
}

fn check_file(check: &Check) -> Option<Finding> {
    let modified = |reason| {
        Some(Finding::Modified(Modified {
            path: check.record_path.clone(),
            reason,
        }))
    };
    let metadata = match fs_err::symlink_metadata(&check.path) {
        Ok(metadata) => metadata,
        Err(_) => return Some(Finding::Missing(check.record_path.clone())),
    };
    if !metadata.is_file() {
        return modified("not-a-regular-file");
    }
    if check.size.is_some_and(|size| size != metadata.len()) {
        return modified("size");
    }
    let expected = check.hash.as_ref()?;
    let Ok(mut file) = fs_err::File::open(&check.path) else {
        return modified("unreadable");
    };
    let mut hasher = Hasher::new(expected.algorithm);
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buffer[..n]),
            Err(_) => return modified("unreadable"),
        }
    }
    (hasher.finish() != *expected).then(|| {
        Finding::Modified(Modified {
            path: check.record_path.clone(),
            reason: "hash",
        })
    })
}

/// `pkg/__pycache__/mod.cpython-311.pyc` (or `.opt-1.pyc`) of a claimed
/// `pkg/mod.py`: Python writes these at import time.
fn is_bytecode_of_claimed(path: &Path, claimed: &HashSet<PathBuf>) -> bool {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return false;
    };
    if dir.file_name().is_none_or(|d| d != "__pycache__") || !name.ends_with(".pyc") {
        return false;
    }
    let Some(stem) = name.split('.').next() else {
        return false;
    };
    dir.parent()
        .is_some_and(|pkg| claimed.contains(&pkg.join(format!("{stem}.py"))))
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
}
