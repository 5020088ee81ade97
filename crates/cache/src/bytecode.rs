//! Bytecode compiled from an archive's modules, kept beside its tree:
//! `<archive>/bytecode-<key>/tree/…/__pycache__/*.pyc` and its
//! `manifest.json` (a hash, size and stamp per file, as the archive's own
//! manifest has). `<key>` names the interpreter's cache tag and magic
//! number. An archive is never changed in place and a damaged wheel is
//! unpacked into a new archive, so an archive's bytecode stays the bytecode
//! of its files, with their modification times; `cache clean` and `prune`
//! remove it with its archive.
//!
//! A `.pyc` is proven like an archive file: by its stamp, or by its hash
//! with `--verify`. A missing, damaged or unreadable entry is compiled
//! again (and stored again) by the install that finds it so.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use keel_wheel::{HashAlgorithm, RecordHash};
use serde::{Deserialize, Serialize};

use crate::{Archive, Cache, Error, ManifestFile, Stamp, TMP};

/// The manifest of an archive's bytecode.
#[derive(Debug, Serialize, Deserialize)]
struct BytecodeManifest {
    /// Each `.pyc`, by its path relative to the bytecode tree.
    files: Vec<ManifestFile>,
}

/// An archive's stored bytecode for one interpreter.
#[derive(Debug, Clone)]
pub struct CachedBytecode {
    /// The directory the `.pyc` paths are relative to.
    pub tree: PathBuf,
    /// Each `.pyc` (`pkg/__pycache__/mod.cpython-311.pyc`) and what it was
    /// when stored.
    pub files: HashMap<String, ManifestFile>,
}

impl Archive {
    /// The archive's bytecode for the interpreter `key` names (its cache
    /// tag and magic number), if any was stored and its manifest reads.
    pub fn bytecode(&self, key: &str) -> Option<CachedBytecode> {
        let dir = self.dir.join(bytecode_dir_name(key));
        let bytes = fs_err::read(dir.join("manifest.json")).ok()?;
        let manifest: BytecodeManifest = serde_json::from_slice(&bytes).ok()?;
        Some(CachedBytecode {
            tree: dir.join("tree"),
            files: manifest
                .files
                .into_iter()
                .map(|file| (file.path.clone(), file))
                .collect(),
        })
    }
}

impl Cache {
    /// Stores `files` (each a `.pyc` path relative to the archive's tree,
    /// and where that bytecode is now) as the archive's bytecode for `key`,
    /// replacing what was stored: linked (or copied) into a new directory,
    /// hashed, stamped, then renamed into place, so that a reader sees the
    /// old entry or the new one.
    pub fn store_bytecode(
        &self,
        archive: &Archive,
        key: &str,
        files: &[(String, PathBuf)],
    ) -> Result<(), Error> {
        if archive.shared {
            // A shared layer is never written; its own store, if any, serves.
            return Ok(());
        }
        let tmp = self.root.join(TMP);
        fs_err::create_dir_all(&tmp)?;
        let staging = keel_fs::tempdir_in(&tmp, "unpack-bytecode-")?;
        let mut manifest = BytecodeManifest { files: Vec::new() };
        for (path, compiled) in files {
            manifest
                .files
                .push(store_one(&staging.path().join("tree"), path, compiled)?);
        }
        let bytes = serde_json::to_vec(&manifest).map_err(|source| Error::Serialize {
            path: staging.path().join("manifest.json"),
            source,
        })?;
        fs_err::write(staging.path().join("manifest.json"), bytes)?;
        let target = archive.dir.join(bytecode_dir_name(key));
        // An older entry moves aside first (a rename cannot replace a
        // non-empty directory), then goes with the guard.
        let old = keel_fs::tempdir_in(&tmp, "unpack-bytecode-old-")?;
        match fs_err::rename(&target, old.path().join("entry")) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        match fs_err::rename(staging.path(), &target) {
            Ok(()) => {
                let _ = staging.keep();
                Ok(())
            }
            // Another install stored the same bytecode first.
            Err(e) if target.is_dir() => {
                tracing::debug!("bytecode of {} stored by another install: {e}", archive.id);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Links (or copies) one `.pyc` into the new tree and records it.
fn store_one(tree: &Path, path: &str, compiled: &Path) -> Result<ManifestFile, Error> {
    let target = tree.join(path);
    if let Some(parent) = target.parent() {
        fs_err::create_dir_all(parent)?;
    }
    if fs_err::hard_link(compiled, &target).is_err() {
        fs_err::copy(compiled, &target)?;
    }
    let bytes = fs_err::read(&target)?;
    let metadata = fs_err::symlink_metadata(&target)?;
    Ok(ManifestFile {
        path: path.to_string(),
        hash: RecordHash::of(HashAlgorithm::Sha256, &bytes),
        size: bytes.len() as u64,
        stamp: Stamp::of(&metadata),
    })
}

fn bytecode_dir_name(key: &str) -> String {
    format!("bytecode-{key}")
}
