//! The wheel tags an interpreter supports, in priority order, computed from
//! its probe as `packaging.tags.sys_tags()` computes them from the running
//! interpreter (*Platform compatibility tags*, PEP 425), and ranking a
//! wheel's tags against them.

use std::collections::HashMap;
use std::fmt;

use crate::interpreter::Interpreter;
use crate::platforms::{normalize, platforms};

/// One wheel tag: `{python tag}-{abi tag}-{platform tag}`, lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag {
    /// The interpreter, e.g. `cp312`, `py3`.
    pub interpreter: String,
    /// The ABI, e.g. `cp312`, `abi3`, `none`.
    pub abi: String,
    /// The platform, e.g. `manylinux_2_17_x86_64`, `any`.
    pub platform: String,
}

impl Tag {
    /// A tag, lower-cased as packaging's `Tag` lower-cases it.
    pub fn new(interpreter: &str, abi: &str, platform: &str) -> Self {
        Tag {
            interpreter: interpreter.to_ascii_lowercase(),
            abi: abi.to_ascii_lowercase(),
            platform: platform.to_ascii_lowercase(),
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.interpreter, self.abi, self.platform)
    }
}

/// Where the native `linux_<arch>` platform goes among the Linux platforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TagOrder {
    /// `linux_<arch>` before `manylinux_*` and `musllinux_*`: packaging ≥
    /// 26.3 (pypa/packaging#160) and pip ≥ 26.3. A locally built wheel wins
    /// over a portable one.
    #[default]
    NativeFirst,
    /// `linux_<arch>` after them: packaging ≤ 26.2, pip ≤ 26.2 and uv.
    NativeLast,
}

/// The tags an interpreter supports, best first.
#[derive(Debug, Clone)]
pub struct Tags {
    order: TagOrder,
    tags: Vec<Tag>,
    index: Index,
}

/// Rank lookups without allocating: each tag component interned to a
/// number, then the triple to its first position.
#[derive(Debug, Clone, Default)]
struct Index {
    interpreters: HashMap<String, u32>,
    abis: HashMap<String, u32>,
    platforms: HashMap<String, u32>,
    ranks: HashMap<(u32, u32, u32), usize>,
}

impl Tags {
    /// The tags `interpreter` supports, in `sys_tags()` order: for CPython
    /// `cpython_tags` then `compatible_tags("cpXY")`; for others
    /// `generic_tags` then `compatible_tags` (`pp3` for PyPy, nothing else
    /// for the rest).
    pub fn new(interpreter: &Interpreter, order: TagOrder) -> Self {
        if interpreter.has_manylinux_hook() {
            tracing::debug!(
                "`{}` has a `_manylinux` module; it vetoes {} manylinux tags",
                interpreter.path().display(),
                interpreter.manylinux_vetoed.len()
            );
        }
        let platforms = platforms(interpreter, order);
        let mut tags = Vec::new();
        let short = interpreter_short_name(interpreter.implementation_name());
        let any_interpreter = if short == "cp" {
            cpython_tags(interpreter, &platforms, &mut tags);
            Some(format!("cp{}", interpreter_version(interpreter)))
        } else {
            generic_tags(interpreter, short, &platforms, &mut tags);
            (short == "pp").then(|| "pp3".to_string())
        };
        compatible_tags(interpreter, any_interpreter, &platforms, &mut tags);
        let index = Index::of(&tags);
        Tags { order, tags, index }
    }

