//! PEP 503: the HTML form of a project page, read with a WHATWG-conformant
//! tokenizer (`html5gum`), so that attribute values arrive with their
//! character references decoded (`data-requires-python="&gt;=3.8"` is
//! `>=3.8`) and tag soup is read as a browser would.

use std::collections::BTreeMap;

use html5gum::{DefaultEmitter, HtmlString, Token, Tokenizer};
use url::Url;

use super::{IndexFile, check_api_version, file_name_of, index_hash};
use crate::Error;

/// The files of an HTML project page fetched from `url`: one per `<a
/// href>`, resolved against `<base href>` when the page has one (HTML's
/// rule), else against `url`.
pub(crate) fn parse(body: &str, url: &Url) -> Result<Vec<IndexFile>, Error> {
    let mut emitter = DefaultEmitter::default();
    // Treat <script>, <style>, <title>… contents as text, as a parser would.
    emitter.naively_switch_states(true);
    let mut base = url.clone();
    let mut files = Vec::new();
    for token in Tokenizer::new_with_emitter(body, emitter) {
        let Ok(Token::StartTag(tag)) = token else {
            continue;
        };
        let attributes: BTreeMap<String, String> = tag
            .attributes
            .iter()
            .map(|(k, v)| (text(k), text(&v.value)))
            .collect();
        match tag.name.as_slice() {
            b"base" => {
                if let Some(href) = attributes.get("href").and_then(|h| url.join(h).ok()) {
                    base = href;
                }
            }
            b"meta"
                if attributes
                    .get("name")
                    .is_some_and(|n| n == "pypi:repository-version") =>
            {
                if let Some(version) = attributes.get("content") {
                    check_api_version(version, url)?;
                }
            }
            b"a" => files.extend(anchor(&attributes, &base, url)?),
            _ => {}
        }
    }
    Ok(files)
}

fn text(bytes: &HtmlString) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The file an anchor links, if it links one.
fn anchor(
    attributes: &BTreeMap<String, String>,
    base: &Url,
    page: &Url,
) -> Result<Option<IndexFile>, Error> {
    let Some(href) = attributes.get("href") else {
        return Ok(None);
    };
    let Ok(mut url) = base.join(href.trim()) else {
        tracing::debug!("{page}: skipping the link `{href}`, not a URL");
        return Ok(None);
    };
    let fragment = url.fragment().map(str::to_owned);
    url.set_fragment(None);
    let Some(file_name) = file_name_of(&url) else {
        return Ok(None);
    };
    let mut hashes = Vec::new();
    if let Some((name, hex)) = fragment.as_deref().and_then(|f| f.split_once('=')) {
        hashes.extend(index_hash(name, hex, &file_name, page)?);
    }
    let requires_python = attributes
        .get("data-requires-python")
        .filter(|r| !r.trim().is_empty())
        .cloned();
    let yanked = attributes
        .get("data-yanked")
        .map(|reason| Some(reason.clone()).filter(|r| !r.is_empty()));
    Ok(Some(IndexFile {
        file_name,
        url,
        hashes,
        requires_python,
        yanked,
        size: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "abababababababababababababababababababababababababababababababab";

    #[test]
    fn a_pep_503_page_with_every_attribute() {
        let page = Url::parse("http://127.0.0.1:1/simple/demo/").unwrap();
        let body = format!(
            r#"<!DOCTYPE html><html><head><meta name="pypi:repository-version" content="1.1">
            <title>Links for demo <a href="nope.whl"></title></head><body>
            <a href="../../files/demo-1.0-py3-none-any.whl#sha256={SHA}" data-requires-python="&gt;=3.8,&lt;4"
               data-dist-info-metadata="sha256={SHA}" data-core-metadata="true">demo-1.0-py3-none-any.whl</a><br/>
            <a href="demo-1.0.tar.gz#md5=00" data-yanked="">demo-1.0.tar.gz</a>
            <a href="https://other.test/demo-0.9.tar.gz" data-yanked="bad &amp; broken">x</a>
            <a name="no-href">nothing</a>
            </body></html>"#
        );
        let files = parse(&body, &page).unwrap();
        assert_eq!(files.len(), 3, "{files:#?}");
        assert_eq!(files[0].file_name, "demo-1.0-py3-none-any.whl");
        assert_eq!(
            files[0].url.as_str(),
            "http://127.0.0.1:1/files/demo-1.0-py3-none-any.whl"
        );
        assert_eq!(
            files[0].hashes.iter().map(|h| h.hex()).collect::<Vec<_>>(),
            [SHA]
        );
        assert_eq!(files[0].requires_python.as_deref(), Some(">=3.8,<4"));
        assert_eq!(files[0].yanked, None);
        assert_eq!(
            files[1].url.as_str(),
            "http://127.0.0.1:1/simple/demo/demo-1.0.tar.gz"
        );
        assert!(files[1].hashes.is_empty(), "md5 is ignored");
        assert_eq!(files[1].yanked, Some(None));
        assert_eq!(files[2].yanked, Some(Some("bad & broken".to_owned())));
    }

    #[test]
    fn base_href_is_honoured_and_a_newer_major_version_refused() {
        let page = Url::parse("http://127.0.0.1:1/simple/demo/").unwrap();
        let files = parse(r#"<base href="/mirror/"><a href="d-1.0.whl">d</a>"#, &page).unwrap();
        assert_eq!(files[0].url.as_str(), "http://127.0.0.1:1/mirror/d-1.0.whl");
        let v2 = r#"<meta name="pypi:repository-version" content="2.0"><a href="d-1.0.whl">d</a>"#;
        assert!(matches!(
            parse(v2, &page),
            Err(Error::UnsupportedApiVersion { .. })
        ));
    }
}
