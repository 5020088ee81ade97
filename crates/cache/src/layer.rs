//! Read-only shared layers (`--shared-cache`): caches another account, a
//! container image or a read-only mount provides, consulted before the
//! writable cache and never written.
//!
//! Their archives are proven like any other, file by file against RECORD.
//! What an install learns about a layer's archive is kept in the writable
//! cache instead, one small file per archive:
//!
//! ```text
//! layers-v1/<sha256 of the archive's path, 32 hex>.json
//! ```
//!
//! holding the stamps of files hashed again (a layer copied to another
//! file system keeps its files but not their inodes: hashed once, then
//! proven by these stamps) and whether the archive was found damaged (then
//! it is passed over, and the wheel's archive in the writable cache, unpacked
//! from the `.whl` with the usual warning, is used).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::{Archive, Cache, Error, Stamp};

/// The directory of the notes about layers' archives.
pub(crate) const NOTES: &str = "layers-v1";

/// One read-only layer.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    root: PathBuf,
}

impl Layer {
    /// The layer's root directory (absolute).
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }
}

/// What the writable cache knows about one archive of a layer.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Notes {
    /// The archive's wheel, so that notes about an archive replaced in the
    /// layer (same path, another wheel build) are not applied to it.
    wheel_sha256: String,
    /// Found damaged: passed over from now on.
    damaged: bool,
    /// Stamps renewed by hashing: (index in the manifest, stamp).
    stamps: Vec<(usize, Stamp)>,
}

impl Cache {
    /// Consults the read-only caches at `roots`, in order, before this one.
    /// Nothing is ever written to them: no locks, no stamps, no repairs.
    pub fn with_shared_layers(mut self, roots: &[PathBuf]) -> Result<Self, Error> {
        for root in roots {
            let root = std::path::absolute(root)?;
            if root != self.root {
                self.layers.push(Layer { root });
            }
        }
        Ok(self)
    }

    /// The roots of the shared layers, in the order consulted.
    pub fn shared_layers(&self) -> impl Iterator<Item = &Path> {
        self.layers.iter().map(Layer::root)
    }

    /// A layer's archive with the stamps this cache renewed for it; `None`
    /// when this cache found it damaged before.
    pub(crate) fn with_layer_notes(&self, mut archive: Archive) -> Option<Archive> {
        let notes = self.read_notes(&archive);
        if notes.damaged {
            tracing::debug!(
                "passing over {}: found damaged before",
                archive.dir.display()
            );
            return None;
        }
        for (index, stamp) in notes.stamps {
            if let Some(file) = archive.manifest.files.get_mut(index) {
                file.stamp = stamp;
            }
        }
        Some(archive)
    }

    /// Records renewed stamps of a layer's archive in this cache.
    pub(crate) fn note_layer_stamps(
        &self,
        archive: &Archive,
        updates: &[(usize, Stamp)],
    ) -> Result<(), Error> {
        let mut notes = self.read_notes(archive);
        notes
            .stamps
            .retain(|(index, _)| updates.iter().all(|(i, _)| i != index));
        notes.stamps.extend_from_slice(updates);
        self.write_notes(archive, &notes)
    }

    /// Records that a layer's archive is damaged: it is passed over from
    /// now on.
    pub(crate) fn note_layer_damaged(&self, archive: &Archive) -> Result<(), Error> {
        let notes = Notes {
            damaged: true,
            ..self.read_notes(archive)
        };
        self.write_notes(archive, &notes)
    }

    fn notes_path(&self, archive: &Archive) -> PathBuf {
        let digest = sha2::Sha256::digest(archive.dir.as_os_str().as_encoded_bytes());
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        self.root.join(NOTES).join(format!("{hex}.json"))
    }

    /// The notes about `archive`; none (the default) when there are none,
    /// they cannot be read, or they are about another build of the wheel.
    fn read_notes(&self, archive: &Archive) -> Notes {
        let path = self.notes_path(archive);
        let notes = fs_err::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Notes>(&bytes).ok())
            .filter(|notes| notes.wheel_sha256 == archive.manifest.wheel_sha256);
        notes.unwrap_or_else(|| Notes {
            wheel_sha256: archive.manifest.wheel_sha256.clone(),
            ..Notes::default()
        })
    }

    fn write_notes(&self, archive: &Archive, notes: &Notes) -> Result<(), Error> {
        let path = self.notes_path(archive);
        if let Some(dir) = path.parent() {
            fs_err::create_dir_all(dir)?;
        }
        let bytes = serde_json::to_vec(notes).map_err(|source| Error::Serialize {
            path: path.clone(),
            source,
        })?;
        crate::write_atomically(&path, &bytes)
    }
}
