//! Running the probe script: one isolated run of the interpreter, with a
//! timeout, its answer read from a file.

use std::io::Read as _;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::interpreter::{Interpreter, ProbeOutput};
use crate::{Error, cache};

/// The probe script (`src/probe.py`), run with `python -I -B -c`.
pub(crate) const PROBE_SCRIPT: &str = include_str!("probe.py");

/// The version of the probe's output; `src/probe.py` says the same. Part of
/// the cache key, and checked when a result is read.
pub(crate) const PROBE_VERSION: u32 = 1;

/// The oldest Python keel supports, `(major, minor)`.
pub const MINIMUM_PYTHON: (u32, u32) = (3, 7);

/// How long a probe may run before it is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What `stderr` of a failed probe an error quotes: its last bytes.
const STDERR_EXCERPT: usize = 2000;

/// How to probe: where to cache the result and how long to wait.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    cache: Option<PathBuf>,
    timeout: Duration,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            cache: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl ProbeOptions {
    /// No cache, [`DEFAULT_TIMEOUT`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Keep results in `<dir>/interpreters-v1/`.
    pub fn cache(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache = Some(dir.into());
        self
    }

    /// Kill a probe that runs longer than `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl Interpreter {
    /// Probes the interpreter at `python` (a path, not a name looked up on
    /// `PATH`; a venv's `bin/python` is probed as itself, so that its
    /// `sys.prefix` and scheme are the venv's), caching the result in
    /// `cache` when given. See [`Interpreter::probe_with`].
    pub fn probe(python: &Path, cache: Option<&Path>) -> Result<Self, Error> {
        let mut options = ProbeOptions::new();
        if let Some(dir) = cache {
            options = options.cache(dir);
        }
        Self::probe_with(python, &options)
    }

    /// Probes the interpreter at `python`: a cache hit runs nothing;
    /// otherwise one run of `python -I -B -c <probe> <outfile>` (`-I`: no
    /// `PYTHON*` variables, no user site-packages, no script directory on
    /// `sys.path`; not `-S`, since `site` is what makes `sys.prefix` the
    /// venv's) in an empty temporary working directory, with every
    /// `PYTHON*` variable also removed from its environment, stdin and
    /// stdout closed, and killed after the timeout. The result is cached
    /// when it is a supported interpreter; a cache that cannot be written is
    /// skipped.
    pub fn probe_with(python: &Path, options: &ProbeOptions) -> Result<Self, Error> {
        let not_found = |source| Error::NotFound {
            python: python.to_path_buf(),
            source,
        };
        // Only an empty path has no absolute form.
        let absolute = std::path::absolute(python).map_err(not_found)?;
        if let Err(source) = fs_err::metadata(&absolute)
            && source.kind() == std::io::ErrorKind::NotFound
        {
            return Err(not_found(source));
        }
        let key = options
            .cache
            .as_deref()
            .and_then(|dir| cache::Keys::of(dir, python, &absolute));
        if let Some(hit) = key.as_ref().and_then(|key| key.load(python)) {
            return Ok(hit);
        }
        let output = probe_output(python, &absolute, options.timeout)?;
        let interpreter = Interpreter::from_output(python, output_of(python, &output)?)?;
        if let Some(key) = key {
            key.store(&interpreter, output);
        }
        Ok(interpreter)
    }
}

fn output_of(python: &Path, json: &serde_json::Value) -> Result<ProbeOutput, Error> {
    <ProbeOutput as serde::Deserialize>::deserialize(json).map_err(|e| {
        Error::MalformedProbeOutput {
            python: python.to_path_buf(),
            reason: e.to_string(),
        }
    })
}

