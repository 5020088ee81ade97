//! Wheel file names and distribution name normalization.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// Normalizes a distribution name: runs of `-`, `_` and `.` become one `-`,
/// and letters are lowercased.
///
/// *Names and normalization § Name normalization*:
/// `re.sub(r"[-_.]+", "-", name).lower()`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_separator {
                out.push('-');
            }
            in_separator = true;
        } else {
            out.push(c.to_ascii_lowercase());
            in_separator = false;
        }
    }
    out
}

/// A distribution name in its normalized form (*Names and normalization §
/// Name normalization*): two spellings of one project compare equal
/// (`Django`, `django`; `zope.interface`, `Zope_Interface`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct PackageName(String);

impl PackageName {
    /// The normalized form of `name`, however it is spelled.
    pub fn new(name: &str) -> Self {
        PackageName(normalize_name(name))
    }

    /// The normalized name (`zope-interface`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PackageName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::path::Path> for PackageName {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(&self.0)
    }
}

impl PartialEq<str> for PackageName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for PackageName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Escapes a name or version the way wheel file names and `.dist-info`
/// directory names spell it: `-` becomes `_` (*Binary distribution format §
/// Escaping and Unicode*). Comparisons use [`escaped_key`].
fn escaped_key(component: &str) -> String {
    normalize_name(component).replace('-', "_")
}

/// A parsed wheel file name:
/// `{distribution}-{version}(-{build tag})?-{python tag}-{abi tag}-{platform tag}.whl`.
///
/// *Binary distribution format § File name convention*. Older wheels keep
/// unnormalized names (`Django-4.2.16-py3-none-any.whl`); they are accepted,
/// and [`WheelFilename::normalized_name`] gives the comparable form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WheelFilename {
    /// The distribution name as spelled in the file name.
    pub name: String,
    /// The version as spelled in the file name (`4.2.16`); see
    /// [`WheelFilename::pep440_version`].
    pub version: String,
    /// The optional build tag (`1`, `2b`): it starts with a digit.
    pub build_tag: Option<String>,
    /// The Python tags (`py3`, `cp311`); compressed tag sets (`py2.py3`)
    /// are split on `.`.
    pub python_tags: Vec<String>,
    /// The ABI tags (`none`, `cp311`, `abi3`), split on `.`.
    pub abi_tags: Vec<String>,
    /// The platform tags (`any`, `manylinux_2_17_x86_64`), split on `.`.
    pub platform_tags: Vec<String>,
}

impl WheelFilename {
    /// The normalized distribution name (`django`).
    pub fn normalized_name(&self) -> PackageName {
        PackageName::new(&self.name)
    }

    /// The version as PEP 440 reads it (`1.0` equals `1.0.0`); the file name
    /// convention requires one (*Binary distribution format § File name
    /// convention*).
    pub fn pep440_version(&self) -> Result<crate::Version, Error> {
        self.version
            .parse()
            .map_err(|e: pep440_rs::VersionParseError| Error::InvalidFilename {
                filename: self.to_string(),
                reason: format!(
                    "the version `{}` is not a PEP 440 version: {e}",
                    self.version
                ),
            })
    }

    /// Whether a `.dist-info` (or `.data`) directory stem such as
    /// `Django-4.2.16` belongs to this wheel: same name after normalization,
    /// same version after escaping.
    pub fn matches_dir_stem(&self, stem: &str) -> bool {
        let Some((name, version)) = stem.rsplit_once('-') else {
            return false;
        };
        escaped_key(name) == escaped_key(&self.name)
            && escaped_key(version) == escaped_key(&self.version)
    }

    /// The `.dist-info` directory name this wheel should contain, spelled as
    /// the file name spells it (for error messages).
    pub fn expected_dist_info(&self) -> String {
        format!("{}-{}.dist-info", self.name, self.version)
    }
}

impl FromStr for WheelFilename {
    type Err = Error;

