//! The lock files keel installs from, read and checked without touching the
//! network: PEP 751 `pylock.toml` (*pylock.toml specification*,
//! packaging.python.org) and, in [`requirements`], hash-pinned requirements
//! files (pip's *Requirements File Format*).
//!
//! # The principal types
//!
//! - [`Lock`]: a `pylock.toml`, every key typed and every rule of the format
//!   checked when it is read ([`Lock::from_path`]); all problems come
//!   together in one [`Error::Lock`], each a [`Problem`] naming where it is
//!   (`packages[3] (numpy 2.4.6)`) and the [`Rule`] it breaks.
//! - [`select`]: what a lock installs into one interpreter's environment,
//!   decided offline as the specification's *Installation* section
//!   prescribes: the [`Choice`] of extras and groups (default: the lock's
//!   `default-groups`), the lock's `requires-python` and `environments`,
//!   each package's `marker` (with `extras` and `dependency_groups` as sets)
//!   and `requires-python`, one entry per name, and the wheel whose tags
//!   rank first for the interpreter. Each [`Selected`] wheel says where the
//!   file is ([`Location`]), its size and hashes, and whether it is a direct
//!   URL reference (`[packages.archive]`).
//! - [`LockLocation`]: where a lock was read from, which relative `path`s
//!   are resolved against.
//!
//! Markers are evaluated by uv's `uv-pep508` (pinned exactly: it is
//! internal to uv), the only Rust implementation of PEP 751's set-valued
//! marker variables.
//!
//! # Example
//!
//! ```
//! use keel_lock::{Lock, LockLocation, PackageSource, Rule};
//!
//! let text = r#"
//! lock-version = "1.0"
//! created-by = "an example"
//! [[packages]]
//! name = "attrs"
//! version = "25.1.0"
//! wheels = [{ url = "http://127.0.0.1:8000/files/attrs-25.1.0-py3-none-any.whl",
//!             hashes = { sha256 = "c75a69e28a550a7e93789579c22aa26b0f5b83b75dc4e08fe092980051e1090a" } }]
//! "#;
//! let lock = Lock::from_str_at(text, LockLocation::File("/srv/pylock.toml".into()))?;
//! let PackageSource::Distributions { wheels, .. } = &lock.packages[0].source else { panic!() };
//! assert_eq!(wheels[0].file_name, "attrs-25.1.0-py3-none-any.whl");
//!
//! // A major lock-version keel does not know is an error.
//! let newer = text.replace(r#""1.0""#, r#""2.0""#);
//! let keel_lock::Error::Lock { problems, .. } =
//!     Lock::from_str_at(&newer, LockLocation::File("/srv/pylock.toml".into())).unwrap_err()
//! else { panic!() };
//! assert!(matches!(problems.0[0].rule, Rule::UnsupportedLockVersion(_)));
//! # Ok::<(), keel_lock::Error>(())
//! ```

#![deny(missing_docs)]

mod error;
mod location;
mod markers;
mod pylock;
pub mod requirements;
mod select;

pub use error::{Error, Problem, Problems, Rule};
pub use location::{Location, LockLocation};
pub use markers::MarkerContext;
pub use pylock::{Lock, LockedFile, LockedPackage, Marker, PackageSource, is_lock_file_name};
pub use select::{Choice, Selected, select};
