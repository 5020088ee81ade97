//! The environment lock: two keel processes on one environment take turns.
//!
//! An advisory `flock` on `<venv>/.keel/lock`; the kernel drops it when the
//! holder dies, so a killed process never leaves a lock behind that blocks.

use std::fs::TryLockError;

use keel_venv::Environment;

use crate::Error;

/// A held environment lock; released on drop.
#[derive(Debug)]
pub struct EnvironmentLock {
    _file: fs_err::File,
}

impl EnvironmentLock {
    /// Takes the lock, saying once that it waits if another process holds it.
    pub fn acquire(env: &Environment) -> Result<Self, Error> {
        let dir = env.ensure_keel_dir()?;
        let path = dir.join("lock");
        let file = fs_err::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        match file.file().try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                tracing::warn!(
                    "waiting for another keel process to finish with {}",
                    env.root().display()
                );
                file.file().lock().map_err(|e| {
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
        Ok(EnvironmentLock { _file: file })
    }
}
