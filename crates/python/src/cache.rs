//! The probe cache: `<cache>/interpreters-v1/<key>.json`, one file per
//! interpreter state, so that a hit runs no Python.
//!
//! The key hashes everything that can change what the probe would say
//! without the probe script changing: the path as given, made absolute and
//! canonical; the `stat` (size, mtime and ctime in ns, inode, device, mode)
//! of the path itself (`lstat`: a venv's `bin/python` is a symlink, and
//! re-pointing it must miss) and of what it resolves to (a rebuilt base
//! interpreter must miss); the `stat` of the `pyvenv.cfg` that `site` would
//! read next to it; the `_PYTHON*` variables that `-I` does not clear
//! (`_PYTHON_HOST_PLATFORM` changes `sysconfig.get_platform()`); and the
//! probe script itself. The entry also records the `stat` of the libc
//! loader the interpreter runs with, checked on every hit, so that a glibc
//! upgrade re-probes.
//!
//! Every failure here is a miss, never an error: a corrupt entry is
//! re-probed and overwritten, an unwritable directory is skipped.

use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::interpreter::{Interpreter, ProbeOutput};
use crate::probe::{PROBE_SCRIPT, PROBE_VERSION};

/// The cache's subdirectory; the `v1` changes with the entry format.
const SUBDIR: &str = "interpreters-v1";

/// The cache file of one interpreter state.
pub(crate) struct Key {
    file: PathBuf,
}

/// A cache file.
#[derive(Serialize, Deserialize)]
struct Entry {
    /// The interpreter, as given (for people reading the cache).
    interpreter: PathBuf,
    /// The libc loader (`PT_INTERP`) and its `stat` at probe time.
    loader: Option<Stamp>,
    /// The probe's output, as it wrote it.
    probe: serde_json::Value,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    path: PathBuf,
    stat: String,
}

impl Key {
    /// The key of the interpreter at `absolute` (given as `python`) now;
    /// `None` when it cannot be `stat`ed (the probe will say why).
    pub(crate) fn of(dir: &Path, python: &Path, absolute: &Path) -> Option<Key> {
        let link = fs_err::symlink_metadata(absolute).ok()?;
        let target = fs_err::metadata(absolute).ok()?;
        let mut hash = Sha256::new();
        let mut field = |name: &str, value: &[u8]| {
            hash.update(name.as_bytes());
            hash.update(b"=");
            hash.update(value);
            hash.update(b"\0");
        };
        field("cache", SUBDIR.as_bytes());
        field("probe-version", PROBE_VERSION.to_string().as_bytes());
        field("probe-script", &Sha256::digest(PROBE_SCRIPT.as_bytes()));
        field("given", python.as_os_str().as_bytes());
        field("absolute", absolute.as_os_str().as_bytes());
        let canonical = fs_err::canonicalize(absolute).ok();
        field(
            "canonical",
            canonical
                .as_deref()
                .map_or(b"-", |p| p.as_os_str().as_bytes()),
        );
        field("lstat", stat_line(&link).as_bytes());
        field("stat", stat_line(&target).as_bytes());
        // `site` looks for `pyvenv.cfg` next to the executable and one level up.
        let bin = absolute.parent().unwrap_or(Path::new("/"));
        for dir in [Some(bin), bin.parent()].into_iter().flatten() {
            let cfg = fs_err::metadata(dir.join("pyvenv.cfg"));
            let stat = cfg.map_or_else(|_| "absent".to_string(), |m| stat_line(&m));
            field("pyvenv.cfg", stat.as_bytes());
        }
        let mut variables: Vec<_> = std::env::vars_os()
            .filter(|(name, _)| name.as_bytes().starts_with(b"_PYTHON"))
            .collect();
        variables.sort();
        for (name, value) in variables {
            field("env", &[name.as_bytes(), b"=", value.as_bytes()].concat());
        }
        let digest = hash.finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Some(Key {
            file: dir.join(SUBDIR).join(format!("{hex}.json")),
        })
    }

    /// The cached interpreter, if the entry is there, sound and current.
    pub(crate) fn load(&self, python: &Path) -> Option<Interpreter> {
        let text = match fs_err::read_to_string(&self.file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::debug!("ignoring the probe cache: {e}");
                return None;
            }
        };
        let ignore = |why: String| {
            tracing::debug!("ignoring `{}`: {why}; probing again", self.file.display());
        };
        let entry: Entry = match serde_json::from_str(&text) {
            Ok(entry) => entry,
            Err(e) => {
                ignore(format!("corrupt ({e})"));
                return None;
            }
        };
        if let Some(loader) = &entry.loader
            && stamp(&loader.path).as_ref() != Some(loader)
        {
            ignore(format!("`{}` changed", loader.path.display()));
            return None;
        }
        let interpreter = <ProbeOutput as Deserialize>::deserialize(&entry.probe)
            .map_err(|e| e.to_string())
            .and_then(|output| Interpreter::from_output(python, output).map_err(|e| e.to_string()));
        match interpreter {
            Ok(interpreter) => {
                tracing::debug!(
                    "probe of `{}` read from `{}`",
                    python.display(),
                    self.file.display()
                );
                Some(interpreter)
            }
            Err(e) => {
                ignore(format!("corrupt ({e})"));
                None
            }
        }
    }

    /// Stores the probe's output; a failure is logged, not returned.
    pub(crate) fn store(&self, interpreter: &Interpreter, probe: serde_json::Value) {
        let loader = interpreter
            .elf
            .as_ref()
            .and_then(|elf| elf.interpreter.as_deref())
            .and_then(|path| stamp(Path::new(path)));
        let entry = Entry {
            interpreter: interpreter.path.clone(),
            loader,
            probe,
        };
        let result = serde_json::to_vec(&entry)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                if let Some(dir) = self.file.parent() {
                    fs_err::create_dir_all(dir)?;
                }
                keel_fs::write_atomic(&self.file, &bytes)
            });
        if let Err(e) = result {
            tracing::debug!(
                "not caching the probe of `{}`: {e}",
                interpreter.path.display()
            );
        }
    }
}

/// The `stat` of `path` (symlinks followed), if it has one.
fn stamp(path: &Path) -> Option<Stamp> {
    let metadata = fs_err::metadata(path).ok()?;
    Some(Stamp {
        path: path.to_path_buf(),
        stat: stat_line(&metadata),
    })
}

fn stat_line(m: &std::fs::Metadata) -> String {
    format!(
        "size={} mtime={}.{:09} ctime={}.{:09} ino={} dev={} mode={:o}",
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        m.ino(),
        m.dev(),
        m.mode()
    )
}
