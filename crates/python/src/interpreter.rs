//! What the probe learned about an interpreter, parsed and checked: the
//! [`Interpreter`] and the plain types it is made of.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use pep440_rs::Version;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::probe::{MINIMUM_PYTHON, PROBE_VERSION};

/// The PEP 508 environment markers of an interpreter (*Dependency
/// specifiers § Environment markers*), as the probe evaluated them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkerEnvironment {
    /// `sys.implementation.name`, e.g. `cpython`.
    pub implementation_name: String,
    /// `sys.implementation.version`, formatted as `format_full_version`.
    pub implementation_version: String,
    /// `os.name`, e.g. `posix`.
    pub os_name: String,
    /// `platform.machine()`, e.g. `x86_64`.
    pub platform_machine: String,
    /// `platform.python_implementation()`, e.g. `CPython`.
    pub platform_python_implementation: String,
    /// `platform.release()`.
    pub platform_release: String,
    /// `platform.system()`, e.g. `Linux`.
    pub platform_system: String,
    /// `platform.version()`.
    pub platform_version: String,
    /// `platform.python_version()`, e.g. `3.12.1`.
    pub python_full_version: String,
    /// `'.'.join(platform.python_version_tuple()[:2])`, e.g. `3.12`.
    pub python_version: String,
    /// `sys.platform`, e.g. `linux`.
    pub sys_platform: String,
}

impl MarkerEnvironment {
    /// The value of the marker variable `name` (`python_version`, …).
    pub fn get(&self, name: &str) -> Option<&str> {
        Some(match name {
            "implementation_name" => &self.implementation_name,
            "implementation_version" => &self.implementation_version,
            "os_name" => &self.os_name,
            "platform_machine" => &self.platform_machine,
            "platform_python_implementation" => &self.platform_python_implementation,
            "platform_release" => &self.platform_release,
            "platform_system" => &self.platform_system,
            "platform_version" => &self.platform_version,
            "python_full_version" => &self.python_full_version,
            "python_version" => &self.python_version,
            "sys_platform" => &self.sys_platform,
            _ => return None,
        })
    }
}

/// The interpreter's install scheme, `sysconfig.get_paths()` of its default
/// scheme (`venv` on 3.11+ virtual environments, `posix_prefix` before), with
/// the prefixes of the environment it runs in substituted. Never rebuild
/// these by hand: a free-threaded build uses `lib/python3.13t`, and Fedora's
/// `platlib` uses `lib64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemePaths {
    /// Pure-Python packages (site-packages).
    pub purelib: PathBuf,
    /// Platform-specific packages (the same as `purelib` in a venv on most
    /// systems).
    pub platlib: PathBuf,
    /// Console scripts (`bin/`).
    pub scripts: PathBuf,
    /// C headers of the *base* interpreter (pip puts a wheel's headers in
    /// `<venv>/include/site/pythonX.Y/<name>` instead).
    pub include: PathBuf,
    /// Platform-specific C headers of the base interpreter.
    pub platinclude: Option<PathBuf>,
    /// The root for `.data/data/` (the environment's prefix).
    pub data: PathBuf,
    /// The standard library.
    pub stdlib: Option<PathBuf>,
    /// The platform-specific standard library.
    pub platstdlib: Option<PathBuf>,
}

/// The C library the interpreter runs on, each detected as packaging
/// detects it (`_manylinux._get_glibc_version`, `_musllinux._get_musl_version`):
/// glibc from `os.confstr("CS_GNU_LIBC_VERSION")` (or `gnu_get_libc_version`),
/// musl from the version its loader (the `PT_INTERP` of `sys.executable`)
/// prints. Each is `(major, minor)`; both are `None` on a static or exotic
/// build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Libc {
    /// The glibc version, e.g. `(2, 36)`.
    pub glibc: Option<(u32, u32)>,
    /// The musl version, e.g. `(1, 2)`.
    pub musl: Option<(u32, u32)>,
}

/// The ELF header facts of `sys.executable` that packaging's manylinux
/// checks read (`_manylinux._have_compatible_abi`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct ElfHeader {
    /// `EI_CLASS`: 1 = 32-bit, 2 = 64-bit.
    pub(crate) class: u8,
    /// `EI_DATA`: 1 = little-endian.
    pub(crate) data: u8,
    /// `e_machine`: 3 = i386, 40 = ARM, 62 = x86-64.
    pub(crate) machine: u16,
    /// `e_flags` (the ARM EABI version and float ABI).
    pub(crate) flags: u32,
    /// The `PT_INTERP` loader, e.g. `/lib64/ld-linux-x86-64.so.2`.
    pub(crate) interpreter: Option<String>,
}

