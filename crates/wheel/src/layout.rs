//! Where each entry of a wheel belongs: the archive root, or one of the
//! `.data/<key>/` install schemes; and which paths are safe at all.

use crate::Rule;

/// A `.data/<key>/` directory (*Binary distribution format § Installing a
/// wheel*: "Move each subtree of `distribution-1.0.data/` onto its
/// destination path. Each subdirectory of `distribution-1.0.data/` is a key
/// into a dict of destination directories").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataKey {
    /// `purelib`: pure-Python modules (site-packages).
    Purelib,
    /// `platlib`: platform-specific modules (site-packages).
    Platlib,
    /// `headers`: C headers.
    Headers,
    /// `scripts`: executables, installed into `bin/`.
    Scripts,
    /// `data`: files relative to the environment's root.
    Data,
}

impl DataKey {
    /// The key a `.data/<key>/` directory names (`purelib`, `platlib`,
    /// `headers`, `scripts`, `data`: `sysconfig`'s install paths); any other
    /// is [`Rule::UnknownDataKey`].
    pub fn parse(key: &str) -> Result<Self, Rule> {
        Ok(match key {
            "purelib" => DataKey::Purelib,
            "platlib" => DataKey::Platlib,
            "headers" => DataKey::Headers,
            "scripts" => DataKey::Scripts,
            "data" => DataKey::Data,
            other => return Err(Rule::UnknownDataKey(other.to_string())),
        })
    }
}

/// Where one archive entry goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryDestination<'a> {
    /// The archive root: purelib or platlib as `Root-Is-Purelib` says; the
    /// path is unchanged.
    Root(&'a str),
    /// Inside `.data/<key>/`; the path is the rest after the key.
    Data(DataKey, &'a str),
}

/// Classifies an entry path against the wheel's `{name}-{version}.data`
/// directory name.
pub fn classify_entry<'a>(path: &'a str, data_dir: &str) -> Result<EntryDestination<'a>, Rule> {
    if path == data_dir {
        // pypa/installer looped forever on this one.
        return Err(Rule::UnsafePath("a file named like the `.data` directory"));
    }
    let Some(rest) = path
        .strip_prefix(data_dir)
        .and_then(|rest| rest.strip_prefix('/'))
    else {
        return Ok(EntryDestination::Root(path));
    };
    let (key, inner) = rest.split_once('/').ok_or(Rule::UnsafePath(
        "a file directly inside the `.data` directory has no scheme",
    ))?;
    let key = DataKey::parse(key)?;
    if inner.is_empty() {
        return Err(Rule::UnsafePath("an empty path inside a `.data` directory"));
    }
    Ok(EntryDestination::Data(key, inner))
}

/// Why a script name cannot be a file name in `bin/`, if it cannot: it
/// must be one plain file name (*Entry points specification § Use for
/// scripts*; the files of `.data/scripts/`, *Binary distribution format §
/// Installing a wheel*). Which names an environment keeps for itself
/// (`python`, `activate`) is the environment's rule, checked through
/// [`crate::WheelArchive::check_destinations`].
pub fn script_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name == "." || name == ".." {
        return Some("the name is empty or a relative directory");
    }
    if name.contains(['/', '\\', '\0']) || name.chars().any(char::is_control) {
        return Some("the name contains a path separator or a control character");
    }
    None
}

/// A rule of the environment a wheel is installed into that refuses some
/// destinations: given a scheme key and the path inside that scheme
/// (`Scripts`, `python3`; `Data`, `pyvenv.cfg`), why the destination is
/// not the wheel's to write, if it is not.
pub type DestinationCheck = fn(DataKey, &str) -> Option<&'static str>;

