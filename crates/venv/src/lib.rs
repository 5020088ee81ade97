//! A Python virtual environment, and every rule keel follows about one:
//!
//! - [`Environment`]: its install scheme, read from `pyvenv.cfg` without
//!   running Python (`lib/pythonX.Y/site-packages` for purelib and
//!   platlib, `bin/` for scripts, `include/site/pythonX.Y/<name>/` for
//!   headers as pip puts them, the root for data), and how RECORD spells a
//!   path in it ([`Environment::record_spelling`]).
//! - [`InstalledIndex`] and [`InstalledDistribution`]: what is installed,
//!   by normalized name, duplicates kept and reported.
//! - The environment's own files ([`Environment::is_own`],
//!   [`reserved_destination`]): `pyvenv.cfg`, the interpreter and
//!   activation scripts, `lib64`, keel's `.keel/`; never written or removed
//!   on a wheel's or a RECORD's word.
//! - Bytecode file names ([`bytecode`]): the strict PEP 3147/488 rule that
//!   uninstall and `keel verify` share.
//!
//! ```no_run
//! use keel_venv::{Environment, InstalledIndex};
//!
//! let env = Environment::open("/path/to/venv".as_ref())?;
//! for dist in InstalledIndex::read(&env)?.iter() {
//!     println!("{} {} ({} RECORD rows)", dist.name, dist.version,
//!         dist.record()?.map_or(0, |rows| rows.len()));
//! }
//! # Ok::<(), keel_venv::Error>(())
//! ```
#![deny(missing_docs)]

pub mod bytecode;
mod installed;
mod layout;
mod own_files;

use std::path::{Path, PathBuf};

use keel_wheel::Rule;

pub use installed::{InstalledDistribution, InstalledIndex};
pub use layout::Environment;
pub use own_files::{is_reserved_script_name, reserved_destination};

/// Everything that can go wrong while reading an environment.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `pyvenv.cfg` at the root.
    #[error("`{}` is not a virtual environment (no `pyvenv.cfg`); create one with `python3 -m venv {}`", path.display(), shell_quote(path))]
    NotAVirtualEnvironment {
        /// The directory given.
        path: PathBuf,
    },

    /// The scheme's site-packages directory is not there.
    #[error("cannot find the site-packages directory of `{}` (looked for `{}`)", root.display(), looked.display())]
    NoSitePackages {
        /// The environment's root.
        root: PathBuf,
        /// Where site-packages was looked for.
        looked: PathBuf,
    },

    /// An installed RECORD that cannot be parsed.
    #[error("`{}` is malformed: {rule}", path.display())]
    MalformedRecord {
        /// The RECORD file.
        path: PathBuf,
        /// The rule it breaks.
        rule: Rule,
    },

    /// `.keel` is not a plain directory.
    #[error("`{}` is a symbolic link or not a directory; keel keeps its lock, journal and backups there and will not follow it elsewhere (remove it)", path.display())]
    KeelDirNotADirectory {
        /// `<venv>/.keel`.
        path: PathBuf,
    },

    /// Reading the environment failed (the error names the path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A path as a POSIX shell word, quoted only when it needs to be, so that a
/// suggested command can be pasted as is.
pub(crate) fn shell_quote(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:=@%".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
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

    /// A free-threaded CPython's venv keeps its packages in
    /// `lib/python3.13t/` (PEP 703); pip's headers path keeps the bare version.
    #[test]
    fn a_free_threaded_venv_has_its_site_packages_in_python3_13t() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(
            dir.path().join("pyvenv.cfg"),
            "version = 3.13.0
",
        )
        .unwrap();
        let site = dir.path().join("lib/python3.13t/site-packages");
        fs_err::create_dir_all(&site).unwrap();
        let env = Environment::open(dir.path()).unwrap();
        assert_eq!(env.site_packages(), site);
        assert_eq!(env.python_version(), (3, 13));
        assert_eq!(
            env.headers_dir("pybind11"),
            dir.path().join("include/site/python3.13/pybind11")
        );
        fs_err::write(
            dir.path().join("pyvenv.cfg"),
            "home = /usr/bin
",
        )
        .unwrap();
        let env = Environment::open(dir.path()).unwrap();
        assert_eq!(
            (env.site_packages(), env.python_version()),
            (site.as_path(), (3, 13))
        );
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
    fn two_dist_infos_of_one_name_are_both_kept_and_reported() {
        let dir = fake_venv("version = 3.11.7\n");
        let env = Environment::open(dir.path()).unwrap();
        for stem in ["Demo-1.0", "demo-2.0", "other-1.0.0"] {
            fs_err::create_dir(env.site_packages().join(format!("{stem}.dist-info"))).unwrap();
        }
        let index = InstalledIndex::read(&env).unwrap();
        let demo = index.get(&keel_wheel::PackageName::new("DEMO"));
        assert_eq!(demo.len(), 2);
        let duplicates: Vec<_> = index
            .duplicates()
            .map(|(name, d)| (name.to_string(), d.len()))
            .collect();
        assert_eq!(duplicates, vec![("demo".to_string(), 2)]);
        assert_eq!(index.len(), 3);
    }

    #[test]
    fn record_spells_paths_relative_to_site_packages() {
        let dir = fake_venv("version = 3.11.7\n");
        let env = Environment::open(dir.path()).unwrap();
        assert_eq!(
            env.record_spelling(&env.site_packages().join("pkg/mod.py")),
            "pkg/mod.py"
        );
        assert_eq!(
            env.record_spelling(&env.root().join("bin/tool")),
            "../../../bin/tool"
        );
        assert_eq!(
            env.record_spelling(Path::new("/elsewhere/x")),
            "/elsewhere/x"
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
        let index = InstalledIndex::read(&env).unwrap();
        let installed: Vec<_> = index.iter().cloned().collect();
        assert_eq!(installed.len(), 1);
        assert_eq!(installed[0].name, "django");
        assert_eq!(installed[0].version, "4.2.16".parse().unwrap());
        let record = installed[0].record().unwrap().unwrap();
        assert_eq!(
            installed[0].resolve(&record[1].path),
            env.root().join("bin/django-admin")
        );
    }
}
