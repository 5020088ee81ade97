//! Where a wheel comes from, which decides whether it gets a
//! `direct_url.json` and what it says (*Recording the Direct URL Origin of
//! installed distributions*: written for a direct URL reference, never for
//! a distribution found through an index).

use std::path::PathBuf;

use keel_wheel::RecordHash;
use url::Url;

/// Where a wheel comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Origin {
    /// A wheel file named on the command line: a direct reference to a
    /// local file, recorded with its `file://` URL and sha256 (what pip
    /// writes for `pip install ./dist/x.whl`).
    #[default]
    LocalFile,
    /// Chosen through a lock's `[[packages.wheels]]` or an index: not a
    /// direct URL reference, so no `direct_url.json`.
    Index,
    /// A direct URL reference (`[packages.archive]`, `name @ https://…whl`):
    /// recorded with this URL and these hashes (`archive_info.hashes`).
    DirectUrl {
        /// The URL as the lock or requirement gave it.
        url: Url,
        /// The file's hashes, as verified.
        hashes: Vec<RecordHash>,
    },
}

/// One wheel to install: the file, and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelRequest {
    /// The `.whl` on this machine (a downloaded one is in the cache).
    pub path: PathBuf,
    /// Its origin.
    pub origin: Origin,
    /// Its sha256 (hex) when the caller verified it (a download checked by
    /// hash): its archive is then found by content, in any cache layer.
    pub sha256: Option<String>,
}

impl WheelRequest {
    /// A wheel file named by the user.
    pub fn local(path: impl Into<PathBuf>) -> WheelRequest {
        WheelRequest {
            path: path.into(),
            origin: Origin::LocalFile,
            sha256: None,
        }
    }
}
