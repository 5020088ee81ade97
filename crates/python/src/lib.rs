//! A Python interpreter as keel sees it, learned by running it once:
//!
//! - [`Interpreter`]: what one isolated run of the environment's Python
//!   reports (the probe, `src/probe.py`): its PEP 508
//!   [`MarkerEnvironment`], `python_full_version` as a PEP 440 version,
//!   `sys.implementation.cache_tag`, `EXT_SUFFIX`, the *sysconfig* scheme
//!   paths ([`SchemePaths`]), its [`Libc`] (glibc or musl version), whether
//!   it is a free-threaded or debug build, its pointer size,
//!   `sysconfig.get_platform()`, the bytecode magic number, `sys.executable`
//!   and `sys.prefix`. [`Interpreter::probe`] runs it with `-I -B`, an empty
//!   private working directory, no `PYTHON*` variables, stdin closed and a
//!   timeout ([`ProbeOptions`]), and reads the answer from a file, so that a
//!   `.pth` file printing to stdout cannot corrupt it.
//! - The probe cache: given a cache directory, the answer is kept in
//!   `<cache>/interpreters-v1/<key>.json`, the key hashing the interpreter's
//!   path (as given and canonical), the `stat` of the path itself and of
//!   what it points to, the `pyvenv.cfg` next to it and the probe script. A
//!   hit runs no Python; a rebuilt interpreter, a re-pointed `bin/python`
//!   symlink or an upgraded libc misses.
//! - [`Tags`]: the wheel tags the interpreter supports, best first, computed
//!   from the probe exactly as `packaging.tags.sys_tags()` orders them on
//!   Linux, with [`TagOrder`] choosing where `linux_<arch>` goes (first since
//!   packaging 26.3, last before it and in pip ≤ 26.2 and uv), and
//!   [`Tags::rank`] ranking a wheel file name's compressed tag sets.
//!
//! ```no_run
//! use keel_python::{Interpreter, TagOrder, Tags};
//!
//! let python = Interpreter::probe("/path/to/venv/bin/python".as_ref(), Some("/tmp/keel-cache".as_ref()))?;
//! println!("Python {} at {}", python.python_full_version(), python.executable().display());
//! println!("site-packages: {}", python.paths().purelib.display());
//!
//! let tags = Tags::new(&python, TagOrder::NativeFirst);
//! println!("best tag: {}", tags.iter().next().map(|t| t.to_string()).unwrap_or_default());
//! // `markupsafe-3.0.4-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl`
//! let rank = tags.rank(
//!     &["cp311".to_string()],
//!     &["cp311".to_string()],
//!     &["manylinux2014_x86_64".to_string(), "manylinux_2_17_x86_64".to_string()],
//! );
//! println!("supported: {}", rank.is_some());
//! # Ok::<(), keel_python::Error>(())
//! ```
#![deny(missing_docs)]

mod cache;
mod interpreter;
mod platforms;
mod probe;
mod tags;

use std::path::PathBuf;
use std::time::Duration;

pub use interpreter::{Interpreter, Libc, MarkerEnvironment, SchemePaths};
pub use probe::{DEFAULT_TIMEOUT, MINIMUM_PYTHON, ProbeOptions, remove_python_variables};
pub use tags::{Tag, TagOrder, Tags};

/// Everything that can go wrong while probing an interpreter. Every variant
/// names the interpreter, as given.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing at the path (or a dangling symbolic link).
    #[error("no Python interpreter at `{}`: nothing is there (or a symbolic link to nothing)", python.display())]
    NotFound {
        /// The interpreter, as given.
        python: PathBuf,
        /// What `stat` said.
        #[source]
        source: std::io::Error,
    },

    /// The interpreter could not be started (not executable, not a program,
    /// its `#!` interpreter missing…).
    #[error("cannot run the Python interpreter `{}`: {source}", python.display())]
    Spawn {
        /// The interpreter, as given.
        python: PathBuf,
        /// What `exec` said.
        source: std::io::Error,
    },

    /// A Python that keel does not support.
    #[error("`{}` is Python {version}; keel supports Python {}.{} and newer", python.display(), MINIMUM_PYTHON.0, MINIMUM_PYTHON.1)]
    Unsupported {
        /// The interpreter, as given.
        python: PathBuf,
        /// Its version, or a description when it could not tell
        /// (`older than 3.4` for a Python that does not know `-I`).
        version: String,
    },

    /// The probe exited unsuccessfully.
    #[error("`{}` failed when keel probed it ({status}); {}", python.display(), stderr_said(stderr))]
    ProbeFailed {
        /// The interpreter, as given.
        python: PathBuf,
        /// How it exited.
        status: String,
        /// The end of its stderr.
        stderr: String,
    },

    /// The probe ran out of time and was killed.
    #[error("`{}` did not finish probing within {} s and was killed; {}", python.display(), timeout.as_secs_f32(), stderr_said(stderr))]
    ProbeTimedOut {
        /// The interpreter, as given.
        python: PathBuf,
        /// The time it was given.
        timeout: Duration,
        /// The end of its stderr.
        stderr: String,
    },

    /// The probe exited successfully but wrote no answer: not a Python
    /// interpreter, or a wrapper that drops its arguments.
    #[error("`{}` exited successfully but wrote no probe result (is it a Python interpreter?); {}", python.display(), stderr_said(stderr))]
    NoProbeOutput {
        /// The interpreter, as given.
        python: PathBuf,
        /// The end of its stderr.
        stderr: String,
    },

    /// The probe's answer is not what `src/probe.py` writes.
    #[error("the probe result of `{}` is malformed: {reason}", python.display())]
    MalformedProbeOutput {
        /// The interpreter, as given.
        python: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Preparing the probe failed (its temporary directory; the error names
    /// the path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// "its stderr was empty", or its stderr's end, indented under the message.
fn stderr_said(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        return "its stderr was empty".to_string();
    }
    let lines: Vec<String> = stderr.lines().map(|line| format!("  {line}")).collect();
    format!("its stderr:\n{}", lines.join("\n"))
}
