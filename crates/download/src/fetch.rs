//! [`Downloader`]: a wanted file from the cache, or over the network (or
//! from disk, for `file:` URLs) into the cache, verified.

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};

use url::Url;

use crate::cache::{DownloadCache, Lookup, Partial, STAMP_SUFFIX};
use crate::client::Client;
use crate::digest::Expected;
use crate::retry::{Failure, RetryPolicy, Transient};
use crate::{DownloadOptions, Downloaded, Error, Progress, Wanted};

/// The most an index page or other text response may hold.
const MAX_TEXT: u64 = 256 * 1024 * 1024;

/// Fetches wanted files into the download cache, and index pages.
pub struct Downloader {
    options: DownloadOptions,
    client: Client,
    cache: DownloadCache,
    policy: RetryPolicy,
}

impl std::fmt::Debug for Downloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downloader")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Downloader {
    /// A downloader; an error when a proxy variable or the CA file cannot be
    /// used.
    pub fn new(options: DownloadOptions) -> Result<Self, Error> {
        Ok(Downloader {
            client: Client::new(&options)?,
            cache: DownloadCache::new(&options.cache_dir),
            policy: RetryPolicy {
                retries: options.retries,
                backoff: options.backoff,
            },
            options,
        })
    }

    /// The options it was made with.
    pub fn options(&self) -> &DownloadOptions {
        &self.options
    }

    /// Its download cache.
    pub fn cache(&self) -> &DownloadCache {
        &self.cache
    }

    /// `wanted`, from the cache when it is there (no network at all), else
    /// fetched, verified and put there. A damaged cached copy is replaced
    /// (offline: an error naming what is wrong with it).
    pub fn fetch(&self, wanted: &Wanted, progress: &dyn Progress) -> Result<Downloaded, Error> {
        let expected = check_wanted(wanted)?;
        let offline = self.client.is_offline() && wanted.url.scheme() != "file";
        let not_cached = |reason: String| Error::NotCached {
            package: wanted.package.clone(),
            file_name: wanted.file_name.clone(),
            url: wanted.url.clone(),
            reason,
        };
        if let Some(shared) = self.shared_lookup(wanted, &expected)? {
            return Ok(shared);
        }
        let lookup = self.cache.lookup(
            &wanted.file_name,
            wanted.size,
            &expected,
            self.options.verify,
        )?;
        match lookup {
            Lookup::Hit { path, bytes } => {
                return Ok(Downloaded {
                    path,
                    from_cache: true,
                    bytes,
                });
            }
            Lookup::Miss if offline => {
                return Err(not_cached("is not in the download cache".to_owned()));
            }
            Lookup::Miss => {}
            Lookup::Damaged { reason, .. } if offline => return Err(not_cached(reason)),
            Lookup::Damaged { path, reason } => {
                tracing::warn!(
                    "{}: {} {reason}; fetching it again",
                    wanted.package,
                    wanted.file_name
                );
                self.cache.discard(&path)?;
            }
        }
        let result = self.transfer(wanted, &expected, progress);
        if result.is_err() {
            self.cache.remove_if_empty(&expected);
        }
        result
    }

    /// `wanted` in a shared layer's download cache, proven there; a
    /// damaged copy there is passed over (the writable cache is next).
    fn shared_lookup(
        &self,
        wanted: &Wanted,
        expected: &Expected,
    ) -> Result<Option<Downloaded>, Error> {
        for layer in &self.options.shared {
            let cache = DownloadCache::read_only(layer);
            let lookup = cache.lookup(
                &wanted.file_name,
                wanted.size,
                expected,
                self.options.verify,
            );
            match lookup {
                Ok(Lookup::Hit { path, bytes }) => {
                    return Ok(Some(Downloaded {
                        path,
                        from_cache: true,
                        bytes,
                    }));
                }
                Ok(Lookup::Damaged { path, reason }) => {
                    tracing::debug!("passing over {} {reason}", path.display());
                }
                Ok(Lookup::Miss) => {}
                Err(e) => tracing::debug!("cannot read the shared cache {}: {e}", layer.display()),
            }
        }
        Ok(None)
    }

    /// Every file of `wanted`, at most [`DownloadOptions::parallel`] at
    /// once, in the order given; or every error (one per failed file; the
    /// others are in the cache). A failed file leaves nothing behind.
    pub fn fetch_all(
        &self,
        wanted: &[Wanted],
        progress: &dyn Progress,
    ) -> Result<Vec<Downloaded>, Vec<Error>> {
        let workers = self.options.parallel.clamp(1, wanted.len().max(1));
        let next = AtomicUsize::new(0);
        let work = || {
            let mut done = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(one) = wanted.get(index) else {
                    return done;
                };
                done.push((index, self.fetch(one, progress)));
            }
        };
        let mut results: Vec<(usize, Result<Downloaded, Error>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers).map(|_| scope.spawn(work)).collect();
            handles
                .into_iter()
                .flat_map(|h| {
                    h.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        results.sort_by_key(|(index, _)| *index);
        let (ok, errors): (Vec<_>, Vec<_>) =
            results.into_iter().map(|(_, r)| r).partition(Result::is_ok);
        if errors.is_empty() {
            Ok(ok.into_iter().filter_map(Result::ok).collect())
        } else {
            Err(errors.into_iter().filter_map(Result::err).collect())
        }
    }

    /// `GET url` as text, with `Accept: accept`, retried like a download:
    /// the body, its `Content-Type` (empty when absent) and the URL it came
    /// from after redirects (to resolve relative links against).
    pub fn get_text(&self, url: &Url, accept: &str) -> Result<(String, String, Url), Error> {
        check_scheme(url, &["http", "https"])?;
        self.policy.run(url, |_| {
            let response = self.client.get(url, accept, false)?;
            let content_type = response
                .header("Content-Type")
                .unwrap_or_default()
                .to_owned();
            let final_url = response.url;
            let mut bytes = Vec::new();
            let mut reader = response
                .inner
                .into_body()
                .into_with_config()
                .limit(MAX_TEXT)
                .reader();
            if let Err(e) = reader.read_to_end(&mut bytes) {
                return Err(match ureq::Error::from(e) {
                    ureq::Error::BodyExceedsLimit(limit) => Failure::Fatal(Error::BadResponse {
                        url: final_url,
                        reason: format!("the response is larger than {limit} bytes"),
                    }),
                    other => self.client.classify(&final_url, other),
                });
            }
            let text = String::from_utf8(bytes).map_err(|_| Error::BadResponse {
                url: final_url.clone(),
                reason: "the response is not UTF-8".to_owned(),
            })?;
            Ok((text, content_type, final_url))
        })
    }

    /// Fetches `wanted` into a partial file, checks it and moves it into
    /// place.
    fn transfer(
        &self,
        wanted: &Wanted,
        expected: &Expected,
        progress: &dyn Progress,
    ) -> Result<Downloaded, Error> {
        let mut partial = self.cache.partial(expected)?;
        let mut reporter = Reporter {
            wanted,
            progress,
            started: false,
        };
        if wanted.url.scheme() == "file" {
            copy_local(wanted, &mut partial, &mut reporter)?;
        } else {
            self.download(wanted, &mut partial, &mut reporter)?;
        }
        let finished = partial.finish();
        let bytes = finished.bytes;
        if let Some(size) = wanted.size.filter(|size| *size != bytes) {
            return Err(size_mismatch(wanted, size, bytes.to_string()));
        }
        expected
            .check(&finished.digests)
            .map_err(|m| Error::HashMismatch {
                package: wanted.package.clone(),
                url: wanted.url.clone(),
                algorithm: m.algorithm.name(),
                expected: m.expected,
                actual: m.actual,
            })?;
        let key_algorithm = expected.key_algorithm();
        let key = finished
            .digests
            .iter()
            .find(|h| h.algorithm == key_algorithm)
            .cloned();
        let key = key.ok_or_else(|| std::io::Error::other("the key digest was not computed"))?;
        let path = self.cache.commit(finished, &wanted.file_name, &key)?;
        if expected.key_candidates().first() != Some(&key) {
            // Downloaded in another candidate's bucket (several allowed
            // digests): that bucket is left empty.
            self.cache.remove_if_empty(expected);
        }
        Ok(Downloaded {
            path,
            from_cache: false,
            bytes,
        })
    }

    /// Downloads `wanted` into `partial`, retrying what is worth retrying.
    fn download(
        &self,
        wanted: &Wanted,
        partial: &mut Partial,
        reporter: &mut Reporter<'_>,
    ) -> Result<(), Error> {
        let result = self.policy.run(&wanted.url, |attempt| {
            if attempt > 0 {
                reporter.retrying(partial.written());
            }
            partial.reset()?;
            self.attempt(wanted, partial, reporter)
        });
        result.map_err(|error| match error {
            Error::SizeMismatch { .. } | Error::Io(_) => error,
            error => Error::Download {
                package: wanted.package.clone(),
                error: Box::new(error),
            },
        })
    }

    /// One request for `wanted`, its body streamed into `partial`.
    fn attempt(
        &self,
        wanted: &Wanted,
        partial: &mut Partial,
        reporter: &mut Reporter<'_>,
    ) -> Result<(), Failure> {
        let response = self.client.get(&wanted.url, "*/*", true)?;
        let announced = response.inner.body().content_length();
        if let (Some(announced), Some(size)) = (announced, wanted.size)
            && announced != size
        {
            // The server announces another file: no need to download it.
            return Err(Failure::Fatal(size_mismatch(
                wanted,
                size,
                announced.to_string(),
            )));
        }
        reporter.start(announced.or(wanted.size));
        let reader = response.inner.into_body().into_reader();
        match pump(reader, partial, wanted, reporter) {
            Ok(()) => {}
            Err(Pumped::Fatal(error)) => return Err(Failure::Fatal(error)),
            Err(Pumped::Read(e)) => {
                return Err(match ureq::Error::from(e) {
                    error @ ureq::Error::Timeout(_) => self.client.classify(&wanted.url, error),
                    _ => Failure::Transient(Transient::CutShort {
                        received: partial.written(),
                        expected: announced.or(wanted.size),
                    }),
                });
            }
        }
        match announced.or(wanted.size) {
            Some(expected) if partial.written() < expected => {
                Err(Failure::Transient(Transient::CutShort {
                    received: partial.written(),
                    expected: Some(expected),
                }))
            }
            _ => Ok(()),
        }
    }
}

