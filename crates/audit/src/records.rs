//! The first step: every RECORD of the environment, each read and resolved
//! once, gives the files to check (of the audited distributions) and the
//! paths claimed (by every distribution, audited or not), which unlisted
//! and unowned files are judged against.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use keel_venv::InstalledDistribution;
use keel_wheel::{PackageName, RecordEntry, RecordHash};

use crate::{DistributionReport, Status};

/// One listed file to check.
pub(crate) struct Check {
    /// The index of its distribution's report.
    pub(crate) dist: usize,
    /// The path as RECORD spells it.
    pub(crate) record_path: String,
    /// The path resolved in the environment.
    pub(crate) path: PathBuf,
    pub(crate) hash: Option<RecordHash>,
    pub(crate) size: Option<u64>,
}

/// What the RECORDs of an environment say.
#[derive(Default)]
pub(crate) struct Records {
    /// One per audited distribution, in the index's order: the status its
    /// RECORD allows and how many files it lists to check; no findings yet.
    pub(crate) reports: Vec<DistributionReport>,
    /// Per report: the top-level entries of site-packages that hold a file
    /// it lists (the directories its unlisted files are looked for in).
    pub(crate) roots: Vec<BTreeSet<PathBuf>>,
    /// The files the audited distributions list, RECORD itself excepted, in
    /// the order of the reports, then of each RECORD.
    pub(crate) checks: Vec<Check>,
    /// Every path any RECORD lists.
    pub(crate) claimed: HashSet<PathBuf>,
    /// The top-level entries of site-packages that hold a claimed path.
    pub(crate) owned_tops: HashSet<PathBuf>,
}

impl Records {
    /// Reads the RECORD of each of `all`; those that are `wanted` (every one
    /// when `None`) are audited.
    pub(crate) fn read(
        site: &Path,
        all: &[InstalledDistribution],
        wanted: Option<&HashSet<PackageName>>,
    ) -> Self {
        let mut records = Records::default();
        for dist in all {
            let audited = wanted.is_none_or(|wanted| wanted.contains(&dist.name));
            records.add(site, dist, audited);
        }
        records
    }

