//! Which caches an install reads and which one it writes: the read-only
//! shared layers (`--shared-cache`), then the writable cache
//! (`--cache-dir`); with `--no-cache`, or when the cache directory cannot
//! be written, a scratch cache inside the transaction, gone with it (the
//! wheels are still verified as they are extracted, and staged by links).

use std::path::{Path, PathBuf};

use keel_cache::{Cache, CacheLock};

use crate::{Error, InstallOptions};

/// The caches of one install, decided once.
#[derive(Debug, Clone)]
pub(crate) struct CacheSet {
    /// The cache archives are unpacked into; `None`: a scratch cache in
    /// the transaction.
    pub writable: Option<PathBuf>,
    /// Read-only layers, in the order consulted.
    pub layers: Vec<PathBuf>,
}

/// An opened cache and the shared lock held on its writable part.
pub(crate) struct Opened {
    pub cache: Cache,
    _lock: CacheLock,
}

impl CacheSet {
    /// Decides the caches of `options`: a cache directory keel cannot
    /// write becomes a read-only layer, with a one-line note.
    pub(crate) fn of(options: &InstallOptions) -> CacheSet {
        let mut layers = options.shared_caches.clone();
        if options.no_cache {
            return CacheSet {
                writable: None,
                layers,
            };
        }
        let dir = &options.cache_dir;
        if can_write(dir) {
            return CacheSet {
                writable: Some(dir.clone()),
                layers,
            };
        }
        tracing::warn!(
            "keel cannot write the cache `{}`: using it read-only; what is not in it is unpacked for this install only",
            dir.display()
        );
        layers.push(dir.clone());
        CacheSet {
            writable: None,
            layers,
        }
    }

    /// The writable cache directory of the interpreter probe's memo, if any.
    pub(crate) fn probe_cache(&self) -> Option<&Path> {
        self.writable.as_deref()
    }

    /// Opens the caches for an install, the writable one at `scratch` when
    /// there is none (created on demand), and takes its shared lock.
    pub(crate) fn open(
        &self,
        options: &InstallOptions,
        scratch: impl FnOnce() -> Result<PathBuf, Error>,
    ) -> Result<Opened, Error> {
        let root = match &self.writable {
            Some(dir) => dir.clone(),
            None => scratch()?,
        };
        let cache = Cache::at(&root)?
            .with_shared_layers(&self.layers)?
            .with_limits(options.limits)
            .with_destination_check(keel_venv::reserved_destination);
        let lock = cache.lock_shared()?;
        Ok(Opened { cache, _lock: lock })
    }
}

/// Whether keel can create and write files in `dir` (creating it if it is
/// missing). `access(2)` answers for this process's user, and `EROFS` for a
/// read-only mount.
fn can_write(dir: &Path) -> bool {
    use rustix::fs::{Access, access};
    if fs_err::create_dir_all(dir).is_err() {
        return false;
    }
    access(dir, Access::WRITE_OK | Access::EXEC_OK).is_ok()
}
