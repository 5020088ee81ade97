//! keel-lock against the reference: for every lock of a corpus that
//! exercises the *Installation* rules of the pylock.toml specification
//! (markers with `extras` and `dependency_groups`, several wheels per
//! package, `environments`, `requires-python`, ambiguity, sdists, archives),
//! keel's selection for each CPython pyenv installed equals
//! `packaging.pylock.Pylock.select()` (packaging 26.4) run by that CPython,
//! entry for entry; where packaging raises, keel reports the same rule.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use keel_lock::{Choice, Lock, LockLocation, Rule, select};
use keel_python::{Interpreter, TagOrder, Tags};

const HASH: &str = "c75a69e28a550a7e93789579c22aa26b0f5b83b75dc4e08fe092980051e1090a";

/// A wheel entry at a loopback URL that nothing serves (selection is offline).
fn wheel(file: &str) -> String {
    format!(
        "{{ url = \"http://127.0.0.1:9/files/{file}\", size = 1, hashes = {{ sha256 = \"{HASH}\" }} }}"
    )
}

fn wheels(files: &[&str]) -> String {
    let entries: Vec<String> = files.iter().map(|f| wheel(f)).collect();
    format!("wheels = [{}]", entries.join(", "))
}

fn header(extra: &str) -> String {
    format!("lock-version = \"1.0\"\ncreated-by = \"keel's tests\"\n{extra}\n")
}

fn package(name: &str, version: &str, rest: &str) -> String {
    format!("[[packages]]\nname = \"{name}\"\nversion = \"{version}\"\n{rest}\n")
}

