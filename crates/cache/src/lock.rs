//! The cache lock: an advisory `flock` on `<cache>/.lock`.
//!
//! `flock` locks belong to the open file description, so the kernel drops
//! them when the process dies, however it dies: a lock of a killed process
//! never blocks anyone.

use std::fs::TryLockError;
use std::path::Path;

use crate::Error;

/// A held cache lock; released on drop.
#[derive(Debug)]
pub struct CacheLock {
    _file: fs_err::File,
}

impl CacheLock {
    pub(crate) fn acquire(path: &Path, exclusive: bool) -> Result<Self, Error> {
        let file = fs_err::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let attempt = if exclusive {
            file.file().try_lock()
        } else {
            file.file().try_lock_shared()
        };
        match attempt {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let what = if exclusive {
                    "for other keel processes to finish with"
                } else {
                    "for a cache clean of"
                };
                tracing::warn!(
                    "waiting {what} the cache at {}",
                    path.parent().unwrap_or(path).display()
                );
                let result = if exclusive {
                    file.file().lock()
                } else {
                    file.file().lock_shared()
                };
                result.map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("failed to lock `{}`: {e}", path.display()),
                    )
                })?;
            }
            Err(TryLockError::Error(e)) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("failed to lock `{}`: {e}", path.display()),
                )
                .into());
            }
        }
        Ok(CacheLock { _file: file })
    }
}
