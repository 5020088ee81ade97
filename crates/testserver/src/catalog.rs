//! The served directory: which files it holds, which of them are
//! distributions of which project, and their sha256 (cached by size and
//! mtime, so that a rescan on every index request stays cheap).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};

use crate::state::lock;

/// One wheel or sdist in the served directory.
#[derive(Debug, Clone)]
pub(crate) struct Dist {
    /// The file name, e.g. `six-1.17.0-py2.py3-none-any.whl`.
    pub file_name: String,
    /// The PEP 503-normalized project name, e.g. `six`.
    pub project: String,
    /// The version as written in the file name.
    pub version: String,
    /// Lowercase hex sha256 of the file.
    pub sha256: String,
    /// The file's size in bytes.
    pub size: u64,
}

/// What a cached hash was computed for: the file's size and mtime.
type Stat = (u64, SystemTime);

/// The served directory and a cache of its files' hashes.
#[derive(Debug)]
pub(crate) struct Catalog {
    root: PathBuf,
    hashes: Mutex<HashMap<String, (Stat, String)>>,
}

impl Catalog {
    /// A catalog of `root`, read on demand.
    pub fn new(root: &Path) -> Catalog {
        Catalog {
            root: root.to_owned(),
            hashes: Mutex::new(HashMap::new()),
        }
    }

    /// The served directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Forgets the cached hashes, so that the next scan hashes every file
    /// again (even one rewritten within the mtime granularity).
    pub fn forget(&self) {
        lock(&self.hashes).clear();
    }

    /// Every wheel (`*.whl`) and sdist (`*.tar.gz`) in the directory whose
    /// name says its project and version, sorted by file name.
    pub fn scan(&self) -> io::Result<Vec<Dist>> {
        let mut dists = Vec::new();
        for entry in fs_err::read_dir(&self.root)? {
            let entry = entry?;
            let Ok(file_name) = entry.file_name().into_string() else {
                continue;
            };
            let Some((name, version)) = split_dist_name(&file_name) else {
                continue;
            };
            // `metadata` follows symlinks: a linked wheel is served too.
            let metadata = match fs_err::metadata(entry.path()) {
                Ok(m) if m.is_file() => m,
                Ok(_) => continue,
                // Removed since `read_dir` saw it.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let stat = (metadata.len(), metadata.modified()?);
            let sha256 = self.sha256(&file_name, stat)?;
            dists.push(Dist {
                project: normalize(name),
                version: version.to_owned(),
                sha256,
                size: stat.0,
                file_name,
            });
        }
        dists.sort_by(|a, b| a.file_name.cmp(&b.file_name));
        Ok(dists)
    }

    fn sha256(&self, file_name: &str, stat: Stat) -> io::Result<String> {
        if let Some((cached, hash)) = lock(&self.hashes).get(file_name)
            && *cached == stat
        {
            return Ok(hash.clone());
        }
        let mut hasher = Sha256::new();
        io::copy(
            &mut fs_err::File::open(self.root.join(file_name))?,
            &mut hasher,
        )?;
        let hash = hex(&hasher.finalize());
        lock(&self.hashes).insert(file_name.to_owned(), (stat, hash.clone()));
        Ok(hash)
    }

    /// The bytes of `file_name`, a plain name of a regular file in the
    /// directory; `None` if there is no such file.
    pub fn read(&self, file_name: &str) -> io::Result<Option<Vec<u8>>> {
        if file_name.is_empty()
            || file_name == "."
            || file_name == ".."
            || file_name.contains(['/', '\0'])
        {
            return Ok(None);
        }
        let path = self.root.join(file_name);
        match fs_err::metadata(&path) {
            Ok(m) if m.is_file() => fs_err::read(&path).map(Some),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The PEP 503 normalized form of a project name: runs of `-`, `_`, `.`
/// become one `-`, letters lowercase (keel-wheel's rule).
pub fn normalize(name: &str) -> String {
    keel_wheel::normalize_name(name)
}

/// The (unnormalized) project name and the version a distribution's file
/// name says: `{name}-{version}-{tags}.whl` (the name has no `-`) or
/// `{name}-{version}.tar.gz` (the version has no `-`).
pub(crate) fn split_dist_name(file_name: &str) -> Option<(&str, &str)> {
    let (name, version) = if let Some(stem) = file_name.strip_suffix(".whl") {
        let mut parts = stem.split('-');
        (parts.next()?, parts.next()?)
    } else {
        file_name.strip_suffix(".tar.gz")?.rsplit_once('-')?
    };
    (!name.is_empty() && !version.is_empty()).then_some((name, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalize() {
        assert_eq!(normalize("Foo.._-Bar_baz"), "foo-bar-baz");
        assert_eq!(normalize("six"), "six");
    }

    #[test]
    fn file_names_split() {
        assert_eq!(
            split_dist_name("six-1.17.0-py2.py3-none-any.whl"),
            Some(("six", "1.17.0"))
        );
        assert_eq!(
            split_dist_name("zope.interface-7.0.tar.gz"),
            Some(("zope.interface", "7.0"))
        );
        assert_eq!(
            split_dist_name("my-legacy-pkg-2.0.tar.gz"),
            Some(("my-legacy-pkg", "2.0"))
        );
        assert_eq!(split_dist_name("README.txt"), None);
        assert_eq!(split_dist_name("broken.whl"), None);
        assert_eq!(split_dist_name("-1.0.tar.gz"), None);
    }
}
