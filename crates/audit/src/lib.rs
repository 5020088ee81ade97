//! Auditing an installed environment: is every file of every distribution
//! still what its RECORD says?
//!
//! *Recording installed projects § The RECORD file*: every installed file is
//! listed with its hash and size. The audit checks, per distribution,
//! that each listed file exists as a regular file with that size and hash,
//! and which files inside the distribution's own directories no RECORD
//! lists. It reads nothing but the environment, and hashes on every core.
//!
//! - [`audit`] audits the distributions of a [`keel_venv::Environment`]
//!   (all of them, or those named) and returns a [`Report`]; damage is a
//!   finding in the report, never an [`Error`].
//! - [`Report`]: one [`DistributionReport`] per audited distribution, by
//!   name, and the top-level entries of site-packages that no distribution
//!   owns (looked for only when every distribution is audited).
//! - [`DistributionReport`]: its [`Status`] (intact, damaged, or
//!   uncheckable for want of a usable RECORD), and what is wrong: files
//!   missing, [`Modified`] (each with its reason, a
//!   [`keel_wheel::FileProblem`]: size, hash, not a regular file, a
//!   symlinked directory, unreadable) and unlisted.
//! - [`Error`]: what stops an audit: an environment that cannot be read, or
//!   names that match no installed distribution.
//!
//! ```no_run
//! use keel_audit::{Status, audit};
//! use keel_venv::Environment;
//!
//! let env = Environment::open("/path/to/venv".as_ref())?;
//! let report = audit(&env, &[])?;
//! for dist in &report.distributions {
//!     if dist.status != Status::Intact {
//!         println!("{} {}: {:?}", dist.name, dist.version, dist.status);
//!     }
//!     for modified in &dist.modified {
//!         println!("  {} ({})", modified.path, modified.reason);
//!     }
//! }
//! println!("intact: {}", report.is_intact());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod checks;
mod error;
mod records;
mod report;
mod unlisted;

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;

use keel_venv::{Environment, InstalledDistribution, InstalledIndex};
use keel_wheel::PackageName;
use rayon::prelude::*;

use checks::{Finding, check_files, skip_symlinked, symlinked_directories};
use records::Records;
use unlisted::{unlisted_files, unowned_entries};

pub use error::Error;
pub use report::{DistributionReport, Modified, Report, Status};

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
    let Records {
        mut reports,
        roots,
        mut checks,
        claimed,
        owned_tops,
    } = Records::read(site, all, wanted);

    // A directory on the way to listed files that is now a symbolic link
    // points them elsewhere: whatever is found there, it is not what was
    // installed here. Reported once per distribution; its files unchecked.
    let symlinked = symlinked_directories(env.root(), &checks);
    let mut findings = skip_symlinked(env, &symlinked, &mut checks);
    findings.par_extend(check_files(&checks));
    record_findings(&mut reports, findings);

    for (report, own_roots) in reports.iter_mut().zip(&roots) {
        finish_report(env, report, own_roots, &symlinked, &claimed);
    }
    let unowned = if wanted.is_none() {
        unowned_entries(env, &claimed, &owned_tops)?
    } else {
        Vec::new()
    };
    Ok(Report {
        environment: env.root().to_path_buf(),
        distributions: reports,
        unowned,
    })
}

/// Files each finding under its distribution's report (by index), in order,
/// and marks that distribution damaged.
fn record_findings(reports: &mut [DistributionReport], findings: Vec<(usize, Finding)>) {
    for (dist, finding) in findings {
        let report = &mut reports[dist];
        report.status = Status::Damaged;
        match finding {
            Finding::Missing(path) => report.missing.push(path),
            Finding::Modified(modified) => report.modified.push(modified),
        }
    }
}

