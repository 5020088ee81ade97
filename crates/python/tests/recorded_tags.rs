//! keel's tag lists against recorded `packaging.tags.sys_tags()` dumps, entry
//! for entry.
//!
//! `tests/data/probes.jsonl` holds the probe's output for pyenv's CPython
//! 2.7 … 3.13 (x86_64, glibc 2.36), each run in a `python -m venv` venv.
//! `tests/data/tags/cpXY-packaging-V.txt` is `list(sys_tags())` of that venv
//! with packaging V; `sim-*.txt` is packaging's own code with its libc,
//! architecture, pointer-size and config-variable inputs monkeypatched, which
//! [`simulated`] reproduces by editing the 3.13 probe the same way.

use std::path::Path;

use keel_python::{Error, Interpreter, TagOrder, Tags};
use serde_json::{Value, json};

const PROBES: &str = include_str!("data/probes.jsonl");

fn probe_json(version: &str) -> Value {
    PROBES
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("probes.jsonl is JSON"))
        .find(|p| p["markers"]["python_full_version"] == version)
        .unwrap_or_else(|| panic!("no recorded probe of Python {version}"))
}

fn interpreter(json: &Value) -> Interpreter {
    Interpreter::from_probe_json(Path::new("/recorded/bin/python"), &json.to_string())
        .expect("a recorded probe parses")
}

/// The dump's tags, and its order: packaging ≥ 26.3 puts `linux_*` first.
fn dump(name: &str) -> (Vec<String>, TagOrder) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tags")
        .join(name);
    let text = fs_err::read_to_string(&path).expect("dump");
    let version = name
        .rsplit_once("-packaging-")
        .expect("named …-packaging-V.txt")
        .1;
    let mut parts = version.trim_end_matches(".txt").split('.');
    let mut number = || {
        parts
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .expect("version")
    };
    let order = if (number(), number()) >= (26, 3) {
        TagOrder::NativeFirst
    } else {
        TagOrder::NativeLast
    };
    let tags = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    (tags, order)
}

fn assert_same(name: &str, interpreter: &Interpreter) {
    let (want, order) = dump(name);
    let tags = Tags::new(interpreter, order);
    let got: Vec<String> = tags.iter().map(ToString::to_string).collect();
    if let Some(i) = (0..want.len().max(got.len())).find(|&i| want.get(i) != got.get(i)) {
        panic!(
            "{name}: first difference at entry {i}: packaging {:?}, keel {:?} ({} vs {} tags)",
            want.get(i),
            got.get(i),
            want.len(),
            got.len()
        );
    }
    assert_eq!(tags.len(), want.len());
}

#[test]
fn real_dumps_of_cpython_3_7_to_3_13() {
    for (version, dumps) in [
        ("3.7.16", &["cp37-packaging-24.0.txt"][..]),
        ("3.8.18", &["cp38-packaging-26.2.txt"]),
        ("3.9.18", &["cp39-packaging-26.3.txt"]),
        (
            "3.11.7",
            &["cp311-packaging-26.4.txt", "cp311-packaging-25.0.txt"],
        ),
        (
            "3.13.0",
            &["cp313-packaging-26.4.txt", "cp313-packaging-25.0.txt"],
        ),
    ] {
        let interpreter = interpreter(&probe_json(version));
        for name in dumps {
            assert_same(name, &interpreter);
        }
    }
}

/// One of the simulations of the dump script: the 3.13 probe with another
/// kernel machine, pointer size, libc, Python version and config variables.
struct Sim {
    machine: &'static str,
    is_32bit: bool,
    glibc: Option<&'static str>,
    musl: Option<&'static str>,
    version: (u32, u32),
    debug: bool,
    free_threaded: bool,
    hard_float: bool,
}

const SIM: Sim = Sim {
    machine: "x86_64",
    is_32bit: false,
    glibc: Some("2.36"),
    musl: None,
    version: (3, 12),
    debug: false,
    free_threaded: false,
    hard_float: true,
};

