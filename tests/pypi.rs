//! keel against real wheels from PyPI (`fixtures/pypi/`): the pinned set of
//! 31 wheels installs, imports and runs; a warm install from the cache equals
//! the cold one; and, the differential oracle, keel's tree equals pip's tree
//! file by file and byte by byte.
//!
//! The wheels come from `$KEEL_PYPI_WHEELS`, else `fixtures/pypi/wheels`
//! (`bash fixtures/pypi/download.sh` fills it; `bash .ci/run` does it too).
//! Missing wheels fail these tests: a skipped test proves nothing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use common::pypi::{
    RealWheels, assert_versions_and_imports, fixture_tsv, pins, pip_install, real_wheels,
    wheel_name_version,
};
use common::*;

// ---------------------------------------------------------------------------
// The fixture set (`common::pypi`)
// ---------------------------------------------------------------------------

/// A sandbox (scratch dir + cache) whose `wheels` are the real ones; the
/// bundled fixture wheels are not built.
fn sandbox(real: &RealWheels) -> Sandbox {
    let mut sandbox = Sandbox::without_wheels("keel-pypi-");
    sandbox.wheels = real.dir.clone();
    sandbox
}

// ---------------------------------------------------------------------------
// scripts.tsv and import-names.tsv
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ScriptKind {
    /// A `[console_scripts]` launcher the installer generates.
    Console,
    /// Copied from `.data/scripts/`, `#!python` rewritten.
    Data,
}

struct ScriptRow {
    dist: String,
    script: String,
    kind: ScriptKind,
    status: i32,
    args: Vec<String>,
    expected: String,
}

fn script_rows() -> Vec<ScriptRow> {
    fixture_tsv("scripts.tsv", 6)
        .into_iter()
        .map(|r| ScriptRow {
            kind: match r[2].as_str() {
                "console" => ScriptKind::Console,
                "data" => ScriptKind::Data,
                other => panic!("scripts.tsv: unknown kind {other:?}"),
            },
            status: r[3].parse().unwrap(),
            args: if r[4].is_empty() {
                Vec::new()
            } else {
                r[4].split(' ').map(str::to_string).collect()
            },
            dist: r[0].clone(),
            script: r[1].clone(),
            expected: r[5].clone(),
        })
        .collect()
}

/// Imports every module of import-names.tsv and checks every version, in one
/// Python process run from an empty directory.
#[track_caller]
fn assert_imports(venv: &Path, cwd: &Path) {
    let rows: Vec<String> = fixture_tsv("import-names.tsv", 3)
        .iter()
        .map(|r| r.join("\t"))
        .collect();
    let printed = assert_versions_and_imports(venv, &rows, cwd);
    assert_eq!(printed.lines().count(), rows.len(), "{printed}");
}

/// Runs a script row's invocation; returns (exit status, stdout+stderr).
fn run_script(venv: &Path, row: &ScriptRow, cwd: &Path) -> (i32, String) {
    let path = venv.join("bin").join(&row.script);
    let output = run(Command::new(&path)
        .args(&row.args)
        .current_dir(cwd)
        .stdin(Stdio::null()));
    let status = output
        .status
        .code()
        .unwrap_or_else(|| 128 + output.status.signal().unwrap_or(0));
    (status, format!("{}{}", stdout(&output), stderr(&output)))
}

