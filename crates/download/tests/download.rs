//! keel-download against a real loopback server (keel-testserver on
//! 127.0.0.1): every scenario of a download, the cache, proxies and the
//! simple index. No test talks to any other host.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use keel_download::{
    Backoff, DownloadCache, DownloadOptions, Downloader, EntryState, Error, IndexFile, Progress,
    ProxyEnv, SimpleIndex, TerminalProgress, Wanted,
};
use keel_testserver::{Fault, IndexFormat, Server, UrlStyle};
use keel_wheel::{HashAlgorithm, PackageName, RecordHash};
use url::Url;

const WHEEL: &str = "demo-1.0-py3-none-any.whl";

/// A served directory, its server, and a cache directory.
struct Setup {
    served: tempfile::TempDir,
    server: Server,
    cache: tempfile::TempDir,
}

impl Setup {
    /// Serves `WHEEL` (300 KiB of varied bytes).
    fn new() -> Setup {
        Setup::with(Server::start)
    }

    /// [`Setup::new`] over HTTPS, with the server's own CA.
    fn tls() -> Setup {
        Setup::with(Server::start_tls)
    }

    fn with(start: fn(&Path) -> Server) -> Setup {
        let served = tempfile::tempdir().unwrap();
        let setup = Setup {
            server: start(served.path()),
            served,
            cache: tempfile::tempdir().unwrap(),
        };
        setup.add(WHEEL, &content(300 * 1024, 1));
        setup
    }

    fn add(&self, name: &str, bytes: &[u8]) {
        fs_err::write(self.served.path().join(name), bytes).unwrap();
    }

    fn bytes(&self, name: &str) -> Vec<u8> {
        fs_err::read(self.served.path().join(name)).unwrap()
    }

    /// Fast retries, short timeouts, no proxy.
    fn options(&self) -> DownloadOptions {
        let mut options = DownloadOptions::new(self.cache.path());
        options.backoff = Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(5),
        };
        options.timeout = Duration::from_secs(5);
        options
    }

    fn downloader(&self) -> Downloader {
        Downloader::new(self.options()).unwrap()
    }

    /// `name` as a lock would want it: its sha256 and size.
    fn wanted(&self, name: &str) -> Wanted {
        let bytes = self.bytes(name);
        Wanted {
            package: "demo 1.0".to_owned(),
            url: Url::parse(&self.server.file_url(name)).unwrap(),
            file_name: name.to_owned(),
            hashes: vec![RecordHash::of(HashAlgorithm::Sha256, &bytes)],
            size: Some(bytes.len() as u64),
        }
    }

    /// Every file under the download cache (stamps and partials included).
    fn cache_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        walk(&self.cache.path().join(DownloadCache::DIR), &mut files);
        files
    }

    fn partials(&self) -> Vec<PathBuf> {
        let is_partial = |p: &PathBuf| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(keel_fs::PARTIAL_PREFIX)
        };
        self.cache_files().into_iter().filter(is_partial).collect()
    }
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = fs_err::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, files);
        } else {
            files.push(path);
        }
    }
}

/// `len` bytes that differ from file to file (`seed`).
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    RecordHash::of(HashAlgorithm::Sha256, bytes).hex()
}

#[test]
fn a_fetch_lands_in_the_content_keyed_cache_and_a_hit_makes_no_request() {
    let s = Setup::new();
    let wanted = s.wanted(WHEEL);
    let first = s.downloader().fetch(&wanted, &()).unwrap();
    assert!(!first.from_cache);
    assert_eq!(first.bytes, 300 * 1024);
    let hex = sha256_hex(&s.bytes(WHEEL));
    let expected = s.cache.path().join(format!(
        "downloads-v1/sha256/{}/{}/{WHEEL}",
        &hex[..2],
        &hex[2..]
    ));
    assert_eq!(first.path, expected);
    assert_eq!(fs_err::read(&first.path).unwrap(), s.bytes(WHEEL));
    assert!(expected.with_file_name(format!("{WHEEL}.stamp")).is_file());
    assert_eq!(s.server.requests(WHEEL), 1);

    // Whatever the URL now answers, the cached file is used.
    s.server.fault(WHEEL, Fault::NotFound);
    let again = s.downloader().fetch(&wanted, &()).unwrap();
    assert!(again.from_cache);
    assert_eq!(again.path, first.path);
    assert_eq!(s.server.requests(WHEEL), 1, "a hit makes no request");
}

