//! What an audit reports (`keel verify --json` serializes these as they are).

use std::path::PathBuf;

use keel_wheel::{FileProblem, PackageName, Version};
use serde::Serialize;

/// The state of one distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Every listed file is what RECORD says, and its directories hold
    /// nothing unlisted.
    Intact,
    /// Something is missing, modified or unlisted (the report's lists say
    /// what).
    Damaged,
    /// No RECORD: nothing can be checked.
    NoRecord,
    /// A RECORD that cannot be read or parsed: nothing can be checked
    /// (`record_error` says why).
    BadRecord,
}

/// A listed file whose content is not what RECORD says, or that cannot be
/// read; or a directory of the distribution that cannot be listed (so its
/// unlisted files cannot be looked for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Modified {
    /// The path as RECORD spells it (a directory: relative to the directory
    /// holding `.dist-info`, `/`-separated, as RECORD would spell it).
    pub path: String,
    /// `size`, `hash`, `not-a-regular-file`, `symlinked-directory` (a
    /// directory of the distribution replaced by a symbolic link), or
    /// `unreadable`.
    pub reason: FileProblem,
}

/// The audit of one distribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DistributionReport {
    /// Normalized name.
    pub name: PackageName,
    /// The version its `.dist-info` names.
    pub version: Version,
    /// Its `.dist-info` directory.
    pub dist_info: PathBuf,
    /// Intact, damaged, or uncheckable.
    pub status: Status,
    /// Listed files that do not exist, as RECORD spells them, sorted.
    pub missing: Vec<String>,
    /// Listed files that are not what RECORD says, and directories that
    /// cannot be listed, sorted by path.
    pub modified: Vec<Modified>,
    /// Files in the distribution's own directories that no RECORD lists
    /// (compiled bytecode of listed sources excepted).
    pub unlisted: Vec<PathBuf>,
    /// How many listed files were checked.
    pub files: usize,
    /// Why RECORD could not be used (status `bad-record`; null otherwise).
    pub record_error: Option<String>,
}

/// The audit of an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The environment's root.
    pub environment: PathBuf,
    /// One report per audited distribution, by name.
    pub distributions: Vec<DistributionReport>,
    /// Top-level entries of site-packages that no distribution owns: a
    /// `.pth` file or module dropped there runs or imports with every
    /// interpreter start, yet belongs to nothing that could be checked.
    /// Looked for only when every distribution is audited.
    pub unowned: Vec<PathBuf>,
}

impl Report {
    /// Whether every audited file is intact and nothing is unowned.
    pub fn is_intact(&self) -> bool {
        self.unowned.is_empty()
            && self
                .distributions
                .iter()
                .all(|d| d.status == Status::Intact)
    }
}