/// A Python interpreter, as one run of the probe described it.
///
/// Made by [`Interpreter::probe`] (or from a recorded probe result with
/// [`Interpreter::from_probe_json`]); [`crate::Tags::new`] turns it into the
/// wheel tags it supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    pub(crate) path: PathBuf,
    pub(crate) markers: MarkerEnvironment,
    pub(crate) python_full_version: Version,
    pub(crate) version: (u32, u32, u32),
    pub(crate) cache_tag: Option<String>,
    pub(crate) ext_suffix: Option<String>,
    pub(crate) extension_suffixes: Vec<String>,
    pub(crate) py_version_nodot: Option<String>,
    pub(crate) paths: SchemePaths,
    pub(crate) scheme_name: Option<String>,
    pub(crate) libc: Libc,
    pub(crate) free_threaded: bool,
    pub(crate) debug: bool,
    pub(crate) pymalloc: bool,
    pub(crate) pointer_bits: u32,
    pub(crate) sysconfig_platform: String,
    pub(crate) magic_number: [u8; 4],
    pub(crate) executable: PathBuf,
    pub(crate) prefix: PathBuf,
    pub(crate) base_prefix: PathBuf,
    pub(crate) sys_path: Vec<PathBuf>,
    pub(crate) elf: Option<ElfHeader>,
    pub(crate) manylinux_hook: bool,
    pub(crate) manylinux_vetoed: Vec<String>,
}

