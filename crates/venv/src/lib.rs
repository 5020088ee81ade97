//! The layout of a Python virtual environment, read from the environment
//! itself without running Python, and the distributions installed in it.
//!
//! keel installs into POSIX virtual environments made by `python3 -m venv`
//! or `virtualenv`: `pyvenv.cfg` at the root names the interpreter version,
//! which gives `lib/pythonX.Y/site-packages`; scripts go to `bin/`, headers
//! to `include/site/pythonX.Y/<name>/` (as pip puts them), data to the root.

use std::path::{Path, PathBuf};

use keel_wheel::{RecordEntry, Rule, normalize_name, parse_record};

/// Everything that can go wrong while reading an environment.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{}` is not a virtual environment (no `pyvenv.cfg`); create one with `python3 -m venv {}`", path.display(), shell_quote(path))]
    NotAVirtualEnvironment { path: PathBuf },

    #[error("cannot find the site-packages directory of `{}` (looked for `{}`)", root.display(), looked.display())]
    NoSitePackages { root: PathBuf, looked: PathBuf },

    #[error("`{}` is malformed: {rule}", path.display())]
    MalformedRecord { path: PathBuf, rule: Rule },

    #[error("`{}` is a symbolic link or not a directory; keel keeps its lock, journal and backups there and will not follow it elsewhere (remove it)", path.display())]
    KeelDirNotADirectory { path: PathBuf },

    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A path as a POSIX shell word, quoted only when it needs to be, so that a
