//! keel-lock's errors: every one names the file, and a lock's problems are
//! reported together, each with where it is and the rule it breaks.

use std::fmt;
use std::path::PathBuf;

/// Why a lock file or requirements file cannot be installed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML, or a key has the wrong type.
    #[error("`{}` is not a valid lock file: {message}", path.display())]
    Toml {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message, with the line and column.
        message: String,
    },
    /// A `.toml` file whose name is not `pylock.toml` or `pylock.<name>.toml`.
    #[error(
        "`{}` is not a lock file name: a lock file is named `pylock.toml` or `pylock.<name>.toml` (pylock.toml specification § File Name)",
        path.display()
    )]
    NotALockFileName {
        /// The file.
        path: PathBuf,
    },
    /// The lock breaks rules of the specification, or cannot be installed
    /// into this environment: every problem found, before any download.
    #[error("`{}` cannot be installed: {problems}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Each problem, where it is and the rule.
        problems: Problems,
    },
    /// A requirements file's lines break its rules: every one found.
    #[error("`{}` cannot be installed: {problems}", path.display())]
    Requirements {
        /// The requirements file named on the command line.
        path: PathBuf,
        /// Each problem, with its file and line.
        problems: Problems,
    },
}

/// One thing wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: `packages[3] (numpy)`, `lock-version`, `requirements.txt:12`.
    pub at: String,
    /// What is wrong.
    pub rule: Rule,
}

impl Problem {
    pub(crate) fn new(at: impl Into<String>, rule: Rule) -> Problem {
        Problem {
            at: at.into(),
            rule,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.rule)
    }
}

/// Several problems, printed one per line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "{one}"),
            all => {
                write!(f, "{} problems:", all.len())?;
                for problem in all {
                    write!(f, "\n  - {problem}")?;
                }
                Ok(())
            }
        }
    }
}

/// The rules a lock or a requirement can break. Each message names the
/// rule's source: the *pylock.toml specification* (packaging.python.org)
/// section, or pip's requirements file format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rule {
    /// A required key is absent.
    #[error("`{0}` is required")]
    Missing(&'static str),
    /// `lock-version` of a major version keel does not know.
    #[error(
        "lock-version {0} is not supported (keel reads 1.x; § lock-version: a tool MUST raise an error for an unsupported major version)"
    )]
    UnsupportedLockVersion(String),
    /// A value does not parse (a version, a specifier, a marker, a URL).
    #[error("{what} `{value}` is invalid: {reason}")]
    Invalid {
        /// What kind of value.
        what: &'static str,
        /// The value as written.
        value: String,
        /// The parser's reason.
        reason: String,
    },
    /// A package name that is not in normalized form.
    #[error(
        "name `{0}` is not normalized (§ packages.name: the name of the package normalized; `{1}`)"
    )]
    NameNotNormalized(String, String),
    /// A package entry with more than one kind of source, or none.
    #[error("{0} (§ packages: sdist/wheels and vcs/directory/archive are mutually exclusive)")]
    ConflictingSources(&'static str),
    /// A file entry with neither `path` nor `url`.
    #[error("{0} has neither `path` nor `url`")]
    NoLocation(String),
    /// A file entry whose hashes are empty or all of algorithms keel does
    /// not check.
    #[error(
        "{0} has no hash keel can check (§ hashes: at least one entry; keel checks sha256, sha384 and sha512)"
    )]
    NoUsableHash(String),
    /// A file whose name does not parse or does not match its package.
    #[error("file name `{file}`: {reason}")]
    FileName {
        /// The file name.
        file: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The lock's `requires-python` excludes the environment's Python.
    #[error(
        "the lock requires Python {required}; the environment has {found} (§ Installation: an error MUST be raised)"
    )]
    LockRequiresPython {
        /// The lock's specifiers.
        required: String,
        /// The interpreter's version.
        found: String,
    },
    /// None of the lock's `environments` markers holds.
    #[error(
        "the environment matches none of the lock's environments: {0} (§ Installation: an error MUST be raised)"
    )]
    NoEnvironment(String),
    /// An extra the lock does not declare.
    #[error("extra `{0}` is not among the lock's extras ({1})")]
    UnknownExtra(String, String),
    /// A dependency group the lock does not declare.
    #[error("dependency group `{0}` is not among the lock's groups ({1})")]
    UnknownGroup(String, String),
    /// A selected package whose `requires-python` excludes the environment.
    #[error("requires Python {required}; the environment has {found}")]
    PackageRequiresPython {
        /// The package's specifiers.
        required: String,
        /// The interpreter's version.
        found: String,
    },
    /// Two selected entries for one name.
    #[error(
        "also selected at {0}: two entries for one package (§ Installation: an error about the ambiguity MUST be raised)"
    )]
    Ambiguous(String),
    /// No wheel fits the interpreter and there is no sdist either.
    #[error("no wheel fits {interpreter} (the lock has {wheels}) and there is no sdist")]
    NoCompatibleWheel {
        /// `CPython 3.12.1 at /…/python`.
        interpreter: String,
        /// The lock's wheel file names.
        wheels: String,
    },
    /// A package keel would have to build: an sdist, a VCS checkout, a
    /// directory or an archive that is not a wheel.
    #[error("only {0} is locked; keel installs wheels and builds nothing")]
    NeedsBuild(String),
    /// A relative `path` in a lock fetched by URL that leaves the lock's
    /// location.
    #[error("path `{0}` leaves the directory of a lock fetched by URL")]
    PathEscapes(String),
    /// A requirement line keel cannot read.
    #[error("{0}")]
    Requirement(String),
}
