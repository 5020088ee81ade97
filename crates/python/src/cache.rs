//! The probe cache: `<cache>/interpreters-v1/<key>.json`, one file per
//! interpreter state, so that a hit runs no Python.
//!
//! Two kinds of entry, looked up in this order:
//!
//! - **Relocatable** (a virtual environment whose `bin/python` is a
//!   symlink, the default of `python -m venv`, `virtualenv` and `uv venv`):
//!   every venv made from one base interpreter with the same `pyvenv.cfg`
//!   says the same thing but for its own root, so the entry stores the
//!   probe's output with the root replaced by a placeholder, and a fresh
//!   venv of a known base pays no Python start-up. The key hashes the path
//!   of the interpreter inside the venv (`bin/python`), the canonical target
//!   of the symlink and its `stat`, and `pyvenv.cfg`'s content with the
//!   root replaced by the placeholder. An output that names the root in any
//!   other way (a `sys.prefix` that is not the root as given, a canonical
//!   spelling of it) is not stored relocatable.
//! - **Exact**, for everything else: the path as given, made absolute and
//!   canonical; the `stat` (size, mtime and ctime in ns, inode, device,
//!   mode) of the path itself (`lstat`: re-pointing a symlink must miss) and
//!   of what it resolves to (a rebuilt base interpreter must miss); the
//!   `stat` of the `pyvenv.cfg` that `site` would read next to it.
//!
//! Both also hash the `_PYTHON*` variables that `-I` does not clear
//! (`_PYTHON_HOST_PLATFORM` changes `sysconfig.get_platform()`), the probe
//! script itself, and what in the venv's `site-packages` runs or answers
//! while the probe runs: the name, size and mtime of every `.pth` file,
//! `sitecustomize`, `usercustomize` and `_manylinux` (PEP 600's hook) entry.
//! The entry also records the `stat` of the libc loader the interpreter
//! runs with, checked on every hit, so that a glibc upgrade re-probes.
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

/// What stands for the venv's root in a relocatable entry: a NUL, which no
/// path can contain.
const ROOT: &str = "\0";

/// Where the probe's answer for one interpreter state is (or would be)
/// cached: a relocatable key first when there is one, then the exact key.
pub(crate) struct Keys {
    relocatable: Option<Key>,
    exact: Key,
}

/// One cache file, and the venv root its entry is relative to.
struct Key {
    file: PathBuf,
    root: Option<PathBuf>,
}

/// A cache file.
#[derive(Serialize, Deserialize)]
struct Entry {
    /// The interpreter, as given (for people reading the cache).
    interpreter: PathBuf,
    /// The libc loader (`PT_INTERP`) and its `stat` at probe time.
    loader: Option<Stamp>,
    /// The probe's output, as it wrote it (the root replaced by [`ROOT`] in
    /// a relocatable entry).
    probe: serde_json::Value,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    path: PathBuf,
    stat: String,
}

/// A key being hashed: `name=value\0` per field.
struct KeyHash(Sha256);

impl KeyHash {
    fn new(kind: &str) -> KeyHash {
        let mut hash = KeyHash(Sha256::new());
        hash.field("cache", SUBDIR.as_bytes());
        hash.field("kind", kind.as_bytes());
        hash.field("probe-version", PROBE_VERSION.to_string().as_bytes());
        hash.field("probe-script", &Sha256::digest(PROBE_SCRIPT.as_bytes()));
        hash
    }

    fn field(&mut self, name: &str, value: &[u8]) {
        self.0.update(name.as_bytes());
        self.0.update(b"=");
        self.0.update(value);
        self.0.update(b"\0");
    }

    /// The fields every key shares: `_PYTHON*` and what runs at start-up.
    fn finish(mut self, dir: &Path, venv_root: Option<&Path>, root: Option<PathBuf>) -> Key {
        let mut variables: Vec<_> = std::env::vars_os()
            .filter(|(name, _)| name.as_bytes().starts_with(b"_PYTHON"))
            .collect();
        variables.sort();
        for (name, value) in variables {
            self.field("env", &[name.as_bytes(), b"=", value.as_bytes()].concat());
        }
        for line in venv_root.map(start_up_files).unwrap_or_default() {
            self.field("start-up", line.as_bytes());
        }
        let hex: String = self
            .0
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Key {
            file: dir.join(SUBDIR).join(format!("{hex}.json")),
            root,
        }
    }
}

