//! The crate's one error type.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

/// Everything that can go wrong fetching a file or an index page.
///
/// Every variant names what it is about (the package, the URL, the file)
/// and, where something was checked, what was expected and what was found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A wanted file lists no sha256, sha384 or sha512 hash: keel never
    /// installs a download it cannot verify.
    #[error(
        "{package}: {shown} has no sha256, sha384 or sha512 hash to check it against; \
         keel never installs an unverified download", shown = redacted(url))]
    NoHash {
        /// The package, for messages (`numpy 2.4.6`).
        package: String,
        /// Where it would have come from.
        url: Url,
    },

    /// A wanted file's name cannot name a file in the download cache.
    #[error("{package}: `{file_name}` (from {shown}) is not a plain file name: {reason}", shown = redacted(url))]
    BadFileName {
        /// The package.
        package: String,
        /// The name refused.
        file_name: String,
        /// Where it would have come from.
        url: Url,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// Offline mode and a request was needed: nothing was fetched.
    #[error("offline: {shown} was not fetched (nothing is fetched offline)", shown = redacted(url))]
    Offline {
        /// The URL that would have been requested.
        url: Url,
    },

    /// Offline mode and the download cache cannot serve a wanted file.
    #[error(
        "offline: {package}: {file_name} {reason}, and {shown} was not fetched \
         (nothing is fetched offline)", shown = redacted(url))]
    NotCached {
        /// The package.
        package: String,
        /// The file.
        file_name: String,
        /// Where it would have come from.
        url: Url,
        /// What the cache holds instead: "is not in the download cache",
        /// "in the download cache has 10 bytes, expected 20", …
        reason: String,
    },

    /// The file (complete) has another digest than the one wanted: the
    /// server serves the wrong file. Never retried.
    #[error("{package}: {shown} has {algorithm} {actual}, the lock says {expected}", shown = redacted(url))]
    HashMismatch {
        /// The package.
        package: String,
        /// Where the file came from.
        url: Url,
        /// The algorithm compared (`sha256`).
        algorithm: &'static str,
        /// The digest(s) wanted, in hex (`abc…` or `abc… or def…`).
        expected: String,
        /// The digest of what arrived, in hex.
        actual: String,
    },

    /// The file (complete, or announced by `Content-Length`) has another
    /// size than the one wanted. Never retried.
    #[error("{package}: {shown} has {actual} bytes, the lock says {expected}", shown = redacted(url))]
    SizeMismatch {
        /// The package.
        package: String,
        /// Where the file came from.
        url: Url,
        /// The size wanted.
        expected: u64,
        /// The size found ("more than 100" when the download was stopped
        /// as soon as it overran).
        actual: String,
    },

    /// A transport error while fetching a wanted file, with the package it
    /// was for.
    #[error("{package}: {error}")]
    Download {
        /// The package.
        package: String,
        /// What went wrong (one of the variants below).
        error: Box<Error>,
    },

    /// The server answered an error status (after the retries, for 408, 429
    /// and 5xx).
    #[error("{shown}: HTTP {status}{reason} ({attempts})", reason = reason_phrase(*status), attempts = attempts_text(*attempts), shown = redacted(url))]
    Status {
        /// The URL requested.
        url: Url,
        /// The status code.
        status: u16,
        /// How many requests were made.
        attempts: u32,
    },

    /// A connect or read timed out on every attempt.
    #[error("{shown}: no answer within {timeout:?} ({attempts})", attempts = attempts_text(*attempts), shown = redacted(url))]
    Timeout {
        /// The URL requested.
        url: Url,
        /// The timeout that expired.
        timeout: Duration,
        /// How many requests were made.
        attempts: u32,
    },

    /// The connection could not be made or broke, on every attempt.
    #[error("{shown}: {reason} ({attempts})", attempts = attempts_text(*attempts), shown = redacted(url))]
    Connect {
        /// The URL requested.
        url: Url,
        /// The transport error, as the HTTP client words it.
        reason: String,
        /// How many requests were made.
        attempts: u32,
    },

    /// The body ended early (connection reset or closed mid-body) on every
    /// attempt.
    #[error(
        "{shown}: the body was cut short after {received} of {expected} bytes ({attempts})",
        expected = expected.map_or_else(|| "the expected".to_owned(), |n| n.to_string()),
        attempts = attempts_text(*attempts), shown = redacted(url))]
    CutShort {
        /// The URL requested.
        url: Url,
        /// Bytes received in the last attempt.
        received: u64,
        /// Bytes announced (`Content-Length`) or wanted, when known.
        expected: Option<u64>,
        /// How many requests were made.
        attempts: u32,
    },

    /// A request that cannot be made at all (a TLS, URL or protocol setup
    /// problem): not retried.
    #[error("{shown}: {reason}", shown = redacted(url))]
    Request {
        /// The URL.
        url: Url,
        /// What is wrong.
        reason: String,
    },

    /// More than 10 redirects, or a redirect without a usable `Location`.
    #[error("{shown}: {reason}", shown = redacted(url))]
    Redirect {
        /// The URL that redirected.
        url: Url,
        /// What is wrong with the redirect.
        reason: String,
    },

    /// A URL scheme keel does not fetch.
    #[error("{shown}: keel fetches http, https and file URLs, not `{scheme}:`", shown = redacted(url))]
    UnsupportedScheme {
        /// The URL.
        url: Url,
        /// Its scheme.
        scheme: String,
    },

    /// A proxy variable that cannot be used.
    #[error("proxy variable {variable}=`{value}`: {reason}")]
    InvalidProxy {
        /// The variable (`HTTPS_PROXY`).
        variable: String,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The extra CA roots (`SSL_CERT_FILE`) cannot be used.
    #[error("CA certificates `{}` (SSL_CERT_FILE): {reason}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An index page or text response that cannot be read.
    #[error("{shown}: {reason}", shown = redacted(url))]
    BadResponse {
        /// The URL.
        url: Url,
        /// What is wrong with the response.
        reason: String,
    },

    /// The index has no page for a project (HTTP 404).
    #[error("{name}: the index has no such project ({shown} answered HTTP 404)", shown = redacted(url))]
    ProjectNotFound {
        /// The project, normalized.
        name: String,
        /// The page requested.
        url: Url,
    },

    /// A PEP 691 (JSON) or PEP 629 (HTML) `api-version` whose major version
    /// keel does not know.
    #[error("{shown}: simple API version {version} is not supported (keel reads 1.x)", shown = redacted(url))]
    UnsupportedApiVersion {
        /// The page.
        url: Url,
        /// The version it declared.
        version: String,
    },

    /// A file system error; the message names the path (`fs_err`).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The transport error behind a [`Error::Download`], or `self`.
    pub fn inner(&self) -> &Error {
        match self {
            Error::Download { error, .. } => error.inner(),
            other => other,
        }
    }
}