#[test]
fn a_500_then_ok_is_retried_and_succeeds() {
    let s = Setup::new();
    s.server.fault(
        WHEEL,
        Fault::Status {
            status: 500,
            times: 2,
        },
    );
    let downloaded = s.downloader().fetch(&s.wanted(WHEEL), &()).unwrap();
    assert_eq!(fs_err::read(&downloaded.path).unwrap(), s.bytes(WHEEL));
    assert_eq!(s.server.requests(WHEEL), 3);
}

#[test]
fn a_429_is_retried_after_its_retry_after() {
    let s = Setup::new();
    s.server.fault(
        WHEEL,
        Fault::Status {
            status: 429,
            times: 1,
        },
    );
    s.downloader().fetch(&s.wanted(WHEEL), &()).unwrap();
    assert_eq!(s.server.requests(WHEEL), 2);
}

#[test]
fn too_many_5xx_is_an_error_naming_the_url_the_status_and_the_attempts() {
    let s = Setup::new();
    s.server.fault(
        WHEEL,
        Fault::Status {
            status: 503,
            times: 100,
        },
    );
    let error = s.downloader().fetch(&s.wanted(WHEEL), &()).unwrap_err();
    assert!(
        matches!(
            error.inner(),
            Error::Status {
                status: 503,
                attempts: 4,
                ..
            }
        ),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with("demo 1.0: ") && message.contains(&s.server.file_url(WHEEL)),
        "{message}"
    );
    assert_eq!(s.server.requests(WHEEL), 4, "1 + 3 retries");
    assert!(s.cache_files().is_empty(), "{:?}", s.cache_files());
}

#[test]
fn a_reset_mid_body_is_retried() {
    let s = Setup::new();
    s.server.fault(WHEEL, Fault::ResetMidBody { times: 2 });
    let progress = TerminalProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden());
    let downloaded = s.downloader().fetch(&s.wanted(WHEEL), &progress).unwrap();
    assert_eq!(fs_err::read(&downloaded.path).unwrap(), s.bytes(WHEEL));
    assert_eq!(s.server.requests(WHEEL), 3);
    assert_eq!(
        progress.position(),
        300 * 1024,
        "discarded bytes are taken back"
    );
}

#[test]
fn a_truncated_body_is_retried() {
    let s = Setup::new();
    s.server.fault(WHEEL, Fault::Truncate { times: 1 });
    let downloaded = s.downloader().fetch(&s.wanted(WHEEL), &()).unwrap();
    assert_eq!(fs_err::read(&downloaded.path).unwrap(), s.bytes(WHEEL));
    assert_eq!(s.server.requests(WHEEL), 2);
}

#[test]
fn a_body_cut_short_every_time_leaves_no_file_that_looks_complete() {
    let s = Setup::new();
    s.server.fault(WHEEL, Fault::Truncate { times: 100 });
    let error = s.downloader().fetch(&s.wanted(WHEEL), &()).unwrap_err();
    let Error::CutShort {
        received,
        expected,
        attempts,
        ..
    } = error.inner()
    else {
        panic!("{error}");
    };
    assert_eq!(
        (*received, *expected, *attempts),
        (150 * 1024, Some(300 * 1024), 4)
    );
    assert!(s.cache_files().is_empty(), "{:?}", s.cache_files());
}

#[test]
fn a_wrong_hash_is_an_error_at_once_naming_both_digests_and_leaves_nothing() {
    let s = Setup::new();
    s.server.fault(WHEEL, Fault::WrongBytes);
    let error = s.downloader().fetch(&s.wanted(WHEEL), &()).unwrap_err();
    let mut served = s.bytes(WHEEL);
    served[150 * 1024] ^= 0xff;
    let Error::HashMismatch {
        expected, actual, ..
    } = &error
    else {
        panic!("{error}");
    };
    assert_eq!(
        (expected.as_str(), actual.as_str()),
        (
            sha256_hex(&s.bytes(WHEEL)).as_str(),
            sha256_hex(&served).as_str()
        )
    );
    let message = error.to_string();
    let url = s.server.file_url(WHEEL);
    assert_eq!(
        message,
        format!("demo 1.0: {url} has sha256 {actual}, the lock says {expected}")
    );
    assert_eq!(
        s.server.requests(WHEEL),
        1,
        "a complete body with a wrong hash is not retried"
    );
    assert!(
        s.cache_files().is_empty(),
        "no file, no partial: {:?}",
        s.cache_files()
    );
}

