//! Wheels over HTTP for keel: a blocking client that retries what is worth
//! retrying, a download cache keyed by content, and a simple-index client.
//!
//! keel never installs a download it has not verified: every wanted file
//! names its hashes, every byte is hashed (with every listed algorithm) as
//! it streams into a temporary file in the cache, and only a file of the
//! right size and hashes is renamed into place. A complete body with a
//! wrong size or hash is an error at once, naming the package, the URL, the
//! expected and the actual value; it is not retried, since the server would
//! only serve the same wrong file again.
//!
//! # Principal types
//!
//! - [`Downloader`]: made from [`DownloadOptions`] (cache directory,
//!   offline, retries and [`Backoff`], timeouts, parallelism, verify,
//!   [`ProxyEnv`], extra CA roots). [`Downloader::fetch`] gets one
//!   [`Wanted`] file into the cache and returns where it is
//!   ([`Downloaded`]); [`Downloader::fetch_all`] gets many, a bounded number
//!   at once; [`Downloader::get_text`] fetches an index page.
//! - [`DownloadCache`]: the cache itself,
//!   `<cache>/downloads-v1/sha256/<xx>/<rest>/<file name>` and its stamp,
//!   with what `keel cache verify/clean/prune` need:
//!   [`DownloadCache::entries`], [`DownloadCache::verify_entry`],
//!   [`DownloadCache::remove_stale_partials`].
//! - [`SimpleIndex`]: a PEP 691 (JSON) / PEP 503 (HTML) index, listing a
//!   project's files as [`IndexFile`]s.
//! - [`Progress`]: hears each transfer advance; [`TerminalProgress`] draws
//!   one bar in bytes when stderr is a terminal.
//! - [`Error`]: everything that can go wrong, each naming what it is about.
//!
//! A file in the cache is used without the network: a lock installs
//! offline once its files were downloaded, whatever its URLs now answer. A
//! hit is proven by one `stat` against its stamp (or by hashing, with
//! [`DownloadOptions::verify`]); a damaged one (deleted, truncated, edited)
//! is fetched again.
//!
//! # Example
//!
//! ```
//! use keel_download::{DownloadOptions, Downloader, Wanted};
//! use keel_wheel::{HashAlgorithm, RecordHash};
//!
//! let dir = tempfile::tempdir()?;
//! let wheel = dir.path().join("demo-1.0-py3-none-any.whl");
//! fs_err::write(&wheel, b"not really a wheel")?;
//!
//! let downloader = Downloader::new(DownloadOptions::new(dir.path().join("cache")))?;
//! let wanted = Wanted {
//!     package: "demo 1.0".to_owned(),
//!     url: url::Url::from_file_path(&wheel).unwrap(),
//!     file_name: "demo-1.0-py3-none-any.whl".to_owned(),
//!     hashes: vec![RecordHash::of(HashAlgorithm::Sha256, b"not really a wheel")],
//!     size: Some(18),
//! };
//! let first = downloader.fetch(&wanted, &())?;
//! assert!(!first.from_cache);
//! assert!(first.path.starts_with(dir.path().join("cache/downloads-v1/sha256")));
//!
//! // The second time it comes from the cache, even offline.
//! let mut options = DownloadOptions::new(dir.path().join("cache"));
//! options.offline = true;
//! let again = Downloader::new(options)?.fetch(&wanted, &())?;
//! assert!(again.from_cache);
//! assert_eq!(again.path, first.path);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod cache;
mod client;
mod digest;
mod error;
mod fetch;
mod forward;
mod index;
mod progress;
mod proxy;
mod retry;
mod tls;

use std::path::PathBuf;
use std::time::Duration;

pub use cache::{CacheEntry, DownloadCache, EntryState, STALE_PARTIAL_AGE};
pub use client::USER_AGENT;
pub use error::Error;
pub use fetch::Downloader;
pub use index::{IndexFile, SimpleIndex};
pub use progress::{Progress, TerminalProgress};
pub use proxy::ProxyEnv;
pub use retry::Backoff;

/// A file to fetch, as a lock or an index names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The package it belongs to, for messages (`numpy 2.4.6`).
    pub package: String,
    /// Where it is: `https://`, `http://` or `file:`.
    pub url: url::Url,
    /// Its file name (the name it has in the cache).
    pub file_name: String,
    /// Its hashes; at least one is required ([`Error::NoHash`]). Across
    /// algorithms each must hold; within one, any listed digest will do.
    pub hashes: Vec<keel_wheel::RecordHash>,
    /// Its size, when known; checked as soon as the server announces one.
    pub size: Option<u64>,
}

/// A wanted file, in the download cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Where it is (inside the download cache).
    pub path: PathBuf,
    /// Whether it was there already (no transfer at all).
    pub from_cache: bool,
    /// Its size.
    pub bytes: u64,
}

/// How a [`Downloader`] works.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// The keel cache directory; downloads go to `<cache_dir>/downloads-v1`.
    pub cache_dir: PathBuf,
    /// Never touch the network: a request is [`Error::Offline`], a file not
    /// in the cache [`Error::NotCached`] (`file:` URLs are still read).
    pub offline: bool,
    /// Retries after the first attempt (default 3).
    pub retries: u32,
    /// The wait between retries.
    pub backoff: Backoff,
    /// How long connecting may take (default 10 s).
    pub connect_timeout: Duration,
    /// How long one read may wait for data (default 30 s): a server that
    /// sends nothing for this long has timed out.
    pub timeout: Duration,
    /// At most this many downloads at once in [`Downloader::fetch_all`]
    /// (default 8).
    pub parallel: usize,
    /// Hash every cached file before using it, instead of trusting a stamp
    /// that still holds.
    pub verify: bool,
    /// The proxies (default: none; [`DownloadOptions::from_env`] reads the
    /// environment's).
    pub proxy: ProxyEnv,
    /// A PEM file of CA certificates trusted besides the webpki roots
    /// (`SSL_CERT_FILE`).
    pub ca_file: Option<PathBuf>,
    /// Read-only keel caches (`--shared-cache`) whose download caches are
    /// looked in first; nothing is ever written there.
    pub shared: Vec<PathBuf>,
}

impl DownloadOptions {
    /// The defaults, with no proxy and no extra CA: nothing read from the
    /// environment.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        DownloadOptions {
            cache_dir: cache_dir.into(),
            offline: false,
            retries: 3,
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            parallel: 8,
            verify: false,
            proxy: ProxyEnv::none(),
            ca_file: None,
            shared: Vec::new(),
        }
    }

    /// The defaults, with the proxies of `HTTP_PROXY`, `HTTPS_PROXY`,
    /// `ALL_PROXY` and `NO_PROXY` (lowercase forms first) and the CA
    /// certificates of `SSL_CERT_FILE`.
    pub fn from_env(cache_dir: impl Into<PathBuf>) -> Self {
        DownloadOptions {
            proxy: ProxyEnv::from_env(),
            ca_file: std::env::var_os("SSL_CERT_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            ..DownloadOptions::new(cache_dir)
        }
    }
}
