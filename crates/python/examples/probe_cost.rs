//! What a probe costs: cold (Python runs) and from the cache, plus building
//! the tag list and ranking against it.
//!
//! ```text
//! cargo run -p keel-python --release --example probe_cost [PYTHON]
//! ```
//!
//! Without an argument it makes a `--without-pip` venv of pyenv's CPython
//! 3.11 (`$PYENV_ROOT` or `~/.pyenv`) and probes its `bin/python`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use keel_python::{Interpreter, TagOrder, Tags};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scratch = tempfile::tempdir()?;
    let python = match std::env::args_os().nth(1) {
        Some(python) => PathBuf::from(python),
        None => pyenv_311_venv(scratch.path())?,
    };
    let cache = scratch.path().join("cache");
    println!("interpreter: {}", python.display());

    let cold = time(10, || Interpreter::probe(&python, None).map(drop))?;
    report("cold probe (no cache)", &cold);
    let miss = time(1, || Interpreter::probe(&python, Some(&cache)).map(drop))?;
    report("first probe with a cache (probe + write)", &miss);
    let hit = time(1000, || Interpreter::probe(&python, Some(&cache)).map(drop))?;
    report("cached probe", &hit);

    let interpreter = Interpreter::probe(&python, Some(&cache))?;
    let mut count = 0;
    let build = time(100, || {
        count = Tags::new(&interpreter, TagOrder::NativeFirst).len();
        Ok::<(), keel_python::Error>(())
    })?;
    report(&format!("Tags::new ({count} tags)"), &build);
    let tags = Tags::new(&interpreter, TagOrder::NativeFirst);
    let strings = |s: &[&str]| s.iter().map(|t| t.to_string()).collect::<Vec<_>>();
    let (py, abi, platform) = (
        strings(&["cp311"]),
        strings(&["cp311"]),
        strings(&[
            "manylinux2014_x86_64",
            "manylinux_2_17_x86_64",
            "manylinux_2_28_x86_64",
        ]),
    );
    let rank = time(100_000, || {
        std::hint::black_box(tags.rank(&py, &abi, &platform));
        Ok::<(), keel_python::Error>(())
    })?;
    report("Tags::rank (1×1×3 tags)", &rank);
    Ok(())
}

fn pyenv_311_venv(dir: &std::path::Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".pyenv")
        });
    let base = fs_err::read_dir(root.join("versions"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin/python3.11"))
        .find(|p| p.is_file())
        .ok_or("no CPython 3.11 under the pyenv root; pass an interpreter")?;
    let venv = dir.join("venv");
    let status = Command::new(&base)
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()?;
    if !status.success() {
        return Err(format!("{} -m venv failed", base.display()).into());
    }
    Ok(venv.join("bin/python"))
}

fn time<E>(n: usize, mut f: impl FnMut() -> Result<(), E>) -> Result<Vec<Duration>, E> {
    (0..n)
        .map(|_| {
            let start = Instant::now();
            f().map(|()| start.elapsed())
        })
        .collect()
}

fn report(what: &str, times: &[Duration]) {
    let mut sorted = times.to_vec();
    sorted.sort();
    let total: Duration = sorted.iter().sum();
    let mean = total / u32::try_from(sorted.len().max(1)).unwrap_or(u32::MAX);
    println!(
        "{what}: n={} mean={mean:?} min={:?} median={:?} max={:?}",
        sorted.len(),
        sorted.first().copied().unwrap_or_default(),
        sorted.get(sorted.len() / 2).copied().unwrap_or_default(),
        sorted.last().copied().unwrap_or_default(),
    );
}