/// Checks that a `/`-separated path from a wheel (an archive entry or a
/// RECORD row) stays inside the directory it is relative to.
///
/// *Binary distribution format* paths are relative, `/`-separated; keel also
/// refuses anything Windows or a shell would read differently: backslashes,
/// drive letters, NUL and control characters, `.` and `..` components and
/// empty components.
pub fn validate_relative_path(path: &str) -> Result<(), Rule> {
    if path.is_empty() {
        return Err(Rule::UnsafePath("empty path"));
    }
    if path.starts_with('/') {
        return Err(Rule::UnsafePath("absolute path"));
    }
    if path.contains('\\') {
        return Err(Rule::UnsafePath("backslash in path"));
    }
    if path.chars().any(char::is_control) {
        return Err(Rule::UnsafePath("control character in path"));
    }
    for component in path.split('/') {
        match component {
            "" => return Err(Rule::UnsafePath("empty path component")),
            "." => return Err(Rule::UnsafePath("`.` path component")),
            ".." => return Err(Rule::UnsafePath("`..` path component")),
            _ => {}
        }
        // `C:x` anywhere: a `.data/data/C:/x` entry is `C:/x` to its scheme.
        let bytes = component.as_bytes();
        if bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
            return Err(Rule::UnsafePath("drive letter in path"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_script_names_that_are_not_plain_file_names() {
        for bad in ["", ".", "..", "a/b", "../x", "a\\b", "a\nb"] {
            assert!(script_name_problem(bad).is_some(), "{bad:?}");
        }
        for good in ["flask", "python-build", "pythonista", "pytest"] {
            assert!(script_name_problem(good).is_none(), "{good:?}");
        }
    }

    #[test]
    fn refuses_a_drive_letter_in_any_component() {
        assert!(validate_relative_path("C:/x").is_err());
        assert!(validate_relative_path("pkg-1.0.data/data/C:/x").is_err());
        assert!(validate_relative_path("pkg/a:b.py").is_err());
        assert!(validate_relative_path("pkg/ab:c.py").is_ok());
    }

    #[test]
    fn classifies_root_and_data_entries() {
        let data = "pkg-1.0.data";
        assert_eq!(
            classify_entry("pkg/__init__.py", data),
            Ok(EntryDestination::Root("pkg/__init__.py"))
        );
        assert_eq!(
            classify_entry("pkg-1.0.data/scripts/tool", data),
            Ok(EntryDestination::Data(DataKey::Scripts, "tool"))
        );
        assert_eq!(
            classify_entry("pkg-1.0.data/headers/sub/x.h", data),
            Ok(EntryDestination::Data(DataKey::Headers, "sub/x.h"))
        );
        assert_eq!(
            classify_entry("pkg-1.0.data/purelib/m.py", data),
            Ok(EntryDestination::Data(DataKey::Purelib, "m.py"))
        );
        // A root directory that merely starts with the data dir name is not it.
        assert_eq!(
            classify_entry("pkg-1.0.database/x", data),
            Ok(EntryDestination::Root("pkg-1.0.database/x"))
        );
    }

    #[test]
    fn refuses_unknown_data_keys_and_scheme_less_files() {
        assert_eq!(
            classify_entry("pkg-1.0.data/etc/passwd", "pkg-1.0.data"),
            Err(Rule::UnknownDataKey("etc".into()))
        );
        assert!(classify_entry("pkg-1.0.data/stray", "pkg-1.0.data").is_err());
        assert!(classify_entry("pkg-1.0.data", "pkg-1.0.data").is_err());
        assert!(classify_entry("pkg-1.0.data/scripts/", "pkg-1.0.data").is_err());
    }

    #[test]
    fn refuses_paths_that_could_escape() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a\\b",
            "C:/x",
            "c:x",
            "a\0b",
            "a\nb",
            "pkg/",
        ] {
            assert!(
                validate_relative_path(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
        for good in [
            "a",
            "pkg/__init__.py",
            "pkg-1.0.data/scripts/x",
            "..a/b..",
            "a/.hidden",
        ] {
            assert!(
                validate_relative_path(good).is_ok(),
                "{good:?} should be accepted"
            );
        }
    }
}
