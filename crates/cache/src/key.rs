//! Which wheel a pointer is for: the names of pointer files.
//!
//! A wheel the user names by path is keyed by its `stat`: file name, size,
//! modification time, change time and inode. Rebuilding a wheel in place
//! (same name, same size, modification time restored) still changes its
//! change time, and replacing it by another file changes its inode, so
//! either is a miss, never the old build's archive (uv keys local wheels by
//! change time for the same reason). A wheel whose sha256 is already known
//! (a download, verified by hash) is also keyed by its content, which
//! survives copying the cache elsewhere: a shared layer published by a CI
//! job serves the machines that download the same files.
//!
//! ```text
//! <wheel file name>.<size>.<mtime ns>.<ctime ns>.<inode>.json
//! <wheel file name>.sha256-<hex>.json
//! ```

use std::os::unix::fs::MetadataExt;

/// How a pointer file names its wheel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PointerKey {
    /// The wheel file's `stat`.
    Stat {
        size: u64,
        mtime_ns: i64,
        ctime_ns: i64,
        inode: u64,
    },
    /// The wheel's sha256, hex.
    Content(String),
}

impl PointerKey {
    /// The stat key of the file `metadata` describes.
    pub(crate) fn of(metadata: &std::fs::Metadata) -> Self {
        PointerKey::Stat {
            size: metadata.size(),
            mtime_ns: nanoseconds(metadata.mtime(), metadata.mtime_nsec()),
            ctime_ns: nanoseconds(metadata.ctime(), metadata.ctime_nsec()),
            inode: metadata.ino(),
        }
    }

    /// The pointer file name of the wheel `wheel` under this key.
    pub(crate) fn file_name(&self, wheel: &str) -> String {
        match self {
            PointerKey::Stat {
                size,
                mtime_ns,
                ctime_ns,
                inode,
            } => format!("{wheel}.{size}.{mtime_ns}.{ctime_ns}.{inode}.json"),
            PointerKey::Content(sha256) => format!("{wheel}.sha256-{sha256}.json"),
        }
    }
}

/// The wheel file name a pointer file's name starts with, whatever its key
/// (older keel versions keyed by size and modification time only).
pub(crate) fn wheel_of_pointer(file_name: &str) -> Option<&str> {
    let stem = file_name.strip_suffix(".json")?;
    let end = stem.find(".whl.")? + ".whl".len();
    let (wheel, key) = stem.split_at(end);
    let key = &key[1..];
    let numeric = |s: &str| {
        !s.is_empty()
            && s.trim_start_matches('-')
                .bytes()
                .all(|b| b.is_ascii_digit())
    };
    let by_content = key
        .strip_prefix("sha256-")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    let parts: Vec<&str> = key.split('.').collect();
    let by_stat = matches!(parts.len(), 2 | 4) && parts.iter().all(|p| numeric(p));
    (by_content || by_stat).then_some(wheel)
}

/// The sha256 a content-keyed pointer file's name holds.
pub(crate) fn content_of_pointer(file_name: &str) -> Option<&str> {
    let stem = file_name.strip_suffix(".json")?;
    let (_, hex) = stem.rsplit_once(".sha256-")?;
    Some(hex)
}

/// The sha256 (hex) of the file at `path` (a `.whl`), streamed; a symlink
/// is not followed.
pub fn sha256_of(path: &std::path::Path) -> std::io::Result<String> {
    use sha2::Digest as _;
    let mut file = keel_fs::open_no_follow(path)?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn nanoseconds(seconds: i64, nanoseconds: i64) -> i64 {
    seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(nanoseconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_names_of_every_key_give_back_their_wheel() {
        let wheel = "a-1.0-py3-none-any.whl";
        let stat = PointerKey::Stat {
            size: 10,
            mtime_ns: -5,
            ctime_ns: 7,
            inode: 42,
        };
        let content = PointerKey::Content("ab".repeat(32));
        for key in [stat, content] {
            assert_eq!(wheel_of_pointer(&key.file_name(wheel)), Some(wheel));
        }
        // An older keel's pointer: size and mtime only.
        assert_eq!(wheel_of_pointer(&format!("{wheel}.10.5.json")), Some(wheel));
        assert_eq!(
            content_of_pointer(&PointerKey::Content("cd".repeat(32)).file_name(wheel)),
            Some("cd".repeat(32).as_str())
        );
        for junk in [
            "a-1.0-py3-none-any.whl.json",
            "a-1.0-py3-none-any.whl.x.json",
            "a-1.0-py3-none-any.whl.1.2.3.json",
            "a-1.0-py3-none-any.whl.sha256-zz.json",
            "notes.txt",
        ] {
            assert_eq!(wheel_of_pointer(junk), None, "{junk}");
        }
    }
}
