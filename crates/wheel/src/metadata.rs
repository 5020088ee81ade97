//! The `WHEEL` and `METADATA` files of a `.dist-info` directory.

use crate::Rule;

/// The parsed `WHEEL` file.
///
/// *Binary distribution format § The .dist-info directory*: `Wheel-Version`
/// (major must be 1; a newer minor is installed with a warning) and
/// `Root-Is-Purelib` (whether the root of the archive goes to purelib or
/// platlib).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelInfo {
    /// `Wheel-Version` major; always 1 ([`WheelInfo::parse`] refuses others).
    pub version_major: u32,
    /// `Wheel-Version` minor.
    pub version_minor: u32,
    /// `Root-Is-Purelib`: the archive root installs into purelib when true,
    /// platlib when false.
    pub root_is_purelib: bool,
}

impl WheelInfo {
    /// The newest `Wheel-Version` minor keel knows; newer minors warn.
    pub const SUPPORTED_MINOR: u32 = 0;

    /// Parses the text of `WHEEL`: `Wheel-Version` (`major.minor`, major 1)
    /// and `Root-Is-Purelib` (`true` or `false`, any case) are required;
    /// other keys are ignored.
    pub fn parse(text: &str) -> Result<Self, Rule> {
        let headers = parse_headers(text);
        let version = header(&headers, "Wheel-Version")
            .ok_or_else(|| Rule::MalformedWheelFile("no `Wheel-Version`".into()))?;
        let (major, minor) = version
            .split_once('.')
            .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
            .ok_or_else(|| {
                Rule::MalformedWheelFile(format!("`Wheel-Version: {version}` is not `major.minor`"))
            })?;
        if major != 1 {
            return Err(Rule::UnsupportedWheelVersion(version.to_string()));
        }
        let purelib = header(&headers, "Root-Is-Purelib")
            .ok_or_else(|| Rule::MalformedWheelFile("no `Root-Is-Purelib`".into()))?;
        let root_is_purelib = match purelib.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            other => {
                return Err(Rule::MalformedWheelFile(format!(
                    "`Root-Is-Purelib: {other}` is not true or false"
                )));
            }
        };
        Ok(WheelInfo {
            version_major: major,
            version_minor: minor,
            root_is_purelib,
        })
    }

    /// Whether the wheel declares a newer minor version than keel knows.
    pub fn is_newer_minor(&self) -> bool {
        self.version_minor > Self::SUPPORTED_MINOR
    }
}

/// The fields of core metadata an installer needs: `Name`, `Version` and
/// `Requires-Python` (*Core metadata specifications*; the header block ends
/// at the first blank line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreMetadata {
    /// `Name`, as spelled there.
    pub name: String,
    /// `Version`, as spelled there.
    pub version: String,
    /// `Requires-Python`, as written (*Core metadata specifications §
    /// Requires-Python*: PEP 440 version specifiers); `None` when absent.
    pub requires_python: Option<String>,
    /// Every `Requires-Dist`, as written (*Core metadata specifications §
    /// Requires-Dist*: a PEP 508 requirement, possibly with a marker).
    pub requires_dist: Vec<String>,
}

impl CoreMetadata {
    /// Parses the header block of `METADATA`: `Name` and `Version` are
    /// required and non-empty ([`Rule::MalformedMetadata`]); the body after
    /// the first blank line is not read.
    pub fn parse(text: &str) -> Result<Self, Rule> {
        let headers = parse_headers(text);
        let name = header(&headers, "Name")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Rule::MalformedMetadata("no `Name` field".into()))?;
        let version = header(&headers, "Version")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Rule::MalformedMetadata("no `Version` field".into()))?;
        let requires_python = header(&headers, "Requires-Python")
            .filter(|v| !v.is_empty())
            .map(str::to_string);
        let requires_dist = headers
            .iter()
            .filter(|(k, v)| k.eq_ignore_ascii_case("Requires-Dist") && !v.is_empty())
            .map(|(_, v)| v.to_string())
            .collect();
        Ok(CoreMetadata {
            name: name.to_string(),
            version: version.to_string(),
            requires_python,
            requires_dist,
        })
    }
}

/// Reads RFC 822-style `Key: value` headers up to the first blank line.
/// Continuation lines (leading white space) are skipped: the fields keel
/// reads are single-line.
fn parse_headers(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .take_while(|line| !line.trim().is_empty())
        .filter(|line| !line.starts_with([' ', '\t']))
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

fn header<'a>(headers: &[(&'a str, &'a str)], key: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wheel_file() {
        let info = WheelInfo::parse(
            "Wheel-Version: 1.0\nGenerator: bdist_wheel (0.43.0)\nRoot-Is-Purelib: false\nTag: py3-none-any\n",
        )
        .unwrap();
        assert_eq!(
            info,
            WheelInfo {
                version_major: 1,
                version_minor: 0,
                root_is_purelib: false
            }
        );
        assert!(!info.is_newer_minor());
        assert!(
            WheelInfo::parse("Wheel-Version: 1.9\nRoot-Is-Purelib: true\n")
                .unwrap()
                .is_newer_minor()
        );
    }

    #[test]
    fn refuses_wheel_version_two_and_malformed_wheel_files() {
        assert_eq!(
            WheelInfo::parse("Wheel-Version: 2.0\nRoot-Is-Purelib: true\n"),
            Err(Rule::UnsupportedWheelVersion("2.0".into()))
        );
        assert!(WheelInfo::parse("Root-Is-Purelib: true\n").is_err());
        assert!(WheelInfo::parse("Wheel-Version: one\nRoot-Is-Purelib: true\n").is_err());
        assert!(WheelInfo::parse("Wheel-Version: 1.0\n").is_err());
        assert!(WheelInfo::parse("Wheel-Version: 1.0\nRoot-Is-Purelib: maybe\n").is_err());
    }

    #[test]
    fn parses_name_and_version_from_metadata_headers_only() {
        let meta = CoreMetadata::parse(
            "Metadata-Version: 2.1\nName: Flask\nVersion: 3.0.3\nSummary: x\n\nName: not-this\n",
        )
        .unwrap();
        assert_eq!(
            meta,
            CoreMetadata {
                name: "Flask".into(),
                version: "3.0.3".into(),
                requires_python: None,
                requires_dist: Vec::new(),
            }
        );
        assert!(CoreMetadata::parse("Metadata-Version: 2.1\nVersion: 1\n").is_err());
        let django =
            CoreMetadata::parse("Name: Django\nVersion: 5.2\nRequires-Python: >=3.10\n").unwrap();
        assert_eq!(django.requires_python.as_deref(), Some(">=3.10"));
        let flask = CoreMetadata::parse(
            "Name: Flask\nVersion: 3.0.3\nRequires-Dist: Werkzeug>=3.0.0\nrequires-dist: click>=8.1.3\nRequires-Dist: asgiref>=3.2 ; extra == 'async'\n",
        )
        .unwrap();
        assert_eq!(
            flask.requires_dist,
            [
                "Werkzeug>=3.0.0",
                "click>=8.1.3",
                "asgiref>=3.2 ; extra == 'async'"
            ]
        );
        assert!(CoreMetadata::parse("Name: x\n").is_err());
    }
}
