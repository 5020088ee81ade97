//! The environment lock: two keel processes on one environment take turns.
//!
//! An advisory `flock` on the environment's root directory itself, so that
//! taking it writes nothing (a refused install leaves a fresh environment
//! byte for byte as it was); the kernel drops it when the holder dies, so a
//! killed process never leaves a lock behind that blocks. Changes (install,
//! sync, uninstall, recover) hold it exclusively and remove `<venv>/.keel/`
//! when they leave it empty; `keel verify` holds it shared, so that it never
//! mistakes a transaction in progress for an interrupted one.

use std::fs::TryLockError;

use keel_venv::Environment;

use crate::Error;

/// A held environment lock; released on drop.
#[derive(Debug)]
pub struct EnvironmentLock {
    file: fs_err::File,
    /// `<venv>/.keel/`, removed on drop if empty (exclusive holders only).
    tidy: Option<std::path::PathBuf>,
}

impl EnvironmentLock {
    /// Takes the lock, saying once that it waits if another process holds it.
    pub fn acquire(env: &Environment) -> Result<Self, Error> {
        let file = lock(env, true)?;
        Ok(EnvironmentLock {
            file,
            tidy: Some(env.keel_dir()),
        })
    }

    /// A shared hold on the lock for a reader (`keel verify`): waits, saying
    /// so, while a keel process changes the environment.
    pub fn wait_shared(env: &Environment) -> Result<Self, Error> {
        let file = lock(env, false)?;
        Ok(EnvironmentLock { file, tidy: None })
    }
}

impl Drop for EnvironmentLock {
    fn drop(&mut self) {
        // Still locked here: nobody else can be using `.keel/`.
        if let Some(dir) = &self.tidy
            && let Err(e) = fs_err::remove_dir(dir)
            && !matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty
            )
        {
            tracing::debug!("could not remove an empty `.keel`: {e}");
        }
        let _ = self.file.file().unlock();
    }
}

fn lock(env: &Environment, exclusive: bool) -> Result<fs_err::File, Error> {
    let root = env.root();
    let file = fs_err::File::open(root)?;
    let attempt = if exclusive {
        file.file().try_lock()
    } else {
        file.file().try_lock_shared()
    };
    let failed = |e: std::io::Error| {
        Error::from(std::io::Error::new(
            e.kind(),
            format!("failed to lock `{}`: {e}", root.display()),
        ))
    };
    match attempt {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => {
            tracing::warn!(
                "waiting for another keel process to finish with {}",
                root.display()
            );
            let result = if exclusive {
                file.file().lock()
            } else {
                file.file().lock_shared()
            };
            result.map_err(failed)?;
            Ok(file)
        }
        Err(TryLockError::Error(e)) => Err(failed(e)),
    }
}