#[test]
fn a_wrong_size_is_an_error_at_once_and_leaves_nothing() {
    let s = Setup::new();
    s.server.fault(WHEEL, Fault::WrongSize);
    let error = s.downloader().fetch(&s.wanted(WHEEL), &()).unwrap_err();
    let size = 300 * 1024;
    assert!(
        matches!(&error, Error::SizeMismatch { expected, actual, .. } if *expected == size && *actual == (size + 1).to_string()),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains(&format!("has {} bytes, the lock says {size}", size + 1)),
        "{error}"
    );
    assert_eq!(s.server.requests(WHEEL), 1);
    assert!(s.cache_files().is_empty(), "{:?}", s.cache_files());

    // Without a size in the lock, the hash catches it, still at once.
    let mut wanted = s.wanted(WHEEL);
    wanted.size = None;
    let error = s.downloader().fetch(&wanted, &()).unwrap_err();
    assert!(matches!(error, Error::HashMismatch { .. }), "{error}");
    assert_eq!(s.server.requests(WHEEL), 2);
    assert!(s.cache_files().is_empty(), "{:?}", s.cache_files());
}

#[test]
fn a_404_is_an_error_naming_the_url_and_is_not_retried() {
    let s = Setup::new();
    s.server.fault(WHEEL, Fault::NotFound);
    let error = s.downloader().fetch(&s.wanted(WHEEL), &()).unwrap_err();
    let url = s.server.file_url(WHEEL);
    assert_eq!(
        error.to_string(),
        format!("demo 1.0: {url}: HTTP 404 Not Found (1 attempt)")
    );
    assert_eq!(s.server.requests(WHEEL), 1);
    assert!(s.cache_files().is_empty());
}

#[test]
fn a_slow_first_byte_beyond_the_timeout_times_out_after_the_retries_in_bounded_time() {
    let s = Setup::new();
    let mut options = s.options();
    options.timeout = Duration::from_millis(200);
    options.retries = 2;
    s.server.fault(
        WHEEL,
        Fault::SlowFirstByte {
            delay: Duration::from_millis(1500),
            times: 10,
        },
    );
    let start = Instant::now();
    let error = Downloader::new(options)
        .unwrap()
        .fetch(&s.wanted(WHEEL), &())
        .unwrap_err();
    let elapsed = start.elapsed();
    assert!(
        matches!(error.inner(), Error::Timeout { timeout, attempts: 3, .. } if *timeout == Duration::from_millis(200)),
        "{error}"
    );
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert_eq!(s.server.requests(WHEEL), 3);

    // A delay within the timeout is no problem.
    s.server.fault(
        WHEEL,
        Fault::SlowFirstByte {
            delay: Duration::from_millis(50),
            times: 1,
        },
    );
    s.downloader().fetch(&s.wanted(WHEEL), &()).unwrap();
}

#[test]
fn offline_a_hit_is_served_and_a_miss_names_the_file_and_makes_no_request() {
    let s = Setup::new();
    let other = "other-2.0-py3-none-any.whl";
    s.add(other, b"other");
    s.downloader().fetch(&s.wanted(WHEEL), &()).unwrap();
    let mut options = s.options();
    options.offline = true;
    let offline = Downloader::new(options).unwrap();

    assert!(offline.fetch(&s.wanted(WHEEL), &()).unwrap().from_cache);
    let error = offline.fetch(&s.wanted(other), &()).unwrap_err();
    assert!(matches!(error, Error::NotCached { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains(other) && message.contains("is not in the download cache"),
        "{message}"
    );
    assert!(message.contains("nothing is fetched offline"), "{message}");
    assert_eq!((s.server.requests(WHEEL), s.server.requests(other)), (1, 0));

    let url = Url::parse(&s.server.index_url()).unwrap();
    let error = offline.get_text(&url, "text/html").unwrap_err();
    assert!(matches!(error, Error::Offline { .. }), "{error}");
    assert_eq!(s.server.index_requests(), 0);
}

#[test]
fn a_cached_file_deleted_or_truncated_by_tmpwatch_is_fetched_again() {
    let s = Setup::new();
    let wanted = s.wanted(WHEEL);
    let path = s.downloader().fetch(&wanted, &()).unwrap().path;

    // tmpwatch deleted the file (not its directory, not its stamp).
    fs_err::remove_file(&path).unwrap();
    let mut options = s.options();
    options.offline = true;
    let error = Downloader::new(options.clone())
        .unwrap()
        .fetch(&wanted, &())
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("was deleted from the download cache"),
        "{error}"
    );
    let again = s.downloader().fetch(&wanted, &()).unwrap();
    assert!(!again.from_cache);
    assert_eq!(fs_err::read(&path).unwrap(), s.bytes(WHEEL));
    assert_eq!(s.server.requests(WHEEL), 2);

    // Truncated.
    fs_err::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1000)
        .unwrap();
    let error = Downloader::new(options)
        .unwrap()
        .fetch(&wanted, &())
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("has 1000 bytes, expected 307200"),
        "{error}"
    );
    assert!(!s.downloader().fetch(&wanted, &()).unwrap().from_cache);
    assert_eq!(fs_err::read(&path).unwrap(), s.bytes(WHEEL));
    assert_eq!(s.server.requests(WHEEL), 3);

    // Both deleted: a plain miss.
    fs_err::remove_file(&path).unwrap();
    fs_err::remove_file(path.with_file_name(format!("{WHEEL}.stamp"))).unwrap();
    assert!(!s.downloader().fetch(&wanted, &()).unwrap().from_cache);
    assert_eq!(s.server.requests(WHEEL), 4);
}

