//! Scale: a wheel of 100,000 small modules (1,000 packages of 100) installs
//! cold and warm, `keel verify` finds every file as RECORD lists it, and the
//! modules import.

mod common;

use common::*;
use keel_fixtures::WheelBuilder;

/// Packages of the synthetic wheel, and modules per package (`__init__`
/// included): 100,000 files besides `.dist-info`.
const PACKAGES: usize = 1_000;
const MODULES: usize = 100;

/// The synthetic wheel: `keel_scale/pNNNN/mNNN.py`, each module holding its
/// own number.
fn scale_wheel() -> WheelBuilder {
    let mut wheel = WheelBuilder::new("keel-scale", "1.0.0").file("keel_scale/__init__.py", "");
    for p in 0..PACKAGES {
        let package = format!("keel_scale/p{p:04}");
        wheel = wheel.file(
            &format!("{package}/__init__.py"),
            format!("PACKAGE = {p}\n"),
        );
        for m in 1..MODULES {
            wheel = wheel.file(
                &format!("{package}/m{m:03}.py"),
                format!("VALUE = {}\n", p * MODULES + m),
            );
        }
    }
    wheel
}

#[test]
fn a_wheel_of_100000_files_installs_cold_and_warm_and_verifies() {
    let sandbox = Sandbox::without_wheels("keel-scale-");
    let wheel = scale_wheel()
        .build(&sandbox.wheels)
        .expect("build the wheel");
    let import = "import keel_scale.p0000.m001 as a, keel_scale.p0499.m050 as b, \
                  keel_scale.p0999.m099 as c, keel_scale.p0999 as d; \
                  print(a.VALUE, b.VALUE, c.VALUE, d.PACKAGE)";
    for (name, unpacks) in [("cold", true), ("warm", false)] {
        let venv = sandbox.venv(name);
        let output = sandbox.install_paths(&venv, &[&wheel], &[]);
        assert_success_without_warnings(&output);
        assert_eq!(
            stderr(&output).contains("Unpacked 1"),
            unpacks,
            "{name} install"
        );
        let verify = run(keel().arg("verify").arg("--venv").arg(&venv));
        assert_success_of(&verify, &format!("keel verify of the {name} install"));
        assert_eq!(python(&venv, import).trim(), "1 49950 99999 999");
        let record = site_packages(&venv).join("keel_scale-1.0.0.dist-info/RECORD");
        let rows = fs_err::read_to_string(&record)
            .expect("RECORD")
            .lines()
            .count();
        // The modules, METADATA, WHEEL, INSTALLER, REQUESTED,
        // direct_url.json and RECORD itself.
        assert_eq!(rows, PACKAGES * MODULES + 1 + 6, "{name}: rows of RECORD");
    }
}
