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
//!
//! # The principal types
//!
//! - [`WheelFilename`]: a parsed wheel file name,
//!   `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl` (*Binary
//!   distribution format § File name convention*).
//! - [`WheelArchive`]: an open wheel whose structure has been checked
//!   ([`WheelArchive::open`]: one `.dist-info` matching the file name, its
//!   `WHEEL`, `METADATA` and `RECORD`, every entry a safe path listed in
//!   RECORD), and that extracts itself while hashing every byte against
//!   RECORD ([`WheelArchive::extract`]).
//! - [`RecordEntry`] and [`RecordHash`]: one row of RECORD (path,
//!   `algorithm=digest`, size) and its hash, read by [`parse_record`] and
//!   written by [`write_record`] (*Recording installed projects § The RECORD
//!   file*).
//! - [`EntryPoints`]: the console and GUI scripts `entry_points.txt`
//!   declares (*Entry points specification § File format*).
//! - [`Limits`]: how large a file, a whole wheel and a compression ratio may
//!   be (keel's zip bomb defence).
//! - [`Error`] and [`Rule`]: every error names the wheel; a broken rule of
//!   the format is [`Error::Invalid`], whose [`Violation`] names the entry
//!   and the [`Rule`].
//! - [`PackageName`]: a distribution name in normalized form, so that two
//!   spellings of one project compare equal (*Names and normalization*).
//! - [`DestinationCheck`]: an environment's rule of which `.data/<key>/`
//!   and script destinations a wheel may not write, asked by
//!   [`WheelArchive::check_destinations`] (this crate itself knows no
//!   environment).
//!
//! # Example
//!
//! ```
//! use keel_wheel::{
//!     DataKey, EntryDestination, HashAlgorithm, PackageName, RecordHash, Rule, WheelFilename,
//!     classify_entry, parse_record,
//! };
//!
//! // A file name: a legacy spelling is kept, and compares normalized.
//! let wheel: WheelFilename = "Django-4.2.16-py3-none-any.whl".parse()?;
//! assert_eq!(wheel.name, "Django");
//! assert_eq!(wheel.normalized_name(), "django");
//! assert_eq!(wheel.python_tags, ["py3"]);
//! assert_eq!(wheel.expected_dist_info(), "Django-4.2.16.dist-info");
//!
//! // Names: runs of `-`, `_` and `.` become one `-`, letters lowercase.
//! assert_eq!(PackageName::new("Zope_Interface"), PackageName::new("zope.interface"));
//! assert_eq!(PackageName::new("Zope_Interface").as_str(), "zope-interface");
//!
//! // RECORD rows: path, `algorithm=urlsafe-base64-nopad(digest)`, size;
//! // RECORD's own row has neither hash nor size.
//! let empty = RecordHash::of(HashAlgorithm::Sha256, b"");
//! let record = format!("django/__init__.py,{empty},0\nDjango-4.2.16.dist-info/RECORD,,\n");
//! let rows = parse_record(record.as_bytes()).expect("well-formed RECORD");
//! assert_eq!(rows[0].path, "django/__init__.py");
//! assert_eq!((rows[0].hash.as_ref(), rows[0].size), (Some(&empty), Some(0)));
//! assert_eq!((&rows[1].hash, rows[1].size), (&None, None));
//! // md5 and sha1 are refused.
//! assert_eq!(
//!     parse_record(b"a.py,md5=1B2M2Y8AsgTpgAmY7PhCfg,0\n"),
//!     Err(Rule::UnsupportedHash("md5".into()))
//! );
//!
//! // Where an entry goes: the archive root, or a `.data/<key>/` scheme.
//! assert_eq!(
//!     classify_entry("Django-4.2.16.data/scripts/django-admin", "Django-4.2.16.data"),
//!     Ok(EntryDestination::Data(DataKey::Scripts, "django-admin"))
//! );
//! # Ok::<(), keel_wheel::Error>(())
//! ```

#![deny(missing_docs)]

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
pub use extract::{ExtractedFile, WheelArchive, WrittenStat};
pub use filename::{PackageName, WheelFilename, normalize_name};
pub use hash::{HashAlgorithm, Hasher, RecordHash};
pub use layout::{
    DataKey, DestinationCheck, EntryDestination, classify_entry, script_name_problem,
    validate_relative_path,
};
pub use metadata::{CoreMetadata, WheelInfo};
/// PEP 440 versions and specifiers (*Version specifiers*), from `pep440_rs`.
pub use pep440_rs::{Version, VersionSpecifiers, VersionSpecifiersParseError};
pub use record::{FileProblem, RecordEntry, RecordWriter, parse_record, write_record};
pub use zip_structure::Limits;
