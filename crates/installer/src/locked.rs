//! Installing what a lock pins: a PEP 751 `pylock.toml` or a hash-pinned
//! requirements file, as one transaction.
//!
//! The order is the point: everything that can be decided offline is
//! decided first (the lock read and checked, what it selects for this
//! interpreter, every problem reported together); then every file is
//! fetched into the content-keyed download cache and verified (size and
//! hash); only then does the transaction begin, with no network inside it.
//! A failed download changes nothing in the environment, and a `kill -9` at
//! any instant is recovered as any other install.

use std::path::{Path, PathBuf};

use keel_download::{DownloadOptions, Downloader, Wanted};
use keel_lock::{Choice, Location, Lock, Selected};
use url::Url;

use crate::origin::{Origin, WheelRequest};
use crate::{Error, InstallOptions, InstallReport};

/// What to install from a lock or requirements file, and how to fetch it.
#[derive(Debug, Clone, Default)]
pub struct LockedRequest {
    /// `pylock.toml`, `pylock.<name>.toml`, or a requirements file.
    pub file: PathBuf,
    /// `--extra` (locks).
    pub extras: Vec<String>,
    /// `--group` (locks); `None`: the lock's `default-groups`.
    pub groups: Option<Vec<String>>,
    /// `--index-url` (requirements files): used before the file's own.
    pub index_urls: Vec<Url>,
    /// `--offline`: only the download cache; what is missing is named.
    pub offline: bool,
    /// `--no-deps`: skip the check that every requirement's dependencies
    /// are in the set or the environment (requirements files).
    pub no_deps: bool,
}

/// One file to fetch and install.
pub(crate) struct Pending {
    pub wanted: Wanted,
    pub origin: Origin,
}

/// Installs what `request.file` pins into `options.venv` (with
/// `options.exact`, the environment then holds exactly that: `sync`).
pub fn install_locked(
    request: &LockedRequest,
    options: &InstallOptions,
) -> Result<InstallReport, Error> {
    let env = keel_venv::Environment::open(&options.venv)?;
    let target = crate::probe_target(&env, &options.cache_dir)?;
    let downloader = Downloader::new(DownloadOptions {
        offline: request.offline,
        verify: options.verification == crate::Verification::Full,
        ..DownloadOptions::from_env(&options.cache_dir)
    })
    .map_err(Error::Download)?;
    let pending = if keel_lock::is_lock_file_name(&request.file) {
        from_lock(request, &target)?
    } else if request.file.extension().is_some_and(|e| e == "toml") {
        return Err(Error::Lock(keel_lock::Error::NotALockFileName {
            path: request.file.clone(),
        }));
    } else {
        crate::pinned::from_requirements(request, &target, &downloader)?
    };
    let wanted: Vec<Wanted> = pending.iter().map(|p| p.wanted.clone()).collect();
    let progress = keel_download::TerminalProgress::new();
    let downloaded = downloader.fetch_all(&wanted, &progress);
    progress.clear();
    let downloaded = downloaded.map_err(|errors| Error::Downloads { errors })?;
    let requests: Vec<WheelRequest> = pending
        .into_iter()
        .zip(downloaded)
        .map(|(pending, file)| WheelRequest {
            path: file.path,
            origin: pending.origin,
        })
        .collect();
    if !request.no_deps && !keel_lock::is_lock_file_name(&request.file) {
        crate::closure::check(&requests, &env, &target, options.exact)?;
    }
    crate::install_requests(&requests, options)
}

/// The wheels a lock selects for the target, as files to fetch.
fn from_lock(
    request: &LockedRequest,
    target: &crate::compat::Target,
) -> Result<Vec<Pending>, Error> {
    let lock = Lock::from_path(&request.file)?;
    for warning in &lock.warnings {
        tracing::warn!("{}: {warning}", request.file.display());
    }
    let choice = Choice {
        extras: request.extras.clone(),
        groups: request.groups.clone(),
    };
    let selected = keel_lock::select(&lock, &target.interpreter, &target.tags, &choice)?;
    selected.into_iter().map(pending_of).collect()
}

/// A selected wheel as a download: a `path` is fetched from disk like a
/// URL (its size and hash are checked all the same).
fn pending_of(selected: Selected) -> Result<Pending, Error> {
    let url = match &selected.file.location {
        Location::Url(url) => url.clone(),
        Location::Path(path) => file_url(path)?,
    };
    let origin = if selected.direct {
        Origin::DirectUrl {
            url: url.clone(),
            hashes: selected.file.hashes.clone(),
        }
    } else {
        Origin::Index
    };
    let package = match &selected.package.version {
        Some(version) => format!("{} {version}", selected.package.name),
        None => selected.package.name.to_string(),
    };
    Ok(Pending {
        wanted: Wanted {
            package,
            url,
            file_name: selected.file.file_name,
            hashes: selected.file.hashes,
            size: selected.file.size,
        },
        origin,
    })
}

pub(crate) fn file_url(path: &Path) -> Result<Url, Error> {
    Url::from_file_path(path).map_err(|()| Error::NotAbsolute {
        path: path.to_path_buf(),
    })
}
