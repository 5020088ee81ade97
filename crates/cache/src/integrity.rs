//! Is an archive file still what its wheel's RECORD says? By a stamp that
//! still holds, or by hashing.
//!
//! This is what keeps damage from passing silently: every file an install
//! puts in place is proven to match its RECORD entry (size always, content
//! by hashing or by a stamp that still holds; with `--verify`, every byte
//! hashed), and an archive file that fails is re-extracted, never used.
//!
//! Shared by the installer (which proves every file it stages) and by
//! `keel cache verify` (which proves every file of every archive).

use std::path::Path;

use keel_fs::open_no_follow;
use keel_wheel::RecordHash;

use crate::{ManifestFile, Stamp};

/// How a file was proven to match RECORD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// Its stat still equals the stamp taken when it was last hashed.
    Stamp,
    /// Hashed; `Some` carries a new stamp for the archive file, whose stat
    /// had changed while its content had not.
    Hash(Option<Stamp>),
}

/// Why an archive file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// Not there.
    Missing,
    /// A symlink, directory, FIFO or device where a file should be.
    NotARegularFile,
    /// Not RECORD's size.
    Size {
        /// RECORD's size.
        expected: u64,
        /// The file's.
        actual: u64,
    },
    /// Not RECORD's hash.
    Content,
    /// Cannot be read; the I/O error's message.
    Unreadable(String),
}

impl Damage {
    /// The report spelling of this damage.
    pub fn problem(&self) -> keel_wheel::FileProblem {
        use keel_wheel::FileProblem;
        match self {
            Damage::Missing => FileProblem::Missing,
            Damage::NotARegularFile => FileProblem::NotARegularFile,
            Damage::Size { .. } => FileProblem::Size,
            Damage::Content => FileProblem::Hash,
            Damage::Unreadable(_) => FileProblem::Unreadable,
        }
    }

    /// An I/O error while reading the file.
    pub fn unreadable(error: &std::io::Error) -> Self {
        Damage::Unreadable(error.to_string())
    }
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::Missing => write!(f, "missing"),
            Damage::NotARegularFile => write!(f, "not a regular file"),
            Damage::Size { expected, actual } => write!(f, "{actual} bytes instead of {expected}"),
            Damage::Content => write!(f, "content does not match RECORD"),
            Damage::Unreadable(e) => write!(f, "unreadable ({e})"),
        }
    }
}

/// Proves the archive file at `path` against `expected` without following
/// a symlink or blocking on a FIFO: presence, kind and size always; content
/// by a stamp that still holds, or (always with `hash_everything`) by
/// hashing.
pub fn check_file(
    path: &Path,
    expected: &ManifestFile,
    hash_everything: bool,
) -> Result<Proof, Damage> {
    let metadata = match fs_err::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Damage::Missing),
        Err(e) => return Err(Damage::unreadable(&e)),
    };
    check_metadata(path, &metadata, expected, hash_everything)
}

/// [`check_file`] for a file already `lstat`ed (one `stat` per file).
pub fn check_metadata(
    path: &Path,
    metadata: &std::fs::Metadata,
    expected: &ManifestFile,
    hash_everything: bool,
) -> Result<Proof, Damage> {
    check_stat(
        &FileStat::of_metadata(metadata),
        expected,
        hash_everything,
        || open_no_follow(path).map(|file| file.into_parts().0),
    )
}

/// What an `lstat` says of a file, however it was taken (`std` metadata
/// by path, or `rustix`'s `statat` relative to a directory descriptor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// Whether it is a regular file (not a symlink, directory, FIFO…).
    pub is_file: bool,
    /// Its size in bytes.
    pub size: u64,
    /// Its stamp, to compare with the one its manifest holds.
    pub stamp: Stamp,
}

impl FileStat {
    /// From `std` metadata (`symlink_metadata`, for the file itself).
    pub fn of_metadata(metadata: &std::fs::Metadata) -> Self {
        FileStat {
            is_file: metadata.is_file(),
            size: metadata.len(),
            stamp: Stamp::of(metadata),
        }
    }

