//! The distributions installed in an environment: one index of every
//! `.dist-info` directory in site-packages, by normalized name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use keel_wheel::{PackageName, RecordEntry, Version, parse_record};

use crate::{Environment, Error};

/// Every distribution installed in an environment, by normalized name
/// (uv's `SitePackages`). Two `.dist-info` directories of one name (left by
/// a broken install or a tool that does not remove the old one) are both
/// kept: [`InstalledIndex::duplicates`] reports them and a replacement
/// removes them all.
#[derive(Debug, Clone, Default)]
pub struct InstalledIndex {
    by_name: BTreeMap<PackageName, Vec<InstalledDistribution>>,
}

impl InstalledIndex {
    /// Reads every `.dist-info` directory of `env`'s site-packages. A
    /// directory whose name holds no PEP 440 version is left out, with a
    /// warning: keel cannot tell what it is, so it never touches it.
    pub fn read(env: &Environment) -> Result<Self, Error> {
        let mut index = InstalledIndex::default();
        for entry in fs_err::read_dir(env.site_packages())? {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(stem) = file_name
                .to_str()
                .and_then(|n| n.strip_suffix(".dist-info"))
            else {
                continue;
            };
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let (name, version) = stem.rsplit_once('-').unwrap_or((stem, ""));
            let Ok(version) = version.parse::<Version>() else {
                tracing::warn!(
                    "`{}` does not name a PEP 440 version; keel leaves it alone",
                    entry.path().display()
                );
                continue;
            };
            index.insert(InstalledDistribution {
                name: PackageName::new(name),
                version,
                dist_info: entry.path(),
            });
        }
        Ok(index)
    }

    /// Adds a distribution (an index built by hand, for tests and plans).
    pub fn insert(&mut self, dist: InstalledDistribution) {
        let same = self.by_name.entry(dist.name.clone()).or_default();
        same.push(dist);
        same.sort_by(|a, b| a.dist_info.cmp(&b.dist_info));
    }

    /// The installed distributions of one name (more than one only when
    /// the environment holds duplicates).
    pub fn get(&self, name: &PackageName) -> &[InstalledDistribution] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// Every installed distribution, by name, then `.dist-info` path.
    pub fn iter(&self) -> impl Iterator<Item = &InstalledDistribution> {
        self.by_name.values().flatten()
    }

    /// The names installed more than once, with their distributions.
    pub fn duplicates(&self) -> impl Iterator<Item = (&PackageName, &[InstalledDistribution])> {
        self.by_name
            .iter()
            .filter(|(_, dists)| dists.len() > 1)
            .map(|(name, dists)| (name, dists.as_slice()))
    }

    /// How many distributions are installed.
    pub fn len(&self) -> usize {
        self.by_name.values().map(Vec::len).sum()
    }

    /// Whether nothing is installed.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// A distribution installed in an environment: one `.dist-info` directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledDistribution {
    /// Normalized name (*Names and normalization*).
    pub name: PackageName,
    /// The version its `.dist-info` directory names (PEP 440).
    pub version: Version,
    /// The `.dist-info` directory, absolute.
    pub dist_info: PathBuf,
}

impl InstalledDistribution {
    /// The `.dist-info` directory's RECORD path.
    pub fn record_path(&self) -> PathBuf {
        self.dist_info.join("RECORD")
    }

    /// The installed RECORD (*Recording installed projects § The RECORD
    /// file*); `Ok(None)` when the distribution has none.
    pub fn record(&self) -> Result<Option<Vec<RecordEntry>>, Error> {
        let path = self.record_path();
        let bytes = match fs_err::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        parse_record(&bytes)
            .map(Some)
            .map_err(|rule| Error::MalformedRecord { path, rule })
    }

    /// Resolves a RECORD path (relative to site-packages, possibly with
    /// `../`) to an absolute path, lexically.
    ///
    /// *Recording installed projects § The RECORD file*: a path is relative
    /// to the directory holding `.dist-info`, or absolute.
    pub fn resolve(&self, record_path: &str) -> PathBuf {
        let base = if record_path.starts_with('/') {
            Path::new("/")
        } else {
            self.dist_info.parent().unwrap_or(Path::new("/"))
        };
        let mut resolved = base.to_path_buf();
        for component in record_path.split('/') {
            match component {
                "" | "." => {}
                ".." => {
                    resolved.pop();
                }
                other => resolved.push(other),
            }
        }
        resolved
    }
}