fn simulated(sim: &Sim) -> Interpreter {
    let mut p = probe_json("3.13.0");
    let (x, y) = sim.version;
    p["sysconfig_platform"] = json!(format!("linux-{}", sim.machine));
    p["pointer_bits"] = json!(if sim.is_32bit { 32 } else { 64 });
    p["libc"] = json!({"glibc": sim.glibc, "glibc_source": "confstr", "musl": sim.musl});
    let arch = match (sim.is_32bit, sim.machine) {
        (true, "x86_64") => "i686",
        (true, "aarch64") => "armv8l",
        (_, machine) => machine,
    };
    let flags = if sim.hard_float {
        0x0500_0400
    } else {
        0x0500_0200
    };
    p["elf"] = match arch {
        "armv7l" | "armv8l" => {
            json!({"class": 1, "data": 1, "machine": 40, "flags": flags, "interpreter": null})
        }
        "i686" => json!({"class": 1, "data": 1, "machine": 3, "flags": 0, "interpreter": null}),
        _ => p["elf"].clone(),
    };
    p["version_info"] = json!([x, y, 0, "final", 0]);
    p["markers"]["python_full_version"] = json!(format!("{x}.{y}.0"));
    p["markers"]["python_version"] = json!(format!("{x}.{y}"));
    let config = &mut p["config_vars"];
    config["Py_DEBUG"] = json!(u8::from(sim.debug));
    config["Py_GIL_DISABLED"] = json!(u8::from(sim.free_threaded));
    config["WITH_PYMALLOC"] = json!(1);
    config["py_version_nodot"] = json!(format!("{x}{y}"));
    interpreter(&p)
}

#[test]
fn simulated_architectures_and_libcs() {
    let cases = [
        (
            "aarch64-glibc2.28-cp312",
            Sim {
                machine: "aarch64",
                glibc: Some("2.28"),
                ..SIM
            },
        ),
        (
            "i686-on-x86_64kernel-glibc2.17-cp312",
            Sim {
                is_32bit: true,
                glibc: Some("2.17"),
                ..SIM
            },
        ),
        (
            "armv8l-32bit-on-aarch64kernel-glibc2.31-cp312",
            Sim {
                machine: "aarch64",
                is_32bit: true,
                glibc: Some("2.31"),
                ..SIM
            },
        ),
        (
            "armv7l-softfloat-glibc2.31-cp312",
            Sim {
                machine: "armv7l",
                is_32bit: true,
                glibc: Some("2.31"),
                hard_float: false,
                ..SIM
            },
        ),
        (
            "riscv64-glibc2.35-cp312",
            Sim {
                machine: "riscv64",
                glibc: Some("2.35"),
                ..SIM
            },
        ),
        (
            "x86_64-musl1.2-cp312",
            Sim {
                glibc: None,
                musl: Some("1.2"),
                ..SIM
            },
        ),
        (
            "armv8l-musl1.2-cp312",
            Sim {
                machine: "aarch64",
                is_32bit: true,
                glibc: None,
                musl: Some("1.2"),
                ..SIM
            },
        ),
        ("x86_64-nolibc-cp312", Sim { glibc: None, ..SIM }),
        (
            "x86_64-glibc3.1-cp312",
            Sim {
                glibc: Some("3.1"),
                ..SIM
            },
        ),
    ];
    let mut compared = 0;
    for (name, sim) in &cases {
        for version in ["26.4", "25.0"] {
            let file = format!("sim-{name}-packaging-{version}.txt");
            if Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/tags")
                .join(&file)
                .exists()
            {
                assert_same(&file, &simulated(sim));
                compared += 1;
            }
        }
    }
    assert_eq!(
        compared, 11,
        "every simulated dump kept in tests/data/tags is compared"
    );
}