/// numpy's wheels for every CPython here, and for other platforms.
fn numpy() -> String {
    let mut files: Vec<String> = (8..=13)
        .map(|m| {
            format!("numpy-2.0.0-cp3{m}-cp3{m}-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
        })
        .collect();
    files.push("numpy-2.0.0-cp312-cp312-win_amd64.whl".into());
    files.push("numpy-2.0.0-cp312-cp312-macosx_11_0_arm64.whl".into());
    files.push("numpy-2.0.0-cp312-cp312-musllinux_1_2_x86_64.whl".into());
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    package("numpy", "2.0.0", &wheels(&refs))
}

struct Case {
    name: &'static str,
    lock: String,
    extras: Vec<&'static str>,
    groups: Option<Vec<&'static str>>,
}

fn case(name: &'static str, lock: String) -> Case {
    Case {
        name,
        lock,
        extras: vec![],
        groups: None,
    }
}

fn multi_use() -> String {
    let mut lock = header(
        "extras = [\"socks\"]\ndependency-groups = [\"dev\"]\ndefault-groups = [\"default\"]",
    );
    lock += &package(
        "attrs",
        "25.1.0",
        &wheels(&["attrs-25.1.0-py3-none-any.whl"]),
    );
    lock += &package(
        "pysocks",
        "1.7.1",
        &format!(
            "marker = \"'socks' in extras\"\n{}",
            wheels(&["PySocks-1.7.1-py3-none-any.whl"])
        ),
    );
    lock += &package(
        "pytest",
        "8.0.0",
        &format!(
            "marker = \"'dev' in dependency_groups\"\n{}",
            wheels(&["pytest-8.0.0-py3-none-any.whl"])
        ),
    );
    lock += &package(
        "six",
        "1.17.0",
        &format!(
            "marker = \"'default' in dependency_groups and python_version < '3.12'\"\n{}",
            wheels(&["six-1.17.0-py2.py3-none-any.whl"])
        ),
    );
    lock
}

fn corpus() -> Vec<Case> {
    let attrs = package(
        "attrs",
        "25.1.0",
        &wheels(&["attrs-25.1.0-py3-none-any.whl"]),
    );
    let mut cases = vec![
        case("one pure wheel", header("") + &attrs),
        case(
            "numpy: the wheel of the running CPython",
            header("") + &numpy(),
        ),
        case(
            "abi3 against a version-specific wheel, and py3 fallback",
            header("")
                + &package(
                    "cryptography",
                    "44.0.0",
                    &wheels(&[
                        "cryptography-44.0.0-cp37-abi3-manylinux_2_28_x86_64.whl",
                        "cryptography-44.0.0-cp312-cp312-manylinux_2_28_x86_64.whl",
                        "cryptography-44.0.0-py3-none-any.whl",
                    ]),
                ),
        ),
        case(
            "markers on platform and version",
            header("")
                + &package(
                    "colorama",
                    "0.4.6",
                    &format!(
                        "marker = \"sys_platform == 'win32'\"\n{}",
                        wheels(&["colorama-0.4.6-py2.py3-none-any.whl"])
                    ),
                )
                + &package(
                    "tomli",
                    "2.2.1",
                    &format!(
                        "marker = \"python_version < '3.11'\"\n{}",
                        wheels(&["tomli-2.2.1-py3-none-any.whl"])
                    ),
                )
                + &package(
                    "uvloop",
                    "0.21.0",
                    &format!(
                        "marker = \"platform_machine == 'x86_64' and implementation_name == 'cpython'\"\n{}",
                        wheels(&["uvloop-0.21.0-py3-none-any.whl"])
                    ),
                ),
        ),
        case(
            "two entries split by python_full_version",
            header("")
                + &package(
                    "idna",
                    "3.10",
                    &format!(
                        "marker = \"python_full_version >= '3.11.0'\"\n{}",
                        wheels(&["idna-3.10-py3-none-any.whl"])
                    ),
                )
                + &package(
                    "idna",
                    "3.7",
                    &format!(
                        "marker = \"python_full_version < '3.11.0'\"\n{}",
                        wheels(&["idna-3.7-py3-none-any.whl"])
                    ),
                ),
        ),
        case(
            "two entries for one name both selected",
            header("")
                + &attrs
                + &package(
                    "attrs",
                    "24.0.0",
                    &wheels(&["attrs-24.0.0-py3-none-any.whl"]),
                ),
        ),
        case(
            "the lock's requires-python",
            header("requires-python = \">=3.10\"") + &attrs,
        ),
        case(
            "a package's requires-python",
            header("")
                + &package(
                    "django",
                    "5.2.0",
                    &format!(
                        "requires-python = \">=3.12\"\n{}",
                        wheels(&["django-5.2.0-py3-none-any.whl"])
                    ),
                ),
        ),
        case(
            "environments: none holds",
            header("environments = [\"sys_platform == 'win32'\", \"sys_platform == 'darwin'\"]")
                + &attrs,
        ),
        case(
            "environments: one holds",
            header("environments = [\"sys_platform == 'win32'\", \"sys_platform == 'linux'\"]")
                + &attrs,
        ),
        case(
            "no wheel fits and no sdist",
            header("")
                + &package(
                    "pywin32",
                    "308",
                    &wheels(&["pywin32-308-cp312-cp312-win_amd64.whl"]),
                ),
        ),
        case(
            "no wheel fits but an sdist",
            header("")
                + &package(
                    "pyyaml",
                    "6.0.2",
                    &format!(
                        "{}\nsdist = {{ url = \"http://127.0.0.1:9/files/pyyaml-6.0.2.tar.gz\", hashes = {{ sha256 = \"{HASH}\" }} }}",
                        wheels(&["PyYAML-6.0.2-cp312-cp312-win_amd64.whl"])
                    ),
                ),
        ),
        case(
            "a wheel as a direct archive",
            header("")
                + &package(
                    "attrs",
                    "25.1.0",
                    &format!(
                        "archive = {{ url = \"http://127.0.0.1:9/files/attrs-25.1.0-py3-none-any.whl\", hashes = {{ sha256 = \"{HASH}\" }} }}"
                    ),
                ),
        ),
        case(
            "a newer minor lock-version",
            header("").replace("\"1.0\"", "\"1.1\"") + &attrs,
        ),
    ];
    for (extras, groups, name) in [
        (vec![], None, "multi-use lock: defaults"),
        (vec!["socks"], None, "multi-use lock: an extra"),
        (
            vec![],
            Some(vec!["dev"]),
            "multi-use lock: a group instead of the defaults",
        ),
        (
            vec!["socks"],
            Some(vec!["default", "dev"]),
            "multi-use lock: everything",
        ),
        (vec!["nope"], None, "multi-use lock: an undeclared extra"),
        (
            vec![],
            Some(vec!["nope"]),
            "multi-use lock: an undeclared group",
        ),
    ] {
        cases.push(Case {
            name,
            lock: multi_use(),
            extras,
            groups,
        });
    }
    cases
}

/// What a selection came to, in terms both sides share.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// `[name, "wheel" | "archive" | "sdist", file name]` per package.
    Selected(Vec<(String, String, String)>),
    /// The rule broken (one of packaging's errors).
    Refused(&'static str),
}

/// The rule a keel problem stands for, in packaging's terms.
fn rule_kind(rule: &Rule) -> &'static str {
    match rule {
        Rule::LockRequiresPython { .. } => "lock requires-python",
        Rule::PackageRequiresPython { .. } => "package requires-python",
        Rule::NoEnvironment(_) => "environments",
        Rule::Ambiguous(_) => "ambiguous",
        Rule::NoCompatibleWheel { .. } => "no wheel",
        Rule::UnknownExtra(..) => "undeclared extra",
        Rule::UnknownGroup(..) => "undeclared group",
        _ => "other",
    }
}

