//! The manifest of an archive and the pointer to it.
//!
//! A manifest is written in [postcard](https://postcard.jamesmunns.com/), a
//! compact binary serde format with a documented, stable wire format: a
//! warm install reads every manifest of the environment, and a 100,000-file
//! wheel's manifest read as JSON (19 MB) was a tenth of the install. Older
//! keel versions wrote `manifest.json`; an archive holding only that one is
//! still read, and gets the binary manifest the next time its stamps are
//! renewed.

use std::path::{Path, PathBuf};

use keel_wheel::{ExtractedFile, WheelArchive, WrittenStat};
use serde::{Deserialize, Serialize};

use crate::{ArchiveProblem, Error};

/// The manifest's file in an archive directory.
pub(crate) const MANIFEST: &str = "manifest.postcard";

/// The JSON manifest of keel versions before [`MANIFEST`]; read when the
/// binary one is absent.
pub(crate) const LEGACY_MANIFEST: &str = "manifest.json";

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
    /// older keel versions), for `keel cache verify --repair`. (Never
    /// skipped when `None`: postcard's fields are positional.)
    #[serde(default)]
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

/// In JSON, a key that is present (even as `null`) was recorded:
/// `Some(value)`; an absent key is `None` through `#[serde(default)]`. The
/// binary form spells both layers of the option.
fn recorded<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    if deserializer.is_human_readable() {
        Option::<String>::deserialize(deserializer).map(Some)
    } else {
        Option::<Option<String>>::deserialize(deserializer)
    }
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

    /// Writes the manifest of the archive directory `dir` in one rename,
    /// then removes a JSON manifest an older keel left there.
    pub(crate) fn write(&self, dir: &Path) -> Result<(), Error> {
        let path = dir.join(MANIFEST);
        let bytes = postcard::to_stdvec(self).map_err(|source| Error::Encode {
            path: path.clone(),
            source,
        })?;
        keel_fs::write_atomic(&path, &bytes)?;
        match fs_err::remove_file(dir.join(LEGACY_MANIFEST)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Reads the manifest of the archive directory `dir` (the binary one,
    /// else an older keel's JSON one); `Err` says what is wrong.
    pub(crate) fn read(dir: &Path) -> Result<Manifest, ArchiveProblem> {
        let path = dir.join(MANIFEST);
        match read_file(&path)? {
            Some(bytes) => decode(&path, &bytes),
            None => Self::read_legacy(dir),
        }
    }

    /// Reads the JSON manifest an older keel wrote.
    fn read_legacy(dir: &Path) -> Result<Manifest, ArchiveProblem> {
        let path = dir.join(LEGACY_MANIFEST);
        let Some(bytes) = read_file(&path)? else {
            return Err(if dir.exists() {
                ArchiveProblem::ManifestMissing {
                    manifest: dir.join(MANIFEST),
                }
            } else {
                ArchiveProblem::ArchiveGone {
                    archive: dir.to_path_buf(),
                }
            });
        };
        serde_json::from_slice(&bytes).map_err(|e| ArchiveProblem::ManifestMalformed {
            manifest: path,
            error: e.to_string(),
        })
    }

    /// The manifest file of the archive directory `dir` as it is now: the
    /// binary one, or an older keel's JSON one when only that is there.
    pub(crate) fn path_in(dir: &Path) -> PathBuf {
        let path = dir.join(MANIFEST);
        if !path.exists() && dir.join(LEGACY_MANIFEST).exists() {
            return dir.join(LEGACY_MANIFEST);
        }
        path
    }
}

/// A manifest's bytes; `None` when there is no such file.
fn read_file(path: &Path) -> Result<Option<Vec<u8>>, ArchiveProblem> {
    match fs_err::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ArchiveProblem::ManifestUnreadable {
            manifest: path.to_path_buf(),
            error: e.to_string(),
        }),
    }
}