#[test]
fn simulated_debug_free_threaded_and_pymalloc_builds() {
    let cases = [
        (
            "x86_64-glibc2.36-cp313t-packaging-26.4.txt",
            Sim {
                version: (3, 13),
                free_threaded: true,
                ..SIM
            },
        ),
        (
            "x86_64-glibc2.36-cp313td-packaging-26.4.txt",
            Sim {
                version: (3, 13),
                free_threaded: true,
                debug: true,
                ..SIM
            },
        ),
        (
            "x86_64-glibc2.36-cp38d-packaging-25.0.txt",
            Sim {
                version: (3, 8),
                debug: true,
                ..SIM
            },
        ),
        (
            "x86_64-glibc2.36-cp37dm-packaging-26.4.txt",
            Sim {
                version: (3, 7),
                debug: true,
                ..SIM
            },
        ),
    ];
    for (name, sim) in &cases {
        let interpreter = simulated(sim);
        assert_eq!(interpreter.is_free_threaded(), sim.free_threaded);
        assert_eq!(interpreter.is_debug(), sim.debug);
        assert_same(&format!("sim-{name}"), &interpreter);
    }
}

#[test]
fn the_free_threaded_stable_abi_is_abi3t_down_to_cp32() {
    let tags = Tags::new(
        &simulated(&Sim {
            version: (3, 13),
            free_threaded: true,
            ..SIM
        }),
        TagOrder::NativeLast,
    );
    let first = tags.iter().next().map(ToString::to_string);
    assert_eq!(first.as_deref(), Some("cp313-cp313t-manylinux_2_36_x86_64"));
    assert!(tags.iter().all(|t| t.abi != "abi3" && t.abi != "cp313"));
    let one = |t: &str| vec![t.to_string()];
    assert!(
        tags.rank(&one("cp32"), &one("abi3t"), &one("linux_x86_64"))
            .is_some()
    );
    assert!(
        tags.rank(&one("cp313"), &one("abi3"), &one("linux_x86_64"))
            .is_none()
    );
}

#[test]
fn recorded_probes_describe_their_interpreters() {
    let python = interpreter(&probe_json("3.12.1"));
    assert_eq!(python.python_version(), (3, 12));
    assert_eq!(python.python_full_version().to_string(), "3.12.1");
    assert_eq!(python.cache_tag(), Some("cpython-312"));
    assert_eq!(
        python.ext_suffix(),
        Some(".cpython-312-x86_64-linux-gnu.so")
    );
    assert_eq!(python.magic_number(), [0xcb, 0x0d, 0x0d, 0x0a]);
    assert_eq!(
        python.paths().purelib,
        Path::new("/tmp/tv-3.12.1/lib/python3.12/site-packages")
    );
    assert_eq!(python.paths().scripts, Path::new("/tmp/tv-3.12.1/bin"));
    assert_eq!(python.paths().data, Path::new("/tmp/tv-3.12.1"));
    assert_eq!(python.scheme_name(), Some("venv"));
    assert_eq!(python.libc().glibc, Some((2, 36)));
    assert_eq!(python.libc().musl, None);
    assert!(python.is_virtual_environment());
    assert_eq!(python.prefix(), Path::new("/tmp/tv-3.12.1"));
    assert_eq!(
        python.base_prefix(),
        Path::new("/root/.pyenv/versions/3.12.1")
    );
    assert_eq!(python.executable(), Path::new("/tmp/tv-3.12.1/bin/python"));
    assert_eq!(
        (python.pointer_bits(), python.sysconfig_platform()),
        (64, "linux-x86_64")
    );
    assert!(!python.is_debug() && !python.is_free_threaded() && !python.has_manylinux_hook());
    let markers = python.markers();
    assert_eq!(markers.get("python_version"), Some("3.12"));
    assert_eq!(markers.get("sys_platform"), Some("linux"));
    assert_eq!(
        markers.get("platform_python_implementation"),
        Some("CPython")
    );
    assert_eq!(markers.get("no_such_marker"), None);
    assert_eq!(python.implementation_name(), "cpython");
    assert_eq!(python.implementation_display(), "CPython");
}

