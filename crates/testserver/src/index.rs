//! The simple repository API: PEP 503 HTML and PEP 691 JSON pages (with
//! PEP 592 yanking, PEP 700 sizes and versions), for the project list and
//! for one project.

use serde_json::{Value, json};

use crate::UrlStyle;
use crate::accept::Representation;
use crate::catalog::Dist;
use crate::http::percent_encode;
use crate::state::Settings;

/// The API version the pages declare (PEP 629 / PEP 700).
pub(crate) const API_VERSION: &str = "1.1";

/// A rendered page: its `Content-Type` and body.
pub(crate) struct Page {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// `/simple/`: every project that has a distribution.
pub(crate) fn project_list(dists: &[Dist], rep: Representation) -> Page {
    let mut projects: Vec<&str> = dists.iter().map(|d| d.project.as_str()).collect();
    projects.sort_unstable();
    projects.dedup();
    let body = if rep.is_html() {
        let links: String = projects
            .iter()
            .map(|p| {
                format!(
                    "    <a href=\"{}/\">{}</a><br/>\n",
                    percent_encode(p),
                    escape(p)
                )
            })
            .collect();
        html_document("Simple index", &links)
    } else {
        let projects: Vec<Value> = projects.iter().map(|p| json!({ "name": p })).collect();
        let page = json!({ "meta": { "api-version": API_VERSION }, "projects": projects });
        page.to_string()
    };
    Page {
        content_type: rep.content_type(),
        body: body.into_bytes(),
    }
}

/// `/simple/<project>/`: the project's files; `None` if it has none.
/// `origin` (`http://host:port`) makes the absolute file URLs.
pub(crate) fn project_page(
    project: &str,
    dists: &[Dist],
    settings: &Settings,
    origin: &str,
    rep: Representation,
) -> Option<Page> {
    let files: Vec<&Dist> = dists.iter().filter(|d| d.project == project).collect();
    if files.is_empty() {
        return None;
    }
    let absolute = match settings.url_style {
        UrlStyle::Mixed => !rep.is_html(),
        UrlStyle::Relative => false,
        UrlStyle::Absolute => true,
    };
    let url = |d: &Dist| {
        let path = format!("files/{}", percent_encode(&d.file_name));
        if absolute {
            format!("{origin}/{path}")
        } else {
            format!("../../{path}")
        }
    };
    let body = if rep.is_html() {
        let links: String = files
            .iter()
            .map(|d| html_link(d, &url(d), settings))
            .collect();
        html_document(&format!("Links for {project}"), &links)
    } else {
        json_page(project, &files, settings, url).to_string()
    };
    Some(Page {
        content_type: rep.content_type(),
        body: body.into_bytes(),
    })
}

fn html_link(dist: &Dist, url: &str, settings: &Settings) -> String {
    let mut attributes = format!("href=\"{}#sha256={}\"", escape(url), dist.sha256);
    if let Some(spec) = settings.requires_python.get(&dist.file_name) {
        attributes.push_str(&format!(" data-requires-python=\"{}\"", escape(spec)));
    }
    if let Some(reason) = settings.yanked.get(&dist.file_name) {
        let reason = reason.as_deref().unwrap_or("");
        attributes.push_str(&format!(" data-yanked=\"{}\"", escape(reason)));
    }
    format!("    <a {attributes}>{}</a><br/>\n", escape(&dist.file_name))
}

fn json_page(
    project: &str,
    files: &[&Dist],
    settings: &Settings,
    url: impl Fn(&Dist) -> String,
) -> Value {
    let mut versions: Vec<&str> = Vec::new();
    for d in files {
        if !versions.contains(&d.version.as_str()) {
            versions.push(&d.version);
        }
    }
    let files: Vec<Value> = files
        .iter()
        .map(|d| {
            let yanked = match settings.yanked.get(&d.file_name) {
                None => json!(false),
                Some(None) => json!(true),
                Some(Some(reason)) => json!(reason),
            };
            let mut file = json!({
                "filename": d.file_name,
                "url": url(d),
                "hashes": { "sha256": d.sha256 },
                "yanked": yanked,
                "size": d.size,
            });
            if let Some(spec) = settings.requires_python.get(&d.file_name) {
                file["requires-python"] = json!(spec);
            }
            file
        })
        .collect();
    json!({
        "meta": { "api-version": API_VERSION },
        "name": project,
        "versions": versions,
        "files": files,
    })
}

fn html_document(title: &str, links: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html>\n  <head>\n    \
         <meta name=\"pypi:repository-version\" content=\"{API_VERSION}\">\n    \
         <title>{}</title>\n  </head>\n  <body>\n    <h1>{}</h1>\n{links}  </body>\n</html>\n",
        escape(title),
        escape(title),
    )
}

/// Escapes text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(escape("<\"'&>=3.8"), "&lt;&quot;&#39;&amp;&gt;=3.8");
    }
}