    /// The tags, best first.
    pub fn iter(&self) -> std::slice::Iter<'_, Tag> {
        self.tags.iter()
    }

    /// How many tags there are.
    pub fn len(&self) -> usize {
        self.tags.len()
    }

    /// Whether there are none (never, for a real interpreter).
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// The order the list was made in.
    pub fn order(&self) -> TagOrder {
        self.order
    }

    /// The best (lowest) priority over every tag of a wheel file name's
    /// compressed tag sets (`cp311.cp312-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64`
    /// gives two python tags, one ABI tag and two platform tags; *Platform
    /// compatibility tags § Compressed tag sets*), as packaging's
    /// `create_compatible_tags_selector` ranks; `None` when the interpreter
    /// supports none of them. Comparison ignores ASCII case.
    pub fn rank(
        &self,
        python_tags: &[String],
        abi_tags: &[String],
        platform_tags: &[String],
    ) -> Option<usize> {
        let ids = |map: &HashMap<String, u32>, tags: &[String]| -> Vec<u32> {
            tags.iter().filter_map(|tag| lookup(map, tag)).collect()
        };
        let interpreters = ids(&self.index.interpreters, python_tags);
        let abis = ids(&self.index.abis, abi_tags);
        let platforms = ids(&self.index.platforms, platform_tags);
        let mut best: Option<usize> = None;
        for &i in &interpreters {
            for &a in &abis {
                for &p in &platforms {
                    if let Some(&rank) = self.index.ranks.get(&(i, a, p)) {
                        best = Some(best.map_or(rank, |b| b.min(rank)));
                    }
                }
            }
        }
        best
    }
}

impl<'a> IntoIterator for &'a Tags {
    type Item = &'a Tag;
    type IntoIter = std::slice::Iter<'a, Tag>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Index {
    fn of(tags: &[Tag]) -> Self {
        let mut index = Index::default();
        for (rank, tag) in tags.iter().enumerate() {
            let i = intern(&mut index.interpreters, &tag.interpreter);
            let a = intern(&mut index.abis, &tag.abi);
            let p = intern(&mut index.platforms, &tag.platform);
            // A duplicate keeps its first (best) position.
            index.ranks.entry((i, a, p)).or_insert(rank);
        }
        index
    }
}

fn intern(map: &mut HashMap<String, u32>, text: &str) -> u32 {
    let next = u32::try_from(map.len()).unwrap_or(u32::MAX);
    *map.entry(text.to_string()).or_insert(next)
}

fn lookup(map: &HashMap<String, u32>, tag: &str) -> Option<u32> {
    if tag.bytes().any(|b| b.is_ascii_uppercase()) {
        map.get(&tag.to_ascii_lowercase()).copied()
    } else {
        map.get(tag).copied()
    }
}

/// `tags.INTERPRETER_SHORT_NAMES`, else the implementation's own name.
fn interpreter_short_name(name: &str) -> &str {
    match name {
        "python" => "py",
        "cpython" => "cp",
        "pypy" => "pp",
        "ironpython" => "ip",
        "jython" => "jy",
        other => other,
    }
}

/// `tags.interpreter_version`: `py_version_nodot`, else `f"{X}{Y}"`.
fn interpreter_version(interpreter: &Interpreter) -> String {
    let (major, minor) = interpreter.python_version();
    interpreter
        .py_version_nodot
        .clone()
        .unwrap_or_else(|| format!("{major}{minor}"))
}

fn push_all(tags: &mut Vec<Tag>, interpreter: &str, abi: &str, platforms: &[String]) {
    for platform in platforms {
        tags.push(Tag::new(interpreter, abi, platform));
    }
}

/// `tags.cpython_tags`: every platform for `cpXY-<abi>` (the build's ABIs),
/// `cpXY-abi3` (`abi3t` on a free-threaded build, PEP 803), `cpXY-none`,
/// then the stable ABI of every older minor down to cp32 (PEP 384).
fn cpython_tags(interpreter: &Interpreter, platforms: &[String], tags: &mut Vec<Tag>) {
    let (major, minor) = interpreter.python_version();
    let current = format!("cp{major}{minor}");
    let (abis, threaded) = cpython_abis(interpreter);
    for abi in &abis {
        push_all(tags, &current, abi, platforms);
    }
    let stable = if threaded { "abi3t" } else { "abi3" };
    let stable_applies = (major, minor) >= (3, 2);
    if stable_applies {
        push_all(tags, &current, stable, platforms);
    }
    push_all(tags, &current, "none", platforms);
    if stable_applies {
        for older in (2..minor).rev() {
            push_all(tags, &format!("cp{major}{older}"), stable, platforms);
        }
    }
}

