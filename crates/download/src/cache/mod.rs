//! The download cache, keyed by content.
//!
//! ```text
//! <cache>/downloads-v1/sha256/<hex[0..2]>/<hex[2..]>/<file name>        the file
//! <cache>/downloads-v1/sha256/<hex[0..2]>/<hex[2..]>/<file name>.stamp  its stamp
//! <cache>/downloads-v1/sha256/<hex[0..2]>/<hex[2..]>/.partial-XXXXXX    a download in progress
//! ```
//!
//! (`sha512/` or `sha384/` for a file wanted without a sha256.) A file is
//! found by what it is, not where it came from, so a lock installs offline
//! once its files were downloaded, whatever its URLs now answer.
//!
//! A download streams into a `.partial-*` file in its bucket, is hashed
//! while it streams, `fsync`ed, and renamed into place only once its size
//! and hashes are right: a file under its real name is always complete and
//! verified (a killed download leaves a `.partial-*`, which
//! [`DownloadCache::remove_stale_partials`] removes). Two processes
//! downloading one file both rename a complete, identical file into place;
//! the last rename wins. The stamp is written after the rename; a stamp
//! that does not match its file (a race of two writers, a crash between the
//! renames, a file touched since) only means the file is hashed again.

mod entries;
mod stamp;

use std::io::{Seek as _, Write as _};
use std::path::{Path, PathBuf};

use keel_wheel::{HashAlgorithm, RecordHash};

pub use entries::{CacheEntry, EntryState, STALE_PARTIAL_AGE};
pub(crate) use stamp::STAMP_SUFFIX;
use stamp::{Stamp, stamp_path};

use crate::Error;
use crate::digest::{Expected, MultiHasher, hash_reader};

/// The download cache under one keel cache directory.
#[derive(Debug, Clone)]
pub struct DownloadCache {
    root: PathBuf,
    /// A shared layer's: files are proven but stamps are never renewed.
    read_only: bool,
}

/// What the cache holds for a wanted file.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// Present and proven (by its stamp, or by hashing).
    Hit { path: PathBuf, bytes: u64 },
    /// Not there.
    Miss,
    /// There, but not the wanted file (`reason` continues "<file name> …").
    Damaged { path: PathBuf, reason: String },
}

/// What checking one cached file found.
enum Check {
    Good(u64),
    Absent,
    Damaged(String),
}

impl DownloadCache {
    /// The directory under the keel cache directory that holds downloads.
    pub const DIR: &'static str = "downloads-v1";

    /// The download cache of the keel cache at `cache_dir`
    /// (`<cache_dir>/downloads-v1`); nothing is created until a download.
    pub fn new(cache_dir: &Path) -> Self {
        DownloadCache {
            root: cache_dir.join(Self::DIR),
            read_only: false,
        }
    }

    /// The download cache of the read-only keel cache at `cache_dir` (a
    /// shared layer): its files are found and proven like any other, and
    /// nothing is written there (a stamp that no longer holds means the
    /// file is hashed each time).
    pub fn read_only(cache_dir: &Path) -> Self {
        DownloadCache {
            read_only: true,
            ..DownloadCache::new(cache_dir)
        }
    }

    /// `<cache_dir>/downloads-v1`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of the files whose `key` digest is `key`.
    pub fn bucket(&self, key: &RecordHash) -> PathBuf {
        let hex = key.hex();
        let (head, tail) = hex.split_at(2.min(hex.len()));
        self.root.join(key.algorithm.name()).join(head).join(tail)
    }

    /// Where the file `file_name` with digest `key` is cached.
    pub fn path_of(&self, key: &RecordHash, file_name: &str) -> PathBuf {
        self.bucket(key).join(file_name)
    }

    /// Finds a wanted file: by stamp (one `stat`), or by hashing when the
    /// stamp does not hold, does not cover every wanted algorithm, or
    /// `verify` is set.
    pub(crate) fn lookup(
        &self,
        file_name: &str,
        size: Option<u64>,
        expected: &Expected,
        verify: bool,
    ) -> Result<Lookup, Error> {
        let mut damaged = None;
        for key in expected.key_candidates() {
            let path = self.path_of(key, file_name);
            match check(&path, size, expected, verify, !self.read_only)? {
                Check::Good(bytes) => return Ok(Lookup::Hit { path, bytes }),
                Check::Absent => {}
                Check::Damaged(reason) => {
                    damaged = damaged.or(Some(Lookup::Damaged { path, reason }))
                }
            }
        }
        Ok(damaged.unwrap_or(Lookup::Miss))
    }