    fn from_str(filename: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidFilename {
            filename: filename.to_string(),
            reason: reason.to_string(),
        };
        let stem = filename
            .strip_suffix(".whl")
            .ok_or_else(|| invalid("it does not end in `.whl`"))?;
        let parts: Vec<&str> = stem.split('-').collect();
        let (name, version, build_tag, tags) = match parts.as_slice() {
            [name, version, python, abi, platform] => {
                (*name, *version, None, [*python, *abi, *platform])
            }
            [name, version, build, python, abi, platform] => {
                if !build.starts_with(|c: char| c.is_ascii_digit()) {
                    return Err(invalid("the build tag must start with a digit"));
                }
                (
                    *name,
                    *version,
                    Some(build.to_string()),
                    [*python, *abi, *platform],
                )
            }
            _ => {
                return Err(invalid(
                    "expected `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`",
                ));
            }
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))
        {
            return Err(invalid(
                "the distribution name may only contain letters, digits, `_` and `.`",
            ));
        }
        if version.is_empty() {
            return Err(invalid("the version is empty"));
        }
        let split = |tag: &str| -> Result<Vec<String>, Error> {
            if tag.is_empty() || tag.split('.').any(str::is_empty) {
                return Err(invalid("a compatibility tag is empty"));
            }
            Ok(tag.split('.').map(str::to_string).collect())
        };
        Ok(WheelFilename {
            name: name.to_string(),
            version: version.to_string(),
            build_tag,
            python_tags: split(tags[0])?,
            abi_tags: split(tags[1])?,
            platform_tags: split(tags[2])?,
        })
    }
}

impl fmt::Display for WheelFilename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.name, self.version)?;
        if let Some(build) = &self.build_tag {
            write!(f, "-{build}")?;
        }
        write!(
            f,
            "-{}-{}-{}.whl",
            self.python_tags.join("."),
            self.abi_tags.join("."),
            self.platform_tags.join(".")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_folds_runs_of_separators_and_case() {
        assert_eq!(normalize_name("Friendly-Bard"), "friendly-bard");
        assert_eq!(normalize_name("FRIENDLY_BARD"), "friendly-bard");
        assert_eq!(normalize_name("friendly.bard"), "friendly-bard");
        assert_eq!(normalize_name("friendly-._bard"), "friendly-bard");
        assert_eq!(normalize_name("Keel_Demo.Legacy"), "keel-demo-legacy");
    }

    #[test]
    fn parses_plain_file_name() {
        let f: WheelFilename = "requests-2.32.3-py3-none-any.whl".parse().unwrap();
        assert_eq!(f.name, "requests");
        assert_eq!(f.version, "2.32.3");
        assert_eq!(f.build_tag, None);
        assert_eq!(f.python_tags, ["py3"]);
        assert_eq!(f.to_string(), "requests-2.32.3-py3-none-any.whl");
    }

    #[test]
    fn parses_unnormalized_legacy_name() {
        let f: WheelFilename = "Django-4.2.16-py3-none-any.whl".parse().unwrap();
        assert_eq!(f.name, "Django");
        assert_eq!(f.normalized_name(), "django");
        assert!(f.matches_dir_stem("Django-4.2.16"));
        assert!(f.matches_dir_stem("django-4.2.16"));
        assert!(!f.matches_dir_stem("django-4.2.17"));
    }

    #[test]
    fn parses_build_tag_and_compressed_tag_sets() {
        let f: WheelFilename = "six-1.16.0-1-py2.py3-none-any.whl".parse().unwrap();
        assert_eq!(f.build_tag.as_deref(), Some("1"));
        assert_eq!(f.python_tags, ["py2", "py3"]);
        let f: WheelFilename =
            "numpy-2.1.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
                .parse()
                .unwrap();
        assert_eq!(f.platform_tags.len(), 2);
    }

    #[test]
    fn rejects_malformed_names() {
        for bad in [
            "requests-2.32.3-py3-none-any.zip",
            "requests-py3-none-any.whl",
            "requests-2.32.3-x-py3-none-any.whl",
            "a-b-c-d-e-f-g.whl",
            "re/quests-1-py3-none-any.whl",
            "requests-1-py3--any.whl",
        ] {
            assert!(
                bad.parse::<WheelFilename>().is_err(),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn dir_stem_matching_uses_escaped_names() {
        let f: WheelFilename = "Keel_Demo_Legacy-0.9-py2.py3-none-any.whl".parse().unwrap();
        assert!(f.matches_dir_stem("Keel_Demo_Legacy-0.9"));
        assert!(f.matches_dir_stem("keel_demo.legacy-0.9"));
        assert!(!f.matches_dir_stem("keel_demo_other-0.9"));
        assert!(!f.matches_dir_stem("nodash"));
    }
}