/// The checks before anything is fetched: hashes, file name, scheme.
fn check_wanted(wanted: &Wanted) -> Result<Expected, Error> {
    let Some(expected) = Expected::new(&wanted.hashes) else {
        return Err(Error::NoHash {
            package: wanted.package.clone(),
            url: wanted.url.clone(),
        });
    };
    let name = wanted.file_name.as_str();
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.contains(['/', '\\', '\0']) {
        Some("it holds a path separator")
    } else if name.starts_with('.') {
        Some("it starts with a dot")
    } else if name.ends_with(STAMP_SUFFIX) {
        Some("it ends with `.stamp`")
    } else {
        None
    };
    if let Some(reason) = reason {
        return Err(Error::BadFileName {
            package: wanted.package.clone(),
            file_name: name.to_owned(),
            url: wanted.url.clone(),
            reason,
        });
    }
    check_scheme(&wanted.url, &["http", "https", "file"])?;
    Ok(expected)
}

fn check_scheme(url: &Url, schemes: &[&str]) -> Result<(), Error> {
    if schemes.contains(&url.scheme()) {
        return Ok(());
    }
    Err(Error::UnsupportedScheme {
        url: url.clone(),
        scheme: url.scheme().to_owned(),
    })
}

fn size_mismatch(wanted: &Wanted, expected: u64, actual: String) -> Error {
    Error::SizeMismatch {
        package: wanted.package.clone(),
        url: wanted.url.clone(),
        expected,
        actual,
    }
}

