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

use crate::cache_set::CacheSet;
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
    let caches = CacheSet::of(options);
    let target = crate::probe_target(&env, caches.probe_cache())?;
    // Without a writable cache, downloads live in a temporary directory
    // until the install ends.
    let (download_dir, _scratch) = match &caches.writable {
        Some(dir) => (dir.clone(), None),
        None => {
            let scratch = keel_fs::tempdir_in(&std::env::temp_dir(), "keel-downloads-")?;
            (scratch.path().to_path_buf(), Some(scratch))
        }
    };
    let downloader = Downloader::new(DownloadOptions {
        offline: request.offline,
        verify: options.verification == crate::Verification::Full,
        shared: caches.layers.clone(),
        ..DownloadOptions::from_env(download_dir)
    })
    .map_err(Error::Download)?;
    let is_lock = keel_lock::is_lock_file_name(&request.file);
    let pending = if is_lock {
        from_lock(request, &target, &downloader)?
    } else if request.file.extension().is_some_and(|e| e == "toml") {
        return Err(Error::Lock(keel_lock::Error::NotALockFileName {
            path: request.file.clone(),
        }));
    } else {
        crate::pinned::from_requirements(request, &target, &downloader)?
    };
    let wanted: Vec<Wanted> = pending.iter().map(|p| p.wanted.clone()).collect();
    let started = std::time::Instant::now();
    let downloaded = fetch_and_unpack(&downloader, &wanted, options, &caches)?;
    log_downloads(&downloaded, started.elapsed());
    let requests: Vec<WheelRequest> = pending
        .into_iter()
        .zip(downloaded)
        .map(|(pending, file)| WheelRequest {
            path: file.path,
            sha256: single_sha256(&pending.wanted.hashes),
            origin: pending.origin,
        })
        .collect();
    if !request.no_deps && !is_lock {
        crate::closure::check(&requests, &env, &target, options.exact)?;
    }
    crate::install_with_caches(&requests, options, &caches)
}

/// The sha256 a downloaded file was verified to have: the wanted one, when
/// exactly one sha256 was wanted (within one algorithm, any listed digest
/// will do, so with several the file's own is not known here).
fn single_sha256(hashes: &[keel_wheel::RecordHash]) -> Option<String> {
    let mut sha256 = hashes
        .iter()
        .filter(|h| h.algorithm == keel_wheel::HashAlgorithm::Sha256);
    match (sha256.next(), sha256.next()) {
        (Some(only), None) => Some(only.hex()),
        _ => None,
    }
}

/// Every file fetched and verified, at most `parallel` at once, each one
/// fetched now unpacked into the archive cache as soon as it is complete (so that
/// unpacking overlaps the downloads still running; the cache is not the
/// environment, which nothing here touches). All download errors are
/// reported together; a wheel that cannot be unpacked is an error too.
fn fetch_and_unpack(
    downloader: &Downloader,
    wanted: &[Wanted],
    options: &InstallOptions,
    caches: &CacheSet,
) -> Result<Vec<keel_download::Downloaded>, Error> {
    // No writable cache: the install extracts into its scratch cache.
    let opened = match caches.writable {
        Some(_) => Some(caches.open(options, || Ok(options.cache_dir.clone()))?),
        None => None,
    };
    let cache = opened.as_ref().map(|opened| &opened.cache);
    let progress = keel_download::TerminalProgress::new();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        while let Some(one) = wanted.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
            let fetched = downloader.fetch(one, &progress).map_err(Error::Download);
            // A file that was already in the download cache was unpacked
            // when it arrived; the install's own lookup repairs it if not.
            let unpacked = fetched.and_then(|file| {
                if let Some(cache) = cache.filter(|_| !file.from_cache) {
                    let mut source = keel_cache::WheelSource::new(&file.path)?;
                    if let Some(sha256) = single_sha256(&one.hashes) {
                        source = source.with_sha256(sha256);
                    }
                    cache.obtain(&[source], crate::observer(options))?;
                }
                Ok(file)
            });
            done.push(unpacked);
        }
        done
    };
    let workers = downloader.options().parallel.clamp(1, wanted.len().max(1));
    let results: Vec<Vec<Result<keel_download::Downloaded, Error>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers).map(|_| scope.spawn(work)).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    progress.clear();
    drop(opened);
    collect_in_order(wanted, results.into_iter().flatten().collect())
}

/// The downloads in the order wanted (matched by file name), or every
/// download error (the first other error otherwise).
fn collect_in_order(
    wanted: &[Wanted],
    results: Vec<Result<keel_download::Downloaded, Error>>,
) -> Result<Vec<keel_download::Downloaded>, Error> {
    let mut ok = Vec::new();
    let mut download_errors = Vec::new();
    for result in results {
        match result {
            Ok(file) => ok.push(file),
            Err(Error::Download(e)) => download_errors.push(e),
            Err(other) => return Err(other),
        }
    }
    if !download_errors.is_empty() {
        return Err(Error::Downloads {
            errors: download_errors,
        });
    }
    let name_of = |d: &keel_download::Downloaded| d.path.file_name().map(|n| n.to_os_string());
    Ok(wanted
        .iter()
        .filter_map(|w| {
            let at = ok
                .iter()
                .position(|d| name_of(d).is_some_and(|n| n == *w.file_name))?;
            Some(ok.swap_remove(at))
        })
        .collect())
}

/// `-v`: how many files came from the network and how long fetching,
/// verifying and unpacking them into the archive cache took.
fn log_downloads(downloaded: &[keel_download::Downloaded], elapsed: std::time::Duration) {
    let fetched: Vec<&keel_download::Downloaded> =
        downloaded.iter().filter(|d| !d.from_cache).collect();
    let bytes: u64 = fetched.iter().map(|d| d.bytes).sum();
    tracing::info!(
        "time: download and unpack {:.1}ms: {} of {} files fetched ({:.1} MiB), {} from the download cache",
        elapsed.as_secs_f64() * 1000.0,
        fetched.len(),
        downloaded.len(),
        bytes as f64 / (1024.0 * 1024.0),
        downloaded.len() - fetched.len()
    );
}

/// The wheels a lock selects for the target, as files to fetch.
fn from_lock(
    request: &LockedRequest,
    target: &crate::compat::Target,
    downloader: &Downloader,
) -> Result<Vec<Pending>, Error> {
    let lock = match remote_url(&request.file) {
        Some(url) => fetch_lock(downloader, &url)?,
        None => Lock::from_path(&request.file)?,
    };
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

/// `-r https://…/pylock.toml`: a lock fetched by URL (its relative paths
/// may not leave its directory).
fn remote_url(file: &Path) -> Option<Url> {
    let url = Url::parse(file.to_str()?).ok()?;
    matches!(url.scheme(), "http" | "https").then_some(url)
}

fn fetch_lock(downloader: &Downloader, url: &Url) -> Result<Lock, Error> {
    let (text, _, final_url) = downloader
        .get_text(url, "application/toml, text/plain;q=0.9, */*;q=0.1")
        .map_err(Error::Download)?;
    Ok(Lock::from_str_at(
        &text,
        keel_lock::LockLocation::Url(final_url),
    )?)
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
