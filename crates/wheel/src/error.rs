//! The one error type of this crate, and the rules a wheel can break.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong while reading or extracting a wheel.
///
/// Every variant names the wheel file, and where it applies the entry inside
/// it, so that the CLI can print a message a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file name does not follow *Binary distribution format § File name
    /// convention*.
    #[error("invalid wheel file name `{filename}`: {reason}")]
    InvalidFilename {
        /// The file name as given.
        filename: String,
        /// Which part of the convention it breaks, in words.
        reason: String,
    },

    /// The file could not be read as a zip archive at all.
    #[error("`{}` is not a valid zip archive", wheel.display())]
    Zip {
        /// The wheel file.
        wheel: PathBuf,
        /// What the zip reader could not read.
        #[source]
        source: zip::result::ZipError,
    },

    /// One entry of the wheel breaks one rule of the format.
    #[error("invalid wheel `{}`", wheel.display())]
    Invalid {
        /// The wheel file.
        wheel: PathBuf,
        /// The entry and the rule it broke.
        #[source]
        violation: Violation,
    },

    /// Reading one entry of the zip failed (corrupt data, bad CRC, truncation).
    #[error("invalid wheel `{}`: entry `{entry}` could not be read", wheel.display())]
    Entry {
        /// The wheel file.
        wheel: PathBuf,
        /// The entry's path inside the wheel.
        entry: String,
        /// The read error (`InvalidData` for a bad CRC or deflate stream).
        #[source]
        source: std::io::Error,
    },

    /// A file system operation failed; `fs_err` puts the path in the message.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    /// An entry of `wheel` broke `rule`.
    pub fn invalid(wheel: impl Into<PathBuf>, entry: impl Into<String>, rule: Rule) -> Self {
        Error::Invalid {
            wheel: wheel.into(),
            violation: Violation {
                entry: entry.into(),
                rule,
            },
        }
    }

    /// The rule that was broken, when this error is about one.
    pub fn rule(&self) -> Option<&Rule> {
        match self {
            Error::Invalid { violation, .. } => Some(&violation.rule),
            _ => None,
        }
    }
}

/// Which entry broke which rule: the cause under "invalid wheel `…`".
///
/// Entry names come from the wheel: their control characters are printed
/// escaped (`\u{1b}`, `\n`), so that a name cannot clear the terminal or
/// forge a line of output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry `{}`: {}", printable(entry), printable(&rule.to_string()))]
pub struct Violation {
    /// The entry's path inside the wheel (or the script name, for an entry
    /// point; or the `.dist-info` directory expected, when there is none).
    pub entry: String,
    /// The rule it broke.
    pub rule: Rule,
}

