//! The files a virtual environment owns itself: never written by a wheel,
//! never removed on the word of a RECORD (*Recording installed projects §
//! Intentionally preventing changes to installed packages*; which files a
//! venv owns is keel's policy, one rule for install, uninstall and
//! `keel verify`).

use std::path::Path;

use keel_wheel::DataKey;

use crate::Environment;

const OWN: &str = "it would overwrite a file of the virtual environment itself";
const RESERVED: &str = "the name is reserved by the virtual environment";

/// Whether a script name in `bin/` belongs to the environment: the
/// interpreter (`python`, `python3`, `python3.13`, `python3.13t` for a
/// free-threaded build, `pythonw`) and the activation scripts. A wheel that
/// replaced `bin/python` would take over every later script.
pub fn is_reserved_script_name(name: &str) -> bool {
    let interpreter = name == "pythonw"
        || name.strip_prefix("python").is_some_and(|rest| {
            let version = rest.strip_suffix('t').unwrap_or(rest);
            rest.is_empty()
                || (!version.is_empty() && version.chars().all(|c| c.is_ascii_digit() || c == '.'))
        });
    interpreter
        || matches!(
            name,
            "activate"
                | "activate.csh"
                | "activate.fish"
                | "activate.nu"
                | "activate.ps1"
                | "Activate.ps1"
                | "activate_this.py"
                | "deactivate.nu"
        )
}

/// The environment's rule for a wheel's destinations
/// ([`keel_wheel::DestinationCheck`]): a script may not take a reserved
/// name, and a `.data/data/` file (the environment's prefix) may not land on
/// `pyvenv.cfg`, `lib64`, keel's `.keel/`, or a reserved name in `bin/`.
pub fn reserved_destination(key: DataKey, path: &str) -> Option<&'static str> {
    let mut components = path.split('/');
    match key {
        DataKey::Scripts => {
            let name = components.next().unwrap_or_default();
            is_reserved_script_name(name).then_some(RESERVED)
        }
        DataKey::Data => match (components.next(), components.next()) {
            (Some("pyvenv.cfg"), None) => Some(OWN),
            (Some("lib64" | ".keel"), _) => Some(OWN),
            (Some("bin"), Some(name)) if is_reserved_script_name(name) => Some(OWN),
            _ => None,
        },
        DataKey::Purelib | DataKey::Platlib | DataKey::Headers => None,
    }
}

impl Environment {
    /// Whether `path` (absolute) belongs to the environment itself:
    /// `pyvenv.cfg`, `lib64`, everything under `.keel/`, the scheme
    /// directories and every directory above them, and the interpreter and
    /// activation scripts in `bin/`.
    pub fn is_own(&self, path: &Path) -> bool {
        let root = self.root();
        if path == root.join("pyvenv.cfg")
            || path == root.join("lib64")
            || path.starts_with(self.keel_dir())
            || self.site_packages().starts_with(path)
            || self.scripts_dir().starts_with(path)
        {
            return true;
        }
        let name = path.file_name().and_then(|n| n.to_str());
        if path.parent() == Some(self.scripts_dir()) {
            return name.is_some_and(is_reserved_script_name);
        }
        self.is_virtualenv_patch(path)
    }

    /// `_virtualenv.py` and `_virtualenv.pth` (and the former's bytecode)
    /// at the top of site-packages: `virtualenv` and `uv venv` put them
    /// there (for Pythons before 3.10), no RECORD lists them, and they are
    /// the environment's, like `pyvenv.cfg`.
    fn is_virtualenv_patch(&self, path: &Path) -> bool {
        if !self.made_by_virtualenv() {
            return false;
        }
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return false;
        };
        let site = self.site_packages();
        match path.parent() {
            Some(parent) if parent == site => matches!(name, "_virtualenv.py" | "_virtualenv.pth"),
            Some(parent) if parent == site.join("__pycache__") => {
                crate::bytecode::is_bytecode_of(name, "_virtualenv")
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interpreter_and_activation_scripts_are_reserved() {
        for name in [
            "python",
            "python3",
            "python3.11",
            "python3.13t",
            "pythonw",
            "activate",
            "activate.fish",
            "Activate.ps1",
        ] {
            assert!(is_reserved_script_name(name), "{name}");
            assert!(
                reserved_destination(DataKey::Scripts, name).is_some(),
                "{name}"
            );
        }
        for name in [
            "python-build",
            "pythonista",
            "python3-config-x",
            "pytest",
            "pythont",
        ] {
            assert!(!is_reserved_script_name(name), "{name}");
        }
    }

    #[test]
    fn virtualenvs_own_patch_files_belong_to_environments_virtualenv_made() {
        for (cfg, owned) in [
            (
                "home = /usr\nvirtualenv = 20.26.6\nversion_info = 3.8.18.final.0\n",
                true,
            ),
            ("home = /usr\nuv = 0.13.9\nversion_info = 3.8.18\n", true),
            ("home = /usr\nversion = 3.8.18\n", false),
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            fs_err::write(dir.path().join("pyvenv.cfg"), cfg).expect("cfg");
            let site = dir.path().join("lib/python3.8/site-packages");
            fs_err::create_dir_all(&site).expect("site");
            let env = Environment::open(dir.path()).expect("env");
            for own in [
                "_virtualenv.py",
                "_virtualenv.pth",
                "__pycache__/_virtualenv.cpython-38.pyc",
            ] {
                assert_eq!(env.is_own(&site.join(own)), owned, "{cfg} {own}");
            }
            for other in ["evil.pth", "_virtualenv/x.py", "pkg/_virtualenv.py"] {
                assert!(!env.is_own(&site.join(other)), "{cfg} {other}");
            }
        }
    }

    #[test]
    fn data_files_may_not_land_on_the_environments_own_files() {
        for bad in [
            "pyvenv.cfg",
            "bin/python",
            "bin/python3.11",
            "bin/activate",
            "lib64/x",
            ".keel/lock",
        ] {
            assert!(
                reserved_destination(DataKey::Data, bad).is_some(),
                "{bad:?}"
            );
        }
        for good in [
            "share/man/man1/x.1",
            "bin/tool",
            "etc/jupyter/x.json",
            "pyvenv.cfg.d/x",
        ] {
            assert!(
                reserved_destination(DataKey::Data, good).is_none(),
                "{good:?}"
            );
        }
        assert!(reserved_destination(DataKey::Purelib, "pyvenv.cfg").is_none());
    }
}
