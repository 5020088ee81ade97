//! Why a cached archive cannot be used as it is, short of its files: its
//! pointer or its manifest. (A damaged file is a [`crate::Damage`].)

use std::path::PathBuf;

/// What is wrong with a wheel's pointer or its archive's manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveProblem {
    /// The pointer cannot be read.
    #[error("pointer `{}` is unreadable: {error}", pointer.display())]
    PointerUnreadable {
        /// The pointer file.
        pointer: PathBuf,
        /// The I/O error's message.
        error: String,
    },
    /// The pointer is not a pointer keel wrote.
    #[error("pointer `{}` is malformed", pointer.display())]
    PointerMalformed {
        /// The pointer file.
        pointer: PathBuf,
    },
    /// The pointer leads to the archive of another wheel.
    #[error("pointer `{}` leads to the archive of another wheel, {wheel}", pointer.display())]
    OtherWheel {
        /// The pointer file.
        pointer: PathBuf,
        /// The wheel whose archive it leads to.
        wheel: String,
    },
    /// The archive directory is gone (a whole archive deleted).
    #[error("archive `{}` is gone", archive.display())]
    ArchiveGone {
        /// The archive directory.
        archive: PathBuf,
    },
    /// The archive is there, its manifest is not.
    #[error("manifest `{}` is missing", manifest.display())]
    ManifestMissing {
        /// The manifest file.
        manifest: PathBuf,
    },
    /// The manifest cannot be read.
    #[error("manifest `{}` is unreadable: {error}", manifest.display())]
    ManifestUnreadable {
        /// The manifest file.
        manifest: PathBuf,
        /// The I/O error's message.
        error: String,
    },
    /// The archive was unpacked from another build of the wheel: the
    /// `.whl` now has another sha256 than the one recorded then (a wheel
    /// rebuilt in place, found by `--verify` or by a download's hash).
    #[error("archive `{}` was unpacked from another build of the wheel (sha256 {recorded}; the file now has {actual})", archive.display())]
    OtherBuild {
        /// The archive directory.
        archive: PathBuf,
        /// The sha256 recorded when it was unpacked.
        recorded: String,
        /// The wheel file's sha256 now.
        actual: String,
    },
    /// The manifest is not one keel wrote (or one of another layout).
    #[error("manifest `{}` is malformed: {error}", manifest.display())]
    ManifestMalformed {
        /// The manifest file.
        manifest: PathBuf,
        /// What the parser said.
        error: String,
    },
}

/// Serialized as its message, as reports show it.
impl serde::Serialize for ArchiveProblem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