#[test]
fn a_cached_file_edited_in_place_is_caught_by_its_stamp_or_with_verify() {
    let s = Setup::new();
    let wanted = s.wanted(WHEEL);
    let path = s.downloader().fetch(&wanted, &()).unwrap().path;
    let mtime = fs_err::metadata(&path).unwrap().modified().unwrap();
    let edit = |at: u64| {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = fs_err::OpenOptions::new().write(true).open(&path).unwrap();
        file.seek(SeekFrom::Start(at)).unwrap();
        file.write_all(b"EDITED").unwrap();
        file
    };

    // An edit that moves the mtime: the stamp no longer holds, the file is
    // hashed, found wrong, and fetched again.
    let file = edit(10);
    file.set_modified(mtime + Duration::from_secs(3)).unwrap();
    drop(file);
    assert!(!s.downloader().fetch(&wanted, &()).unwrap().from_cache);
    assert_eq!(fs_err::read(&path).unwrap(), s.bytes(WHEEL));

    // An edit that puts the mtime back (same size, same inode): only
    // hashing sees it, which `verify` does.
    let mtime = fs_err::metadata(&path).unwrap().modified().unwrap();
    edit(20).set_modified(mtime).unwrap();
    assert!(
        s.downloader().fetch(&wanted, &()).unwrap().from_cache,
        "the stamp still holds"
    );
    let mut options = s.options();
    options.verify = true;
    let verified = Downloader::new(options)
        .unwrap()
        .fetch(&wanted, &())
        .unwrap();
    assert!(!verified.from_cache);
    assert_eq!(fs_err::read(&path).unwrap(), s.bytes(WHEEL));
    assert_eq!(s.server.requests(WHEEL), 3);
}

#[test]
fn a_stamp_that_no_longer_holds_over_a_good_file_is_renewed_without_the_network() {
    let s = Setup::new();
    let wanted = s.wanted(WHEEL);
    let path = s.downloader().fetch(&wanted, &()).unwrap().path;
    // Copied back from a backup: new inode, same bytes.
    let copy = path.with_file_name("copy");
    fs_err::copy(&path, &copy).unwrap();
    fs_err::rename(&copy, &path).unwrap();
    let mut options = s.options();
    options.offline = true;
    assert!(
        Downloader::new(options)
            .unwrap()
            .fetch(&wanted, &())
            .unwrap()
            .from_cache
    );
    assert_eq!(s.server.requests(WHEEL), 1);
}

#[test]
fn a_hit_wanted_with_more_hashes_is_hashed_once_offline_and_restamped_with_all() {
    let s = Setup::new();
    let bytes = s.bytes(WHEEL);
    let sha256 = s.wanted(WHEEL);
    s.downloader().fetch(&sha256, &()).unwrap();
    let mut both = sha256.clone();
    both.hashes
        .push(RecordHash::of(HashAlgorithm::Sha512, &bytes));
    let mut options = s.options();
    options.offline = true;
    let offline = Downloader::new(options).unwrap();
    assert!(offline.fetch(&both, &()).unwrap().from_cache);
    let entries: Vec<_> = offline.cache().entries().collect::<Result<_, _>>().unwrap();
    assert_eq!(entries[0].digests.len(), 2, "{:?}", entries[0].digests);
    // A wrong extra hash is caught by hashing, and offline it is an error.
    both.hashes[1] = RecordHash::of(HashAlgorithm::Sha512, b"other");
    let mut sha384 = sha256.clone();
    sha384
        .hashes
        .push(RecordHash::of(HashAlgorithm::Sha384, b"other"));
    for wanted in [both, sha384] {
        let error = offline.fetch(&wanted, &()).unwrap_err();
        assert!(matches!(error, Error::NotCached { .. }), "{error}");
    }
    assert_eq!(s.server.requests(WHEEL), 1);
}