    /// Puts a copy of the local file `file` into the cache (`keel cache
    /// add`), under the sha256 of what was copied, so that an install of a
    /// lock naming that file finds it offline. Hashed while it is copied,
    /// into a temporary file renamed into place; a file already cached
    /// under that digest is replaced by an identical one. Returns where it
    /// is now.
    pub fn add(&self, file: &Path) -> Result<PathBuf, Error> {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                keel_fs::with_path(
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
                    file,
                )
            })?
            .to_owned();
        fs_err::create_dir_all(&self.root)?;
        let mut partial = keel_fs::tempfile_in(&self.root, keel_fs::PARTIAL_PREFIX)?;
        let mut hasher = MultiHasher::new(&[HashAlgorithm::Sha256]);
        let mut source = keel_fs::open_no_follow(file)?;
        let mut buffer = vec![0; 256 * 1024];
        loop {
            let read = std::io::Read::read(&mut source, &mut buffer)
                .map_err(|e| keel_fs::with_path(e, file))?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            partial
                .write_all(&buffer[..read])
                .map_err(|e| keel_fs::with_path(e, partial.path()))?;
        }
        let digests = hasher.finish();
        let Some(key) = digests.first() else {
            return Err(std::io::Error::other("no sha256 was computed").into());
        };
        let bytes = partial
            .as_file()
            .metadata()
            .map_err(|e| keel_fs::with_path(e, file))?
            .len();
        self.commit(
            Finished {
                file: partial,
                digests: digests.clone(),
                bytes,
            },
            &name,
            key,
        )
    }

    /// Removes a cached file and its stamp (either may be gone already).
    pub(crate) fn discard(&self, path: &Path) -> Result<(), Error> {
        for path in [path.to_owned(), stamp_path(path)] {
            match fs_err::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }

    /// A temporary file for a download of a file wanted with `expected`,
    /// in the bucket of its (first) expected key.
    pub(crate) fn partial(&self, expected: &Expected) -> Result<Partial, Error> {
        let dir = match expected.key_candidates().first() {
            Some(key) => self.bucket(key),
            None => self.root.clone(),
        };
        // Twice: a concurrent `remove_if_empty` may remove the bucket
        // between its creation and the temporary file's.
        let attempt = || {
            fs_err::create_dir_all(&dir)?;
            keel_fs::tempfile_in(&dir, keel_fs::PARTIAL_PREFIX)
        };
        let file = attempt().or_else(|_| attempt())?;
        let algorithms = expected.algorithms();
        Ok(Partial {
            hasher: MultiHasher::new(&algorithms),
            algorithms,
            file,
            written: 0,
        })
    }

    /// Moves a verified download into place under its `key` digest and
    /// stamps it; the path it now has.
    pub(crate) fn commit(
        &self,
        finished: Finished,
        file_name: &str,
        key: &RecordHash,
    ) -> Result<PathBuf, Error> {
        let dir = self.bucket(key);
        fs_err::create_dir_all(&dir)?;
        let target = dir.join(file_name);
        let file = finished.file;
        let sync = |e| keel_fs::with_path(e, file.path());
        file.as_file().sync_all().map_err(sync)?;
        let metadata = file.as_file().metadata().map_err(sync)?;
        file.persist(&target)
            .map_err(|e| keel_fs::with_path(e.error, &target))?;
        Stamp::of(&metadata, &finished.digests).write(&stamp_path(&target))?;
        keel_fs::sync_dir(&dir)?;
        Ok(target)
    }

    /// Removes the bucket of `expected`'s first key if it is empty (after a
    /// failed download), so that a refused file leaves nothing behind.
    pub(crate) fn remove_if_empty(&self, expected: &Expected) {
        if let Some(key) = expected.key_candidates().first() {
            // Fails, harmlessly, when the bucket holds anything.
            let _ = fs_err::remove_dir(self.bucket(key));
        }
    }
}

