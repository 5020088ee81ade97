//! The environment lock: two keel processes on one environment take turns.
//!
//! An advisory `flock` on `<venv>/.keel/lock`; the kernel drops it when the
//! holder dies, so a killed process never leaves a lock behind that blocks.
//! Changes (install, sync, uninstall, recover) hold it exclusively; `keel
//! verify` holds it shared, so that it never mistakes a transaction in
//! progress for an interrupted one.

use std::fs::TryLockError;
use std::path::Path;

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
        lock(&file, &path, env, true)?;
        Ok(EnvironmentLock { _file: file })
    }

    /// A shared hold on the lock for a reader (`keel verify`): waits, saying
    /// so, while a keel process changes the environment. Creates nothing: an
    /// environment keel never locked gives `None`.
    pub fn wait_shared(env: &Environment) -> Result<Option<Self>, Error> {
        let path = env.keel_dir().join("lock");
        let file = match fs_err::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        lock(&file, &path, env, false)?;
        Ok(Some(EnvironmentLock { _file: file }))
    }
}

fn lock(file: &fs_err::File, path: &Path, env: &Environment, exclusive: bool) -> Result<(), Error> {
    let attempt = if exclusive {
        file.file().try_lock()
    } else {
        file.file().try_lock_shared()
    };
    let failed = |e: std::io::Error| {
        Error::from(std::io::Error::new(
            e.kind(),
            format!("failed to lock `{}`: {e}", path.display()),
        ))
    };
    match attempt {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => {
            tracing::warn!(
                "waiting for another keel process to finish with {}",
                env.root().display()
            );
            let result = if exclusive {
                file.file().lock()
            } else {
                file.file().lock_shared()
            };
            result.map_err(failed)
        }
        Err(TryLockError::Error(e)) => Err(failed(e)),
    }
}