/// Counts transfers in flight, and the most at once.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl Progress for InFlight {
    fn started(&self, _: &Wanted, _: Option<u64>) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
    }

    fn finished(&self, _: &Wanted) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn fetch_all_fetches_20_files_4_at_a_time_and_reports_each_failure() {
    let s = Setup::new();
    let names: Vec<String> = (0..20)
        .map(|i| format!("pkg{i}-1.0-py3-none-any.whl"))
        .collect();
    for (i, name) in names.iter().enumerate() {
        s.add(name, &content(64 * 1024 + i, i as u64 + 10));
        // Slow enough that the workers overlap.
        s.server.fault(
            name,
            Fault::SlowFirstByte {
                delay: Duration::from_millis(30),
                times: 1,
            },
        );
    }
    let wanted: Vec<Wanted> = names.iter().map(|n| s.wanted(n)).collect();
    let mut options = s.options();
    options.parallel = 4;
    let downloader = Downloader::new(options).unwrap();
    let progress = InFlight::default();
    let downloaded = downloader.fetch_all(&wanted, &progress).unwrap();
    assert_eq!(downloaded.len(), 20);
    for (one, name) in downloaded.iter().zip(&names) {
        assert!(one.path.ends_with(name), "in order");
        assert_eq!(fs_err::read(&one.path).unwrap(), s.bytes(name));
        assert_eq!(s.server.requests(name), 1);
    }
    let most = progress.most.load(Ordering::SeqCst);
    assert!(
        (2..=4).contains(&most),
        "at most 4 at once, and in parallel: {most}"
    );

    // One of them failing: its error, the others fine, nothing partial.
    fs_err::remove_dir_all(s.cache.path()).unwrap();
    s.server.fault(&names[7], Fault::WrongBytes);
    let errors = downloader.fetch_all(&wanted, &()).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].to_string().contains(&names[7]), "{}", errors[0]);
    assert!(s.partials().is_empty(), "{:?}", s.partials());
    let cached = s
        .cache_files()
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "whl"))
        .count();
    assert_eq!(cached, 19);
}

#[test]
fn two_downloaders_fetching_one_file_at_once_both_succeed() {
    let s = Setup::new();
    let wanted = s.wanted(WHEEL);
    for round in 0..5 {
        fs_err::remove_dir_all(s.cache.path()).ok();
        // Both requests wait at the server, so that both downloads overlap.
        s.server.fault(
            WHEEL,
            Fault::SlowFirstByte {
                delay: Duration::from_millis(40),
                times: 2,
            },
        );
        let barrier = std::sync::Barrier::new(2);
        let results = std::thread::scope(|scope| {
            let fetch = || {
                // Separate downloaders: two keel processes sharing a cache.
                let downloader = s.downloader();
                barrier.wait();
                downloader.fetch(&wanted, &())
            };
            let a = scope.spawn(fetch);
            let b = scope.spawn(fetch);
            [a.join().unwrap(), b.join().unwrap()]
        });
        for result in results {
            let downloaded = result.unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(fs_err::read(&downloaded.path).unwrap(), s.bytes(WHEEL));
        }
        assert!(s.partials().is_empty(), "{:?}", s.partials());
        assert!(s.downloader().fetch(&wanted, &()).unwrap().from_cache);
    }
}

/// Set in the environment of a child process of
/// `two_processes_fetching_one_file_at_once_both_succeed`: `url cache sha256 size name`.
const CHILD_VAR: &str = "KEEL_DOWNLOAD_TEST_CHILD";

/// The child's side: one fetch (does nothing when not run as a child).
#[test]
fn child_process_fetch() {
    let Ok(spec) = std::env::var(CHILD_VAR) else {
        return;
    };
    let [url, cache, sha256, size, name]: [&str; 5] =
        spec.split(' ').collect::<Vec<_>>().try_into().unwrap();
    let wanted = Wanted {
        package: "demo 1.0".to_owned(),
        url: Url::parse(url).unwrap(),
        file_name: name.to_owned(),
        hashes: vec![RecordHash::from_hex(HashAlgorithm::Sha256, sha256).unwrap()],
        size: Some(size.parse().unwrap()),
    };
    let downloaded = Downloader::new(DownloadOptions::new(cache))
        .unwrap()
        .fetch(&wanted, &())
        .unwrap();
    assert!(!downloaded.from_cache, "both processes download");
    assert_eq!(sha256_hex(&fs_err::read(&downloaded.path).unwrap()), sha256);
}

#[test]
fn two_processes_fetching_one_file_at_once_both_succeed() {
    let s = Setup::new();
    let wanted = s.wanted(WHEEL);
    // Both requests wait at the server long enough for both processes to
    // have started theirs.
    s.server.fault(
        WHEEL,
        Fault::SlowFirstByte {
            delay: Duration::from_millis(400),
            times: 2,
        },
    );
    let spec = format!(
        "{} {} {} {} {WHEEL}",
        wanted.url,
        s.cache.path().display(),
        wanted.hashes[0].hex(),
        300 * 1024
    );
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "child_process_fetch",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_VAR, &spec)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_eq!(s.server.requests(WHEEL), 2);
    assert!(s.partials().is_empty(), "{:?}", s.partials());
    assert!(s.downloader().fetch(&wanted, &()).unwrap().from_cache);
}