/// `tags._cpython_abis`: `cpXY`, then `t` (free-threaded, 3.13+), `d`
/// (debug) and `m` (pymalloc, before 3.8); a debug build from 3.8 on also
/// loads the release ABI. Also says whether the build is free-threaded.
fn cpython_abis(interpreter: &Interpreter) -> (Vec<String>, bool) {
    let version = interpreter.python_version();
    let (major, minor) = version;
    let threading = if version >= (3, 13) && interpreter.free_threaded {
        "t"
    } else {
        ""
    };
    let debug = if interpreter.debug { "d" } else { "" };
    let pymalloc = if version < (3, 8) && interpreter.pymalloc {
        "m"
    } else {
        ""
    };
    let mut abis = vec![format!("cp{major}{minor}{threading}{debug}{pymalloc}")];
    if version >= (3, 8) && interpreter.debug {
        abis.push(format!("cp{major}{minor}{threading}"));
    }
    (abis, !threading.is_empty())
}

/// `tags.generic_tags` with `tags._generic_abi`: the ABI from `EXT_SUFFIX`
/// (`.pypy310-pp73-x86_64-linux-gnu.so` → `pypy310_pp73`), then `none`.
fn generic_tags(interpreter: &Interpreter, short: &str, platforms: &[String], tags: &mut Vec<Tag>) {
    let name = format!("{short}{}", interpreter_version(interpreter));
    let mut abis = generic_abi(interpreter);
    if !abis.iter().any(|abi| abi == "none") {
        abis.push("none".to_string());
    }
    for abi in &abis {
        push_all(tags, &name, abi, platforms);
    }
}

fn generic_abi(interpreter: &Interpreter) -> Vec<String> {
    let Some(suffix) = interpreter.ext_suffix().filter(|s| s.starts_with('.')) else {
        // packaging raises SystemError; keel offers only the `none` ABI.
        tracing::warn!(
            "`{}` has no usable EXT_SUFFIX; only pure-Python and `none`-ABI wheels will match",
            interpreter.path().display()
        );
        return Vec::new();
    };
    let parts: Vec<&str> = suffix.split('.').collect();
    if parts.len() < 3 {
        return cpython_abis(interpreter).0;
    }
    let soabi = parts[1];
    let dashed: Vec<&str> = soabi.split('-').collect();
    let abi = if soabi.starts_with("cpython") {
        match dashed.get(1) {
            Some(version) if !version.is_empty() => format!("cp{version}"),
            _ => return Vec::new(),
        }
    } else if soabi.starts_with("cp") {
        dashed[0].to_string()
    } else if soabi.starts_with("pypy") {
        dashed[..dashed.len().min(2)].join("-")
    } else if soabi.starts_with("graalpy") {
        dashed[..dashed.len().min(3)].join("-")
    } else if !soabi.is_empty() {
        soabi.to_string()
    } else {
        return Vec::new();
    };
    vec![normalize(&abi)]
}