/// suggested command can be pasted as is.
fn shell_quote(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:=@%".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// A virtual environment's install scheme (*sysconfig* `venv`/`posix_prefix`
/// scheme, as pip uses it).
#[derive(Debug, Clone)]
pub struct Environment {
    root: PathBuf,
    site_packages: PathBuf,
    scripts: PathBuf,
    python_version: (u32, u32),
}

impl Environment {
    /// Reads the environment at `root`: `pyvenv.cfg` must exist, and
    /// `lib/pythonX.Y/site-packages` for the version it names (or, without a
    /// version, the only `lib/python3.*/site-packages`).
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
        let site_packages = root
            .join("lib")
            .join(format!("python{}.{}", python_version.0, python_version.1))
            .join("site-packages");
        if !site_packages.is_dir() {
            return Err(Error::NoSitePackages {
                root,
                looked: site_packages,
            });
        }
        Ok(Environment {
            scripts: root.join("bin"),
            root,
            site_packages,
            python_version,
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

    /// Where a distribution's headers go: `include/site/pythonX.Y/<name>`.
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

    pub fn python_version(&self) -> (u32, u32) {
        self.python_version
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

    /// Every distribution installed in site-packages (one per `.dist-info`
    /// directory), sorted by normalized name.
    pub fn installed(&self) -> Result<Vec<InstalledDistribution>, Error> {
        let mut found = Vec::new();
        for entry in fs_err::read_dir(&self.site_packages)? {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(stem) = file_name
                .to_str()
                .and_then(|n| n.strip_suffix(".dist-info"))
            else {
                continue;
            };
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let (name, version) = match stem.rsplit_once('-') {
                Some((name, version)) => (name.to_string(), version.to_string()),
                None => (stem.to_string(), String::new()),
            };
            found.push(InstalledDistribution {
                name: normalize_name(&name),
                version,
                dist_info: entry.path(),
            });
        }
        found.sort_by(|a, b| a.name.cmp(&b.name).then(a.version.cmp(&b.version)));
        Ok(found)
    }
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

/// A distribution installed in an environment: one `.dist-info` directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledDistribution {
    /// Normalized name (*Names and normalization*).
    pub name: String,
    pub version: String,
    pub dist_info: PathBuf,
}

impl InstalledDistribution {
    /// The `.dist-info` directory's RECORD path.
    pub fn record_path(&self) -> PathBuf {
        self.dist_info.join("RECORD")
    }

    /// The installed RECORD (*Recording installed projects § The RECORD
    /// file*); `Ok(None)` when the distribution has none.
    pub fn record(&self) -> Result<Option<Vec<RecordEntry>>, Error> {
        let path = self.record_path();
        let bytes = match fs_err::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        parse_record(&bytes)
            .map(Some)
            .map_err(|rule| Error::MalformedRecord { path, rule })
    }

    /// Resolves a RECORD path (relative to site-packages, possibly with
    /// `../`) to an absolute path, lexically.
    ///
    /// *Recording installed projects § The RECORD file*: a path is relative
    /// to the directory holding `.dist-info`, or absolute.
    pub fn resolve(&self, record_path: &str) -> PathBuf {
        let base = if record_path.starts_with('/') {
            Path::new("/")
        } else {
            self.dist_info.parent().unwrap_or(Path::new("/"))
        };
        let mut resolved = base.to_path_buf();
        for component in record_path.split('/') {
            match component {
                "" | "." => {}
                ".." => {
                    resolved.pop();
                }
                other => resolved.push(other),
            }
        }
        resolved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_venv(cfg: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("pyvenv.cfg"), cfg).unwrap();
        fs_err::create_dir_all(dir.path().join("lib/python3.11/site-packages")).unwrap();
        dir
    }

    #[test]
    fn suggested_commands_quote_paths_that_need_it() {
        assert_eq!(shell_quote(Path::new("/tmp/venv")), "/tmp/venv");
        assert_eq!(
            shell_quote(Path::new("/tmp/my project")),
            "'/tmp/my project'"
        );
        assert_eq!(shell_quote(Path::new("/tmp/it's")), r"'/tmp/it'\''s'");
    }

    #[test]
    fn reads_layout_from_pyvenv_cfg() {
        let dir =
            fake_venv("home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.7\n");
        let env = Environment::open(dir.path()).unwrap();
        assert_eq!(env.python_version(), (3, 11));
        assert_eq!(
            env.site_packages(),
            dir.path().join("lib/python3.11/site-packages")
        );
        assert_eq!(env.scripts_dir(), dir.path().join("bin"));
        assert_eq!(
            env.headers_dir("pybind11"),
            dir.path().join("include/site/python3.11/pybind11")
        );
        assert_eq!(env.python(), dir.path().join("bin/python"));
    }

    #[test]
    fn reads_virtualenv_version_info_and_falls_back_to_lib() {
        let dir = fake_venv("version_info = 3.11.7.final.0\n");
        assert_eq!(
            Environment::open(dir.path()).unwrap().python_version(),
            (3, 11)
        );
        let dir = fake_venv("home = /usr/bin\n");
        assert_eq!(
            Environment::open(dir.path()).unwrap().python_version(),
            (3, 11)
        );
    }

    #[test]
    fn refuses_a_directory_that_is_not_a_venv() {
        let dir = tempfile::tempdir().unwrap();
        let err = Environment::open(dir.path()).unwrap_err();
        assert!(matches!(err, Error::NotAVirtualEnvironment { .. }));
        assert!(err.to_string().contains("python3 -m venv"));
        let dir = fake_venv("version = 3.12.1\n");
        assert!(matches!(
            Environment::open(dir.path()),
            Err(Error::NoSitePackages { .. })
        ));
    }

    #[test]
    fn lists_installed_distributions_and_resolves_record_paths() {
        let dir = fake_venv("version = 3.11.7\n");
        let env = Environment::open(dir.path()).unwrap();
        let dist_info = env.site_packages().join("Django-4.2.16.dist-info");
        fs_err::create_dir(&dist_info).unwrap();
        fs_err::write(
            dist_info.join("RECORD"),
            "django/__init__.py,,\n../../../bin/django-admin,,\n",
        )
        .unwrap();
        fs_err::create_dir(env.site_packages().join("not-a-dist")).unwrap();
        let installed = env.installed().unwrap();
        assert_eq!(installed.len(), 1);
        assert_eq!(installed[0].name, "django");
        assert_eq!(installed[0].version, "4.2.16");
        let record = installed[0].record().unwrap().unwrap();
        assert_eq!(
            installed[0].resolve(&record[1].path),
            env.root().join("bin/django-admin")
        );
    }
}