#[test]
fn http_proxy_is_honoured_and_no_proxy_bypasses_it() {
    let s = Setup::new();
    let proxy = s.server.proxy_url();
    let mut options = s.options();
    options.proxy = ProxyEnv::from_vars([("HTTP_PROXY", proxy.as_str())]);
    let downloader = Downloader::new(options.clone()).unwrap();
    downloader.fetch(&s.wanted(WHEEL), &()).unwrap();
    assert!(s.server.proxied() > 0, "the request went through the proxy");

    // The proxy resolves the host: a name this machine cannot resolve
    // works through it.
    let other = "other-1.0-py3-none-any.whl";
    s.add(other, b"through the proxy");
    let mut wanted = s.wanted(other);
    wanted.url = Url::parse(&format!("http://pkgs.invalid/files/{other}")).unwrap();
    let downloaded = downloader.fetch(&wanted, &()).unwrap();
    assert_eq!(fs_err::read(downloaded.path).unwrap(), b"through the proxy");

    // NO_PROXY=127.0.0.1: straight to the server.
    fs_err::remove_dir_all(s.cache.path()).unwrap();
    let before = s.server.proxied();
    options.proxy = ProxyEnv::from_vars([
        ("http_proxy", proxy.as_str()),
        ("NO_PROXY", "localhost, 127.0.0.1"),
    ]);
    Downloader::new(options)
        .unwrap()
        .fetch(&s.wanted(WHEEL), &())
        .unwrap();
    assert_eq!(s.server.proxied(), before);
    assert_eq!(s.server.requests(WHEEL), 2);
}

#[test]
fn an_untrusted_certificate_fails_at_once_and_ssl_cert_file_trusts_it() {
    let s = Setup::tls();
    let wanted = s.wanted(WHEEL);
    assert_eq!(wanted.url.scheme(), "https");
    let error = s.downloader().fetch(&wanted, &()).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(wanted.url.as_str())
            && message.contains("the server's TLS certificate is not trusted")
            && message.contains("UnknownIssuer")
            && !message.contains("attempt"),
        "{message}"
    );
    assert_eq!(s.server.requests(WHEEL), 0);
    assert!(s.partials().is_empty(), "{:?}", s.partials());

    let ca = s.cache.path().join("ca.pem");
    fs_err::write(&ca, s.server.ca_pem().unwrap()).unwrap();
    let mut options = s.options();
    options.ca_file = Some(ca);
    let downloaded = Downloader::new(options)
        .unwrap()
        .fetch(&wanted, &())
        .unwrap();
    assert_eq!(fs_err::read(downloaded.path).unwrap(), s.bytes(WHEEL));
    assert_eq!(s.server.requests(WHEEL), 1);
}

#[test]
fn https_proxy_tunnels_with_connect() {
    let s = Setup::tls();
    let proxy_dir = tempfile::tempdir().unwrap();
    let proxy = Server::start(proxy_dir.path());
    let ca = s.cache.path().join("ca.pem");
    fs_err::write(&ca, s.server.ca_pem().unwrap()).unwrap();
    let mut options = s.options();
    options.ca_file = Some(ca);
    options.proxy = ProxyEnv::from_vars([("HTTPS_PROXY", proxy.proxy_url())]);
    Downloader::new(options)
        .unwrap()
        .fetch(&s.wanted(WHEEL), &())
        .unwrap();
    assert_eq!((proxy.tunnels(), proxy.proxied()), (1, 0));
    assert_eq!(s.server.requests(WHEEL), 1);
}

