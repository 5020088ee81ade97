//! The wheel binary distribution format, and nothing else.
//!
//! This crate knows how a `.whl` file is named, what its `.dist-info` must
//! contain, how `RECORD` rows are read and written, what `entry_points.txt`
//! declares, how `.data/` keys map onto install schemes, and how to extract a
//! wheel into a directory while hashing every byte against its `RECORD`.
//! It knows nothing of caches or environments: those live in `keel-cache` and
//! `keel-venv`.
//!
//! Every rule cites the section of the PyPA specifications it comes from:
//! *Binary distribution format* (`binary-distribution-format`), *Recording
//! installed projects* (`recording-installed-packages`), *Entry points
//! specification* (`entry-points`) and *Names and normalization*
//! (`name-normalization`).

mod entry_points;
mod error;
mod extract;
mod filename;
mod hash;
mod layout;
mod metadata;
mod record;
mod zip_structure;

pub use entry_points::{EntryPoint, EntryPoints};
pub use error::{Error, Rule, Violation};
pub use extract::{ExtractedFile, WheelArchive};
pub use filename::{PackageName, WheelFilename, normalize_name};
pub use hash::{HashAlgorithm, Hasher, RecordHash};
pub use layout::{
    DataKey, DestinationCheck, EntryDestination, classify_entry, script_name_problem,
    validate_relative_path,
};
pub use metadata::{CoreMetadata, WheelInfo};
/// PEP 440 versions and specifiers (*Version specifiers*), from `pep440_rs`.
pub use pep440_rs::{Version, VersionSpecifiers};
pub use record::{FileProblem, RecordEntry, parse_record, write_record};
pub use zip_structure::Limits;