/// `text` with every control character escaped as Rust would (`\n`, `\0`,
/// `\u{1b}`); everything else, non-ASCII included, as it is.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A rule of the wheel format (or of keel's safety policy) that an entry broke.
///
/// The `Display` text is the rule in words, so that an error reads
/// ``entry `x`: <rule>``.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// *Binary distribution format § The .dist-info directory*: exactly one.
    NoDistInfo,
    /// More than one `.dist-info` directory (their names, sorted).
    SeveralDistInfo(Vec<String>),
    /// The `.dist-info` directory's name or version disagrees with the file name.
    DistInfoMismatch {
        /// The directory name the file name calls for.
        expected: String,
    },
    /// A required `.dist-info` file is absent (`METADATA`, `WHEEL`, `RECORD`).
    MissingDistInfoFile,
    /// `WHEEL` is malformed or missing a required key.
    MalformedWheelFile(String),
    /// `Wheel-Version` major is not 1.
    UnsupportedWheelVersion(String),
    /// `METADATA` has no `Name`/`Version`, or they disagree with the file name.
    MalformedMetadata(String),
    /// A row of `RECORD` is not `path,hash,size`.
    MalformedRecordRow {
        /// The row's line number, from 1; 0 when the row is not known.
        line: u64,
        /// What is wrong with it, in words.
        reason: String,
    },
    /// A hash algorithm that is not allowed (*Recording installed projects §
    /// The RECORD file*: md5 and sha1 are insecure; keel accepts sha256,
    /// sha384 and sha512).
    UnsupportedHash(String),
    /// An entry of the archive has no row in `RECORD`.
    NotInRecord,
    /// A `RECORD` row names a file the archive does not contain.
    MissingFromArchive,
    /// The same path appears twice (in the archive or in `RECORD`).
    Duplicate,
    /// The entry's content does not match the hash `RECORD` gives it.
    HashMismatch {
        /// RECORD's hash, as RECORD writes it.
        expected: String,
        /// The content's hash, with the same algorithm.
        actual: String,
    },
    /// The entry's size does not match the size `RECORD` gives it.
    SizeMismatch {
        /// RECORD's size in bytes.
        expected: u64,
        /// The content's size in bytes (for a file stopped while it was
        /// extracted, because it grew past `expected`: the bytes read so far).
        actual: u64,
    },
    /// A path that could escape its destination (absolute, `..`, backslash, …).
    UnsafePath(&'static str),
    /// A `.data/<key>/` directory with a key the spec does not define.
    UnknownDataKey(String),
    /// A symbolic link, device or other non-regular entry.
    NotARegularFile,
    /// An encrypted entry.
    Encrypted,
    /// A compression method the spec does not allow (only stored and deflate).
    UnsupportedCompression(String),
    /// The zip structure contradicts itself (local header vs central
    /// directory, overlapping entries).
    InconsistentZip(String),
    /// Larger than the configured limit (`what`: a file, or the whole wheel).
    TooLarge {
        /// The size in bytes (for the wheel: the running total).
        size: u64,
        /// The limit in bytes it went over.
        limit: u64,
        /// `"file"` or `"wheel"`.
        what: &'static str,
    },
    /// Compressed far more than real data compresses: a zip bomb.
    CompressionRatio {
        /// Uncompressed size over compressed size, rounded down.
        ratio: u64,
        /// The largest ratio allowed ([`crate::Limits::max_ratio`]).
        limit: u64,
    },
    /// The METADATA version disagrees with the file name.
    VersionMismatch {
        /// The version METADATA gives.
        metadata: String,
        /// The version the file name gives.
        filename: String,
    },
    /// A script (entry point or `.data/scripts/` file) whose name escapes
    /// `bin/` or shadows the interpreter ([`crate::script_name_problem`]).
    ScriptName(&'static str),
    /// The path is a file and also the directory of another entry
    /// (`a.py` and `a.py/b.py`): no file system can hold both.
    FileAndDirectory(String),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::NoDistInfo => write!(f, "the wheel has no `.dist-info` directory"),
            Rule::SeveralDistInfo(dirs) => write!(
                f,
                "a wheel must contain exactly one `.dist-info` directory, found {}",
                dirs.join(", ")
            ),
            Rule::DistInfoMismatch { expected } => write!(
                f,
                "the `.dist-info` directory does not match the file name (expected `{expected}`)"
            ),
            Rule::MissingDistInfoFile => write!(f, "this required file is missing"),
            Rule::MalformedWheelFile(why) => write!(f, "malformed WHEEL file: {why}"),
            Rule::UnsupportedWheelVersion(v) => {
                write!(f, "unsupported Wheel-Version {v} (keel supports 1.x)")
            }
            Rule::MalformedMetadata(why) => write!(f, "malformed METADATA: {why}"),
            Rule::MalformedRecordRow { line, reason } => {
                write!(f, "malformed RECORD row on line {line}: {reason}")
            }
            Rule::UnsupportedHash(alg) => write!(
                f,
                "hash algorithm `{alg}` is not accepted (use sha256, sha384 or sha512)"
            ),
            Rule::NotInRecord => write!(f, "the file is not listed in RECORD"),
            Rule::MissingFromArchive => {
                write!(
                    f,
                    "RECORD lists this file but the archive does not contain it"
                )
            }
            Rule::Duplicate => write!(f, "the path appears more than once"),
            Rule::HashMismatch { expected, actual } => write!(
                f,
                "content does not match RECORD (RECORD says {expected}, content is {actual})"
            ),
            Rule::SizeMismatch { expected, actual } => write!(
                f,
                "size does not match RECORD (RECORD says {expected} bytes, content is {actual})"
            ),
            Rule::UnsafePath(why) => write!(f, "unsafe path: {why}"),
            Rule::UnknownDataKey(key) => write!(
                f,
                "unknown `.data` directory `{key}` (allowed: purelib, platlib, headers, scripts, data)"
            ),
            Rule::NotARegularFile => write!(f, "not a regular file (symlinks are not allowed)"),
            Rule::Encrypted => write!(f, "encrypted entries are not allowed"),
            Rule::InconsistentZip(why) => write!(f, "inconsistent zip structure: {why}"),
            Rule::TooLarge { size, limit, what } => write!(
                f,
                "the {what} unpacks to {size} bytes, over the limit of {limit} bytes"
            ),
            Rule::CompressionRatio { ratio, limit } => write!(
                f,
                "compression ratio {ratio}:1 is over the limit of {limit}:1 (a zip bomb?)"
            ),
            Rule::VersionMismatch { metadata, filename } => write!(
                f,
                "`Version: {metadata}` does not match the file name's version `{filename}`"
            ),
            Rule::ScriptName(why) => write!(f, "cannot be installed as a script: {why}"),
            Rule::FileAndDirectory(file) => write!(
                f,
                "the path `{file}` is both a file and a directory in this wheel"
            ),
            Rule::UnsupportedCompression(method) => write!(
                f,
                "compression method {method} is not allowed (only stored and deflate)"
            ),
        }
    }
}
