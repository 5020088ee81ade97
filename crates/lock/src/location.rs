//! Where a lock is, and where the files it names are: a relative `path` is
//! relative to the lock file's directory (§ packages.archive.path, MAY use
//! POSIX separators); in a lock fetched by URL it is relative to that URL
//! and may not leave its directory.

use std::path::{Component, Path, PathBuf};

use url::Url;

use crate::error::Rule;

/// Where a lock was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockLocation {
    /// A local file (absolute).
    File(PathBuf),
    /// A lock fetched by URL.
    Url(Url),
}

/// Where a file named by a lock is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// To be downloaded.
    Url(Url),
    /// On this machine (absolute).
    Path(PathBuf),
}

impl Location {
    /// The last component of the path or URL path, percent-decoded.
    pub fn file_name(&self) -> Option<String> {
        match self {
            Location::Path(path) => path.file_name()?.to_str().map(str::to_string),
            Location::Url(url) => {
                let last = url.path_segments()?.next_back()?;
                let decoded = percent_encoding::percent_decode_str(last)
                    .decode_utf8()
                    .ok()?
                    .into_owned();
                (!decoded.is_empty()).then_some(decoded)
            }
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Url(url) => write!(f, "{url}"),
            Location::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

impl LockLocation {
    /// A `path` key of the lock, resolved.
    pub(crate) fn resolve_path(&self, path: &str) -> Result<Location, Rule> {
        match self {
            LockLocation::File(lock) => {
                let dir = lock.parent().unwrap_or(Path::new("/"));
                Ok(Location::Path(normalize(&dir.join(path))))
            }
            LockLocation::Url(url) => {
                let escapes = Path::new(path).is_absolute()
                    || Path::new(path)
                        .components()
                        .any(|c| matches!(c, Component::ParentDir));
                if escapes {
                    return Err(Rule::PathEscapes(path.to_string()));
                }
                url.join(path)
                    .map(Location::Url)
                    .map_err(|e| Rule::Invalid {
                        what: "path",
                        value: path.to_string(),
                        reason: e.to_string(),
                    })
            }
        }
    }
}

/// `path` without `.` and with `..` applied (lexically: the lock's own
/// directory may be reached through a symlink).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_relative_to_the_lock_and_may_not_leave_a_remote_one() {
        let local = LockLocation::File(PathBuf::from("/srv/app/pylock.toml"));
        assert_eq!(
            local.resolve_path("wheels/./a-1.0-py3-none-any.whl"),
            Ok(Location::Path(PathBuf::from(
                "/srv/app/wheels/a-1.0-py3-none-any.whl"
            )))
        );
        assert_eq!(
            local.resolve_path("../shared/a.whl"),
            Ok(Location::Path(PathBuf::from("/srv/shared/a.whl")))
        );
        let remote =
            LockLocation::Url(Url::parse("http://127.0.0.1:8000/locks/pylock.toml").unwrap());
        assert_eq!(
            remote.resolve_path("files/a.whl"),
            Ok(Location::Url(
                Url::parse("http://127.0.0.1:8000/locks/files/a.whl").unwrap()
            ))
        );
        assert!(matches!(
            remote.resolve_path("../a.whl"),
            Err(Rule::PathEscapes(_))
        ));
        assert!(matches!(
            remote.resolve_path("/etc/a.whl"),
            Err(Rule::PathEscapes(_))
        ));
    }

    #[test]
    fn a_url_names_its_file_percent_decoded() {
        let url =
            Location::Url(Url::parse("http://h/p/a%2Bb-1.0-py3-none-any.whl#sha256=00").unwrap());
        assert_eq!(url.file_name().as_deref(), Some("a+b-1.0-py3-none-any.whl"));
        assert_eq!(
            Location::Url(Url::parse("http://h/").unwrap()).file_name(),
            None
        );
    }
}