fn packaging_kind(message: &str) -> &'static str {
    if message.contains("Undeclared extras") {
        "undeclared extra"
    } else if message.contains("Undeclared dependency groups") {
        "undeclared group"
    } else if message.contains("for package") && message.contains("Python version") {
        "package requires-python"
    } else if message.contains("Python version requirement") {
        "lock requires-python"
    } else if message.contains("environments specified") {
        "environments"
    } else if message.contains("Multiple packages") {
        "ambiguous"
    } else if message.contains("No wheel found") {
        "no wheel"
    } else {
        "other"
    }
}

const ORACLE: &str = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
from packaging.pylock import Pylock, PylockSelectError, PylockValidationError
out = []
for case in json.load(sys.stdin):
    try:
        lock = Pylock.from_dict(case["lock"])
        chosen = []
        for package, dist in lock.select(extras=case["extras"], dependency_groups=case["groups"]):
            kind = {"PackageWheel": "wheel", "PackageSdist": "sdist", "PackageArchive": "archive"}[type(dist).__name__]
            name = dist.filename if kind != "archive" else dist.url.rsplit("/", 1)[-1]
            chosen.append([str(package.name), kind, name])
        out.append({"ok": chosen})
    except (PylockSelectError, PylockValidationError) as e:
        out.append({"error": str(e)})
print(json.dumps(out))
"#;