impl Keys {
    /// The keys of the interpreter at `absolute` (given as `python`) now;
    /// `None` when it cannot be `stat`ed (the probe will say why).
    pub(crate) fn of(dir: &Path, python: &Path, absolute: &Path) -> Option<Keys> {
        let link = fs_err::symlink_metadata(absolute).ok()?;
        let target = fs_err::metadata(absolute).ok()?;
        let canonical = fs_err::canonicalize(absolute).ok();
        let venv_root = venv_root(absolute);
        let relocatable = venv_root.as_deref().and_then(|root| {
            let canonical = canonical.as_deref()?;
            if !link.file_type().is_symlink() {
                return None;
            }
            relocatable_key(dir, absolute, root, canonical, &target)
        });
        let mut hash = KeyHash::new("exact");
        hash.field("given", python.as_os_str().as_bytes());
        hash.field("absolute", absolute.as_os_str().as_bytes());
        hash.field(
            "canonical",
            canonical
                .as_deref()
                .map_or(b"-", |p| p.as_os_str().as_bytes()),
        );
        hash.field("lstat", stat_line(&link).as_bytes());
        hash.field("stat", stat_line(&target).as_bytes());
        // `site` looks for `pyvenv.cfg` next to the executable and one level up.
        let bin = absolute.parent().unwrap_or(Path::new("/"));
        for dir in [Some(bin), bin.parent()].into_iter().flatten() {
            let cfg = fs_err::metadata(dir.join("pyvenv.cfg"));
            let stat = cfg.map_or_else(|_| "absent".to_string(), |m| stat_line(&m));
            hash.field("pyvenv.cfg", stat.as_bytes());
        }
        Some(Keys {
            relocatable,
            exact: hash.finish(dir, venv_root.as_deref(), None),
        })
    }

    /// The cached interpreter, if an entry is there, sound and current.
    pub(crate) fn load(&self, python: &Path) -> Option<Interpreter> {
        self.relocatable
            .iter()
            .chain([&self.exact])
            .find_map(|key| key.load(python))
    }

    /// Stores the probe's output, relocatable when it can be; a failure is
    /// logged, not returned.
    pub(crate) fn store(&self, interpreter: &Interpreter, probe: serde_json::Value) {
        let relocated = self.relocatable.as_ref().and_then(|key| {
            let root = key.root.as_deref()?;
            match relocate_out(&probe, interpreter, root) {
                Some(relocated) => Some((key, relocated)),
                None => {
                    tracing::debug!(
                        "the probe of `{}` names its venv other than as `{}`: cached for this path only",
                        interpreter.path.display(),
                        root.display()
                    );
                    None
                }
            }
        });
        match relocated {
            Some((key, relocated)) => key.store(interpreter, relocated),
            None => self.exact.store(interpreter, probe),
        }
    }
}

/// The venv `absolute` is the interpreter of: the directory above its own,
/// when that holds the `pyvenv.cfg` `site` reads (PEP 405) and its own
/// directory does not.
fn venv_root(absolute: &Path) -> Option<PathBuf> {
    let bin = absolute.parent()?;
    let root = bin.parent()?;
    if fs_err::metadata(bin.join("pyvenv.cfg")).is_ok() {
        return None;
    }
    fs_err::metadata(root.join("pyvenv.cfg"))
        .ok()
        .map(|_| root.to_path_buf())
}

