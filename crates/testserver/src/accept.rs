//! PEP 691 content negotiation: which representation of a simple-index
//! page an `Accept` header asks for.

use crate::IndexFormat;

/// One representation of a simple-index page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Representation {
    /// PEP 691 JSON.
    Json,
    /// PEP 503 HTML, labelled `application/vnd.pypi.simple.v1+html`.
    HtmlV1,
    /// PEP 503 HTML, labelled `text/html`.
    TextHtml,
}

impl Representation {
    /// The media type (without parameters) this representation answers to.
    fn media_type(self) -> &'static str {
        match self {
            Representation::Json => "application/vnd.pypi.simple.v1+json",
            Representation::HtmlV1 => "application/vnd.pypi.simple.v1+html",
            Representation::TextHtml => "text/html",
        }
    }

    /// The `Content-Type` of a response in this representation.
    pub fn content_type(self) -> &'static str {
        match self {
            Representation::TextHtml => "text/html; charset=utf-8",
            other => other.media_type(),
        }
    }

    /// Whether this is one of the HTML representations.
    pub fn is_html(self) -> bool {
        self != Representation::Json
    }

    /// How well `range` (`type/subtype`, lowercase) matches: 3 exactly,
    /// 2 by `type/*`, 1 by `*/*`, 0 not at all. The `latest` aliases of
    /// PEP 691 count as exact.
    fn specificity(self, range: &str) -> u8 {
        let exact = self.media_type();
        let latest = exact.replace(".v1+", ".latest+");
        if range == exact || range == latest {
            3
        } else if range
            .strip_suffix("/*")
            .is_some_and(|t| exact.split('/').next() == Some(t))
        {
            2
        } else if range == "*/*" {
            1
        } else {
            0
        }
    }
}

/// One media range of an `Accept` header, with its weight.
struct MediaRange {
    range: String,
    q: f32,
}

fn parse_accept(accept: &str) -> Vec<MediaRange> {
    accept
        .split(',')
        .filter_map(|item| {
            let mut params = item.split(';');
            let range = params.next()?.trim().to_ascii_lowercase();
            if range.is_empty() {
                return None;
            }
            let q = params
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, v)| v.trim().parse::<f32>().ok())?;
            Some(MediaRange {
                range,
                q: q.clamp(0.0, 1.0),
            })
        })
        .collect()
}

/// The weight `ranges` give `rep`: that of the most specific matching
/// range (RFC 9110 §12.5.1), with its specificity; `None` if none matches.
fn weight(rep: Representation, ranges: &[MediaRange]) -> Option<(f32, u8)> {
    ranges
        .iter()
        .map(|r| (r.q, rep.specificity(&r.range)))
        .filter(|&(_, s)| s > 0)
        .max_by_key(|&(_, s)| s)
}

/// The representation to answer with. `Json` and `Html` serve only their
/// own format, whatever was asked; `Both` serves the acceptable
/// representation of highest weight, HTML on a tie or when nothing
/// acceptable was asked for (PEP 691 lets the server pick a default).
pub(crate) fn negotiate(accept: Option<&str>, format: IndexFormat) -> Representation {
    let candidates: &[Representation] = match format {
        IndexFormat::Json => return Representation::Json,
        IndexFormat::Html => &[Representation::TextHtml, Representation::HtmlV1],
        IndexFormat::Both => &[
            Representation::TextHtml,
            Representation::HtmlV1,
            Representation::Json,
        ],
    };
    let Some(accept) = accept else {
        return Representation::TextHtml;
    };
    let ranges = parse_accept(accept);
    let mut best = (Representation::TextHtml, 0.0_f32, 0_u8);
    for &rep in candidates {
        if let Some((q, specificity)) = weight(rep, &ranges)
            && (q > best.1 || (q == best.1 && q > 0.0 && specificity > best.2))
        {
            best = (rep, q, specificity);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use Representation::{HtmlV1, Json, TextHtml};

    const PIP: &str = "application/vnd.pypi.simple.v1+json, \
                       application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";

    #[test]
    fn both_follows_the_weights() {
        let both = |a| negotiate(Some(a), IndexFormat::Both);
        assert_eq!(both(PIP), Json);
        assert_eq!(negotiate(None, IndexFormat::Both), TextHtml);
        assert_eq!(both("*/*"), TextHtml);
        assert_eq!(both("application/vnd.pypi.simple.latest+json"), Json);
        assert_eq!(both("application/vnd.pypi.simple.v1+html"), HtmlV1);
        assert_eq!(
            both("text/html;q=0.5, application/vnd.pypi.simple.v1+json;q=0.4"),
            TextHtml
        );
        assert_eq!(both("application/*;q=0.9, text/html;q=0.2"), HtmlV1);
        assert_eq!(both("image/png"), TextHtml);
        assert_eq!(both("application/vnd.pypi.simple.v1+json;q=0"), TextHtml);
    }

    #[test]
    fn fixed_formats_ignore_the_weights() {
        assert_eq!(negotiate(Some("text/html"), IndexFormat::Json), Json);
        assert_eq!(negotiate(Some(PIP), IndexFormat::Html), HtmlV1);
        assert_eq!(negotiate(None, IndexFormat::Html), TextHtml);
    }
}
