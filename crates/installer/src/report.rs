//! What an install or an uninstall did, assembled from the outputs of its
//! phases. Every type serializes, for tools that embed keel.

use std::fmt;
use std::path::PathBuf;

use keel_cache::{ArchiveProblem, Damage};
use keel_wheel::{PackageName, Version};
use serde::Serialize;

use crate::{LinkMode, Recovery};

/// A distribution the install put in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstalledWheel {
    /// Normalized name.
    pub name: PackageName,
    /// The version installed.
    pub version: Version,
    /// The version it replaced (equal to `version` for a reinstall).
    pub replaced: Option<Version>,
    /// The wheel it came from.
    pub wheel: PathBuf,
}

/// Why a cached archive was rebuilt from its wheel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepairReason {
    /// Its pointer or manifest was damaged.
    Archive(ArchiveProblem),
    /// Files of it were damaged (found while staging).
    Files {
        /// The first damaged entry.
        entry: String,
        /// What is wrong with it.
        damage: Damage,
        /// How many more files were damaged.
        more: usize,
    },
}

impl fmt::Display for RepairReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepairReason::Archive(problem) => write!(f, "{problem}"),
            RepairReason::Files {
                entry,
                damage,
                more,
            } => {
                write!(f, "{entry}: {damage}")?;
                match more {
                    0 => Ok(()),
                    1 => write!(f, ", and 1 more file"),
                    n => write!(f, ", and {n} more files"),
                }
            }
        }
    }
}

/// Serialized as its message.
impl Serialize for RepairReason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A cached archive that was found damaged and rebuilt from its wheel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repair {
    /// The wheel's file name.
    pub wheel: String,
    /// What was wrong (`flask/app.py: missing`).
    pub reason: RepairReason,
}

/// A file an install took over from another distribution (`--force`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Takeover {
    /// The file.
    pub path: PathBuf,
    /// The distribution whose RECORD still lists it.
    pub owner: String,
}

/// A distribution and its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NameVersion {
    /// Normalized name.
    pub name: PackageName,
    /// Version.
    pub version: Version,
}

/// What an install did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InstallReport {
    /// Distributions put in place.
    pub installed: Vec<InstalledWheel>,
    /// Already installed at the requested version, left alone.
    pub unchanged: Vec<NameVersion>,
    /// Wheels unpacked into the cache for the first time.
    pub unpacked: Vec<String>,
    /// Wheels served from an intact cached archive.
    pub reused: Vec<String>,
    /// Archives found damaged and rebuilt from their wheels.
    pub repaired: Vec<Repair>,
    /// The link mode actually used.
    #[serde(serialize_with = "link_mode_name")]
    pub link_mode: Option<LinkMode>,
    /// Files proven by hashing.
    pub files_hashed: usize,
    /// Files proven by a stamp that still held.
    pub files_trusted: usize,
    /// Modules compiled to bytecode (`compile_bytecode`).
    pub bytecode_compiled: usize,
    /// Removed because they were not among the wheels (`exact`).
    pub removed: Vec<NameVersion>,
    /// Interrupted transactions finished or undone before this one.
    #[serde(skip)]
    pub recovered: Vec<Recovery>,
    /// Files taken over from other distributions (`--force`).
    pub takeovers: Vec<Takeover>,
}

fn link_mode_name<S: serde::Serializer>(
    mode: &Option<LinkMode>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match mode {
        Some(mode) => serializer.serialize_some(mode.name()),
        None => serializer.serialize_none(),
    }
}

/// What an uninstall did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UninstallReport {
    /// Distributions removed.
    pub removed: Vec<NameVersion>,
    /// Names that were not installed, as given.
    pub not_installed: Vec<String>,
    /// Interrupted transactions finished or undone before this one.
    #[serde(skip)]
    pub recovered: Vec<Recovery>,
}
