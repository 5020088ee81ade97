//! What can go wrong with the workers. A file that does not compile is not
//! an error (it is an [`crate::Outcome::NotCompiled`]); everything here
//! means the pool cannot be trusted to have compiled what it was given.

use std::path::PathBuf;
use std::time::Duration;

/// An error of the bytecode pool; each names the interpreter and, once
/// compiling has started, the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The interpreter could not be started.
    #[error("cannot start `{}` to compile bytecode", python.display())]
    Spawn {
        /// The interpreter.
        python: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A worker did not say it was ready in time.
    #[error(
        "`{}` did not start compiling within {}{}",
        python.display(), seconds(*timeout), stderr_suffix(stderr)
    )]
    StartTimedOut {
        /// The interpreter.
        python: PathBuf,
        /// The limit.
        timeout: Duration,
        /// The end of what it wrote to stderr.
        stderr: String,
    },
    /// A worker's greeting is not what keel expects of this interpreter.
    #[error(
        "`{}` is not the interpreter keel probed: its bytecode worker says `{found}`, expected `{expected}`",
        python.display()
    )]
    Handshake {
        /// The interpreter.
        python: PathBuf,
        /// `keel-bytecode 1 <magic> <cache tag>` from the probe.
        expected: String,
        /// What it said.
        found: String,
    },
    /// A worker took longer than the limit on one file; it was killed.
    #[error(
        "compiling `{}` took longer than {}; the worker (`{}`) was stopped",
        file.display(), seconds(*timeout), python.display()
    )]
    FileTimedOut {
        /// The interpreter.
        python: PathBuf,
        /// The file.
        file: PathBuf,
        /// The limit.
        timeout: Duration,
    },
    /// A worker exited, or answered something that is not a reply.
    #[error(
        "the bytecode worker (`{}`) {what}{}{}",
        python.display(),
        file.as_ref().map(|f| format!(" while compiling `{}`", f.display())).unwrap_or_default(),
        stderr_suffix(stderr)
    )]
    WorkerFailed {
        /// The interpreter.
        python: PathBuf,
        /// The file it was given, if any.
        file: Option<PathBuf>,
        /// What happened (`exited with status 1`, `sent a malformed reply`).
        what: String,
        /// The end of what it wrote to stderr.
        stderr: String,
    },
    /// A worker could not read a source or write its bytecode (a full
    /// disk, a permission): the install cannot promise its bytecode.
    #[error("cannot write the bytecode of `{}`: {message}", file.display())]
    Write {
        /// The source file.
        file: PathBuf,
        /// Python's message.
        message: String,
    },
    /// Compiling was interrupted (Ctrl-C).
    #[error("interrupted")]
    Interrupted,
    /// An I/O error of keel's own (the scratch directory, the pipes).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn seconds(timeout: Duration) -> String {
    format!("{} s", timeout.as_secs_f64())
}

fn stderr_suffix(stderr: &str) -> String {
    match stderr.trim() {
        "" => String::new(),
        text => format!("; its stderr ends: {text}"),
    }
}
