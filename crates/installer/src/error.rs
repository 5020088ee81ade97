//! Everything that can go wrong during an install, an uninstall or a
//! recovery: one enum, every variant naming the wheel, file or directory it
//! is about.

use std::path::PathBuf;

use keel_wheel::PackageName;

/// Everything that can go wrong during an install. Every variant names the
/// wheel, file or directory it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The environment cannot be read.
    #[error(transparent)]
    Environment(#[from] keel_venv::Error),

    /// The cache cannot be used.
    #[error(transparent)]
    Cache(#[from] keel_cache::Error),

    /// A wheel breaks a rule; the error names the wheel, entry and rule.
    #[error(transparent)]
    InvalidWheel(keel_wheel::Error),

    /// Two wheels of one distribution in one transaction.
    #[error("`{}` and `{}` are both versions of `{name}`; install one at a time", first.display(), second.display())]
    SameDistributionTwice {
        /// The distribution.
        name: PackageName,
        /// The first wheel.
        first: PathBuf,
        /// The second wheel.
        second: PathBuf,
    },

    /// Two wheels of one transaction install the same file.
    #[error("`{}` and `{}` both install `{}`", first.display(), second.display(), path.display())]
    WheelsOverlap {
        /// The file, relative to the environment root.
        path: PathBuf,
        /// The first wheel.
        first: PathBuf,
        /// The second wheel.
        second: PathBuf,
    },

    /// A script name that cannot be installed.
    #[error("invalid wheel `{}`: entry point `{name}` in entry_points.txt: {reason}", wheel.display())]
    ScriptName {
        /// The wheel.
        wheel: PathBuf,
        /// The entry point or `.data/scripts/` file.
        name: String,
        /// The rule it breaks.
        reason: &'static str,
    },

    /// A re-extracted archive was damaged again at once.
    #[error(
        "the cached archive of `{}` is damaged again right after re-extracting it (`{entry}`: {reason}); is something else writing to the cache?",
        wheel.display()
    )]
    StillDamaged {
        /// The wheel.
        wheel: PathBuf,
        /// The damaged entry.
        entry: String,
        /// What is wrong with it.
        reason: keel_cache::Damage,
    },

    /// Something in the environment is in the way of a staged file.
    #[error("cannot install over `{}`: {reason}", path.display())]
    Conflict {
        /// The path in the environment.
        path: PathBuf,
        /// Why.
        reason: &'static str,
    },

    /// A wheel path that cannot be made a `file://` URL.
    #[error("`{}` is not an absolute path", path.display())]
    NotAbsolute {
        /// The path.
        path: PathBuf,
    },

    /// The commit failed and every move was undone.
    #[error("the transaction failed while moving files into place; every change was undone")]
    CommitRolledBack(#[source] Box<Error>),

    /// The commit failed and some moves could not be undone.
    #[error(
        "the transaction failed while moving files into place and {failures} move(s) could not be undone; `keel recover` will retry from `{}`",
        transaction.display()
    )]
    CommitIncomplete {
        /// How many moves could not be undone.
        failures: usize,
        /// The transaction directory.
        transaction: PathBuf,
        /// What failed first.
        #[source]
        source: Box<Error>,
    },

    /// A journal that cannot be read, or of an unknown format.
    #[error("the journal `{}` is unreadable: {reason}", path.display())]
    Journal {
        /// The journal file.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// Recovery could not undo an interrupted transaction.
    #[error("could not roll back the interrupted transaction `{}`: {failures} move(s) failed", transaction.display())]
    RecoveryFailed {
        /// The transaction directory.
        transaction: PathBuf,
        /// How many moves failed.
        failures: usize,
    },

    /// A distribution without RECORD cannot be removed or replaced.
    #[error("cannot remove or replace {name}: its RECORD `{}` is missing, so keel cannot know which files are its own", path.display())]
    NoRecord {
        /// The distribution.
        name: PackageName,
        /// Where its RECORD should be.
        path: PathBuf,
    },

    /// A staged file would overwrite a file another distribution owns.
    #[error("`{}` belongs to {owner}; installing {installing} would overwrite it (use --force to let {installing} take it over)", path.display())]
    FileOwned {
        /// The file.
        path: PathBuf,
        /// The distribution whose RECORD lists it.
        owner: String,
        /// The distribution being installed.
        installing: String,
    },

    /// The environment's interpreter cannot be probed.
    #[error(transparent)]
    Interpreter(#[from] keel_python::Error),

    /// None of a wheel's tags is supported by the environment's interpreter.
    #[error(
        "{wheel} is not supported by {} ({description}): none of its tags {tags} is among the interpreter's",
        interpreter.display()
    )]
    UnsupportedWheel {
        /// The wheel's file name.
        wheel: String,
        /// The environment's interpreter.
        interpreter: PathBuf,
        /// Its implementation and version (`CPython 3.13.0`).
        description: String,
        /// The wheel's expanded tags.
        tags: String,
    },

    /// A wheel's `Requires-Python` excludes the interpreter's version.
    #[error(
        "{wheel} requires Python {requires}; the environment has {version} ({}) (use --ignore-requires-python to install it anyway)",
        interpreter.display()
    )]
    RequiresPython {
        /// The wheel's file name.
        wheel: String,
        /// `Requires-Python` as written.
        requires: String,
        /// The interpreter's version.
        version: keel_wheel::Version,
        /// The environment's interpreter.
        interpreter: PathBuf,
    },

    /// A `Requires-Python` that is not PEP 440 specifiers.
    #[error("invalid wheel `{}`: Requires-Python `{requires}` in METADATA is not a list of PEP 440 version specifiers: {reason}", wheel.display())]
    InvalidRequiresPython {
        /// The wheel.
        wheel: PathBuf,
        /// As written.
        requires: String,
        /// What the parser said.
        reason: String,
    },

    /// A lock or requirements file that cannot be installed (every problem).
    #[error(transparent)]
    Lock(#[from] keel_lock::Error),

    /// The downloader cannot be set up, or an index cannot be read.
    #[error(transparent)]
    Download(keel_download::Error),

    /// Files that could not be fetched and verified; nothing was installed.
    #[error("{}", list_errors(errors))]
    Downloads {
        /// One error per file.
        errors: Vec<keel_download::Error>,
    },

    /// Requirements without an exact pin or a hash keel can check.
    #[error(
        "`{}`: every requirement needs an exact pin and a --hash (keel verifies every download, as pip's hash-checking mode does); add:\n  {}",
        file.display(),
        lines.join("\n  ")
    )]
    MissingHashes {
        /// The requirements file.
        file: PathBuf,
        /// Each line, with the hash to add when the index states one.
        lines: Vec<String>,
    },

    /// Requirements no index (or, offline, the download cache) has a file for.
    #[error("`{}`: no file found for:\n  {}", file.display(), requirements.join("\n  "))]
    NotFound {
        /// The requirements file.
        file: PathBuf,
        /// Each requirement and why.
        requirements: Vec<String>,
    },

    /// Dependencies the set does not satisfy (keel has no resolver).
    #[error(
        "the requirements are not closed (keel installs exactly what they pin; --no-deps skips this check):\n  {}",
        requirements.join("\n  ")
    )]
    Unsatisfied {
        /// Each package and the requirement it lacks.
        requirements: Vec<String>,
    },

    /// The interpreter's markers cannot be evaluated.
    #[error("the interpreter's marker environment cannot be used: {0}")]
    Markers(String),

    /// Compiling bytecode failed (not a module that does not compile: a
    /// worker that cannot start, hangs, crashes or cannot write).
    #[error(
        "cannot compile bytecode, so nothing was installed (--no-compile-bytecode installs without it; KEEL_COMPILE_BYTECODE_TIMEOUT=<seconds> changes the time limit, 0 for none)"
    )]
    Bytecode(#[source] keel_bytecode::Error),

    /// `--link-mode symlink` without a cache that outlives the install
    /// (`--no-cache`, or a cache directory keel cannot write): the links
    /// would point into a scratch cache removed with the transaction.
    #[error(
        "--link-mode symlink needs a writable cache that outlives the install (the links point into it); with --no-cache or a read-only cache, use another link mode"
    )]
    SymlinkWithoutCache,

    /// Cancelled (SIGINT, SIGTERM) before the commit.
    #[error("interrupted; nothing was changed")]
    Interrupted,

    /// An I/O error (it names its path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// `N downloads failed:` and one line each (or the one error).
fn list_errors(errors: &[keel_download::Error]) -> String {
    match errors {
        [one] => one.to_string(),
        all => {
            let lines: Vec<String> = all.iter().map(|e| format!("\n  - {e}")).collect();
            format!(
                "{} downloads failed; nothing was installed:{}",
                all.len(),
                lines.concat()
            )
        }
    }
}