/// The relocatable key of the symlinked venv interpreter `absolute` in
/// `root`; `None` when the venv's `pyvenv.cfg` cannot be read or either
/// is not UTF-8.
fn relocatable_key(
    dir: &Path,
    absolute: &Path,
    root: &Path,
    canonical: &Path,
    target: &std::fs::Metadata,
) -> Option<Key> {
    let inside = absolute.strip_prefix(root).ok()?;
    let cfg = fs_err::read_to_string(root.join("pyvenv.cfg")).ok()?;
    let cfg = cfg.replace(root.to_str()?, ROOT);
    let mut hash = KeyHash::new("relocatable");
    hash.field("inside", inside.as_os_str().as_bytes());
    hash.field("canonical", canonical.as_os_str().as_bytes());
    hash.field("stat", stat_line(target).as_bytes());
    hash.field("pyvenv.cfg", cfg.as_bytes());
    Some(hash.finish(dir, Some(root), Some(root.to_path_buf())))
}

/// What in the venv's `site-packages` runs or answers while the probe
/// runs: one `name size mtime` line per `.pth` file, `sitecustomize`,
/// `usercustomize` and `_manylinux` entry, sorted.
fn start_up_files(root: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    let Ok(lib) = fs_err::read_dir(root.join("lib")) else {
        return lines;
    };
    for python_dir in lib.flatten() {
        let site = python_dir.path().join("site-packages");
        let Ok(entries) = fs_err::read_dir(&site) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let runs_at_start_up = name.ends_with(".pth")
                || ["sitecustomize", "usercustomize", "_manylinux"]
                    .iter()
                    .any(|module| name.starts_with(module));
            if !runs_at_start_up {
                continue;
            }
            let stat = entry.metadata().map_or_else(
                |_| "unreadable".to_string(),
                |m| format!("{} {}.{:09}", m.size(), m.mtime(), m.mtime_nsec()),
            );
            lines.push(format!(
                "{}/{name} {stat}",
                python_dir.file_name().to_string_lossy()
            ));
        }
    }
    lines.sort();
    lines
}

impl Key {
    /// The cached interpreter, if the entry is there, sound and current.
    fn load(&self, python: &Path) -> Option<Interpreter> {
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
        let mut entry: Entry = match serde_json::from_str(&text) {
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
        if let Some(root) = &self.root {
            relocate_in(&mut entry.probe, &root.to_string_lossy());
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

    fn store(&self, interpreter: &Interpreter, probe: serde_json::Value) {
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

/// The probe's output with the venv's `root` replaced by [`ROOT`] at the
/// start of every string that is the root or a path under it; `None` when
/// `sys.prefix` is not the root as given, or when the root (as given or
/// canonical) still appears anywhere after that.
fn relocate_out(
    probe: &serde_json::Value,
    interpreter: &Interpreter,
    root: &Path,
) -> Option<serde_json::Value> {
    if interpreter.prefix != root {
        return None;
    }
    let root = root.to_str()?;
    let mut relocated = probe.clone();
    let mut strings = Vec::new();
    walk_strings(&mut relocated, &mut |s| {
        if let Some(rest) = under(s, root) {
            *s = format!("{ROOT}{rest}");
        }
        strings.push(s.clone());
    });
    let canonical = fs_err::canonicalize(root).ok();
    let canonical = canonical.as_deref().and_then(Path::to_str).unwrap_or(root);
    let still_named = strings
        .iter()
        .any(|s| s.contains(root) || s.contains(canonical));
    (!still_named).then_some(relocated)
}

/// A relocatable entry's output with [`ROOT`] replaced by `root`.
fn relocate_in(probe: &mut serde_json::Value, root: &str) {
    walk_strings(probe, &mut |s| {
        if let Some(rest) = s.strip_prefix(ROOT) {
            *s = format!("{root}{rest}");
        }
    });
}

/// What follows `root` in `s` when `s` is `root` or a path under it.
fn under<'a>(s: &'a str, root: &str) -> Option<&'a str> {
    let rest = s.strip_prefix(root)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// Calls `visit` on every string in `value`, keys excepted.
fn walk_strings(value: &mut serde_json::Value, visit: &mut dyn FnMut(&mut String)) {
    match value {
        serde_json::Value::String(s) => visit(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| walk_strings(v, visit)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| walk_strings(v, visit)),
        _ => {}
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