/// Adds to a checked distribution's report what no RECORD lists in its
/// directories (`own_roots`), then sorts its missing and modified files.
/// A distribution without a usable RECORD has neither files nor
/// directories: it is left as it is.
fn finish_report(
    env: &Environment,
    report: &mut DistributionReport,
    own_roots: &BTreeSet<PathBuf>,
    symlinked: &HashSet<PathBuf>,
    claimed: &HashSet<PathBuf>,
) {
    if matches!(report.status, Status::NoRecord | Status::BadRecord) {
        return;
    }
    let found = unlisted_files(env, own_roots, symlinked, claimed);
    if !found.is_empty() {
        report.status = Status::Damaged;
    }
    report.modified.extend(found.unreadable);
    report.unlisted.extend(found.files);
    report.missing.sort();
    report.modified.sort_by(|a, b| a.path.cmp(&b.path));
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_wheel::{FileProblem, HashAlgorithm, RecordHash};
    use std::path::Path;

    fn write(path: &Path, bytes: &[u8]) {
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(path, bytes).unwrap();
    }

    fn row(path: &str, bytes: &[u8]) -> String {
        let hash = RecordHash::of(HashAlgorithm::Sha256, bytes);
        format!("{path},{hash},{}\n", bytes.len())
    }

    fn fake_env() -> (tempfile::TempDir, Environment) {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("pyvenv.cfg"), b"version = 3.11.7\n");
        let site = dir.path().join("lib/python3.11/site-packages");
        fs_err::create_dir_all(&site).unwrap();
        // alpha: one of every file finding.
        write(&site.join("alpha/__init__.py"), b"init");
        write(&site.join("alpha/changed.py"), b"abcd");
        write(&site.join("alpha/big.py"), b"toolong");
        write(&site.join("alpha/extra.py"), b"x");
        write(&site.join("alpha/plugin.py"), b"beta's");
        write(
            &site.join("alpha/__pycache__/__init__.cpython-311.pyc"),
            b"",
        );
        write(&site.join("alpha/__pycache__/junk.txt"), b"");
        write(&site.join("six.py"), b"six");
        write(&dir.path().join("bin/alpha"), b"#!");
        let record = [
            row("alpha/__init__.py", b"init"),
            row("alpha/gone.py", b"gone"),
            row("alpha/changed.py", b"wxyz"),
            row("alpha/big.py", b"short"),
            row("six.py", b"six"),
            row("../../../bin/alpha", b"#!"),
            "alpha-1.0.dist-info/RECORD,,\n".to_string(),
        ]
        .concat();
        write(&site.join("alpha-1.0.dist-info/RECORD"), record.as_bytes());
        // beta: a directory made a symbolic link; claims a file in alpha/.
        write(&dir.path().join("elsewhere/mod.py"), b"mod");
        write(&dir.path().join("elsewhere/other.py"), b"mod");
        write(&site.join("beta/__init__.py"), b"b");
        fs_err::os::unix::fs::symlink(dir.path().join("elsewhere"), site.join("beta/sub")).unwrap();
        let record = [
            row("beta/__init__.py", b"b"),
            row("beta/sub/mod.py", b"mod"),
            row("beta/sub/two.py", b"two"),
            row("alpha/plugin.py", b"beta's"),
            "beta-2.0.dist-info/RECORD,,\n".to_string(),
        ]
        .concat();
        write(&site.join("beta-2.0.dist-info/RECORD"), record.as_bytes());
        // gamma: no RECORD; delta: a malformed one.
        fs_err::create_dir_all(site.join("gamma-0.1.dist-info")).unwrap();
        write(&site.join("delta/__init__.py"), b"d");
        write(&site.join("delta-1.0.dist-info/RECORD"), b"a,b\n");
        // Nobody's.
        write(&site.join("stray.pth"), b"import os");
        write(&site.join("__pycache__/six.cpython-311.pyc"), b"");
        write(&site.join("__pycache__/stray.cpython-311.pyc"), b"");
        write(&site.join("orphan/x.py"), b"");
        let env = Environment::open(dir.path()).unwrap();
        (dir, env)
    }

    fn modified(path: &str, reason: FileProblem) -> Modified {
        Modified {
            path: path.to_string(),
            reason,
        }
    }

    #[test]
    fn a_whole_environment_is_audited() {
        let (_dir, env) = fake_env();
        let site = env.site_packages().to_path_buf();
        let report = audit(&env, &[]).unwrap();
        assert_eq!(report.environment, env.root());
        assert!(!report.is_intact());
        let names: Vec<&str> = report
            .distributions
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(names, ["alpha", "beta", "delta", "gamma"]);
        let [alpha, beta, delta, gamma] = &report.distributions[..] else {
            unreachable!()
        };
        assert_eq!(alpha.status, Status::Damaged);
        assert_eq!(alpha.files, 6);
        assert_eq!(alpha.missing, ["alpha/gone.py"]);
        assert_eq!(
            alpha.modified,
            [
                modified("alpha/big.py", FileProblem::Size),
                modified("alpha/changed.py", FileProblem::Hash),
            ]
        );
        assert_eq!(
            alpha.unlisted,
            [
                site.join("alpha/__pycache__/junk.txt"),
                site.join("alpha/extra.py")
            ]
        );
        assert_eq!(alpha.record_error, None);
        assert_eq!(alpha.version, "1.0".parse().unwrap());
        assert_eq!(alpha.dist_info, site.join("alpha-1.0.dist-info"));

        assert_eq!(beta.status, Status::Damaged);
        assert_eq!(beta.files, 4);
        assert!(beta.missing.is_empty());
        assert_eq!(
            beta.modified,
            [modified("beta/sub", FileProblem::SymlinkedDirectory)]
        );
        // beta lists a file in alpha/, so alpha/ is one of its directories too.
        assert_eq!(beta.unlisted, alpha.unlisted);

        assert_eq!(delta.status, Status::BadRecord);
        assert_eq!(delta.files, 0);
        assert!(
            delta
                .record_error
                .as_ref()
                .unwrap()
                .contains("expected 3 fields")
        );
        assert_eq!(gamma.status, Status::NoRecord);
        assert_eq!(gamma.record_error, None);

        assert_eq!(
            report.unowned,
            [
                site.join("__pycache__/stray.cpython-311.pyc"),
                site.join("delta"),
                site.join("orphan"),
                site.join("stray.pth"),
            ]
        );
    }

    #[test]
    fn named_distributions_are_judged_against_every_record() {
        let (_dir, env) = fake_env();
        let report = audit(&env, &["ALPHA".to_string()]).unwrap();
        assert_eq!(report.distributions.len(), 1);
        let alpha = &report.distributions[0];
        assert_eq!(alpha.name.as_str(), "alpha");
        // alpha/plugin.py is beta's: listed, so not unlisted.
        assert_eq!(alpha.unlisted.len(), 2);
        assert!(report.unowned.is_empty());
        let err = audit(
            &env,
            &["nope".into(), "alpha".into(), "Nope".into(), "x".into()],
        )
        .unwrap_err();
        assert!(matches!(&err, Error::NotInstalled { names } if names == &["nope", "x"]));
    }

    #[test]
    fn an_intact_environment_is_intact() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("pyvenv.cfg"), b"version = 3.11.7\n");
        let site = dir.path().join("lib/python3.11/site-packages");
        write(&site.join("pkg/__init__.py"), b"hi");
        let record = [
            row("pkg/__init__.py", b"hi"),
            "pkg-1.dist-info/RECORD,,\n".into(),
        ]
        .concat();
        write(&site.join("pkg-1.dist-info/RECORD"), record.as_bytes());
        let env = Environment::open(dir.path()).unwrap();
        let report = audit(&env, &[]).unwrap();
        assert!(report.is_intact());
        assert_eq!(report.distributions[0].status, Status::Intact);
        assert_eq!(report.distributions[0].files, 1);
    }
}