/// Decodes a binary manifest; every byte must belong to it (a file with
/// bytes after the manifest is not one keel wrote).
fn decode(path: &Path, bytes: &[u8]) -> Result<Manifest, ArchiveProblem> {
    let malformed = |error: String| ArchiveProblem::ManifestMalformed {
        manifest: path.to_path_buf(),
        error,
    };
    match postcard::take_from_bytes::<Manifest>(bytes) {
        Ok((manifest, [])) => Ok(manifest),
        Ok((_, rest)) => Err(malformed(format!(
            "{} bytes follow the manifest",
            rest.len()
        ))),
        Err(e) => Err(malformed(e.to_string())),
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

#[cfg(test)]
mod format_tests {
    use keel_wheel::{HashAlgorithm, RecordHash};

    use super::*;
    use crate::{Cache, Lookup, WheelSource};

    fn manifest() -> Manifest {
        let file = |path: &str, algorithm, size| ManifestFile {
            path: path.into(),
            hash: RecordHash::of(algorithm, path.as_bytes()),
            size,
            stamp: Stamp {
                dev: 2049,
                ino: 1 << 40,
                size,
                mtime_ns: -5,
            },
        };
        Manifest {
            wheel: "a-1-py3-none-any.whl".into(),
            wheel_path: None,
            wheel_sha256: "00".repeat(32),
            name: "a".into(),
            version: "1".into(),
            dist_info: "a-1.dist-info".into(),
            requires_python: Some(None),
            root_is_purelib: true,
            entry_points: vec![ManifestEntryPoint {
                name: "a".into(),
                module: "a.cli".into(),
                object: "main".into(),
                gui: false,
            }],
            files: vec![
                file("a/__init__.py", HashAlgorithm::Sha256, 0),
                file("a/big.bin", HashAlgorithm::Sha512, u64::MAX),
                file("a-1.dist-info/RECORD", HashAlgorithm::Sha384, 7),
            ],
        }
    }

    #[test]
    fn a_manifest_reads_back_as_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut written = manifest();
        written.write(dir.path()).expect("write");
        assert_eq!(Manifest::read(dir.path()), Ok(written.clone()));

        written.wheel_path = Some("/wheels/a-1-py3-none-any.whl".into());
        written.requires_python = Some(Some(">=3.9".into()));
        written.write(dir.path()).expect("write");
        assert_eq!(Manifest::read(dir.path()), Ok(written));
    }

    #[test]
    fn an_older_keels_json_manifest_is_read_and_replaced_when_rewritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let json = serde_json::to_vec(&manifest()).expect("json");
        fs_err::write(dir.path().join(LEGACY_MANIFEST), json).expect("write");

        assert_eq!(Manifest::read(dir.path()), Ok(manifest()));
        assert_eq!(
            Manifest::path_in(dir.path()),
            dir.path().join(LEGACY_MANIFEST)
        );

        manifest().write(dir.path()).expect("rewrite");
        assert!(!dir.path().join(LEGACY_MANIFEST).exists());
        assert_eq!(Manifest::path_in(dir.path()), dir.path().join(MANIFEST));
        assert_eq!(Manifest::read(dir.path()), Ok(manifest()));
    }

    #[test]
    fn a_cut_short_or_padded_manifest_is_malformed_and_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        manifest().write(dir.path()).expect("write");
        let path = dir.path().join(MANIFEST);
        let bytes = fs_err::read(&path).expect("read");
        for damaged in [
            &bytes[..bytes.len() - 1],
            &[bytes.as_slice(), b"\0"].concat(),
        ] {
            fs_err::write(&path, damaged).expect("damage");
            match Manifest::read(dir.path()) {
                Err(ArchiveProblem::ManifestMalformed { manifest, .. }) => {
                    assert_eq!(manifest, path);
                }
                other => panic!("{} bytes of manifest: {other:?}", damaged.len()),
            }
        }
    }

    #[test]
    fn no_manifest_is_missing_and_no_directory_is_a_gone_archive() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            Manifest::read(dir.path()),
            Err(ArchiveProblem::ManifestMissing {
                manifest: dir.path().join(MANIFEST)
            })
        );
        let gone = dir.path().join("gone");
        assert_eq!(
            Manifest::read(&gone),
            Err(ArchiveProblem::ArchiveGone { archive: gone })
        );
    }

    /// A cache an older keel filled keeps serving its archives: nothing is
    /// unpacked again because the manifest is JSON.
    #[test]
    fn an_archive_with_an_older_keels_manifest_is_a_hit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = keel_fixtures::WheelBuilder::new("old", "1.0")
            .file("old/__init__.py", "X = 1\n")
            .build(&dir.path().join("wheels"))
            .expect("wheel");
        let source = WheelSource::new(&path).expect("stat");
        let cache = Cache::open(&dir.path().join("cache")).expect("cache");
        let _lock = cache.lock_shared().expect("lock");
        let archive = cache.unpack(&source, None).expect("unpack").into_archive();
        let json = serde_json::to_vec(&*archive.manifest).expect("json");
        fs_err::write(archive.dir.join(LEGACY_MANIFEST), json).expect("write json");
        fs_err::remove_file(archive.dir.join(MANIFEST)).expect("remove binary");

        match cache.lookup(&source).expect("lookup") {
            Lookup::Hit(found) => {
                assert_eq!(found.id, archive.id);
                assert_eq!(found.manifest, archive.manifest);
            }
            other => panic!("an older keel's archive was not a hit: {other:?}"),
        }
    }
}