#[test]
fn a_wanted_file_without_a_hash_is_refused_before_any_request() {
    let s = Setup::new();
    let mut wanted = s.wanted(WHEEL);
    wanted.hashes.clear();
    let error = s.downloader().fetch(&wanted, &()).unwrap_err();
    assert!(matches!(error, Error::NoHash { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("never installs an unverified download"),
        "{error}"
    );
    let mut wanted = s.wanted(WHEEL);
    wanted.file_name = "../../escape.whl".to_owned();
    assert!(matches!(
        s.downloader().fetch(&wanted, &()),
        Err(Error::BadFileName { .. })
    ));
    assert_eq!(s.server.requests(WHEEL), 0);
}

#[test]
fn a_file_wanted_by_sha512_only_is_keyed_by_sha512_and_every_listed_hash_is_checked() {
    let s = Setup::new();
    let bytes = s.bytes(WHEEL);
    let mut wanted = s.wanted(WHEEL);
    wanted.hashes = vec![RecordHash::of(HashAlgorithm::Sha512, &bytes)];
    let path = s.downloader().fetch(&wanted, &()).unwrap().path;
    let hex = RecordHash::of(HashAlgorithm::Sha512, &bytes).hex();
    assert!(
        path.ends_with(format!("sha512/{}/{}/{WHEEL}", &hex[..2], &hex[2..])),
        "{}",
        path.display()
    );

    // sha256 right, sha384 wrong: refused.
    fs_err::remove_dir_all(s.cache.path()).unwrap();
    wanted.hashes = vec![
        RecordHash::of(HashAlgorithm::Sha256, &bytes),
        RecordHash::of(HashAlgorithm::Sha384, b"x"),
    ];
    let error = s.downloader().fetch(&wanted, &()).unwrap_err();
    assert!(
        matches!(
            &error,
            Error::HashMismatch {
                algorithm: "sha384",
                ..
            }
        ),
        "{error}"
    );

    // Two allowed sha256 digests (a requirements file's `--hash` list):
    // filed under the one it has, nothing left under the other.
    let right = RecordHash::of(HashAlgorithm::Sha256, &bytes);
    let other = RecordHash::of(HashAlgorithm::Sha256, b"another file");
    wanted.hashes = vec![other.clone(), right.clone()];
    let downloader = s.downloader();
    let path = downloader.fetch(&wanted, &()).unwrap().path;
    assert_eq!(path, downloader.cache().path_of(&right, WHEEL));
    assert!(!downloader.cache().bucket(&other).exists());
    assert!(downloader.fetch(&wanted, &()).unwrap().from_cache);
}

#[test]
fn a_file_url_is_read_from_disk_hashed_and_cached() {
    let s = Setup::new();
    let mut wanted = s.wanted(WHEEL);
    wanted.url = Url::from_file_path(s.served.path().join(WHEEL)).unwrap();
    let downloaded = s.downloader().fetch(&wanted, &()).unwrap();
    assert!(!downloaded.from_cache && downloaded.path.starts_with(s.cache.path()));
    assert_eq!(fs_err::read(&downloaded.path).unwrap(), s.bytes(WHEEL));
    assert_eq!(s.server.requests(WHEEL), 0);

    fs_err::remove_dir_all(s.cache.path()).unwrap();
    s.add(WHEEL, b"changed on disk");
    let mut options = s.options();
    options.offline = true;
    let error = Downloader::new(options)
        .unwrap()
        .fetch(&wanted, &())
        .unwrap_err();
    assert!(matches!(error, Error::SizeMismatch { .. }), "{error}");
    assert!(s.cache_files().is_empty());
}

#[test]
fn cache_entries_are_listed_verified_and_stale_partials_removed() {
    let s = Setup::new();
    let other = "other-1.0-py3-none-any.whl";
    s.add(other, b"other bytes");
    let downloader = s.downloader();
    let first = downloader.fetch(&s.wanted(WHEEL), &()).unwrap();
    downloader.fetch(&s.wanted(other), &()).unwrap();
    let cache = downloader.cache();
    let entries: Vec<_> = cache.entries().collect::<Result<_, _>>().unwrap();
    assert_eq!(entries.len(), 2);
    let entry = entries.iter().find(|e| e.file_name == WHEEL).unwrap();
    assert_eq!(
        entry.key,
        RecordHash::of(HashAlgorithm::Sha256, &s.bytes(WHEEL))
    );
    assert_eq!(entry.digests, std::slice::from_ref(&entry.key));
    assert_eq!(entry.size, 300 * 1024);
    assert_eq!(cache.verify_entry(entry).unwrap(), EntryState::Intact);

    fs_err::write(&first.path, b"tampered").unwrap();
    let EntryState::Damaged { reason } = cache.verify_entry(entry).unwrap() else {
        panic!("tampering not found");
    };
    assert!(reason.contains("it is filed under"), "{reason}");
    cache.remove_entry(entry).unwrap();
    assert_eq!(cache.entries().count(), 1);

    // A killed download's leftover (old) is removed; a live one is not.
    let bucket = first.path.parent().unwrap().to_owned();
    fs_err::create_dir_all(&bucket).unwrap();
    let stale = bucket.join(format!("{}stale", keel_fs::PARTIAL_PREFIX));
    let live = bucket.join(format!("{}live", keel_fs::PARTIAL_PREFIX));
    fs_err::write(&stale, b"half").unwrap();
    fs_err::write(&live, b"half").unwrap();
    let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
    fs_err::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    assert_eq!(cache.remove_stale_partials().unwrap(), [stale]);
    assert!(live.exists());
    // An empty cache has no entries and nothing to remove.
    let empty = DownloadCache::new(&s.cache.path().join("nothing"));
    assert_eq!(empty.entries().count(), 0);
    assert!(empty.remove_stale_partials().unwrap().is_empty());
}

/// The files of `demo` as the index lists them, in `format`.
fn index_files(s: &Setup, format: IndexFormat) -> Vec<IndexFile> {
    s.server.set_index_format(format);
    let downloader = s.downloader();
    let index = SimpleIndex::new(&downloader, Url::parse(&s.server.index_url()).unwrap());
    index.files(&PackageName::new("Demo")).unwrap()
}

#[test]
fn the_index_in_json_and_in_html_gives_the_same_files() {
    let s = Setup::new();
    let sdist = "demo-1.0.tar.gz";
    let old = "demo-0.9-py3-none-any.whl";
    s.add(sdist, b"sdist");
    s.add(old, b"old wheel");
    s.add("unrelated-1.0-py3-none-any.whl", b"x");
    s.server.yank(old, Some("broken <metadata> & more"));
    s.server.yank(sdist, None);
    s.server.set_requires_python(WHEEL, ">=3.8, <4");

    let json = index_files(&s, IndexFormat::Json);
    let html = index_files(&s, IndexFormat::Html);
    let without_size = |files: &[IndexFile]| {
        files
            .iter()
            .cloned()
            .map(|f| IndexFile { size: None, ..f })
            .collect::<Vec<_>>()
    };
    assert_eq!(without_size(&json), html, "JSON and HTML agree");
    assert_eq!(json.len(), 3);
    for file in &json {
        assert_eq!(
            file.url.as_str(),
            s.server.file_url(&file.file_name),
            "absolute"
        );
        assert_eq!(
            file.hashes,
            [RecordHash::of(
                HashAlgorithm::Sha256,
                &s.bytes(&file.file_name)
            )]
        );
        assert_eq!(
            file.size,
            Some(s.bytes(&file.file_name).len() as u64),
            "PEP 700 size in JSON"
        );
    }
    let by_name = |name: &str| json.iter().find(|f| f.file_name == name).unwrap();
    assert_eq!(by_name(WHEEL).requires_python.as_deref(), Some(">=3.8, <4"));
    assert_eq!(by_name(WHEEL).yanked, None);
    assert_eq!(
        by_name(old).yanked,
        Some(Some("broken <metadata> & more".to_owned()))
    );
    assert_eq!(by_name(sdist).yanked, Some(None));

    // Relative links in JSON too, and "both" negotiates JSON.
    s.server.set_url_style(UrlStyle::Relative);
    assert_eq!(index_files(&s, IndexFormat::Json), json);
    let before = s.server.index_requests();
    assert_eq!(index_files(&s, IndexFormat::Both), json);
    assert_eq!(s.server.index_requests(), before + 1);
}

#[test]
fn a_file_found_in_the_index_downloads_and_verifies() {
    let s = Setup::new();
    let downloader = s.downloader();
    let index = SimpleIndex::new(&downloader, Url::parse(&s.server.index_url()).unwrap());
    let file = index.files(&PackageName::new("demo")).unwrap().remove(0);
    let wanted = Wanted {
        package: "demo 1.0".to_owned(),
        url: file.url,
        file_name: file.file_name,
        hashes: file.hashes,
        size: file.size,
    };
    let downloaded = downloader.fetch(&wanted, &()).unwrap();
    assert_eq!(fs_err::read(downloaded.path).unwrap(), s.bytes(WHEEL));
}

#[test]
fn a_project_the_index_lacks_is_named() {
    let s = Setup::new();
    let downloader = s.downloader();
    let index = SimpleIndex::new(&downloader, Url::parse(&s.server.index_url()).unwrap());
    let error = index
        .files(&PackageName::new("No_Such.Project"))
        .unwrap_err();
    assert!(matches!(error, Error::ProjectNotFound { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.starts_with("no-such-project: ") && message.contains("/simple/no-such-project/"),
        "{message}"
    );
}

#[test]
fn get_text_returns_the_body_its_type_and_the_final_url() {
    let s = Setup::new();
    s.server.set_index_format(IndexFormat::Html);
    let url = Url::parse(&format!("{}demo/", s.server.index_url())).unwrap();
    let (body, content_type, final_url) = s.downloader().get_text(&url, "text/html").unwrap();
    assert!(body.contains(WHEEL), "{body}");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert_eq!(final_url, url);
}