/// Copies a `file:` URL's file into `partial`.
fn copy_local(
    wanted: &Wanted,
    partial: &mut Partial,
    reporter: &mut Reporter<'_>,
) -> Result<(), Error> {
    let path = wanted.url.to_file_path().map_err(|()| Error::Request {
        url: wanted.url.clone(),
        reason: "not a local file path".to_owned(),
    })?;
    let file = fs_err::File::open(&path)?;
    reporter.start(Some(file.metadata()?.len()));
    match pump(file, partial, wanted, reporter) {
        Ok(()) => Ok(()),
        Err(Pumped::Fatal(error)) => Err(error),
        Err(Pumped::Read(e)) => Err(Error::Io(keel_fs::with_path(e, &path))),
    }
}

/// Why [`pump`] stopped early.
enum Pumped {
    /// Reading the source failed.
    Read(std::io::Error),
    /// The source overran the wanted size, or writing failed.
    Fatal(Error),
}

/// Streams `reader` into `partial`, stopping as soon as it overruns the
/// wanted size.
fn pump(
    mut reader: impl Read,
    partial: &mut Partial,
    wanted: &Wanted,
    reporter: &Reporter<'_>,
) -> Result<(), Pumped> {
    let mut buffer = vec![0; 128 * 1024];
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Pumped::Read(e)),
        };
        if let Some(size) = wanted
            .size
            .filter(|size| partial.written() + n as u64 > *size)
        {
            return Err(Pumped::Fatal(size_mismatch(
                wanted,
                size,
                format!("more than {size}"),
            )));
        }
        partial.write(&buffer[..n]).map_err(Pumped::Fatal)?;
        reporter.progress.advanced(wanted, n as u64);
    }
}

/// Tells a [`Progress`] about one transfer: started once, finished once.
struct Reporter<'a> {
    wanted: &'a Wanted,
    progress: &'a dyn Progress,
    started: bool,
}

impl Reporter<'_> {
    fn start(&mut self, total: Option<u64>) {
        if !self.started {
            self.started = true;
            self.progress.started(self.wanted, total);
        }
    }

    fn retrying(&self, discarded: u64) {
        if self.started {
            self.progress.retrying(self.wanted, discarded);
        }
    }
}

impl Drop for Reporter<'_> {
    fn drop(&mut self) {
        if self.started {
            self.progress.finished(self.wanted);
        }
    }
}
