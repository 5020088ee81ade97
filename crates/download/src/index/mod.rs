//! A simple repository API client: PEP 691 JSON first, PEP 503 HTML as the
//! fallback, decided by the response's `Content-Type`.
//!
//! Both formats give the same [`IndexFile`]s: absolute URLs (resolved
//! against the page's final URL, after redirects), the hashes keel can use
//! (sha256, sha384, sha512; md5 and others are ignored), `Requires-Python`,
//! PEP 592 yanking, and the PEP 700 size when the JSON form has it. The
//! API version (PEP 629 `pypi:repository-version` in HTML, `meta.api-version`
//! in JSON) must have major version 1; a newer minor version is read as 1.x.

mod html;
mod json;

use keel_wheel::{PackageName, RecordHash};
use url::Url;

use crate::{Downloader, Error};

/// What keel asks for: JSON, HTML only as a fallback.
pub const ACCEPT: &str = "application/vnd.pypi.simple.v1+json, \
                          application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1";

/// A file an index lists for a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFile {
    /// The file's name (`numpy-2.4.6-cp313-cp313-manylinux_2_28_x86_64.whl`).
    pub file_name: String,
    /// Where it is: absolute, without the hash fragment.
    pub url: Url,
    /// Its hashes in an algorithm keel accepts (possibly none).
    pub hashes: Vec<RecordHash>,
    /// Its `Requires-Python`, as written (entities unescaped).
    pub requires_python: Option<String>,
    /// `None` when not yanked; `Some(reason)` when yanked (PEP 592), the
    /// reason `None` when the index gives none.
    pub yanked: Option<Option<String>>,
    /// Its size, when the index says (PEP 700).
    pub size: Option<u64>,
}

/// A simple index at one base URL (`https://host/simple/`).
#[derive(Debug)]
pub struct SimpleIndex<'a> {
    downloader: &'a Downloader,
    url: Url,
}

impl<'a> SimpleIndex<'a> {
    /// The index at `index_url` (a trailing slash is added when missing),
    /// fetched with `downloader` (its retries, proxies, offline mode).
    pub fn new(downloader: &'a Downloader, mut index_url: Url) -> Self {
        if !index_url.path().ends_with('/') {
            let path = format!("{}/", index_url.path());
            index_url.set_path(&path);
        }
        SimpleIndex {
            downloader,
            url: index_url,
        }
    }

    /// The index's base URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The URL of a project's page: `<index>/<normalized name>/`.
    pub fn project_url(&self, name: &PackageName) -> Result<Url, Error> {
        self.url
            .join(&format!("{}/", name.as_str()))
            .map_err(|e| Error::BadResponse {
                url: self.url.clone(),
                reason: format!("no project URL for `{name}` ({e})"),
            })
    }

    /// Every file the index lists for `name`, in the order listed.
    pub fn files(&self, name: &PackageName) -> Result<Vec<IndexFile>, Error> {
        let url = self.project_url(name)?;
        let (body, content_type, final_url) = match self.downloader.get_text(&url, ACCEPT) {
            Ok(page) => page,
            Err(Error::Status {
                status: 404, url, ..
            }) => {
                return Err(Error::ProjectNotFound {
                    name: name.to_string(),
                    url,
                });
            }
            Err(error) => return Err(error),
        };
        parse_page(&body, &content_type, &final_url)
    }
}

/// The files of a project page, by its `Content-Type`.
pub(crate) fn parse_page(
    body: &str,
    content_type: &str,
    url: &Url,
) -> Result<Vec<IndexFile>, Error> {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if let Some(version) = mime
        .strip_prefix("application/vnd.pypi.simple.")
        .and_then(|rest| rest.strip_suffix("+json"))
    {
        check_media_version(version, url)?;
        return json::parse(body, url);
    }
    if mime == "application/json" {
        return json::parse(body, url);
    }
    if let Some(version) = mime
        .strip_prefix("application/vnd.pypi.simple.")
        .and_then(|rest| rest.strip_suffix("+html"))
    {
        check_media_version(version, url)?;
    }
    // text/html, the +html type, or no type at all: PEP 503.
    html::parse(body, url)
}