/// Checks the cached file at `path`.
fn check(
    path: &Path,
    size: Option<u64>,
    expected: &Expected,
    verify: bool,
    renew_stamp: bool,
) -> Result<Check, Error> {
    let stamp_at = stamp_path(path);
    let metadata = match fs_err::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(match fs_err::symlink_metadata(&stamp_at) {
                Ok(_) => Check::Damaged(
                    "was deleted from the download cache (its stamp is left)".to_owned(),
                ),
                Err(_) => Check::Absent,
            });
        }
        Err(e) => return Err(e.into()),
    };
    if !metadata.is_file() {
        return Ok(Check::Damaged(
            "in the download cache is not a regular file".to_owned(),
        ));
    }
    if let Some(size) = size.filter(|size| *size != metadata.len()) {
        return Ok(Check::Damaged(format!(
            "in the download cache has {} bytes, expected {size}",
            metadata.len()
        )));
    }
    let stamp = Stamp::read(&stamp_at);
    // Hashing renews the stamp with every digest it had and every one wanted.
    let mut algorithms = expected.algorithms();
    let recorded = stamp.as_ref().map(Stamp::digests).unwrap_or_default();
    algorithms.extend(
        recorded
            .iter()
            .map(|h| h.algorithm)
            .filter(|a| !expected.algorithms().contains(a)),
    );
    if let Some(stamp) =
        stamp.filter(|s| !verify && s.holds(&metadata) && expected.covered_by(&recorded))
    {
        return Ok(match expected.check(&stamp.digests()) {
            Ok(()) => Check::Good(metadata.len()),
            Err(m) => Check::Damaged(format!(
                "in the download cache was recorded with {} {}, expected {}",
                m.algorithm.name(),
                m.actual,
                m.expected
            )),
        });
    }
    rehash(path, &metadata, expected, &algorithms, renew_stamp)
}

/// Hashes a cached file whose stamp does not vouch for it; stamps it anew
/// when it is the wanted file.
fn rehash(
    path: &Path,
    before: &std::fs::Metadata,
    expected: &Expected,
    algorithms: &[HashAlgorithm],
    renew_stamp: bool,
) -> Result<Check, Error> {
    let file = keel_fs::open_no_follow(path)?;
    let (digests, bytes) = hash_reader(algorithms, &file)?;
    if let Err(m) = expected.check(&digests) {
        return Ok(Check::Damaged(format!(
            "in the download cache has {} {}, expected {}",
            m.algorithm.name(),
            m.actual,
            m.expected
        )));
    }
    let after = file.metadata()?;
    let stamp = Stamp::of(&after, &digests);
    if !stamp.holds(before) || bytes != after.len() {
        return Ok(Check::Damaged(
            "in the download cache changed while it was hashed".to_owned(),
        ));
    }
    if !renew_stamp {
        return Ok(Check::Good(bytes));
    }
    if let Err(e) = stamp.write(&stamp_path(path)) {
        // A read-only cache still serves its files; they are hashed each time.
        tracing::debug!("could not renew the stamp of {}: {e}", path.display());
    }
    Ok(Check::Good(bytes))
}

/// A download in progress: a temporary file in the cache, and the hashes
/// of what was written to it so far.
pub(crate) struct Partial {
    file: tempfile::NamedTempFile,
    algorithms: Vec<HashAlgorithm>,
    hasher: MultiHasher,
    written: u64,
}

/// A download complete, with its digests, not yet in place.
pub(crate) struct Finished {
    file: tempfile::NamedTempFile,
    pub digests: Vec<RecordHash>,
    pub bytes: u64,
}

impl Partial {
    /// Appends `bytes` (and hashes them).
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.file
            .as_file_mut()
            .write_all(bytes)
            .map_err(|e| keel_fs::with_path(e, self.file.path()))?;
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// How many bytes were written since the last reset.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Empties the file for another attempt.
    pub fn reset(&mut self) -> Result<(), Error> {
        if self.written > 0 {
            let file = self.file.as_file_mut();
            file.set_len(0)
                .and_then(|()| file.rewind())
                .map_err(|e| keel_fs::with_path(e, self.file.path()))?;
        }
        self.hasher = MultiHasher::new(&self.algorithms);
        self.written = 0;
        Ok(())
    }

    /// The digests of everything written.
    pub fn finish(self) -> Finished {
        Finished {
            file: self.file,
            digests: self.hasher.finish(),
            bytes: self.written,
        }
    }
}