/// `tags.compatible_tags`: `pyXY`, `pyX`, `pyX(Y-1)` … `pyX0` on every
/// platform, then `<interpreter>-none-any`, then the same `py` list with
/// `none-any`.
fn compatible_tags(
    interpreter: &Interpreter,
    any_interpreter: Option<String>,
    platforms: &[String],
    tags: &mut Vec<Tag>,
) {
    let (major, minor) = interpreter.python_version();
    let pys: Vec<String> = [format!("py{major}{minor}"), format!("py{major}")]
        .into_iter()
        .chain((0..minor).rev().map(|m| format!("py{major}{m}")))
        .collect();
    for py in &pys {
        push_all(tags, py, "none", platforms);
    }
    if let Some(name) = any_interpreter {
        tags.push(Tag::new(&name, "none", "any"));
    }
    for py in &pys {
        tags.push(Tag::new(py, "none", "any"));
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn cpython_311() -> Interpreter {
        let line = include_str!("../tests/data/probes.jsonl")
            .lines()
            .find(|l| l.contains("\"python_full_version\": \"3.11.7\""))
            .unwrap_or_default();
        Interpreter::from_probe_json(Path::new("/venv/bin/python"), line)
            .expect("the recorded 3.11 probe parses")
    }

    fn strings(tags: &[&str]) -> Vec<String> {
        tags.iter().map(|t| t.to_string()).collect()
    }

    fn position(tags: &Tags, tag: &str) -> Option<usize> {
        tags.iter().position(|t| t.to_string() == tag)
    }

    #[test]
    fn rank_is_the_best_position_over_the_compressed_sets() {
        let tags = Tags::new(&cpython_311(), TagOrder::NativeFirst);
        let rank =
            |p: &[&str], a: &[&str], pl: &[&str]| tags.rank(&strings(p), &strings(a), &strings(pl));
        assert_eq!(
            rank(&["py3"], &["none"], &["any"]),
            position(&tags, "py3-none-any")
        );
        // markupsafe-3.0.4-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl
        let markupsafe = rank(
            &["cp311"],
            &["cp311"],
            &[
                "manylinux2014_x86_64",
                "manylinux_2_17_x86_64",
                "manylinux_2_28_x86_64",
            ],
        );
        assert_eq!(
            markupsafe,
            position(&tags, "cp311-cp311-manylinux_2_28_x86_64")
        );
        assert_eq!(
            markupsafe,
            Some(9),
            "linux_x86_64, then manylinux 2.36 … 2.28"
        );
        // py2.py3-none-any: py2 is unsupported, py3 is.
        assert_eq!(
            rank(&["py2", "py3"], &["none"], &["any"]),
            position(&tags, "py3-none-any")
        );
        // An abi3 wheel built for 3.8 is fine on 3.11, worse than a cp311 one.
        let abi3 = rank(&["cp38"], &["abi3"], &["manylinux_2_17_x86_64"]);
        assert!(abi3.is_some() && abi3 > markupsafe);
        assert_eq!(
            rank(&["CP311"], &["CP311"], &["LINUX_X86_64"]),
            Some(0),
            "case is ignored"
        );
    }

    #[test]
    fn unsupported_tags_have_no_rank() {
        let tags = Tags::new(&cpython_311(), TagOrder::NativeFirst);
        let rank =
            |p: &[&str], a: &[&str], pl: &[&str]| tags.rank(&strings(p), &strings(a), &strings(pl));
        assert_eq!(
            rank(&["cp312"], &["cp312"], &["manylinux_2_17_x86_64"]),
            None
        );
        assert_eq!(
            rank(&["cp311"], &["cp311"], &["manylinux_2_37_x86_64"]),
            None
        );
        assert_eq!(
            rank(&["cp311"], &["cp311"], &["win_amd64", "macosx_11_0_arm64"]),
            None
        );
        assert_eq!(rank(&["cp311"], &["abi3"], &["any"]), None);
        assert_eq!(rank(&["py3"], &["none"], &[]), None);
        assert_eq!(
            rank(&["cp39"], &["none"], &["any"]),
            None,
            "only cp311-none-any"
        );
    }

    #[test]
    fn the_native_platform_moves_with_the_order() {
        let python = cpython_311();
        let first = Tags::new(&python, TagOrder::NativeFirst);
        let last = Tags::new(&python, TagOrder::NativeLast);
        assert_eq!(first.order(), TagOrder::default());
        assert_eq!(first.len(), 914);
        assert_eq!(last.len(), 914);
        let native = strings(&["linux_x86_64"]);
        let many = strings(&["manylinux_2_17_x86_64"]);
        let cp311 = strings(&["cp311"]);
        assert_eq!(first.rank(&cp311, &cp311, &native), Some(0));
        assert_eq!(last.rank(&cp311, &cp311, &native), Some(35));
        assert!(first.rank(&cp311, &cp311, &many) > first.rank(&cp311, &cp311, &native));
        assert!(last.rank(&cp311, &cp311, &many) < last.rank(&cp311, &cp311, &native));
        let last_tag = (&last).into_iter().last().map(ToString::to_string);
        assert_eq!(last_tag.as_deref(), Some("py30-none-any"));
    }

    #[test]
    fn tags_print_as_in_file_names() {
        assert_eq!(Tag::new("PY3", "None", "ANY").to_string(), "py3-none-any");
    }
}
