//! The manifest of an archive and the pointer to it.

use std::path::Path;

use keel_wheel::{ExtractedFile, WheelArchive, WrittenStat};
use serde::{Deserialize, Serialize};

use crate::Error;

/// What a pointer file holds.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Pointer {
    /// `<name>/<id>` under `archives-v1/`.
    pub archive: String,
    /// Where the wheel was when it was unpacked, for `keel cache verify
    /// --repair` (absent in pointers of older keel versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wheel: Option<std::path::PathBuf>,
}

/// What keel remembers about an archive file at the moment it last hashed it.
///
/// A file whose `stat` still equals its stamp has not been written since
/// (any write moves the modification time), so its hash still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// The device (file system) the file is on.
    pub dev: u64,
    /// Its inode number.
    pub ino: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Its modification time in nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
}

impl Stamp {
    /// The stamp of the file `metadata` describes (as it is now).
    pub fn of(metadata: &std::fs::Metadata) -> Self {
        WrittenStat::of(metadata).into()
    }
}

/// The stat an extraction took of a file it wrote is that file's stamp.
impl From<WrittenStat> for Stamp {
    fn from(stat: WrittenStat) -> Self {
        Stamp {
            dev: stat.dev,
            ino: stat.ino,
            size: stat.size,
            mtime_ns: stat.mtime_ns,
        }
    }
}

/// One file of an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// The entry path in the wheel.
    pub path: String,
    /// RECORD's hash (`sha256=…` in the manifest), verified when the file
    /// was written; for RECORD itself, which lists none, its sha256 then.
    pub hash: keel_wheel::RecordHash,
    /// RECORD's size in bytes, verified when the file was written (for
    /// RECORD itself, its size then).
    pub size: u64,
    /// The file's stamp when it was last hashed and found to match.
    pub stamp: Stamp,
}

/// A console or GUI script the wheel declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntryPoint {
    /// The script's name: the command it installs.
    pub name: String,
    /// The module it imports (`module` in `name = module:object`).
    pub module: String,
    /// What it calls in that module (`object`, possibly dotted).
    pub object: String,
    /// A `gui_scripts` entry (else `console_scripts`).
    pub gui: bool,
}

/// Everything an install needs to know about an archive, so that a warm
/// install reads one file per wheel instead of parsing the `.dist-info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The wheel's file name.
    pub wheel: String,
    /// Where the wheel was when it was unpacked (absent in manifests of
    /// older keel versions), for `keel cache verify --repair`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wheel_path: Option<std::path::PathBuf>,
    /// sha256 of the whole `.whl`, hex.
    pub wheel_sha256: String,
    /// `Name` from METADATA, as spelled there.
    pub name: String,
    /// `Version` from METADATA.
    pub version: String,
    /// The name of the wheel's `.dist-info` directory.
    pub dist_info: String,
    /// `Requires-Python` from METADATA: `Some(None)` when METADATA has
    /// none; `None` in a manifest of a keel that did not record it (then
    /// METADATA itself is read).
    #[serde(default, deserialize_with = "recorded")]
    pub requires_python: Option<Option<String>>,
    /// `Root-Is-Purelib` from WHEEL: the archive root installs into
    /// purelib (else platlib).
    pub root_is_purelib: bool,
    /// The console and GUI scripts of `entry_points.txt`.
    pub entry_points: Vec<ManifestEntryPoint>,
    /// Every file under the archive's `tree/`.
    #[serde(deserialize_with = "exact_files")]
    pub files: Vec<ManifestFile>,
}

/// The files, without the spare capacity a growing `Vec` leaves (a
/// quarter of 100,000 files' worth, held for the whole install).
fn exact_files<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<ManifestFile>, D::Error> {
    let mut files = Vec::<ManifestFile>::deserialize(deserializer)?;
    files.shrink_to_fit();
    Ok(files)
}

/// A key that is present (even as `null`) was recorded: `Some(value)`; an
/// absent key is `None` through `#[serde(default)]`.
fn recorded<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

impl Manifest {
    pub(crate) fn new(
        archive: &WheelArchive,
        wheel_sha256: String,
        files: Vec<ExtractedFile>,
    ) -> Self {
        Manifest {
            wheel: archive.filename().to_string(),
            wheel_path: Some(archive.path().to_path_buf()),
            wheel_sha256,
            name: archive.metadata().name.clone(),
            version: archive.metadata().version.clone(),
            dist_info: archive.dist_info().to_string(),
            requires_python: Some(archive.metadata().requires_python.clone()),
            root_is_purelib: archive.info().root_is_purelib,
            entry_points: archive
                .entry_points()
                .scripts
                .iter()
                .map(|ep| ManifestEntryPoint {
                    name: ep.name.clone(),
                    module: ep.module.clone(),
                    object: ep.object.clone(),
                    gui: ep.gui,
                })
                .collect(),
            files: files
                .into_iter()
                .map(|file| ManifestFile {
                    stamp: file.stat.into(),
                    path: file.path,
                    hash: file.hash,
                    size: file.size,
                })
                .collect(),
        }
    }

    /// The `.data` directory name of the wheel.
    pub fn data_dir(&self) -> String {
        format!("{}.data", self.dist_info.trim_end_matches(".dist-info"))
    }

    pub(crate) fn write(&self, path: &Path) -> Result<(), Error> {
        let bytes = serde_json::to_vec(self).map_err(|source| Error::Serialize {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(keel_fs::write_atomic(path, &bytes)?)
    }
}

#[cfg(test)]
mod requires_python_tests {
    use super::*;

    fn manifest(requires_python: Option<Option<String>>) -> Manifest {
        Manifest {
            wheel: "a-1-py3-none-any.whl".into(),
            wheel_path: None,
            wheel_sha256: String::new(),
            name: "a".into(),
            version: "1".into(),
            dist_info: "a-1.dist-info".into(),
            requires_python,
            root_is_purelib: true,
            entry_points: Vec::new(),
            files: Vec::new(),
        }
    }

    #[test]
    fn requires_python_tells_none_recorded_from_not_recorded() {
        for recorded in [Some(Some(">=3.10".to_string())), Some(None)] {
            let json = serde_json::to_vec(&manifest(recorded.clone())).expect("json");
            let back: Manifest = serde_json::from_slice(&json).expect("parse");
            assert_eq!(back.requires_python, recorded);
        }
        // A manifest of an older keel has no such key: not recorded.
        let mut value = serde_json::to_value(manifest(Some(None))).expect("json");
        value
            .as_object_mut()
            .expect("object")
            .remove("requires_python");
        let old: Manifest = serde_json::from_value(value).expect("parse");
        assert_eq!(old.requires_python, None);
    }
}