/// The `v1` of `application/vnd.pypi.simple.v1+json` (`latest` is fine).
fn check_media_version(version: &str, url: &Url) -> Result<(), Error> {
    if version == "v1" || version == "latest" {
        return Ok(());
    }
    Err(Error::UnsupportedApiVersion {
        url: url.clone(),
        version: version.to_owned(),
    })
}

/// The newest minor version of the simple API keel knows (1.4, PEP 792).
const KNOWN_MINOR: u32 = 4;

/// Checks an `api-version` (`1.1`): major 1, any minor.
pub(crate) fn check_api_version(version: &str, url: &Url) -> Result<(), Error> {
    let mut parts = version.trim().split('.');
    if parts.next() == Some("1") {
        let minor = parts.next().and_then(|m| m.parse::<u32>().ok());
        if minor.is_some_and(|minor| minor > KNOWN_MINOR) {
            tracing::debug!(
                "{url}: simple API version {version} is newer than 1.{KNOWN_MINOR}; read as 1.{KNOWN_MINOR}"
            );
        }
        return Ok(());
    }
    Err(Error::UnsupportedApiVersion {
        url: url.clone(),
        version: version.to_owned(),
    })
}

/// The hash of a supported algorithm spelled `name` and `hex`; `Ok(None)`
/// for an algorithm keel does not use; an error for a malformed digest of
/// one it does (the index is broken: that file cannot be verified).
pub(crate) fn index_hash(
    name: &str,
    hex: &str,
    file_name: &str,
    url: &Url,
) -> Result<Option<RecordHash>, Error> {
    let Some(algorithm) = keel_wheel::HashAlgorithm::from_name(&name.to_ascii_lowercase()) else {
        return Ok(None);
    };
    RecordHash::from_hex(algorithm, hex)
        .map(Some)
        .map_err(|reason| Error::BadResponse {
            url: url.clone(),
            reason: format!("{file_name}: {} hash: {reason}", algorithm.name()),
        })
}

/// The last path segment of `url`, percent-decoded.
pub(crate) fn file_name_of(url: &Url) -> Option<String> {
    let segment = url.path_segments()?.next_back()?;
    let name = percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()?;
    (!name.is_empty()).then(|| name.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> Url {
        Url::parse("http://127.0.0.1:1/simple/demo/").unwrap()
    }

    #[test]
    fn api_versions_of_major_one_are_read_others_refused() {
        assert!(check_api_version("1.0", &url()).is_ok());
        assert!(check_api_version("1.99", &url()).is_ok());
        let error = check_api_version("2.0", &url()).unwrap_err().to_string();
        assert!(
            error.contains("2.0") && error.contains("/simple/demo/"),
            "{error}"
        );
        assert!(check_media_version("v1", &url()).is_ok());
        assert!(check_media_version("latest", &url()).is_ok());
        assert!(check_media_version("v2", &url()).is_err());
        assert!(parse_page("{}", "application/vnd.pypi.simple.v2+json", &url()).is_err());
    }

    #[test]
    fn unsupported_hashes_are_ignored_malformed_supported_ones_are_errors() {
        assert_eq!(index_hash("md5", "00", "a.whl", &url()).unwrap(), None);
        assert!(index_hash("sha256", "abc", "a.whl", &url()).is_err());
        let hex = "ab".repeat(32);
        assert_eq!(
            index_hash("SHA256", &hex, "a.whl", &url())
                .unwrap()
                .map(|h| h.hex()),
            Some(hex)
        );
    }

    #[test]
    fn file_names_are_the_decoded_last_segment() {
        let url = Url::parse("http://h/files/demo%2B1-1.0.whl").unwrap();
        assert_eq!(file_name_of(&url).as_deref(), Some("demo+1-1.0.whl"));
        assert_eq!(file_name_of(&Url::parse("http://h/files/").unwrap()), None);
    }
}
