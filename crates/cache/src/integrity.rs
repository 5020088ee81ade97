//! Is an archive file still what its wheel's RECORD says? By a stamp that
//! still holds, or by hashing (`shared/design.md`, guarantee 1).
//!
//! Shared by the installer (which proves every file it stages) and by
//! `keel cache verify` (which proves every file of every archive).

use std::io::Read;
use std::path::Path;

use fs_err::os::unix::fs::OpenOptionsExt as _;
use keel_wheel::{HashAlgorithm, Hasher, RecordHash};

use crate::{ManifestFile, Stamp};

/// `O_NOFOLLOW` on Linux: refuse to open through a symlink.
pub const O_NOFOLLOW: i32 = 0o400000;
/// `O_NONBLOCK` on Linux: never wait on a FIFO or device.
pub const O_NONBLOCK: i32 = 0o4000;

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
#[derive(Debug)]
pub enum Damage {
    Missing,
    NotARegularFile,
    Size { expected: u64, actual: u64 },
    Content,
    Unreadable(std::io::Error),
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
        Err(e) => return Err(Damage::Unreadable(e)),
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
    if !metadata.is_file() {
        return Err(Damage::NotARegularFile);
    }
    if metadata.len() != expected.size {
        return Err(Damage::Size {
            expected: expected.size,
            actual: metadata.len(),
        });
    }
    let stamp = Stamp::of(metadata);
    if !hash_everything && stamp == expected.stamp {
        return Ok(Proof::Stamp);
    }
    match hash_matches(path, expected) {
        Ok(true) => Ok(Proof::Hash((stamp != expected.stamp).then_some(stamp))),
        Ok(false) => Err(Damage::Content),
        Err(e) => Err(Damage::Unreadable(e)),
    }
}

/// Hashes a file (never through a symlink, never waiting on a FIFO) with
/// RECORD's algorithm and compares.
pub fn hash_matches(path: &Path, expected: &ManifestFile) -> std::io::Result<bool> {
    let Ok(expected_hash) = expected.hash.parse::<RecordHash>() else {
        return Ok(false);
    };
    let file = open_no_follow(path)?;
    Ok(hash_reader(file, expected_hash.algorithm)?.0 == expected_hash)
}

/// Opens a regular file for reading without following a symlink and without
/// blocking on a FIFO or device.
pub fn open_no_follow(path: &Path) -> std::io::Result<fs_err::File> {
    let file = fs_err::OpenOptions::new()
        .read(true)
        .custom_flags(O_NOFOLLOW | O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{}` is not a regular file", path.display()),
        ));
    }
    Ok(file)
}

/// Hashes everything `reader` yields; returns the hash and the byte count.
pub fn hash_reader(
    mut reader: impl Read,
    algorithm: HashAlgorithm,
) -> std::io::Result<(RecordHash, u64)> {
    let mut hasher = Hasher::new(algorithm);
    let size = std::io::copy(&mut reader, &mut hasher)?;
    Ok((hasher.finish(), size))
}
