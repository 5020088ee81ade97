//! Script launchers: the files keel writes into `bin/` for entry points, and
//! the `#!python` shebang rewrite of `.data/scripts/`.

use std::path::Path;

use keel_cache::ManifestEntryPoint;

/// The longest shebang line the Linux kernel reads (`BINPRM_BUF_SIZE` − 1).
const MAX_SHEBANG: usize = 127;

/// The interpreter line for scripts run by `python`.
///
/// *Binary distribution format § Installing a wheel*: "If the file starts
/// with `#!python`, rewrite it to point to the correct interpreter." A path
/// too long for the kernel, or with a space, gets the `/bin/sh` trampoline
/// pip and distlib use, which re-executes the file with the interpreter.
pub fn shebang(python: &Path) -> String {
    let python = python.display().to_string();
    if python.len() + 2 <= MAX_SHEBANG && !python.contains([' ', '\t']) {
        format!("#!{python}\n")
    } else {
        let quoted = python.replace('\'', r"'\''");
        format!("#!/bin/sh\n'''exec' '{quoted}' \"$0\" \"$@\"\n' '''\n")
    }
}

/// Rewrites a `.data/scripts/` file that starts with `#!python` (or
/// `#!pythonw`); returns `None` for any other file, which is installed as is.
pub fn rewrite_python_shebang(contents: &[u8], python: &Path) -> Option<Vec<u8>> {
    if !contents.starts_with(b"#!python") {
        return None;
    }
    let rest = match contents.iter().position(|&b| b == b'\n') {
        Some(newline) => &contents[newline + 1..],
        None => &[],
    };
    let mut out = shebang(python).into_bytes();
    out.extend_from_slice(rest);
    Some(out)
}

/// The launcher for a console or GUI entry point (*Entry points
/// specification § Use for scripts*), in the form pip writes.
pub fn launcher(entry_point: &ManifestEntryPoint, python: &Path) -> Vec<u8> {
    let import_name = entry_point
        .object
        .split('.')
        .next()
        .unwrap_or(&entry_point.object);
    format!(
        "{shebang}# -*- coding: utf-8 -*-\n\
         import re\n\
         import sys\n\
         from {module} import {import_name}\n\
         if __name__ == '__main__':\n\
         \x20   sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n\
         \x20   sys.exit({object}())\n",
        shebang = shebang(python),
        module = entry_point.module,
        object = entry_point.object,
    )
    .into_bytes()
}

/// The launcher names of a wheel's entry points, each with the index of
/// its entry point, as pip's installer names them: a console script named
/// `pip` is installed as `pip`, `pipX` and `pipX.Y` for the environment's
/// Python `X.Y` (any other `pip3`, `pip3.10`… of the wheel is dropped, so a
/// wheel built on another Python never installs a stale `pip3.10`), and
/// `easy_install` as `easy_install` and `easy_install-X.Y`. Every other
/// entry point keeps its name. (pip's `get_console_script_specs`; uv's
/// installer adds `pip3.Y` too. `ENSUREPIP_OPTIONS` is ensurepip's, not an
/// installer's, and is not read.)
pub(crate) fn script_names(
    entry_points: &[ManifestEntryPoint],
    (major, minor): (u32, u32),
) -> Vec<(String, usize)> {
    let console = |name: &str| {
        entry_points
            .iter()
            .position(|ep| !ep.gui && ep.name == name)
    };
    let pip = console("pip");
    let easy_install = console("easy_install");
    let mut names = Vec::with_capacity(entry_points.len() + 3);
    for (index, ep) in entry_points.iter().enumerate() {
        let versioned_pip = pip.is_some() && !ep.gui && is_versioned(&ep.name, "pip", "");
        let versioned_easy =
            easy_install.is_some() && !ep.gui && is_versioned(&ep.name, "easy_install", "-");
        if Some(index) == pip {
            names.push(("pip".to_string(), index));
            names.push((format!("pip{major}"), index));
            names.push((format!("pip{major}.{minor}"), index));
        } else if Some(index) == easy_install {
            names.push(("easy_install".to_string(), index));
            names.push((format!("easy_install-{major}.{minor}"), index));
        } else if !versioned_pip && !versioned_easy {
            names.push((ep.name.clone(), index));
        }
    }
    names
}