/// Runs the rows concurrently (a few at a time) and checks status and output.
#[track_caller]
fn assert_scripts(venv: &Path, rows: &[&ScriptRow], cwd: &Path) {
    let results: Vec<(i32, String)> = run_all(rows, |row| run_script(venv, row, cwd));
    let failures: Vec<String> = rows
        .iter()
        .zip(&results)
        .filter(|(row, (status, out))| *status != row.status || !out.contains(&row.expected))
        .map(|(row, (status, out))| {
            format!(
                "bin/{} {} ({}): exit {status} (want {}), output does not contain {:?}? output:\n{}",
                row.script,
                row.args.join(" "),
                row.dist,
                row.status,
                row.expected,
                out.chars().take(600).collect::<String>()
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "scripts in {} misbehave:\n{}",
        venv.display(),
        failures.join("\n")
    );
}

/// Maps `f` over `items` on a few threads, keeping the order.
fn run_all<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = 4;
    let chunk = items.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// The venv's own files in `bin/`, which no installer writes.
fn is_venv_own_bin(name: &str) -> bool {
    name.starts_with("python") || name.starts_with("activate") || name == "Activate.ps1"
}

/// The installed scripts in `bin/` (file names), sorted.
fn installed_scripts(venv: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs_err::read_dir(venv.join("bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !is_venv_own_bin(n) && n != "__pycache__")
        .collect();
    names.sort();
    names
}

fn first_line(content: &[u8]) -> &[u8] {
    let end = content
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(content.len());
    &content[..end]
}

fn after_first_line(content: &[u8]) -> &[u8] {
    match content.iter().position(|&b| b == b'\n') {
        Some(i) => &content[i + 1..],
        None => &[],
    }
}

/// The forms of a venv's path a shebang may name: as given, and with
/// symlinks resolved.
fn venv_spellings(venv: &Path) -> Vec<String> {
    let mut forms = vec![venv.to_str().unwrap().to_string()];
    let canonical = fs_err::canonicalize(venv).unwrap();
    let canonical = canonical.to_str().unwrap().to_string();
    if !forms.contains(&canonical) {
        forms.push(canonical);
    }
    forms
}

/// Whether a script's first line is `#!<venv>/bin/python[3[.11]]`.
fn shebang_is_venv_python(line: &[u8], venv: &Path) -> bool {
    let Ok(line) = std::str::from_utf8(line) else {
        return false;
    };
    let line = line.trim_end_matches('\r');
    venv_spellings(venv).iter().any(|v| {
        line.strip_prefix("#!")
            .and_then(|rest| rest.strip_prefix(v.as_str()))
            .and_then(|rest| rest.strip_prefix("/bin/"))
            .is_some_and(|exe| {
                exe == "python"
                    || exe == "python3"
                    || (exe.starts_with("python3.") && exe[8..].parse::<u32>().is_ok())
            })
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs_err::metadata(path).unwrap().permissions().mode() & 0o111 != 0
}

/// Every script is listed in scripts.tsv, executable, and none kept its
/// `#!python` placeholder; data scripts start with the venv's python.
#[track_caller]
fn assert_bin_scripts(venv: &Path, rows: &[ScriptRow]) {
    let mut problems = Vec::new();
    let listed: BTreeSet<&str> = rows.iter().map(|r| r.script.as_str()).collect();
    for name in installed_scripts(venv) {
        let path = venv.join("bin").join(&name);
        if !listed.contains(name.as_str()) {
            problems.push(format!("bin/{name}: not listed in scripts.tsv"));
        }
        let content = fs_err::read(&path).unwrap();
        let first = first_line(&content);
        if first.starts_with(b"#!python") {
            problems.push(format!(
                "bin/{name}: `{}` shebang left in place",
                String::from_utf8_lossy(first)
            ));
        }
        if !is_executable(&path) {
            problems.push(format!("bin/{name}: not executable"));
        }
    }
    for row in rows {
        let path = venv.join("bin").join(&row.script);
        if !path.is_file() {
            problems.push(format!("bin/{} ({}): missing", row.script, row.dist));
            continue;
        }
        let content = fs_err::read(&path).unwrap();
        if row.kind == ScriptKind::Data && !shebang_is_venv_python(first_line(&content), venv) {
            problems.push(format!(
                "bin/{}: first line {:?} is not a shebang naming {}/bin/python",
                row.script,
                String::from_utf8_lossy(first_line(&content)),
                venv.display()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "scripts in {}/bin:\n{}",
        venv.display(),
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Trees and RECORD files
// ---------------------------------------------------------------------------

/// What an installer put into a venv: the snapshot minus the venv's own
/// files (`pyvenv.cfg`, `bin/python*`, `bin/activate*`, `lib64`), keel's
/// `.keel/` and every `__pycache__`; keys are venv-relative `/` paths.
fn installed_tree(venv: &Path) -> BTreeMap<String, Node> {
    snapshot(venv)
        .into_iter()
        .filter_map(|(path, node)| {
            let relative = path.to_str().unwrap().to_string();
            let mut parts = relative.split('/');
            let top = parts.next().unwrap_or("");
            if relative.is_empty()
                || matches!(top, "pyvenv.cfg" | ".keel" | "lib64")
                || relative.split('/').any(|p| p == "__pycache__")
            {
                return None;
            }
            if top == "bin" && parts.next().is_some_and(is_venv_own_bin) {
                return None;
            }
            Some((relative, node))
        })
        .collect()
}

/// `lib/pythonX.Y/site-packages`, relative to the venv.
fn site_packages_relative(venv: &Path) -> String {
    site_packages(venv)
        .strip_prefix(venv)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

/// One RECORD row; `path` made venv-relative and lexically normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RecordRow {
    path: String,
    hash: String,
    size: String,
}

/// Parses RECORD as CSV (quoted fields, `\r\n` or `\n`).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut chars = line.chars().peekable();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (false, '"') if field.is_empty() => quoted = true,
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (false, ',') => fields.push(std::mem::take(&mut field)),
                (_, c) => field.push(c),
            }
        }
        fields.push(field);
        rows.push(fields);
    }
    rows
}

/// Joins `base/relative` and resolves `.` and `..` lexically.
fn normalize_lexically(base: &str, relative: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for component in Path::new(base).join(relative).components() {
        match component {
            Component::ParentDir => {
                parts.pop();
            }
            Component::Normal(p) => parts.push(p.to_str().unwrap().to_string()),
            _ => {}
        }
    }
    parts.join("/")
}

/// Every `.dist-info` directory name in site-packages with its RECORD rows.
fn records(venv: &Path) -> BTreeMap<String, Vec<RecordRow>> {
    let site = site_packages(venv);
    let site_rel = site_packages_relative(venv);
    let mut all = BTreeMap::new();
    for entry in fs_err::read_dir(&site).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".dist-info") {
            continue;
        }
        let text = fs_err::read_to_string(site.join(&name).join("RECORD")).unwrap();
        let rows = parse_csv(&text)
            .into_iter()
            .map(|fields| {
                assert_eq!(fields.len(), 3, "{name}/RECORD: row {fields:?}");
                RecordRow {
                    path: normalize_lexically(&site_rel, &fields[0]),
                    hash: fields[1].clone(),
                    size: fields[2].clone(),
                }
            })
            .collect();
        all.insert(name, rows);
    }
    all
}

/// Venv-relative path → the `.dist-info` whose RECORD lists it.
fn owners(records: &BTreeMap<String, Vec<RecordRow>>) -> BTreeMap<String, String> {
    records
        .iter()
        .flat_map(|(dist, rows)| rows.iter().map(move |r| (r.path.clone(), dist.clone())))
        .collect()
}

/// What differs between two trees, for a precise failure message.
#[derive(Default)]
struct TreeDiff {
    only_a: Vec<String>,
    only_b: Vec<String>,
    differing: Vec<(String, String)>,
}

impl TreeDiff {
    fn is_empty(&self) -> bool {
        self.only_a.is_empty() && self.only_b.is_empty() && self.differing.is_empty()
    }

    fn differ(&mut self, path: &str, why: impl Into<String>) {
        self.differing.push((path.to_string(), why.into()));
    }

    fn report(
        &self,
        a: &str,
        b: &str,
        owners: &BTreeMap<String, String>,
        site_packages: &str,
    ) -> String {
        // A directory belongs to whoever owns a file under it; a file no
        // RECORD lists, to the owner of its package directory (below
        // site-packages), marked "near".
        let under = |dir: &str| -> Option<&String> {
            let prefix = format!("{dir}/");
            owners
                .range(prefix.clone()..)
                .next()
                .filter(|(p, _)| p.starts_with(&prefix))
                .map(|(_, d)| d)
        };
        let owner = |path: &str| -> String {
            if let Some(d) = owners.get(path).or_else(|| under(path)) {
                return format!("  [{d}]");
            }
            Path::new(path)
                .ancestors()
                .skip(1)
                .map(|a| a.to_str().unwrap())
                .filter(|a| a.starts_with(&format!("{site_packages}/")))
                .find_map(under)
                .map(|d| format!("  [near {d}]"))
                .unwrap_or_default()
        };
        let mut out = String::new();
        out.push_str(&format!("only in {a} ({}):\n", self.only_a.len()));
        for p in &self.only_a {
            out.push_str(&format!("  {p}{}\n", owner(p)));
        }
        out.push_str(&format!("only in {b} ({}):\n", self.only_b.len()));
        for p in &self.only_b {
            out.push_str(&format!("  {p}{}\n", owner(p)));
        }
        out.push_str(&format!("differing ({}):\n", self.differing.len()));
        for (p, why) in &self.differing {
            out.push_str(&format!("  {p}{}: {why}\n", owner(p)));
        }
        out
    }
}

fn describe(node: &Node) -> String {
    match node {
        Node::Dir { mode } => format!("directory {mode:o}"),
        Node::File { mode, size, .. } => format!("file {mode:o} of {size} bytes"),
        Node::Symlink { target } => format!("symlink to {}", target.display()),
    }
}

/// Compares the kinds and modes of every common path, and lists what only
/// one side has; `content` decides about files of the same kind and mode
/// (None: equal, Some(why): differing).
fn diff_trees(
    a: &BTreeMap<String, Node>,
    b: &BTreeMap<String, Node>,
    mut content: impl FnMut(&str, &[u8], &[u8]) -> Option<String>,
) -> TreeDiff {
    let mut diff = TreeDiff {
        only_a: a.keys().filter(|p| !b.contains_key(*p)).cloned().collect(),
        only_b: b.keys().filter(|p| !a.contains_key(*p)).cloned().collect(),
        ..TreeDiff::default()
    };
    for (path, node_a) in a {
        let Some(node_b) = b.get(path) else { continue };
        match (node_a, node_b) {
            (Node::Dir { mode: ma }, Node::Dir { mode: mb }) if ma != mb => {
                diff.differ(path, format!("directory mode {ma:o} vs {mb:o}"));
            }
            (Node::Dir { .. }, Node::Dir { .. }) => {}
            (Node::Symlink { target: ta }, Node::Symlink { target: tb }) if ta != tb => {
                diff.differ(
                    path,
                    format!("symlink to {} vs {}", ta.display(), tb.display()),
                );
            }
            (Node::Symlink { .. }, Node::Symlink { .. }) => {}
            (
                Node::File {
                    mode: ma,
                    content: ca,
                    ..
                },
                Node::File {
                    mode: mb,
                    content: cb,
                    ..
                },
            ) => {
                if ma != mb {
                    diff.differ(path, format!("file mode {ma:o} vs {mb:o}"));
                }
                if let Some(why) = content(path, ca, cb) {
                    diff.differ(path, why);
                }
            }
            _ => diff.differ(
                path,
                format!("{} vs {}", describe(node_a), describe(node_b)),
            ),
        }
    }
    diff
}

/// Where two byte strings first differ, for messages.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    let at = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let excerpt = |s: &[u8]| {
        String::from_utf8_lossy(&s[at.min(s.len())..(at + 40).min(s.len())]).into_owned()
    };
    format!(
        "{} vs {} bytes, first difference at byte {at}: {:?} vs {:?}",
        a.len(),
        b.len(),
        excerpt(a),
        excerpt(b)
    )
}

fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if !from.is_empty() && haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

/// The `.dist-info` metadata file name of a venv-relative path, if any.
fn dist_info_file(path: &str) -> Option<&str> {
    let (dir, file) = path.rsplit_once('/')?;
    dir.ends_with(".dist-info").then_some(file)
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn real_wheels_install_import_and_run_their_scripts() {
    let real = real_wheels();
    let sandbox = sandbox(&real);
    let venv = sandbox.venv("venv");
    let output = sandbox.install_paths_ok(&venv, &real.wheels);
    let err = stderr(&output);
    assert!(
        err.contains(&format!("Installed {} packages in", real.wheels.len())),
        "{err}"
    );
    assert!(!err.contains("warning:"), "a cold install warned:\n{err}");
    for pin in pins() {
        assert!(
            err.contains(&format!(" + {}=={}", pin.name, pin.version)),
            "{} not reported as installed:\n{err}",
            pin.name
        );
    }

    let cwd = sandbox.path().join("cwd");
    fs_err::create_dir(&cwd).unwrap();
    assert_imports(&venv, &cwd);
    let rows = script_rows();
    assert_bin_scripts(&venv, &rows);
    assert_scripts(&venv, &rows.iter().collect::<Vec<_>>(), &cwd);
    assert_environment_matches_record(&venv);

    // The `.data/` directories of greenlet and pybind11-global land where
    // pip puts them.
    let site_rel = site_packages_relative(&venv);
    let python_dir = Path::new(&site_rel)
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    for expected in [
        format!("include/site/{python_dir}/greenlet/greenlet.h"),
        format!("include/site/{python_dir}/pybind11-global/pybind11/pybind11.h"),
        "include/pybind11/pybind11.h".to_string(),
        "share/cmake/pybind11/pybind11Config.cmake".to_string(),
    ] {
        assert!(venv.join(&expected).is_file(), "{expected} not installed");
    }
}

#[test]
fn warm_install_from_cache_equals_cold_install() {
    let real = real_wheels();
    let sandbox = sandbox(&real);
    // Names of equal length: the scripts' shebangs and RECORD sizes match.
    let cold = sandbox.venv("cold");
    let warm = sandbox.venv("warm");
    let wheels = real.wheels.clone();

    let first = sandbox.install_paths_ok(&cold, &wheels);
    assert_contains(
        &stderr(&first),
        &format!("Unpacked {} packages into the cache", wheels.len()),
    );
    let archives_before: Vec<Vec<PathBuf>> =
        pins().iter().map(|p| sandbox.archives(&p.name)).collect();
    for (pin, archives) in pins().iter().zip(&archives_before) {
        assert_eq!(archives.len(), 1, "archives of {}: {archives:?}", pin.name);
    }

    let second = sandbox.install_paths_ok(&warm, &wheels);
    let err = stderr(&second);
    assert!(!err.contains("warning:"), "a warm install warned:\n{err}");
    assert!(!err.contains("Unpacked"), "a warm install unpacked:\n{err}");
    assert!(
        err.contains(&format!("Installed {} packages in", wheels.len())),
        "{err}"
    );
    let archives_after: Vec<Vec<PathBuf>> =
        pins().iter().map(|p| sandbox.archives(&p.name)).collect();
    assert_eq!(
        archives_before, archives_after,
        "the warm install changed the archives"
    );

    // The warm environment works (a cheaper subset of the scripts).
    let cwd = sandbox.path().join("cwd");
    fs_err::create_dir(&cwd).unwrap();
    assert_imports(&warm, &cwd);
    let rows = script_rows();
    assert_bin_scripts(&warm, &rows);
    let subset: Vec<&ScriptRow> = rows
        .iter()
        .filter(|r| {
            matches!(
                r.script.as_str(),
                "docutils" | "rst2html.py" | "flask" | "normalizer"
            )
        })
        .collect();
    assert_eq!(subset.len(), 4);
    assert_scripts(&warm, &subset, &cwd);
    assert_environment_matches_record(&warm);

    // Both trees are the same, apart from the venv path in the scripts
    // (and so the scripts' hashes in RECORD).
    let cold_path = cold.to_str().unwrap().as_bytes().to_vec();
    let warm_path = warm.to_str().unwrap().as_bytes().to_vec();
    let site_rel = site_packages_relative(&cold);
    let a = installed_tree(&cold);
    let b = installed_tree(&warm);
    let diff = diff_trees(&a, &b, |path, ca, cb| {
        if path.starts_with("bin/") {
            let ca = replace_bytes(ca, &cold_path, &warm_path);
            return (ca != cb).then(|| first_difference(&ca, cb));
        }
        if dist_info_file(path) == Some("RECORD") {
            let parse = |c: &[u8]| -> Vec<Vec<String>> {
                parse_csv(std::str::from_utf8(c).unwrap())
                    .into_iter()
                    .map(|mut row| {
                        if normalize_lexically(&site_rel, &row[0]).starts_with("bin/") {
                            row[1] = "<script hash>".into();
                        }
                        row
                    })
                    .collect()
            };
            let (ra, rb) = (parse(ca), parse(cb));
            return (ra != rb).then(|| {
                let only_a: Vec<_> = ra.iter().filter(|r| !rb.contains(r)).collect();
                let only_b: Vec<_> = rb.iter().filter(|r| !ra.contains(r)).collect();
                format!("RECORD rows only cold {only_a:?}, only warm {only_b:?}")
            });
        }
        (ca != cb).then(|| first_difference(ca, cb))
    });
    assert!(
        diff.is_empty(),
        "the warm install differs from the cold one:\n{}",
        diff.report(
            "cold",
            "warm",
            &owners(&records(&cold)),
            &site_packages_relative(&cold)
        )
    );
}

#[test]
fn keel_tree_equals_pip_tree_for_every_real_wheel() {
    let real = real_wheels();
    let sandbox = sandbox(&real);
    let keel_venv = sandbox.venv("keel");
    let pip_venv = sandbox.venv("pip");
    let wheels = real.wheels.clone();
    sandbox.install_paths_ok(&keel_venv, &wheels);
    pip_install(&pip_venv, &["--no-compile"], &wheels);

    let rows = script_rows();
    let kinds: BTreeMap<&str, ScriptKind> =
        rows.iter().map(|r| (r.script.as_str(), r.kind)).collect();
    let a = installed_tree(&keel_venv);
    let b = installed_tree(&pip_venv);
    let mut launchers = Vec::new();
    let mut diff = diff_trees(&a, &b, |path, ca, cb| {
        if let Some(file) = dist_info_file(path)
            && matches!(
                file,
                "INSTALLER" | "RECORD" | "REQUESTED" | "direct_url.json"
            )
        {
            return None; // compared below
        }
        let Some(script) = path.strip_prefix("bin/") else {
            return (ca != cb).then(|| first_difference(ca, cb));
        };
        if !is_executable(&keel_venv.join(path)) || !is_executable(&pip_venv.join(path)) {
            return Some("script not executable in both".into());
        }
        match kinds.get(script) {
            Some(ScriptKind::Console) => {
                // Launcher text may differ; what it does may not (run below).
                if !ca.starts_with(b"#!") || !cb.starts_with(b"#!") {
                    return Some("launcher without a shebang".into());
                }
                launchers.push(script.to_string());
                None
            }
            // .data/scripts (and anything unlisted): same body, each
            // shebang naming its own venv's python.
            _ => {
                let mut why = Vec::new();
                if !shebang_is_venv_python(first_line(ca), &keel_venv) {
                    why.push(format!(
                        "keel's first line {:?} does not name its venv's python",
                        String::from_utf8_lossy(first_line(ca))
                    ));
                }
                if !shebang_is_venv_python(first_line(cb), &pip_venv) {
                    why.push(format!(
                        "pip's first line {:?} does not name its venv's python",
                        String::from_utf8_lossy(first_line(cb))
                    ));
                }
                let (ba, bb) = (after_first_line(ca), after_first_line(cb));
                if ba != bb {
                    why.push(format!("after the shebang: {}", first_difference(ba, bb)));
                }
                (!why.is_empty()).then(|| why.join("; "))
            }
        }
    });

    // The entry-point launchers run with the same result in both venvs.
    let cwd = sandbox.path().join("cwd");
    fs_err::create_dir(&cwd).unwrap();
    let launcher_rows: Vec<&ScriptRow> = rows
        .iter()
        .filter(|r| launchers.contains(&r.script))
        .collect();
    let normalized = |venv: &Path, (status, out): (i32, String)| {
        let out = venv_spellings(venv)
            .iter()
            .fold(out, |o, v| o.replace(v.as_str(), "<venv>"));
        (status, out)
    };
    let results = run_all(&launcher_rows, |row| {
        (
            normalized(&keel_venv, run_script(&keel_venv, row, &cwd)),
            normalized(&pip_venv, run_script(&pip_venv, row, &cwd)),
        )
    });
    for (row, (ra, rb)) in launcher_rows.iter().zip(results) {
        if ra != rb {
            diff.differ(
                &format!("bin/{}", row.script),
                format!(
                    "`{} {}` gives {ra:?} with keel, {rb:?} with pip",
                    row.script,
                    row.args.join(" ")
                ),
            );
        } else if ra.0 != row.status || !ra.1.contains(&row.expected) {
            diff.differ(
                &format!("bin/{}", row.script),
                format!(
                    "`{} {}` gives {ra:?} in both venvs, not what scripts.tsv expects",
                    row.script,
                    row.args.join(" ")
                ),
            );
        }
    }

    // RECORD: the same set of paths; the same hash and size for every file
    // keel does not generate; direct_url.json equal as JSON.
    let records_a = records(&keel_venv);
    let records_b = records(&pip_venv);
    for (dist, rows_a) in &records_a {
        let Some(rows_b) = records_b.get(dist) else {
            continue;
        };
        let record_path = format!("{}/{dist}/RECORD", site_packages_relative(&keel_venv));
        // pip lists compiled files it wrote; --no-compile leaves none, but
        // `__pycache__` is ignored everywhere here.
        let index = |rows: &[RecordRow]| -> BTreeMap<String, RecordRow> {
            rows.iter()
                .filter(|r| !r.path.contains("/__pycache__/"))
                .map(|r| (r.path.clone(), r.clone()))
                .collect()
        };
        let (ia, ib) = (index(rows_a), index(rows_b));
        let only_a: Vec<&String> = ia.keys().filter(|p| !ib.contains_key(*p)).collect();
        let only_b: Vec<&String> = ib.keys().filter(|p| !ia.contains_key(*p)).collect();
        if !only_a.is_empty() || !only_b.is_empty() {
            diff.differ(
                &record_path,
                format!("paths only in keel's RECORD {only_a:?}, only in pip's {only_b:?}"),
            );
        }
        for (path, row_a) in &ia {
            let Some(row_b) = ib.get(path) else { continue };
            let generated = path.starts_with("bin/")
                || dist_info_file(path).is_some_and(|f| {
                    matches!(f, "INSTALLER" | "RECORD" | "REQUESTED" | "direct_url.json")
                });
            if !generated && (row_a.hash != row_b.hash || row_a.size != row_b.size) {
                diff.differ(
                    &record_path,
                    format!(
                        "{path}: keel records {},{} pip {},{}",
                        row_a.hash, row_a.size, row_b.hash, row_b.size
                    ),
                );
            }
        }
        let dist_info = site_packages(&keel_venv).join(dist);
        let dist_info_b = site_packages(&pip_venv).join(dist);
        let json = |p: PathBuf| -> serde_json::Value {
            serde_json::from_str(&fs_err::read_to_string(p).unwrap()).unwrap()
        };
        let (ja, jb) = (
            json(dist_info.join("direct_url.json")),
            json(dist_info_b.join("direct_url.json")),
        );
        if ja != jb {
            diff.differ(
                &format!(
                    "{}/{dist}/direct_url.json",
                    site_packages_relative(&keel_venv)
                ),
                format!("keel {ja} vs pip {jb}"),
            );
        }
        let installer = fs_err::read_to_string(dist_info.join("INSTALLER")).unwrap();
        if installer.trim() != "keel" {
            diff.differ(
                &format!("{}/{dist}/INSTALLER", site_packages_relative(&keel_venv)),
                format!("{installer:?}, not keel"),
            );
        }
    }

    let mut owner_map = owners(&records_b);
    owner_map.extend(owners(&records_a));
    assert!(
        diff.is_empty(),
        "keel's environment ({}) differs from pip's ({}):\n{}",
        keel_venv.display(),
        pip_venv.display(),
        diff.report(
            "keel",
            "pip",
            &owner_map,
            &site_packages_relative(&keel_venv)
        )
    );
    assert!(
        launchers.len()
            == rows
                .iter()
                .filter(|r| r.kind == ScriptKind::Console)
                .count(),
        "launchers compared: {launchers:?}"
    );
    assert_environment_matches_record(&keel_venv);
}

#[test]
fn direct_url_json_records_file_url_and_wheel_sha256() {
    let real = real_wheels();
    let sandbox = sandbox(&real);
    let venv = sandbox.venv("venv");
    let wheel = real.wheel("docutils").to_path_buf();
    sandbox.install_paths_ok(&venv, std::slice::from_ref(&wheel));

    let output = run(Command::new("python3")
        .arg("-c")
        .arg("import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest())")
        .arg(&wheel));
    assert_success(&output);
    let sha256 = stdout(&output).trim().to_string();
    let pinned = pins().into_iter().find(|p| p.name == "docutils").unwrap();
    assert_eq!(
        sha256,
        pinned.sha256,
        "{} is not the pinned file",
        wheel.display()
    );

    let (_, version) = wheel_name_version(&wheel);
    let dist_info = site_packages(&venv).join(format!("docutils-{version}.dist-info"));
    let text = fs_err::read_to_string(dist_info.join("direct_url.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        json["url"].as_str(),
        Some(format!("file://{}", wheel.to_str().unwrap()).as_str()),
        "{text}"
    );
    assert_eq!(
        json["archive_info"]["hashes"]["sha256"].as_str(),
        Some(sha256.as_str()),
        "{text}"
    );
    // The deprecated `hash` key, when written, must agree.
    if let Some(hash) = json["archive_info"].get("hash") {
        assert_eq!(
            hash.as_str(),
            Some(format!("sha256={sha256}").as_str()),
            "{text}"
        );
    }
    assert!(
        json.get("dir_info").is_none() && json.get("vcs_info").is_none(),
        "{text}"
    );
    assert_eq!(
        fs_err::read_to_string(dist_info.join("INSTALLER")).unwrap(),
        "keel\n"
    );
    assert_environment_matches_record(&venv);
}
