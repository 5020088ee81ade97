//! The stamp beside a cached download: what the file looked like (device,
//! inode, size, mtime in nanoseconds) when its digests were last computed.
//! While a `stat` still matches, the digests still hold; a file rewritten,
//! truncated or replaced since no longer matches.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use keel_wheel::{HashAlgorithm, RecordHash};
use serde::{Deserialize, Serialize};

/// `<file>.stamp`, next to the file.
pub(crate) fn stamp_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(STAMP_SUFFIX);
    file.with_file_name(name)
}

/// What a stamp file's name ends with.
pub(crate) const STAMP_SUFFIX: &str = ".stamp";

/// A file's identity and the digests it had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stamp {
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: u64,
    pub device: u64,
    /// Algorithm name (`sha256`) → lowercase hex digest.
    pub digests: BTreeMap<String, String>,
}

impl Stamp {
    /// The stamp of a file with `metadata` whose content has `digests`.
    pub fn of(metadata: &std::fs::Metadata, digests: &[RecordHash]) -> Self {
        let (size, mtime_ns, inode, device) = identity(metadata);
        Stamp {
            size,
            mtime_ns,
            inode,
            device,
            digests: digests
                .iter()
                .map(|h| (h.algorithm.name().to_owned(), h.hex()))
                .collect(),
        }
    }

    /// Whether a file with `metadata` is still the file stamped.
    pub fn holds(&self, metadata: &std::fs::Metadata) -> bool {
        identity(metadata) == (self.size, self.mtime_ns, self.inode, self.device)
    }

    /// The recorded digests keel can use (unknown algorithms and malformed
    /// digests are skipped: they prove nothing).
    pub fn digests(&self) -> Vec<RecordHash> {
        self.digests
            .iter()
            .filter_map(|(name, hex)| {
                RecordHash::from_hex(HashAlgorithm::from_name(name)?, hex).ok()
            })
            .collect()
    }

    /// The stamp at `path`; `None` when it is missing or unreadable (a stamp
    /// that cannot be read proves nothing, and the file is hashed instead).
    pub fn read(path: &Path) -> Option<Stamp> {
        let bytes = fs_err::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes the stamp to `path` atomically.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        keel_fs::write_atomic(path, &json)
    }
}

/// (size, mtime ns, inode, device).
fn identity(metadata: &std::fs::Metadata) -> (u64, i64, u64, u64) {
    let mtime_ns = metadata
        .mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(metadata.mtime_nsec());
    (metadata.size(), mtime_ns, metadata.ino(), metadata.dev())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    #[test]
    fn a_stamp_holds_until_the_file_is_rewritten_truncated_or_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.whl");
        fs_err::write(&path, b"0123456789").unwrap();
        let digests = [RecordHash::of(HashAlgorithm::Sha256, b"0123456789")];
        let stamp = Stamp::of(&fs_err::metadata(&path).unwrap(), &digests);
        assert!(stamp.holds(&fs_err::metadata(&path).unwrap()));
        assert_eq!(stamp.digests(), digests);

        // Rewritten with the same size: a new mtime.
        let file = fs_err::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        assert!(!stamp.holds(&fs_err::metadata(&path).unwrap()));

        // Truncated.
        let stamp = Stamp::of(&fs_err::metadata(&path).unwrap(), &digests);
        file.set_len(3).unwrap();
        assert!(!stamp.holds(&fs_err::metadata(&path).unwrap()));

        // Replaced by another file (another inode), even with the same
        // size and mtime.
        let stamp = Stamp::of(&fs_err::metadata(&path).unwrap(), &digests);
        let mtime = fs_err::metadata(&path).unwrap().modified().unwrap();
        let other = dir.path().join("b");
        fs_err::write(&other, b"xyz").unwrap();
        fs_err::File::options()
            .write(true)
            .open(&other)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        fs_err::rename(&other, &path).unwrap();
        assert!(!stamp.holds(&fs_err::metadata(&path).unwrap()));
    }

    #[test]
    fn stamps_round_trip_and_unreadable_ones_prove_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.whl");
        fs_err::write(&path, b"x").unwrap();
        let stamp = Stamp::of(
            &fs_err::metadata(&path).unwrap(),
            &[RecordHash::of(HashAlgorithm::Sha512, b"x")],
        );
        let at = stamp_path(&path);
        assert_eq!(at, dir.path().join("a.whl.stamp"));
        stamp.write(&at).unwrap();
        assert_eq!(Stamp::read(&at), Some(stamp));
        fs_err::write(&at, b"{not json").unwrap();
        assert_eq!(Stamp::read(&at), None);
        assert_eq!(Stamp::read(&dir.path().join("missing.stamp")), None);
    }

    #[test]
    fn unknown_and_malformed_recorded_digests_are_skipped() {
        let stamp = Stamp {
            size: 0,
            mtime_ns: 0,
            inode: 0,
            device: 0,
            digests: [
                ("md5".to_owned(), "00".repeat(16)),
                ("sha256".to_owned(), "zz".to_owned()),
            ]
            .into(),
        };
        assert!(stamp.digests().is_empty());
    }
}
