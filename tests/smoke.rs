//! The first scenario every user runs: install the bundled wheels into a
//! fresh virtual environment, import them, run their scripts.

mod common;

use common::*;
use keel_fixtures::bundled;

#[test]
fn fresh_venv_gets_every_bundled_wheel_importable_and_runnable() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    let output = sandbox.install_bundled(&venv, &ALL_BUNDLED_DISTRIBUTIONS, &[]);
    assert_success(&output);
    assert_contains(&stderr(&output), "Installed 6 packages in");
    assert!(stderr(&output).contains(" + keel-demo-hello==1.0.0"));

    assert_eq!(
        python(&venv, "import keel_demo_hello, keel_demo_ns.a, keel_demo_ns.b, keel_demo_legacy, keel_demo_data_extra; print(keel_demo_hello.__version__)").trim(),
        "1.0.0"
    );
    assert_eq!(
        script(&venv, "keel-hello", &[]).trim(),
        "hello from keel_demo_hello 1.0.0"
    );
    assert_eq!(
        script(&venv, "keel-many", &[]).trim(),
        bundled::MANY_MODULE_COUNT.to_string()
    );
    let tool = script(&venv, "keel-data-tool", &[]);
    assert!(tool.starts_with("data tool ok"), "{tool}");
    assert_eq!(script(&venv, "keel-data-sh", &[]).trim(), "sh tool ok");
    assert_environment_matches_record(&venv);
}
