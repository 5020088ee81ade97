//! Cache locks: advisory `flock`s that a killed process never leaves behind.
//!
//! - `<cache>/.lock`: shared by installs (and `cache verify`), exclusive for
//!   `cache clean`, `cache prune` and `cache verify --repair`.
//! - `archives-v1/<name>/` (the directory itself): exclusive while one
//!   process unpacks a wheel of that name, so that several processes
//!   unpacking the same wheel at once make one archive.
//!
//! `flock` locks belong to the open file description, so the kernel drops
//! them when the process dies, however it dies. A lock file can also vanish
//! while a process waits for it (`cache clean` removes the whole cache, and
//! `tmpwatch` deletes old files): a lock taken on a file that is no longer
//! at its path guards nothing, so the lock is taken again on whatever is
//! there now.

use std::fs::TryLockError;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::Error;

/// A held lock; released on drop.
#[derive(Debug)]
pub struct CacheLock {
    _file: fs_err::File,
}

/// What a lock protects, for the "waiting for …" message.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LockKind {
    /// `<cache>/.lock`, shared: an install or a read-only check.
    CacheShared,
    /// `<cache>/.lock`, exclusive: clean, prune, repair.
    CacheExclusive,
    /// `archives-v1/<name>/`: one unpack of a distribution at a time.
    Unpack,
}

impl LockKind {
    fn exclusive(self) -> bool {
        !matches!(self, LockKind::CacheShared)
    }

    fn waiting_message(self, path: &Path) -> String {
        match self {
            LockKind::CacheShared => format!(
                "waiting for a `keel cache` clean, prune or repair of {} to finish",
                path.parent().unwrap_or(path).display()
            ),
            LockKind::CacheExclusive => format!(
                "waiting for other keel processes to finish with the cache at {}",
                path.parent().unwrap_or(path).display()
            ),
            LockKind::Unpack => format!(
                "waiting for another keel process unpacking into {}",
                path.display()
            ),
        }
    }
}

impl CacheLock {
    /// Locks `path`: a lock file, created if needed (its directory too), or
    /// for [`LockKind::Unpack`] a directory, created if needed. Says once
    /// that it waits when another process holds the lock.
    pub(crate) fn acquire(path: &Path, kind: LockKind) -> Result<Self, Error> {
        let mut said_waiting = false;
        loop {
            let file = match kind {
                LockKind::Unpack => {
                    fs_err::create_dir_all(path)?;
                    fs_err::File::open(path)?
                }
                LockKind::CacheShared | LockKind::CacheExclusive => {
                    if let Some(parent) = path.parent() {
                        fs_err::create_dir_all(parent)?;
                    }
                    fs_err::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .open(path)?
                }
            };
            let attempt = if kind.exclusive() {
                file.file().try_lock()
            } else {
                file.file().try_lock_shared()
            };
            match attempt {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    if !said_waiting {
                        tracing::warn!("{}", kind.waiting_message(path));
                        said_waiting = true;
                    }
                    let result = if kind.exclusive() {
                        file.file().lock()
                    } else {
                        file.file().lock_shared()
                    };
                    result.map_err(|e| lock_error(path, e))?;
                }
                Err(TryLockError::Error(e)) => return Err(lock_error(path, e)),
            }
            if still_at_path(&file, path)? {
                return Ok(CacheLock { _file: file });
            }
            tracing::debug!(
                "`{}` was removed while keel waited for it; locking again",
                path.display()
            );
        }
    }
}

/// Whether the locked file is still the one at `path`.
fn still_at_path(file: &fs_err::File, path: &Path) -> Result<bool, Error> {
    let held = file.metadata()?;
    match fs_err::metadata(path) {
        Ok(current) => Ok(current.dev() == held.dev() && current.ino() == held.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn lock_error(path: &Path, e: std::io::Error) -> Error {
    std::io::Error::new(
        e.kind(),
        format!("failed to lock `{}`: {e}", path.display()),
    )
    .into()
}