    /// From a `rustix` stat (`statat` with `AT_SYMLINK_NOFOLLOW`, for the
    /// file itself).
    pub fn of_stat(stat: &rustix::fs::Stat) -> Self {
        let size = u64::try_from(stat.st_size).unwrap_or_default();
        FileStat {
            is_file: rustix::fs::FileType::from_raw_mode(stat.st_mode)
                == rustix::fs::FileType::RegularFile,
            size,
            stamp: Stamp {
                dev: stat.st_dev,
                ino: stat.st_ino,
                size,
                mtime_ns: stat
                    .st_mtime
                    .saturating_mul(1_000_000_000)
                    .saturating_add(stat.st_mtime_nsec as i64),
            },
        }
    }
}

/// The rule of [`check_file`] on a stat already taken: kind and size
/// always; content by the stamp, or by hashing what `open` opens (the same
/// file, without following a symlink or blocking on a FIFO).
pub fn check_stat(
    stat: &FileStat,
    expected: &ManifestFile,
    hash_everything: bool,
    open: impl FnOnce() -> std::io::Result<std::fs::File>,
) -> Result<Proof, Damage> {
    if !stat.is_file {
        return Err(Damage::NotARegularFile);
    }
    if stat.size != expected.size {
        return Err(Damage::Size {
            expected: expected.size,
            actual: stat.size,
        });
    }
    if !hash_everything && stat.stamp == expected.stamp {
        return Ok(Proof::Stamp);
    }
    let expected_hash = &expected.hash;
    match open().and_then(|file| RecordHash::of_reader(expected_hash.algorithm, file)) {
        Ok((hash, _)) if hash == *expected_hash => Ok(Proof::Hash(
            (stat.stamp != expected.stamp).then_some(stat.stamp),
        )),
        Ok(_) => Err(Damage::Content),
        Err(e) => Err(Damage::unreadable(&e)),
    }
}

/// Hashes a file (never through a symlink, never waiting on a FIFO) with
/// RECORD's algorithm and compares.
pub fn hash_matches(path: &Path, expected: &ManifestFile) -> std::io::Result<bool> {
    let file = open_no_follow(path)?;
    Ok(RecordHash::of_reader(expected.hash.algorithm, file)?.0 == expected.hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlinked_archive_file_is_refused_by_the_no_follow_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real.py");
        fs_err::write(&real, b"x = 1\n").expect("write");
        let link = dir.path().join("mod.py");
        fs_err::os::unix::fs::symlink(&real, &link).expect("symlink");
        let expected = ManifestFile {
            path: "mod.py".into(),
            hash: RecordHash::of(keel_wheel::HashAlgorithm::Sha256, b"x = 1\n"),
            size: 6,
            stamp: Stamp::of(&fs_err::metadata(&real).expect("stat")),
        };
        // The stat taken says "regular file, right size" (the file was
        // swapped for a symlink after it): only the open can refuse it.
        let stat = FileStat::of_metadata(&fs_err::metadata(&real).expect("stat"));
        let proof = check_stat(&stat, &expected, true, || {
            open_no_follow(&link).map(|file| file.into_parts().0)
        });
        assert!(matches!(proof, Err(Damage::Unreadable(_))), "{proof:?}");
        assert!(!hash_matches(&link, &expected).is_ok_and(|ok| ok));
        assert_eq!(hash_matches(&real, &expected).ok(), Some(true));
    }

    #[test]
    fn a_stamp_is_the_same_whichever_way_the_file_was_stated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.py");
        fs_err::write(&path, b"x = 1\n").expect("write");
        let by_path = FileStat::of_metadata(&fs_err::symlink_metadata(&path).expect("lstat"));
        let parent = rustix::fs::openat(
            rustix::fs::CWD,
            dir.path(),
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .expect("open dir");
        let stat = rustix::fs::statat(&parent, "f.py", rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .expect("statat");
        assert_eq!(FileStat::of_stat(&stat), by_path);
        assert!(by_path.is_file && by_path.size == 6);
    }
}
