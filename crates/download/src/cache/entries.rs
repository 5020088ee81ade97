//! What `keel cache verify`, `clean` and `prune` need of the download
//! cache: its entries, a full check of one, and the removal of leftovers.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use keel_wheel::{HashAlgorithm, RecordHash};

use super::DownloadCache;
use super::stamp::{STAMP_SUFFIX, Stamp, stamp_path};
use crate::Error;
use crate::digest::hash_reader;

/// How old a `.partial-*` file must be before [`DownloadCache::remove_stale_partials`]
/// takes it for the leftover of a killed download (a live download keeps
/// writing to its file).
pub const STALE_PARTIAL_AGE: Duration = Duration::from_secs(60 * 60);

/// A file in the download cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The cached file.
    pub path: PathBuf,
    /// Its name (the wanted file's name).
    pub file_name: String,
    /// The digest it is filed under (from its directory).
    pub key: RecordHash,
    /// Its size now.
    pub size: u64,
    /// The digests its stamp records (empty without a readable stamp).
    pub digests: Vec<RecordHash>,
}

/// What [`DownloadCache::verify_entry`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryState {
    /// Every digest it is filed under or recorded with is its digest.
    Intact,
    /// It is not the file it is filed as.
    Damaged {
        /// Why ("has sha256 …, it is filed under …").
        reason: String,
    },
}

impl DownloadCache {
    /// Every cached file (not stamps, not partial downloads), in path order.
    /// A directory that does not follow the layout is skipped; an unreadable
    /// one is an error.
    pub fn entries(&self) -> impl Iterator<Item = Result<CacheEntry, Error>> + '_ {
        walkdir::WalkDir::new(&self.root)
            .min_depth(4)
            .max_depth(4)
            .sort_by_file_name()
            .into_iter()
            .filter_map(|item| match item {
                Ok(item) => entry_at(item.path(), item.file_type()).transpose(),
                // A cache without downloads has no entries.
                Err(e)
                    if e.io_error()
                        .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound) =>
                {
                    None
                }
                Err(e) => Some(Err(walk_error(e, &self.root))),
            })
    }

    /// Hashes a cached file and compares it with the digest it is filed
    /// under and the digests its stamp records.
    pub fn verify_entry(&self, entry: &CacheEntry) -> Result<EntryState, Error> {
        let mut algorithms = vec![entry.key.algorithm];
        algorithms.extend(
            entry
                .digests
                .iter()
                .map(|h| h.algorithm)
                .filter(|a| *a != entry.key.algorithm),
        );
        let file = keel_fs::open_no_follow(&entry.path)?;
        let (actual, _) = hash_reader(&algorithms, file)?;
        let filed = std::iter::once((&entry.key, "it is filed under"));
        let recorded = entry.digests.iter().map(|h| (h, "its stamp records"));
        for (wanted, source) in filed.chain(recorded) {
            let Some(found) = actual.iter().find(|h| h.algorithm == wanted.algorithm) else {
                continue;
            };
            if found != wanted {
                return Ok(EntryState::Damaged {
                    reason: format!(
                        "has {} {}, {source} {}",
                        wanted.algorithm.name(),
                        found.hex(),
                        wanted.hex()
                    ),
                });
            }
        }
        Ok(EntryState::Intact)
    }

    /// Removes a cached file and its stamp.
    pub fn remove_entry(&self, entry: &CacheEntry) -> Result<(), Error> {
        self.discard(&entry.path)
    }

    /// Removes the `.partial-*` files older than [`STALE_PARTIAL_AGE`]
    /// (left by a killed download); the paths removed.
    pub fn remove_stale_partials(&self) -> Result<Vec<PathBuf>, Error> {
        self.remove_partials_older_than(STALE_PARTIAL_AGE)
    }

    /// Removes the `.partial-*` files not modified for `age`; the paths
    /// removed.
    pub fn remove_partials_older_than(&self, age: Duration) -> Result<Vec<PathBuf>, Error> {
        let now = SystemTime::now();
        let mut removed = Vec::new();
        for item in walkdir::WalkDir::new(&self.root).max_depth(4) {
            let item = match item {
                Ok(item) => item,
                Err(e)
                    if e.io_error()
                        .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound) =>
                {
                    continue;
                }
                Err(e) => return Err(walk_error(e, &self.root)),
            };
            let is_partial = item
                .file_name()
                .to_string_lossy()
                .starts_with(keel_fs::PARTIAL_PREFIX);
            if !is_partial || !item.file_type().is_file() {
                continue;
            }
            let modified = item.metadata().ok().and_then(|m| m.modified().ok());
            let stale = modified.is_some_and(|m| now.duration_since(m).unwrap_or_default() >= age);
            if stale {
                match fs_err::remove_file(item.path()) {
                    Ok(()) => removed.push(item.path().to_owned()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(removed)
    }
}

/// The entry at `<root>/<algorithm>/<xx>/<rest>/<file name>`, if `path` is
/// one.
fn entry_at(path: &Path, file_type: std::fs::FileType) -> Result<Option<CacheEntry>, Error> {
    let name = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .map(str::to_owned)
    };
    let Some(file_name) = name(Some(path)) else {
        return Ok(None);
    };
    let bucket = path.parent();
    let head = bucket.and_then(Path::parent);
    let algorithm_dir = head.and_then(Path::parent);
    let (Some(tail), Some(head), Some(algorithm)) = (name(bucket), name(head), name(algorithm_dir))
    else {
        return Ok(None);
    };
    if !file_type.is_file() || file_name.starts_with('.') || file_name.ends_with(STAMP_SUFFIX) {
        return Ok(None);
    }
    let Some(key) = HashAlgorithm::from_name(&algorithm)
        .and_then(|a| RecordHash::from_hex(a, &format!("{head}{tail}")).ok())
    else {
        return Ok(None);
    };
    let size = fs_err::symlink_metadata(path)?.len();
    let digests = Stamp::read(&stamp_path(path))
        .map(|s| s.digests())
        .unwrap_or_default();
    Ok(Some(CacheEntry {
        path: path.to_owned(),
        file_name,
        key,
        size,
        digests,
    }))
}

fn walk_error(error: walkdir::Error, root: &Path) -> Error {
    let path = error.path().unwrap_or(root).to_owned();
    let io = error
        .into_io_error()
        .unwrap_or_else(|| std::io::Error::other("a symlink loop"));
    Error::Io(keel_fs::with_path(io, &path))
}