/// What `src/probe.py` writes: `{"result": "success", …}` or
/// `{"result": "error", "kind": …}`.
#[derive(Debug, Deserialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub(crate) enum ProbeOutput {
    Success(Box<ProbeSuccess>),
    Error {
        kind: String,
        python_full_version: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
pub(crate) struct ProbeSuccess {
    probe_version: u32,
    markers: MarkerEnvironment,
    version_info: (u32, u32, u32, String, u32),
    cache_tag: Option<String>,
    magic_number: String,
    executable: PathBuf,
    prefix: PathBuf,
    base_prefix: PathBuf,
    pointer_bits: u32,
    sysconfig_platform: String,
    config_vars: HashMap<String, Value>,
    extension_suffixes: Vec<String>,
    has_gettotalrefcount: bool,
    scheme_name: Option<String>,
    paths: HashMap<String, PathBuf>,
    sys_path: Vec<PathBuf>,
    libc: ProbeLibc,
    elf: Option<ElfHeader>,
    manylinux_hook_module: bool,
    #[serde(default)]
    manylinux_vetoed: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct ProbeLibc {
    glibc: Option<String>,
    musl: Option<String>,
}

impl Interpreter {
    /// The interpreter described by `json`, a result of the probe script
    /// (what the probe cache stores); `python` is the path it was run as.
    /// Refuses a Python older than [`MINIMUM_PYTHON`] and a result written
    /// by another version of the probe.
    pub fn from_probe_json(python: &Path, json: &str) -> Result<Self, Error> {
        let output: ProbeOutput =
            serde_json::from_str(json).map_err(|e| malformed(python, e.to_string()))?;
        Self::from_output(python, output)
    }

    pub(crate) fn from_output(python: &Path, output: ProbeOutput) -> Result<Self, Error> {
        match output {
            ProbeOutput::Success(success) => Self::from_success(python, *success),
            ProbeOutput::Error {
                kind,
                python_full_version,
            } if kind == "unsupported_python" => Err(Error::Unsupported {
                python: python.to_path_buf(),
                version: python_full_version.unwrap_or_else(|| "(unknown version)".into()),
            }),
            ProbeOutput::Error { kind, .. } => Err(malformed(python, format!("error `{kind}`"))),
        }
    }

    fn from_success(python: &Path, p: ProbeSuccess) -> Result<Self, Error> {
        if p.probe_version != PROBE_VERSION {
            return Err(malformed(
                python,
                format!(
                    "probe version {} (expected {PROBE_VERSION})",
                    p.probe_version
                ),
            ));
        }
        let (major, minor, micro, _, _) = p.version_info;
        if (major, minor) < MINIMUM_PYTHON {
            return Err(Error::Unsupported {
                python: python.to_path_buf(),
                version: p.markers.python_full_version.clone(),
            });
        }
        // CPython built from a development checkout says `3.14.0+`: not PEP 440.
        let full = p.markers.python_full_version.trim_end_matches('+');
        let python_full_version = Version::from_str(full)
            .map_err(|e| malformed(python, format!("python_full_version `{full}`: {e}")))?;
        let config = ConfigVars(&p.config_vars);
        Ok(Interpreter {
            path: python.to_path_buf(),
            python_full_version,
            version: (major, minor, micro),
            cache_tag: p.cache_tag,
            ext_suffix: config.string("EXT_SUFFIX"),
            py_version_nodot: config.string("py_version_nodot").filter(|s| !s.is_empty()),
            paths: scheme_paths(python, p.paths)?,
            scheme_name: p.scheme_name,
            libc: Libc {
                glibc: p.libc.glibc.as_deref().and_then(major_minor),
                musl: p.libc.musl.as_deref().and_then(major_minor),
            },
            // `packaging.tags._cpython_abis`: `Py_DEBUG`, or where it is
            // unset (Windows) a `sys.gettotalrefcount` or `_d.pyd` suffix.
            debug: config.truthy("Py_DEBUG").unwrap_or_else(|| {
                p.has_gettotalrefcount || p.extension_suffixes.iter().any(|s| s == "_d.pyd")
            }),
            // The build flag, not `sys._is_gil_enabled()` (PEP 703).
            free_threaded: config.truthy("Py_GIL_DISABLED").unwrap_or(false),
            pymalloc: config.truthy("WITH_PYMALLOC").unwrap_or(true),
            extension_suffixes: p.extension_suffixes,
            pointer_bits: p.pointer_bits,
            sysconfig_platform: p.sysconfig_platform,
            magic_number: magic_number(python, &p.magic_number)?,
            executable: p.executable,
            prefix: p.prefix,
            base_prefix: p.base_prefix,
            sys_path: p.sys_path,
            elf: p.elf,
            manylinux_hook: p.manylinux_hook_module,
            manylinux_vetoed: p.manylinux_vetoed,
            markers: p.markers,
        })
    }

    /// The interpreter's path, as given to [`Interpreter::probe`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The PEP 508 environment markers.
    pub fn markers(&self) -> &MarkerEnvironment {
        &self.markers
    }

    /// `sys.implementation.name`: `cpython`, `pypy`, `graalpy`…
    pub fn implementation_name(&self) -> &str {
        &self.markers.implementation_name
    }

    /// The implementation's display name, `platform.python_implementation()`:
    /// `CPython`, `PyPy`, `GraalVM`… (for messages: `CPython 3.13.0`).
    pub fn implementation_display(&self) -> &str {
        &self.markers.platform_python_implementation
    }

    /// `python_full_version` as a PEP 440 version (a trailing `+` of a
    /// development build dropped).
    pub fn python_full_version(&self) -> &Version {
        &self.python_full_version
    }

    /// `sys.version_info[:2]`, e.g. `(3, 12)`.
    pub fn python_version(&self) -> (u32, u32) {
        (self.version.0, self.version.1)
    }

    /// `sys.implementation.cache_tag`, e.g. `cpython-312` (PEP 3147); `None`
    /// means the interpreter writes no bytecode cache.
    pub fn cache_tag(&self) -> Option<&str> {
        self.cache_tag.as_deref()
    }

    /// The `EXT_SUFFIX` config variable, e.g. `.cpython-312-x86_64-linux-gnu.so`.
    pub fn ext_suffix(&self) -> Option<&str> {
        self.ext_suffix.as_deref()
    }

    /// `importlib.machinery.EXTENSION_SUFFIXES`, most specific first.
    pub fn extension_suffixes(&self) -> &[String] {
        &self.extension_suffixes
    }

    /// The scheme paths (`sysconfig.get_paths()`).
    pub fn paths(&self) -> &SchemePaths {
        &self.paths
    }

    /// The name of the scheme [`Interpreter::paths`] come from (`venv`,
    /// `posix_prefix`…), when the interpreter can say.
    pub fn scheme_name(&self) -> Option<&str> {
        self.scheme_name.as_deref()
    }

    /// The C library.
    pub fn libc(&self) -> Libc {
        self.libc
    }

    /// A free-threaded build (`Py_GIL_DISABLED`, PEP 703), whether or not
    /// the GIL was re-enabled at run time.
    pub fn is_free_threaded(&self) -> bool {
        self.free_threaded
    }

    /// A debug build (`Py_DEBUG`).
    pub fn is_debug(&self) -> bool {
        self.debug
    }

    /// The size of a pointer in bits (`struct.calcsize("P") * 8`): 32 for a
    /// 32-bit interpreter even on a 64-bit kernel.
    pub fn pointer_bits(&self) -> u32 {
        self.pointer_bits
    }

    /// `sysconfig.get_platform()`, e.g. `linux-x86_64` (the kernel's machine).
    pub fn sysconfig_platform(&self) -> &str {
        &self.sysconfig_platform
    }

    /// `importlib.util.MAGIC_NUMBER`: the first four bytes of every `.pyc`
    /// file the interpreter writes and accepts.
    pub fn magic_number(&self) -> [u8; 4] {
        self.magic_number
    }

    /// `sys.executable`.
    pub fn executable(&self) -> &Path {
        &self.executable
    }

    /// `sys.prefix`: the virtual environment's root when it runs in one.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// `sys.base_prefix`: the installation the interpreter comes from.
    pub fn base_prefix(&self) -> &Path {
        &self.base_prefix
    }

    /// Whether it runs in a virtual environment (`sys.prefix !=
    /// sys.base_prefix`, PEP 405).
    pub fn is_virtual_environment(&self) -> bool {
        self.prefix != self.base_prefix
    }

    /// `sys.path` of the probe's run (isolated: no script directory, no
    /// user site-packages, no `PYTHONPATH`).
    pub fn sys_path(&self) -> &[PathBuf] {
        &self.sys_path
    }

    /// Whether a PEP 600 `_manylinux` module is importable. The probe asks
    /// it about every manylinux version, and [`crate::Tags`] leaves out the
    /// ones it vetoes.
    pub fn has_manylinux_hook(&self) -> bool {
        self.manylinux_hook
    }
}

/// The probe's `config_vars`: ints, strings or `None`.
struct ConfigVars<'a>(&'a HashMap<String, Value>);

impl ConfigVars<'_> {
    /// The value as `str()` would print it; `None` when unset.
    fn string(&self, name: &str) -> Option<String> {
        match self.0.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// Python truthiness; `None` when unset (which packaging treats apart).
    fn truthy(&self, name: &str) -> Option<bool> {
        Some(match self.0.get(name)? {
            Value::Null => return None,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64() != Some(0.0),
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
        })
    }
}

/// `re.match(r"(\d+)\.(\d+)", text)`, as packaging parses glibc and musl
/// versions (`2.20-2014.11` is `(2, 20)`).
fn major_minor(text: &str) -> Option<(u32, u32)> {
    let (major, rest) = text.split_once('.')?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let minor = &rest[..digits];
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(major) || !all_digits(minor) {
        return None;
    }
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn scheme_paths(python: &Path, mut paths: HashMap<String, PathBuf>) -> Result<SchemePaths, Error> {
    let mut required = |key: &str| {
        paths
            .remove(key)
            .ok_or_else(|| malformed(python, format!("no `{key}` in the scheme paths")))
    };
    Ok(SchemePaths {
        purelib: required("purelib")?,
        platlib: required("platlib")?,
        scripts: required("scripts")?,
        include: required("include")?,
        data: required("data")?,
        platinclude: paths.remove("platinclude"),
        stdlib: paths.remove("stdlib"),
        platstdlib: paths.remove("platstdlib"),
    })
}

fn magic_number(python: &Path, hex: &str) -> Result<[u8; 4], Error> {
    let bad = || {
        malformed(
            python,
            format!("magic number `{hex}` is not 4 bytes of hex"),
        )
    };
    if hex.len() != 8 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut bytes = [0u8; 4];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(bytes)
}

fn malformed(python: &Path, reason: String) -> Error {
    Error::MalformedProbeOutput {
        python: python.to_path_buf(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_as_packaging_parses_them() {
        assert_eq!(major_minor("2.36"), Some((2, 36)));
        assert_eq!(major_minor("2.20-2014.11"), Some((2, 20)));
        assert_eq!(major_minor("1.2.4"), Some((1, 2)));
        assert_eq!(major_minor("2"), None);
        assert_eq!(major_minor("x.1"), None);
        assert_eq!(major_minor("2.x"), None);
    }

    #[test]
    fn magic_numbers_are_four_hex_bytes() {
        let python = Path::new("/py");
        assert_eq!(
            magic_number(python, "cb0d0d0a").ok(),
            Some([0xcb, 0x0d, 0x0d, 0x0a])
        );
        assert!(magic_number(python, "cb0d0d").is_err());
        assert!(magic_number(python, "zz0d0d0a").is_err());
        assert!(magic_number(python, "é0d0d0a").is_err());
    }
}