    /// Adds what `dist`'s RECORD claims, and, when it is `audited`, its
    /// report, roots and checks.
    fn add(&mut self, site: &Path, dist: &InstalledDistribution, audited: bool) {
        let (status, rows, record_error) = read_record(dist);
        let record_path = dist.record_path();
        let mut own_roots = BTreeSet::new();
        let mut files = 0;
        for row in rows {
            let path = dist.resolve(&row.path);
            if let Some(top) = top_level_entry(site, &path) {
                if audited {
                    own_roots.insert(top.clone());
                }
                self.owned_tops.insert(top);
            }
            self.claimed.insert(path.clone());
            // RECORD cannot hold its own hash; that it exists was just read.
            // Bytecode listed without a hash (pip's and keel's compiled
            // installs) is a cache of its source: missing or recompiled,
            // Python writes it again, so it is never damage.
            if !audited || path == record_path || is_unhashed_bytecode(&row, &path) {
                continue;
            }
            files += 1;
            self.checks.push(Check {
                dist: self.reports.len(),
                record_path: row.path,
                path,
                hash: row.hash,
                size: row.size,
            });
        }
        if !audited {
            return;
        }
        self.roots.push(own_roots);
        self.reports.push(DistributionReport {
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
}

/// `dist`'s RECORD rows and the status they allow. A RECORD that cannot be
/// used is that distribution's finding, not the end of the audit: the
/// others are still checked.
fn read_record(dist: &InstalledDistribution) -> (Status, Vec<RecordEntry>, Option<String>) {
    match dist.record() {
        Ok(Some(rows)) => (Status::Intact, rows, None),
        Ok(None) => (Status::NoRecord, Vec::new(), None),
        Err(error) => (Status::BadRecord, Vec::new(), Some(error.to_string())),
    }
}

/// The top-level entry of site-packages that `path` lives in (`path`
/// itself for a top-level module); `None` outside site-packages or for
/// site-packages itself.
fn top_level_entry(site: &Path, path: &Path) -> Option<PathBuf> {
    let first = path.strip_prefix(site).ok()?.components().next()?;
    Some(site.join(first))
}

/// Whether a RECORD row is `__pycache__` bytecode (PEP 3147 names) listed
/// without a hash (*Recording installed projects § The RECORD file*: such
/// files may be listed without hash or size).
fn is_unhashed_bytecode(row: &RecordEntry, path: &Path) -> bool {
    row.hash.is_none() && keel_venv::bytecode::source_of(path).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_venv::Environment;

    #[test]
    fn the_top_level_entry_is_the_first_component_inside_site_packages() {
        let site = Path::new("/v/lib/python3.11/site-packages");
        assert_eq!(
            top_level_entry(site, &site.join("pkg/sub/mod.py")),
            Some(site.join("pkg"))
        );
        assert_eq!(
            top_level_entry(site, &site.join("six.py")),
            Some(site.join("six.py"))
        );
        assert_eq!(top_level_entry(site, site), None);
        assert_eq!(top_level_entry(site, Path::new("/v/bin/tool")), None);
    }

    #[test]
    fn every_record_is_claimed_but_only_the_audited_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("pyvenv.cfg"), "version = 3.11.7\n").unwrap();
        let site = dir.path().join("lib/python3.11/site-packages");
        for (dist_info, record) in [
            (
                "a-1.0.dist-info",
                "a/__init__.py,,1\n../../../bin/a,,\na-1.0.dist-info/RECORD,,\n",
            ),
            ("b-2.0.dist-info", "b.py,,\nb-2.0.dist-info/RECORD,,\n"),
            ("c-3.0.dist-info", "not,a record\n"),
        ] {
            fs_err::create_dir_all(site.join(dist_info)).unwrap();
            fs_err::write(site.join(dist_info).join("RECORD"), record).unwrap();
        }
        fs_err::create_dir_all(site.join("d-4.0.dist-info")).unwrap();
        let env = Environment::open(dir.path()).unwrap();
        let all: Vec<_> = keel_venv::InstalledIndex::read(&env)
            .unwrap()
            .iter()
            .cloned()
            .collect();
        let wanted: HashSet<PackageName> = ["a", "c", "d"].map(PackageName::new).into();
        let records = Records::read(&site, &all, Some(&wanted));

        let reports: Vec<_> = records
            .reports
            .iter()
            .map(|r| (r.name.as_str(), r.status, r.files, r.record_error.is_some()))
            .collect();
        assert_eq!(
            reports,
            [
                ("a", Status::Intact, 2, false),
                ("c", Status::BadRecord, 0, true),
                ("d", Status::NoRecord, 0, false),
            ]
        );
        assert_eq!(records.roots.len(), 3);
        // The `.dist-info` directory is one of a's, like its package.
        assert_eq!(
            records.roots[0],
            BTreeSet::from([site.join("a"), site.join("a-1.0.dist-info")])
        );
        assert!(records.roots[1].is_empty() && records.roots[2].is_empty());
        // a's RECORD is not checked; b is not audited.
        let checks: Vec<_> = records
            .checks
            .iter()
            .map(|c| (c.dist, c.record_path.as_str(), c.path.clone(), c.size))
            .collect();
        assert_eq!(
            checks,
            [
                (0, "a/__init__.py", site.join("a/__init__.py"), Some(1)),
                (0, "../../../bin/a", env.root().join("bin/a"), None),
            ]
        );
        // b's files are claimed all the same, so none is unlisted or unowned.
        assert!(records.claimed.contains(&site.join("b.py")));
        assert!(
            records
                .claimed
                .contains(&site.join("a-1.0.dist-info/RECORD"))
        );
        assert!(records.claimed.contains(&env.root().join("bin/a")));
        assert_eq!(records.claimed.len(), 5);
        let tops: HashSet<PathBuf> = [
            site.join("a"),
            site.join("b.py"),
            site.join("a-1.0.dist-info"),
            site.join("b-2.0.dist-info"),
        ]
        .into();
        assert_eq!(records.owned_tops, tops);
    }
}