/// `pip3`, `pip3.11` (`stem` + digits, optionally `.digits`; with
/// `separator` `-`: `easy_install-3.8`), pip's `^pip(\d+(\.\d+)?)?$`
/// without the bare name itself.
fn is_versioned(name: &str, stem: &str, separator: &str) -> bool {
    let Some(rest) = name
        .strip_prefix(stem)
        .and_then(|r| r.strip_prefix(separator))
    else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match rest.split_once('.') {
        Some((major, minor)) => digits(major) && digits(minor),
        None => separator.is_empty() && digits(rest),
    }
}

/// Writes a script as a real executable file (`rwxr-xr-x`, whatever the
/// umask: scripts are run by every user of the environment).
pub(crate) fn write_executable(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs_err::write(path, bytes)?;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_point(name: &str, gui: bool) -> ManifestEntryPoint {
        ManifestEntryPoint {
            name: name.into(),
            module: "m".into(),
            object: "main".into(),
            gui,
        }
    }

    fn names(eps: &[ManifestEntryPoint], python: (u32, u32)) -> Vec<(String, usize)> {
        script_names(eps, python)
    }

    #[test]
    fn pip_gets_the_environments_versioned_names_and_drops_stale_ones() {
        let eps = [
            entry_point("pip", false),
            entry_point("pip3", false),
            entry_point("pip3.10", false),
            entry_point("pip3.x", false),
            entry_point("other", false),
        ];
        assert_eq!(
            names(&eps, (3, 12)),
            [
                ("pip".to_string(), 0),
                ("pip3".to_string(), 0),
                ("pip3.12".to_string(), 0),
                ("pip3.x".to_string(), 3),
                ("other".to_string(), 4),
            ]
        );
    }

    #[test]
    fn easy_install_gets_its_dashed_version_and_other_wheels_keep_their_names() {
        let eps = [
            entry_point("easy_install", false),
            entry_point("easy_install-3.8", false),
        ];
        assert_eq!(
            names(&eps, (3, 11)),
            [
                ("easy_install".to_string(), 0),
                ("easy_install-3.11".to_string(), 0)
            ]
        );
        // Without a `pip` entry point, `pip3` is an ordinary name.
        let eps = [entry_point("pip3", false), entry_point("tool", true)];
        assert_eq!(
            names(&eps, (3, 11)),
            [("pip3".to_string(), 0), ("tool".to_string(), 1)]
        );
    }

    #[test]
    fn short_interpreter_paths_get_a_plain_shebang() {
        assert_eq!(
            shebang(Path::new("/venv/bin/python")),
            "#!/venv/bin/python\n"
        );
    }

    #[test]
    fn long_or_spaced_interpreter_paths_get_the_sh_trampoline() {
        let long = format!("/{}/bin/python", "x".repeat(130));
        assert!(shebang(Path::new(&long)).starts_with("#!/bin/sh\n'''exec' '/xxx"));
        let spaced = shebang(Path::new("/my venv/bin/python"));
        assert_eq!(
            spaced,
            "#!/bin/sh\n'''exec' '/my venv/bin/python' \"$0\" \"$@\"\n' '''\n"
        );
    }

    #[test]
    fn rewrites_only_python_shebangs() {
        let python = Path::new("/v/bin/python");
        assert_eq!(
            rewrite_python_shebang(b"#!python\nprint(1)\n", python).unwrap(),
            b"#!/v/bin/python\nprint(1)\n"
        );
        assert_eq!(
            rewrite_python_shebang(b"#!pythonw -u\nx\n", python).unwrap(),
            b"#!/v/bin/python\nx\n"
        );
        assert_eq!(rewrite_python_shebang(b"#!/bin/sh\necho\n", python), None);
        assert_eq!(
            rewrite_python_shebang(b"#!python", python).unwrap(),
            b"#!/v/bin/python\n"
        );
    }

    #[test]
    fn launcher_imports_the_first_attribute_and_calls_the_whole_path() {
        let ep = ManifestEntryPoint {
            name: "x".into(),
            module: "pkg.cli".into(),
            object: "app.main".into(),
            gui: false,
        };
        let text = String::from_utf8(launcher(&ep, Path::new("/v/bin/python"))).unwrap();
        assert!(text.starts_with("#!/v/bin/python\n"));
        assert!(text.contains("from pkg.cli import app\n"));
        assert!(text.contains("    sys.exit(app.main())\n"));
    }
}