#[test]
fn pythons_older_than_3_7_are_unsupported() {
    let unsupported: Vec<String> = PROBES
        .lines()
        .filter_map(
            |line| match Interpreter::from_probe_json(Path::new("/old/python"), line) {
                Err(Error::Unsupported { version, .. }) => Some(version),
                _ => None,
            },
        )
        .collect();
    assert_eq!(unsupported, ["2.7.18", "3.6.15"]);
    let error = Interpreter::from_probe_json(
        Path::new("/old/python"),
        PROBES.lines().nth(1).unwrap_or_default(),
    )
    .expect_err("3.6 is too old");
    assert_eq!(
        error.to_string(),
        "`/old/python` is Python 3.6.15; keel supports Python 3.7 and newer"
    );
}

#[test]
fn a_probe_result_from_another_probe_version_is_refused() {
    let mut p = probe_json("3.12.1");
    p["probe_version"] = json!(999);
    let error =
        Interpreter::from_probe_json(Path::new("/py"), &p.to_string()).expect_err("refused");
    assert!(
        matches!(error, Error::MalformedProbeOutput { .. }),
        "{error}"
    );
    let error =
        Interpreter::from_probe_json(Path::new("/py"), "{\"result\": 1}").expect_err("refused");
    assert!(error.to_string().contains("`/py`"), "{error}");
}

#[test]
fn a_manylinux_hook_vetoes_single_versions_and_their_aliases() {
    let mut p = probe_json("3.12.1");
    p["manylinux_hook_module"] = json!(true);
    p["manylinux_vetoed"] = json!(["manylinux_2_36_x86_64", "manylinux_2_17_x86_64"]);
    let tags = Tags::new(&interpreter(&p), TagOrder::NativeFirst);
    let platforms: Vec<&str> = tags.iter().take(36).map(|t| t.platform.as_str()).collect();
    assert_eq!(
        platforms[..3],
        [
            "linux_x86_64",
            "manylinux_2_35_x86_64",
            "manylinux_2_34_x86_64"
        ]
    );
    assert!(!platforms.contains(&"manylinux_2_17_x86_64"));
    assert!(!platforms.contains(&"manylinux2014_x86_64"));
    assert!(platforms.contains(&"manylinux2010_x86_64"));
    assert_eq!(tags.len(), 987 - 3 * (2 * 12 + 3));
}

/// `generic_tags` (no real PyPy or GraalPy here): the ABI from `EXT_SUFFIX`,
/// then `none`; `pp3-none-any` for PyPy only.
#[test]
fn pypy_and_graalpy_follow_the_generic_rules() {
    let mut p = probe_json("3.10.13");
    p["markers"]["implementation_name"] = json!("pypy");
    p["config_vars"]["EXT_SUFFIX"] = json!(".pypy310-pp73-x86_64-linux-gnu.so");
    let tags = Tags::new(&interpreter(&p), TagOrder::NativeLast);
    let all: Vec<String> = tags.iter().map(ToString::to_string).collect();
    assert_eq!(all[0], "pp310-pypy310_pp73-manylinux_2_36_x86_64");
    assert_eq!(all[36], "pp310-none-manylinux_2_36_x86_64");
    assert_eq!(all[72], "py310-none-manylinux_2_36_x86_64");
    let any: Vec<&str> = all
        .iter()
        .filter(|t| t.ends_with("-any"))
        .map(String::as_str)
        .collect();
    assert_eq!(any[..3], ["pp3-none-any", "py310-none-any", "py3-none-any"]);
    assert_eq!(all.len(), 36 * 2 + 36 * 12 + 1 + 12);
    assert!(
        !all.iter()
            .any(|t| t.contains("abi3") || t.starts_with("cp"))
    );

    p["markers"]["implementation_name"] = json!("graalpy");
    p["config_vars"]["EXT_SUFFIX"] = json!(".graalpy242-310-native-x86_64-linux.so");
    let tags = Tags::new(&interpreter(&p), TagOrder::NativeFirst);
    let first = tags.iter().next().map(ToString::to_string);
    assert_eq!(
        first.as_deref(),
        Some("graalpy310-graalpy242_310_native-linux_x86_64")
    );
    let any: Vec<String> = tags
        .iter()
        .filter(|t| t.platform == "any")
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        any.first().map(String::as_str),
        Some("py310-none-any"),
        "no graalpy-none-any"
    );
}
