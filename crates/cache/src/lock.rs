//! Cache locks: advisory `flock`s that a killed process never leaves behind.
//!
//! - `<cache>/.lock`: shared by installs (and `cache verify`), exclusive for
//!   `cache clean`, `cache prune` and `cache verify --repair`.
//! - `<cache>/.turnstile`: makes those exclusive holders fair. Linux grants
//!   a shared `flock` even while an exclusive request waits, so a stream of
//!   installs would starve a clean forever. A shared locker therefore passes
//!   the turnstile (takes it shared, then `.lock`, then lets it go), while an
//!   exclusive locker takes the turnstile first and keeps it: installs that
//!   start while a clean waits queue behind it.
//! - `archives-v1/<name>/` (the directory itself): exclusive while one
//!   process unpacks a wheel of that name, so that several processes
//!   unpacking the same wheel at once make one archive.
//!
//! `flock` locks belong to the open file description, so the kernel drops
//! them when the process dies, however it dies. A lock file can also vanish
//! while a process waits for it (`cache clean` removes the whole cache): a
//! lock taken on a file that is no longer at its path guards nothing, so the
//! lock is taken again on whatever is there now. And age-based cleaners
//! (`tmpwatch`, `systemd-tmpfiles`) delete files nobody wrote for weeks: a
//! lock file is touched whenever it is taken, so one in use never ages out.

use std::fs::{FileTimes, TryLockError};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::SystemTime;

use crate::Error;

/// A held lock (or several); released on drop.
#[derive(Debug)]
pub struct CacheLock {
    _files: Vec<fs_err::File>,
}

/// What a lock protects, for the "waiting for …" message.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LockKind {
    /// `<cache>/.turnstile`, shared (an install passing through).
    TurnstileShared,
    /// `<cache>/.turnstile`, exclusive (a clean, prune or repair queuing).
    TurnstileExclusive,
    /// `<cache>/.lock`, shared: an install or a read-only check.
    CacheShared,
    /// `<cache>/.lock`, exclusive: clean, prune, repair.
    CacheExclusive,
    /// `archives-v1/<name>/`: one unpack of a distribution at a time.
    Unpack,
}

impl LockKind {
    fn exclusive(self) -> bool {
        !matches!(self, LockKind::CacheShared | LockKind::TurnstileShared)
    }

    fn waiting_message(self, path: &Path) -> String {
        let cache = path.parent().unwrap_or(path).display();
        match self {
            LockKind::TurnstileShared | LockKind::CacheShared => {
                format!("waiting for a `keel cache` clean, prune or repair of {cache} to finish")
            }
            LockKind::TurnstileExclusive => {
                format!("waiting for another `keel cache` clean, prune or repair of {cache}")
            }
            LockKind::CacheExclusive => {
                format!("waiting for other keel processes to finish with the cache at {cache}")
            }
            LockKind::Unpack => format!(
                "waiting for another keel process unpacking into {}",
                path.display()
            ),
        }
    }
}

impl CacheLock {
    /// Locks `path`, waiting as long as it takes and saying once that it
    /// waits. `path` is a lock file, created if needed (its directory too),
    /// or for [`LockKind::Unpack`] a directory, created if needed.
    pub(crate) fn acquire(path: &Path, kind: LockKind) -> Result<Self, Error> {
        Ok(CacheLock {
            _files: vec![lock(path, kind, true)?.expect("a waiting lock always returns one")],
        })
    }

    /// Locks `path` if nobody holds it; `None` if someone does.
    pub(crate) fn try_acquire(path: &Path, kind: LockKind) -> Result<Option<Self>, Error> {
        Ok(lock(path, kind, false)?.map(|file| CacheLock { _files: vec![file] }))
    }

    /// This lock and `other`, held (and released) together.
    pub(crate) fn and(mut self, other: CacheLock) -> Self {
        self._files.extend(other._files);
        self
    }
}

fn lock(path: &Path, kind: LockKind, wait: bool) -> Result<Option<fs_err::File>, Error> {
    let mut said_waiting = false;
    loop {
        let opened = match kind {
            LockKind::Unpack => {
                fs_err::create_dir_all(path)?;
                fs_err::File::open(path)
            }
            _ => {
                if let Some(parent) = path.parent() {
                    fs_err::create_dir_all(parent)?;
                }
                fs_err::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)
            }
        };
        let file = match opened {
            Ok(file) => file,
            // Removed between creating and opening it: start again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let attempt = if kind.exclusive() {
            file.file().try_lock()
        } else {
            file.file().try_lock_shared()
        };
        match attempt {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) if !wait => return Ok(None),
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
            if !matches!(kind, LockKind::Unpack) {
                let now = SystemTime::now();
                let touched = FileTimes::new().set_accessed(now).set_modified(now);
                if let Err(e) = file.file().set_times(touched) {
                    tracing::debug!("could not touch `{}`: {e}", path.display());
                }
            }
            return Ok(Some(file));
        }
        tracing::debug!(
            "`{}` was removed while keel waited for it; locking again",
            path.display()
        );
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
