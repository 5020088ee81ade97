//! What to install into, and how.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::LinkMode;

/// How staged files are proven against RECORD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verification {
    /// Hash a file only when its archive stamp no longer holds.
    #[default]
    Stamps,
    /// Hash every byte of every file (`--verify`).
    Full,
}

/// Hooks for a front end to show progress (each unpack of a wheel into the
/// cache); every method has a no-op default.
pub use keel_cache::UnpackObserver as Reporter;

/// How long a bytecode worker may take to start, or on one file, unless
/// told otherwise (`KEEL_COMPILE_BYTECODE_TIMEOUT`; uv's limit).
pub const DEFAULT_COMPILE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// What to install into, and how.
#[derive(Clone)]
pub struct InstallOptions {
    /// The virtual environment's root.
    pub venv: PathBuf,
    /// The cache root.
    pub cache_dir: PathBuf,
    /// Read-only caches consulted first, in order (`--shared-cache`);
    /// never written.
    pub shared_caches: Vec<PathBuf>,
    /// Use no writable cache (`--no-cache`): every wheel is extracted, and
    /// verified, for this install only.
    pub no_cache: bool,
    /// How staged files are made from archive files.
    pub link_mode: LinkMode,
    /// How staged files are proven.
    pub verification: Verification,
    /// Install even a version that is already installed.
    pub reinstall: bool,
    /// Let an installed wheel take over files another distribution owns.
    pub force: bool,
    /// Install a wheel whose `Requires-Python` excludes the environment's
    /// Python (with a warning). Tags are never ignored.
    pub ignore_requires_python: bool,
    /// Remove every installed distribution that is not among the wheels, in
    /// the same transaction (`keel sync`).
    pub exact: bool,
    /// Told of every unpack (a progress bar).
    pub reporter: Option<Arc<dyn Reporter + Send>>,
    /// Size limits a wheel must keep to when it is unpacked (a decompression
    /// bomb is refused before it fills the disk).
    pub limits: keel_wheel::Limits,
    /// Compile the bytecode of every installed module inside the
    /// transaction (`--compile-bytecode`).
    pub compile_bytecode: bool,
    /// The limit on a bytecode worker's start and on each file; `None`: no
    /// limit.
    pub compile_timeout: Option<std::time::Duration>,
    /// Set (e.g. by a SIGINT handler) to cancel: honoured until the commit
    /// starts; a commit that has started finishes.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl InstallOptions {
    /// Defaults (clone links, stamps trusted, nothing forced, no bytecode) for an
    /// install into `venv` through the cache at `cache_dir`.
    pub fn new(venv: impl Into<PathBuf>, cache_dir: impl Into<PathBuf>) -> Self {
        InstallOptions {
            venv: venv.into(),
            cache_dir: cache_dir.into(),
            shared_caches: Vec::new(),
            no_cache: false,
            link_mode: LinkMode::default(),
            verification: Verification::default(),
            reinstall: false,
            force: false,
            ignore_requires_python: false,
            exact: false,
            reporter: None,
            limits: keel_wheel::Limits::default(),
            compile_bytecode: false,
            compile_timeout: Some(DEFAULT_COMPILE_TIMEOUT),
            cancel: None,
        }
    }
}