/// `url` as messages show it: a password replaced by `****` (private
/// indexes put tokens in URLs; messages end up in CI logs).
pub(crate) fn redacted(url: &Url) -> String {
    if url.password().is_none() {
        return url.to_string();
    }
    let mut shown = url.clone();
    // Only fails for URLs that cannot have a password, which this has.
    let _ = shown.set_password(Some("****"));
    shown.to_string()
}

/// A proxy variable's value as messages show it (see [`redacted`]).
pub(crate) fn redacted_text(value: &str) -> String {
    match Url::parse(value) {
        Ok(url) if url.password().is_some() => redacted(&url),
        _ => value.to_owned(),
    }
}

fn attempts_text(attempts: u32) -> String {
    match attempts {
        1 => "1 attempt".to_owned(),
        n => format!("{n} attempts"),
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => " Bad Request",
        401 => " Unauthorized",
        403 => " Forbidden",
        404 => " Not Found",
        407 => " Proxy Authentication Required",
        408 => " Request Timeout",
        410 => " Gone",
        429 => " Too Many Requests",
        500 => " Internal Server Error",
        502 => " Bad Gateway",
        503 => " Service Unavailable",
        504 => " Gateway Timeout",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_errors_name_the_url_the_status_and_the_attempts() {
        let url = Url::parse("http://127.0.0.1:1/files/a.whl").unwrap();
        let error = Error::Status {
            url,
            status: 404,
            attempts: 1,
        };
        assert_eq!(
            error.to_string(),
            "http://127.0.0.1:1/files/a.whl: HTTP 404 Not Found (1 attempt)"
        );
    }

    #[test]
    fn passwords_in_urls_are_not_shown() {
        let url = Url::parse("https://__token__:s3cret@pkgs.test/simple/").unwrap();
        let error = Error::Offline { url };
        let message = error.to_string();
        assert!(
            message.contains("https://__token__:****@pkgs.test/simple/"),
            "{message}"
        );
        assert!(!message.contains("s3cret"));
        assert_eq!(
            redacted_text("http://u:pw@proxy:3128"),
            "http://u:****@proxy:3128/"
        );
        assert_eq!(redacted_text("proxy:3128"), "proxy:3128");
    }
}
