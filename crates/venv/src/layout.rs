//! Where things go in a virtual environment: its install scheme, read from
//! `pyvenv.cfg` without running Python.

use std::path::{Path, PathBuf};

use crate::Error;

/// A virtual environment's install scheme (*sysconfig* `venv`/`posix_prefix`
/// scheme, as pip uses it).
#[derive(Debug, Clone)]
pub struct Environment {
    root: PathBuf,
    site_packages: PathBuf,
    scripts: PathBuf,
    python_version: (u32, u32),
    /// Made by `virtualenv` or `uv venv` (`pyvenv.cfg` says `virtualenv =`
    /// or `uv =`): for Pythons before 3.10 they add files of their own to
    /// site-packages.
    made_by_virtualenv: bool,
}

impl Environment {
    /// Reads the environment at `root`: `pyvenv.cfg` must exist, and
    /// `lib/pythonX.Y/site-packages` (`lib/pythonX.Yt/` for a free-threaded
    /// build) for the version it names (or, without a version, the only
    /// `lib/python3.*/site-packages`).
    pub fn open(root: &Path) -> Result<Self, Error> {
        let root = std::path::absolute(root)?;
        let cfg_path = root.join("pyvenv.cfg");
        let cfg = match fs_err::read_to_string(&cfg_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotAVirtualEnvironment { path: root });
            }
            Err(e) => return Err(e.into()),
        };
        let python_version = match parse_version(&cfg) {
            Some(version) => version,
            None => find_single_python_lib(&root)?,
        };
        let site_packages_of = |dir: &str| root.join("lib").join(dir).join("site-packages");
        let plain = format!("python{}.{}", python_version.0, python_version.1);
        let free_threaded = format!("{plain}t");
        // A free-threaded build's `sysconfig` adds its `abiflags` (PEP 703).
        let Some(python_dir) = [plain, free_threaded]
            .into_iter()
            .find(|dir| site_packages_of(dir).is_dir())
        else {
            return Err(Error::NoSitePackages {
                looked: site_packages_of(&format!(
                    "python{}.{}",
                    python_version.0, python_version.1
                )),
                root,
            });
        };
        let site_packages = site_packages_of(&python_dir);
        Ok(Environment {
            scripts: root.join("bin"),
            root,
            site_packages,
            python_version,
            made_by_virtualenv: made_by_virtualenv(&cfg),
        })
    }

    /// The environment's root, absolute (symlinks not resolved, as pip
    /// writes `sys.prefix`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// purelib and platlib: the same directory in a virtual environment.
    pub fn site_packages(&self) -> &Path {
        &self.site_packages
    }

    /// Where scripts go (`bin/`).
    pub fn scripts_dir(&self) -> &Path {
        &self.scripts
    }

    /// Where a distribution's headers go: `include/site/pythonX.Y/<name>`
    /// (pip's `headers` path in a venv, the bare version even on a
    /// free-threaded build).
    pub fn headers_dir(&self, distribution: &str) -> PathBuf {
        self.root
            .join("include")
            .join("site")
            .join(format!(
                "python{}.{}",
                self.python_version.0, self.python_version.1
            ))
            .join(distribution)
    }

    /// Where `.data/data/` goes: the environment root.
    pub fn data_dir(&self) -> &Path {
        &self.root
    }

    /// The interpreter that scripts run with (`bin/python`).
    pub fn python(&self) -> PathBuf {
        self.scripts.join("python")
    }

    /// Whether `virtualenv` or `uv venv` made the environment.
    pub fn made_by_virtualenv(&self) -> bool {
        self.made_by_virtualenv
    }

    /// The interpreter's `(major, minor)` version, from `pyvenv.cfg`.
    pub fn python_version(&self) -> (u32, u32) {
        self.python_version
    }

    /// A path in the environment as RECORD spells it: relative to
    /// site-packages, `/`-separated, with `..` for files outside it
    /// (*Recording installed projects § The RECORD file*: paths are relative
    /// to the directory holding `.dist-info`). A path outside the
    /// environment is spelled absolute.
    pub fn record_spelling(&self, path: &Path) -> String {
        let to_slash = |p: &Path| {
            p.components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/")
        };
        if let Ok(inside) = path.strip_prefix(&self.site_packages) {
            return to_slash(inside);
        }
        let Ok(relative) = path.strip_prefix(&self.root) else {
            return path.display().to_string();
        };
        let ups = self
            .site_packages
            .strip_prefix(&self.root)
            .map_or(0, |p| p.components().count());
        format!("{}{}", "../".repeat(ups), to_slash(relative))
    }

    /// keel's own directory in the environment (locks, transactions).
    pub fn keel_dir(&self) -> PathBuf {
        self.root.join(".keel")
    }

    /// [`Environment::keel_dir`], created if missing; refused when it is a
    /// symbolic link (or anything but a directory), since the lock, the
    /// journal, staging and the backup of replaced files would then all live
    /// wherever it points.
    pub fn ensure_keel_dir(&self) -> Result<PathBuf, Error> {
        let dir = self.keel_dir();
        match fs_err::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => Ok(dir),
            Ok(_) => Err(Error::KeelDirNotADirectory { path: dir }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs_err::create_dir(&dir).or_else(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => Ok(()),
                    _ => Err(e),
                })?;
                // Lost a race to whoever created it: check what they made.
                match fs_err::symlink_metadata(&dir)? {
                    meta if meta.is_dir() => Ok(dir),
                    _ => Err(Error::KeelDirNotADirectory { path: dir }),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The directories an installed file may live in: nothing outside them is
    /// ever removed on the word of a RECORD.
    pub fn scheme_dirs(&self) -> Vec<PathBuf> {
        vec![
            self.site_packages.clone(),
            self.scripts.clone(),
            self.root.join("include"),
            self.root.clone(),
        ]
    }
}

/// `virtualenv = 20.26.6` or `uv = 0.13.9`: the tool that made the venv
/// names itself (the stdlib `venv` writes no such key).
fn made_by_virtualenv(cfg: &str) -> bool {
    cfg.lines()
        .filter_map(|line| line.split_once('='))
        .any(|(key, _)| matches!(key.trim(), "virtualenv" | "uv"))
}

/// `version = 3.11.7` (venv) or `version_info = 3.11.7.final.0` (virtualenv).
fn parse_version(cfg: &str) -> Option<(u32, u32)> {
    cfg.lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(key, _)| matches!(key.trim(), "version" | "version_info"))
        .find_map(|(_, value)| {
            let mut parts = value.trim().split('.');
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
}

fn find_single_python_lib(root: &Path) -> Result<(u32, u32), Error> {
    let lib = root.join("lib");
    let mut versions = Vec::new();
    if let Ok(entries) = fs_err::read_dir(&lib) {
        for entry in entries {
            let name = entry?.file_name();
            if let Some(version) = name.to_str().and_then(|n| n.strip_prefix("python"))
                && let Some((major, minor)) = version.split_once('.')
                && let minor = minor.strip_suffix('t').unwrap_or(minor)
                && let (Ok(major), Ok(minor)) = (major.parse(), minor.parse())
            {
                versions.push((major, minor));
            }
        }
    }
    match versions.as_slice() {
        [one] => Ok(*one),
        _ => Err(Error::NoSitePackages {
            root: root.to_path_buf(),
            looked: lib.join("pythonX.Y"),
        }),
    }
}
