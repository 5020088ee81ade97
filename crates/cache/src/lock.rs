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
//!
//! Several users may share one cache (a group-writable directory). A lock
//! file another user created may not be writable by this one (their umask
//! was `022`): it is then opened read-only, since `flock` needs an open
//! file, not write access to it.

use std::fs::TryLockError;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

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
            _ => open_lock_file(path),
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
                touch(&file, path);
            }
            return Ok(Some(file));
        }
        tracing::debug!(
            "`{}` was removed while keel waited for it; locking again",
            path.display()
        );
    }
}

/// Opens (creating if needed, its directory too) the lock file `path`:
/// for reading and writing, or read-only when this user may not write it
/// (another user's lock file in a shared cache; a read-only mount).
fn open_lock_file(path: &Path) -> std::io::Result<fs_err::File> {
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent)?;
    }
    let opened = fs_err::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path);
    match opened {
        Err(e) if cannot_write(&e) => match fs_err::File::open(path) {
            Ok(file) => {
                tracing::debug!("`{}` is not writable: locked read-only", path.display());
                Ok(file)
            }
            Err(read) if read.kind() == std::io::ErrorKind::NotFound => Err(std::io::Error::new(
                e.kind(),
                format!(
                    "cannot create the lock file `{}`: the cache directory is not writable \
                         by this user ({e})",
                    path.display()
                ),
            )),
            Err(read) => Err(read),
        },
        other => other,
    }
}

/// Whether an open for writing failed for want of write access (`EACCES`,
/// `EPERM`: the file's mode; `EROFS`: a read-only file system), not for a
/// missing file. By kind: `fs_err` keeps the kind, not the `errno`.
fn cannot_write(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
    )
}

/// Sets a lock file's times to now, so that age-based cleaners keep it.
/// `UTIME_NOW` needs only write access (explicit times need ownership), so
/// any member of a shared cache's group can touch it; a read-only lock file
/// stays as it is.
fn touch(file: &fs_err::File, path: &Path) {
    use rustix::fs::{Timespec, Timestamps, UTIME_NOW};
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: UTIME_NOW,
    };
    let times = Timestamps {
        last_access: now,
        last_modification: now,
    };
    if let Err(e) = rustix::fs::futimens(file.file(), &times) {
        tracing::debug!("could not touch `{}`: {e}", path.display());
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
