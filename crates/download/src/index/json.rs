//! PEP 691: the JSON form of a project page.

use std::collections::BTreeMap;

use serde::Deserialize;
use url::Url;

use super::{IndexFile, check_api_version, index_hash};
use crate::Error;

#[derive(Deserialize)]
struct Page {
    meta: Option<Meta>,
    files: Vec<File>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "api-version")]
    api_version: Option<String>,
}

#[derive(Deserialize)]
struct File {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: BTreeMap<String, String>,
    #[serde(rename = "requires-python")]
    requires_python: Option<String>,
    yanked: Option<Yanked>,
    size: Option<u64>,
}

/// PEP 691: "either a boolean […] or a non empty, but otherwise
/// arbitrary, string".
#[derive(Deserialize)]
#[serde(untagged)]
enum Yanked {
    Flag(bool),
    Reason(String),
}

/// The files of a JSON project page fetched from `url`.
pub(crate) fn parse(body: &str, url: &Url) -> Result<Vec<IndexFile>, Error> {
    let page: Page = serde_json::from_str(body).map_err(|e| Error::BadResponse {
        url: url.clone(),
        reason: format!("not a PEP 691 project page ({e})"),
    })?;
    if let Some(version) = page.meta.and_then(|m| m.api_version) {
        check_api_version(&version, url)?;
    }
    page.files
        .into_iter()
        .map(|file| index_file(file, url))
        .collect()
}

fn index_file(file: File, page: &Url) -> Result<IndexFile, Error> {
    let mut url = page.join(&file.url).map_err(|e| Error::BadResponse {
        url: page.clone(),
        reason: format!("{}: `{}` is not a URL ({e})", file.filename, file.url),
    })?;
    url.set_fragment(None);
    let mut hashes = Vec::new();
    for (name, hex) in &file.hashes {
        hashes.extend(index_hash(name, hex, &file.filename, page)?);
    }
    let yanked = match file.yanked {
        None | Some(Yanked::Flag(false)) => None,
        Some(Yanked::Flag(true)) => Some(None),
        Some(Yanked::Reason(reason)) => Some(Some(reason).filter(|r| !r.is_empty())),
    };
    Ok(IndexFile {
        file_name: file.filename,
        url,
        hashes,
        requires_python: file.requires_python.filter(|r| !r.trim().is_empty()),
        yanked,
        size: file.size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pep_691_page_with_every_field() {
        let page = Url::parse("http://127.0.0.1:1/simple/demo/").unwrap();
        let sha = "ab".repeat(32);
        let body = format!(
            r#"{{"meta": {{"api-version": "1.3"}}, "name": "demo", "versions": ["1.0"],
                "files": [
                  {{"filename": "demo-1.0-py3-none-any.whl", "url": "../../files/demo-1.0-py3-none-any.whl#x",
                    "hashes": {{"sha256": "{sha}", "md5": "00"}}, "requires-python": ">=3.8",
                    "yanked": "broken", "size": 12, "core-metadata": true}},
                  {{"filename": "demo-1.0.tar.gz", "url": "http://other/demo-1.0.tar.gz",
                    "hashes": {{}}, "yanked": true}},
                  {{"filename": "demo-0.9.tar.gz", "url": "demo-0.9.tar.gz", "hashes": {{}}, "yanked": false,
                    "requires-python": null}}
                ]}}"#
        );
        let files = parse(&body, &page).unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(
            files[0].url.as_str(),
            "http://127.0.0.1:1/files/demo-1.0-py3-none-any.whl"
        );
        assert_eq!(
            files[0].hashes.iter().map(|h| h.hex()).collect::<Vec<_>>(),
            [sha]
        );
        assert_eq!(files[0].requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(files[0].yanked, Some(Some("broken".to_owned())));
        assert_eq!(files[0].size, Some(12));
        assert_eq!(files[1].yanked, Some(None));
        assert_eq!(files[2].yanked, None);
        assert_eq!(
            files[2].url.as_str(),
            "http://127.0.0.1:1/simple/demo/demo-0.9.tar.gz"
        );
    }

    #[test]
    fn a_newer_major_version_is_refused_and_garbage_named() {
        let page = Url::parse("http://127.0.0.1:1/simple/demo/").unwrap();
        let error = parse(r#"{"meta": {"api-version": "2.0"}, "files": []}"#, &page).unwrap_err();
        assert!(
            matches!(error, Error::UnsupportedApiVersion { .. }),
            "{error}"
        );
        let error = parse("<html>", &page).unwrap_err().to_string();
        assert!(
            error.contains("/simple/demo/") && error.contains("PEP 691"),
            "{error}"
        );
    }
}