/// packaging's outcome for every case, run by `python`.
fn packaging_outcomes(python: &Path, cases: &[Case]) -> Vec<Outcome> {
    let input: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| {
            let lock: serde_json::Value = toml::from_str(&c.lock).expect("the corpus is TOML");
            serde_json::json!({"lock": lock, "extras": c.extras, "groups": c.groups})
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(python)
        .args(["-I", "-c", ORACLE])
        .arg(keel_fixtures::python::pypi_wheel(
            "packaging-26.4-py3-none-any.whl",
        ))
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the oracle");
    let stdin = child.stdin.take().expect("stdin");
    let mut stdin = stdin;
    stdin
        .write_all(serde_json::to_string(&input).expect("json").as_bytes())
        .expect("write the corpus");
    drop(stdin);
    let output = child.wait_with_output().expect("oracle output");
    assert!(
        output.status.success(),
        "the oracle failed under {}",
        python.display()
    );
    let results: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("the oracle prints JSON");
    results
        .into_iter()
        .map(|r| match r.get("ok") {
            Some(ok) => Outcome::Selected(serde_json::from_value(ok.clone()).expect("triples")),
            None => Outcome::Refused(packaging_kind(r["error"].as_str().unwrap_or_default())),
        })
        .collect()
}

/// keel's outcome, compared as packaging reports: packaging hands out an
/// sdist where keel refuses to build, and stops at the first problem where
/// keel reports all of them (`expected` says which one to look for).
fn keel_outcome(
    case: &Case,
    interpreter: &Interpreter,
    tags: &Tags,
    expected: &Outcome,
) -> Outcome {
    let lock = Lock::from_str_at(
        &case.lock,
        LockLocation::File(PathBuf::from("/srv/pylock.toml")),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let choice = Choice {
        extras: case.extras.iter().map(|s| s.to_string()).collect(),
        groups: case
            .groups
            .as_ref()
            .map(|g| g.iter().map(|s| s.to_string()).collect()),
    };
    match select(&lock, interpreter, tags, &choice) {
        Ok(selected) => Outcome::Selected(
            selected
                .into_iter()
                .map(|s| {
                    let kind = if s.direct { "archive" } else { "wheel" };
                    (
                        s.package.name.to_string(),
                        kind.to_string(),
                        s.file.file_name,
                    )
                })
                .collect(),
        ),
        Err(keel_lock::Error::Lock { problems, .. }) => {
            let kinds: Vec<&str> = problems.0.iter().map(|p| rule_kind(&p.rule)).collect();
            match expected {
                Outcome::Refused(kind) if kinds.contains(kind) => Outcome::Refused(kind),
                Outcome::Selected(chosen)
                    if chosen.iter().any(|(_, kind, _)| kind == "sdist")
                        && problems
                            .0
                            .iter()
                            .all(|p| matches!(p.rule, Rule::NeedsBuild(_))) =>
                {
                    expected_with_sdists_kept(chosen)
                }
                _ => panic!("{}: keel refused: {problems}", case.name),
            }
        }
        Err(e) => panic!("{}: {e}", case.name),
    }
}

fn expected_with_sdists_kept(chosen: &[(String, String, String)]) -> Outcome {
    Outcome::Selected(chosen.to_vec())
}

fn check_interpreter(minor: u32) {
    let python = keel_fixtures::python::required_python(minor);
    let interpreter = Interpreter::probe(&python, None).expect("probe");
    let tags = Tags::new(&interpreter, TagOrder::NativeFirst);
    let cases = corpus();
    let expected = packaging_outcomes(&python, &cases);
    for (case, expected) in cases.iter().zip(&expected) {
        let found = keel_outcome(case, &interpreter, &tags, expected);
        assert_eq!(&found, expected, "{} under CPython 3.{minor}", case.name);
    }
}

// packaging.pylock needs Python 3.10 or later (`typing.TypeAlias`).
#[test]
fn selection_equals_packaging_pylock_on_cpython_3_10() {
    check_interpreter(10);
}

#[test]
fn selection_equals_packaging_pylock_on_cpython_3_11() {
    check_interpreter(11);
}

#[test]
fn selection_equals_packaging_pylock_on_cpython_3_12() {
    check_interpreter(12);
}

#[test]
fn selection_equals_packaging_pylock_on_cpython_3_13() {
    check_interpreter(13);
}

fn read(text: &str) -> Result<Lock, keel_lock::Error> {
    Lock::from_str_at(
        text,
        LockLocation::File(PathBuf::from("/srv/app/pylock.toml")),
    )
}

fn problems(text: &str) -> Vec<keel_lock::Problem> {
    match read(text) {
        Err(keel_lock::Error::Lock { problems, .. }) => problems.0,
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn every_problem_of_a_lock_is_reported_at_once_with_where_and_which_rule() {
    let lock = header("")
        + &package(
            "Attrs",
            "25.1.0",
            &wheels(&["attrs-25.1.0-py3-none-any.whl"]),
        )
        + &package(
            "six",
            "1.17.0",
            &format!(
                "{}\narchive = {{ url = \"http://127.0.0.1:9/six.whl\", hashes = {{ sha256 = \"{HASH}\" }} }}",
                wheels(&["six-1.17.0-py2.py3-none-any.whl"])
            ),
        )
        + &package(
            "idna",
            "3.10",
            "wheels = [{ url = \"http://127.0.0.1:9/files/idna-3.10-py3-none-any.whl\", hashes = { md5 = \"00\" } }]",
        )
        + &package("click", "8.1.0", &wheels(&["flask-8.1.0-py3-none-any.whl"]))
        + &package(
            "tomli",
            "2.2.1",
            "marker = \"python_version > '3' and shoe_size == '9'\"\nwheels = []",
        );
    let found = problems(&lock);
    let rules: Vec<&Rule> = found.iter().map(|p| &p.rule).collect();
    assert!(
        matches!(rules[0], Rule::NameNotNormalized(name, normal) if name == "Attrs" && normal == "attrs"),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.at == "packages[1] (six)" && matches!(p.rule, Rule::ConflictingSources(_)))
    );
    assert!(
        found
            .iter()
            .any(|p| p.at.starts_with("packages[2] (idna) wheels[0]")
                && matches!(p.rule, Rule::NoUsableHash(_)))
    );
    assert!(found.iter().any(|p| p.at == "packages[3] (click 8.1.0)"
        && matches!(&p.rule, Rule::FileName { file, .. } if file.starts_with("flask"))));
    assert!(found.iter().any(|p| matches!(&p.rule, Rule::Invalid { what: "marker", value, .. } if value.contains("shoe_size"))));
    // An empty `wheels` and no other source: nothing to install from.
    assert!(found.iter().any(|p| p.at == "packages[4] (tomli)" && matches!(p.rule, Rule::ConflictingSources(_))));
    assert_eq!(found.len(), 6, "{found:#?}");
    let message = keel_lock::Error::Lock {
        path: "/srv/app/pylock.toml".into(),
        problems: keel_lock::Problems(found),
    }
    .to_string();
    assert!(
        message.starts_with("`/srv/app/pylock.toml` cannot be installed: 6 problems:"),
        "{message}"
    );
}

#[test]
fn lock_versions_unknown_keys_and_required_keys() {
    let attrs = package(
        "attrs",
        "25.1.0",
        &wheels(&["attrs-25.1.0-py3-none-any.whl"]),
    );
    let newer = read(
        &(header("").replace("\"1.0\"", "\"1.3\"")
            + "future-key = 1\n"
            + &attrs.replace("version = ", "colour = \"red\"\nversion = ")),
    )
    .expect("a newer minor version is read");
    assert!(
        newer
            .warnings
            .iter()
            .any(|w| w.contains("lock-version 1.3 is newer")),
        "{:?}",
        newer.warnings
    );
    assert!(
        newer.warnings.iter().any(|w| w.contains("`future-key`")),
        "{:?}",
        newer.warnings
    );
    assert!(
        newer.warnings.iter().any(|w| w.contains("colour")),
        "{:?}",
        newer.warnings
    );
    for unsupported in ["2.0", "0.9", "2.0a1"] {
        let found =
            problems(&(header("").replace("\"1.0\"", &format!("\"{unsupported}\"")) + &attrs));
        assert!(
            matches!(&found[0].rule, Rule::UnsupportedLockVersion(v) if v == unsupported),
            "{found:?}"
        );
    }
    let found = problems("[[packages]]\nname = \"attrs\"\n");
    let missing: Vec<&Rule> = found.iter().map(|p| &p.rule).collect();
    assert!(
        missing.contains(&&Rule::Missing("lock-version"))
            && missing.contains(&&Rule::Missing("created-by")),
        "{found:?}"
    );
    // `tool`, `dependencies` and `attestation-identities` never matter.
    let informational = header("[tool.locker]\nanything = [1, 2]")
        + &attrs
        + "dependencies = [{ name = \"six\" }]\n[[packages.attestation-identities]]\nkind = \"GitHub\"\nrepository = \"x/y\"\n[packages.tool.locker]\nx = 1\n";
    assert!(read(&informational).expect("read").warnings.is_empty());
}

#[test]
fn only_pylock_names_are_lock_files() {
    for name in ["pylock.toml", "pylock.dev.toml", "/a/b/pylock.web_1.toml"] {
        assert!(keel_lock::is_lock_file_name(Path::new(name)), "{name}");
    }
    for name in [
        "pyproject.toml",
        "pylock.a.b.toml",
        "pylock..toml",
        "Pylock.toml",
        "lock.toml",
    ] {
        assert!(!keel_lock::is_lock_file_name(Path::new(name)), "{name}");
    }
    let error = Lock::from_path(Path::new("/srv/app/poetry.toml")).expect_err("not a lock name");
    assert!(
        error.to_string().contains("is not a lock file name"),
        "{error}"
    );
}

#[test]
fn paths_are_relative_to_the_lock_and_a_remote_lock_cannot_reach_outside() {
    let local = header("")
        + &package(
            "attrs",
            "25.1.0",
            &format!(
                "wheels = [{{ path = \"wheels/attrs-25.1.0-py3-none-any.whl\", hashes = {{ sha256 = \"{HASH}\" }} }}]"
            ),
        );
    let lock = read(&local).expect("read");
    let keel_lock::PackageSource::Distributions { wheels, .. } = &lock.packages[0].source else {
        panic!()
    };
    assert_eq!(
        wheels[0].location,
        keel_lock::Location::Path("/srv/app/wheels/attrs-25.1.0-py3-none-any.whl".into())
    );
    let remote = local.replace("wheels/attrs", "../../etc/attrs");
    let url = url::Url::parse("http://127.0.0.1:9/locks/pylock.toml").expect("url");
    let Err(keel_lock::Error::Lock { problems, .. }) =
        Lock::from_str_at(&remote, LockLocation::Url(url))
    else {
        panic!("a path out of a remote lock is refused")
    };
    assert!(
        matches!(problems.0[0].rule, Rule::PathEscapes(_)),
        "{problems}"
    );
}

mod requirements_files {
    use super::HASH;
    use keel_lock::Rule;
    use keel_lock::requirements::{Pin, RequirementsFile};

    fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        fs_err::write(&path, text).expect("write");
        path
    }

    /// What `pip-compile --generate-hashes` writes, with an include, an
    /// index, a marker, a variable and a direct wheel URL.
    #[test]
    fn a_compiled_hashed_file_is_read_with_its_includes_index_and_markers() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "base.txt",
            &format!("six==1.17.0 \\\n    --hash=sha256:{HASH}\n"),
        );
        let other = "a".repeat(64);
        let top = format!(
            "# This file is autogenerated by pip-compile\n\
             --index-url ${{KEEL_TEST_INDEX}}/simple/\n\
             -r base.txt\n\
             attrs==25.1.0 \\\n    --hash=sha256:{HASH} \\\n    --hash=sha256:{other}\n    # via cattrs\n\
             tomli==2.2.1 ; python_version < \"3.11\" \\\n    --hash=sha256:{HASH}\n\
             local @ ./wheels/local-1.0-py3-none-any.whl --hash=sha256:{HASH}\n"
        );
        let path = write(dir.path(), "requirements.txt", &top);
        // SAFETY: this test binary sets no other variable and reads this one only here.
        unsafe { std::env::set_var("KEEL_TEST_INDEX", "http://127.0.0.1:9") };
        let file = RequirementsFile::from_path(&path).expect("read");
        assert_eq!(file.index_urls[0].as_str(), "http://127.0.0.1:9/simple/");
        let names: Vec<String> = file
            .requirements
            .iter()
            .map(|r| r.name.to_string())
            .collect();
        assert_eq!(names, ["six", "attrs", "tomli", "local"]);
        assert!(file.require_hashes && file.unhashed().is_empty());
        assert_eq!(file.requirements[1].hashes.len(), 2);
        assert_eq!(
            file.requirements[1].pin,
            Pin::Version("25.1.0".parse().expect("version"))
        );
        assert!(file.requirements[2].marker.is_some());
        assert!(file.requirements[0].origin.ends_with("base.txt:1"));
        let wheel = dir.path().join("wheels/local-1.0-py3-none-any.whl");
        assert_eq!(
            file.requirements[3].pin,
            Pin::Url(url::Url::from_file_path(&wheel).expect("url"))
        );
    }

    #[test]
    fn lines_hash_checking_refuses_are_listed_and_bad_lines_reported_together() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            dir.path(),
            "requirements.txt",
            &format!("attrs==25.1.0 --hash=sha256:{HASH}\nsix>=1.16\nidna==3.10\n"),
        );
        let file = RequirementsFile::from_path(&path).expect("read");
        let unhashed: Vec<String> = file.unhashed().iter().map(|r| r.to_string()).collect();
        assert_eq!(unhashed, ["six>=1.16", "idna==3.10"]);

        let bad = write(
            dir.path(),
            "bad.txt",
            "a==1 --hash=md5:00\n-e ./src\n--find-links /tmp\nb @ https://127.0.0.1:9/b-1.0.tar.gz\nc==1\nc==2\n",
        );
        let Err(keel_lock::Error::Requirements { problems, .. }) =
            RequirementsFile::from_path(&bad)
        else {
            panic!("bad lines are refused")
        };
        let at: Vec<&str> = problems
            .0
            .iter()
            .map(|p| p.at.rsplit(':').next().unwrap_or_default())
            .collect();
        assert_eq!(at, ["1", "2", "3", "4", "6"], "{problems}");
        assert!(
            matches!(&problems.0[0].rule, Rule::Requirement(m) if m.contains("md5 is not strong enough"))
        );
        assert!(matches!(&problems.0[1].rule, Rule::NeedsBuild(_)));
        assert!(matches!(&problems.0[3].rule, Rule::NeedsBuild(m) if m.contains("b-1.0.tar.gz")));
        assert!(matches!(&problems.0[4].rule, Rule::Requirement(m) if m.contains("listed again")));
    }

    #[test]
    fn a_file_that_includes_itself_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(dir.path(), "loop.txt", "-r loop.txt\n");
        let error = RequirementsFile::from_path(&path).expect_err("a loop");
        assert!(error.to_string().contains("includes itself"), "{error}");
    }
}