/// Runs the probe and returns its JSON answer (success or `unsupported`).
fn probe_output(
    python: &Path,
    absolute: &Path,
    timeout: Duration,
) -> Result<serde_json::Value, Error> {
    let run = run_isolated(python, absolute, &["-I", "-B"], timeout)?;
    if !run.status.success() {
        // Python < 3.4 does not know `-I`; ask it its version without it.
        if run.stderr.contains("Unknown option: -I") {
            let version = legacy_version(python, absolute, timeout)
                .unwrap_or_else(|| "older than 3.4".to_string());
            return Err(Error::Unsupported {
                python: python.to_path_buf(),
                version,
            });
        }
        return Err(Error::ProbeFailed {
            python: python.to_path_buf(),
            status: describe(run.status),
            stderr: run.stderr,
        });
    }
    match run.output {
        Some(text) if !text.trim().is_empty() => {
            serde_json::from_str(&text).map_err(|e| Error::MalformedProbeOutput {
                python: python.to_path_buf(),
                reason: format!("not JSON ({e})"),
            })
        }
        _ => Err(Error::NoProbeOutput {
            python: python.to_path_buf(),
            stderr: run.stderr,
        }),
    }
}

/// The version an old Python (run with `-E -s -B`) reports, if it does.
fn legacy_version(python: &Path, absolute: &Path, timeout: Duration) -> Option<String> {
    let run = run_isolated(python, absolute, &["-E", "-s", "-B"], timeout).ok()?;
    let json: serde_json::Value = serde_json::from_str(run.output.as_deref()?).ok()?;
    Some(json.get("python_full_version")?.as_str()?.to_string())
}

/// One finished run of the probe.
struct Run {
    status: ExitStatus,
    /// The end of its stderr.
    stderr: String,
    /// What it wrote to the output file, if it made one.
    output: Option<String>,
}

/// Runs `absolute <flags> -c PROBE_SCRIPT <outfile>` isolated, waiting at
/// most `timeout`.
fn run_isolated(
    python: &Path,
    absolute: &Path,
    flags: &[&str],
    timeout: Duration,
) -> Result<Run, Error> {
    let scratch = keel_fs::tempdir_in(&std::env::temp_dir(), "keel-probe-")?;
    let cwd = scratch.path().join("cwd");
    fs_err::create_dir(&cwd)?;
    let output_path = scratch.path().join("probe.json");
    let stderr_path = scratch.path().join("stderr");
    let stderr = fs_err::File::create(&stderr_path)?.into_file();

    let mut command = Command::new(absolute);
    command
        .args(flags)
        .arg("-c")
        .arg(PROBE_SCRIPT)
        .arg(&output_path)
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr));
    remove_python_variables(&mut command);
    let mut child = command.spawn().map_err(|source| Error::Spawn {
        python: python.to_path_buf(),
        source,
    })?;
    let status = wait_or_kill(&mut child, timeout).map_err(|source| Error::Spawn {
        python: python.to_path_buf(),
        source,
    })?;
    let stderr = excerpt(&stderr_path);
    let Some(status) = status else {
        return Err(Error::ProbeTimedOut {
            python: python.to_path_buf(),
            timeout,
            stderr,
        });
    };
    let output = match fs_err::read_to_string(&output_path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    Ok(Run {
        status,
        stderr,
        output,
    })
}

/// Removes every `PYTHON*` variable from `command`'s environment, so that
/// nothing this process inherited (`PYTHONPATH`, `PYTHONSTARTUP`,
/// `PYTHONPYCACHEPREFIX`, `PYTHONOPTIMIZE`, …) changes what the interpreter
/// runs or writes; `-I` ignores most of them, not every one on every
/// version, and a wrapper script in front of the interpreter ignores none.
pub fn remove_python_variables(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.as_bytes().starts_with(b"PYTHON") {
            command.env_remove(name);
        }
    }
}

/// Waits for `child` until `timeout`; then kills and reaps it (`None`).
fn wait_or_kill(child: &mut Child, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            // An error here means it has just exited; the wait reaps it either way.
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// The last [`STDERR_EXCERPT`] bytes of the file, trimmed.
fn excerpt(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut file) = fs_err::File::open(path) {
        let _ = file.read_to_end(&mut bytes);
    }
    let start = bytes.len().saturating_sub(STDERR_EXCERPT);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let text = text.trim();
    if start > 0 {
        format!("…{text}")
    } else {
        text.to_string()
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}
