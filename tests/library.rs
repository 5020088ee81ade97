//! The `keel_installer::install` library call: what its report says on a
//! cold and a warm cache, with stamps and with full verification, for
//! reinstalls, upgrades and already-installed wheels, and what its errors
//! carry.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::*;
use keel_fixtures::{WheelBuilder, bundled};
use keel_installer::{
    Error, InstallOptions, InstallReport, InstalledWheel, LinkMode, Reporter, Verification, install,
};

/// Installs `wheels` into `venv` with the sandbox's cache.
fn install_into(
    sandbox: &Sandbox,
    venv: &Path,
    wheels: &[PathBuf],
    configure: impl FnOnce(&mut InstallOptions),
) -> Result<InstallReport, Error> {
    let mut options = InstallOptions::new(venv, &sandbox.cache);
    configure(&mut options);
    install(wheels, &options)
}

/// Every message of an error and its sources, one per line.
fn chain(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push('\n');
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// How many regular files an archive tree holds (every file of the wheel).
fn files_in(tree: &Path) -> usize {
    walkdir::WalkDir::new(tree)
        .into_iter()
        .filter(|e| e.as_ref().unwrap().file_type().is_file())
        .count()
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap()
}

#[test]
fn cold_cache_report_lists_the_installed_wheels_as_unpacked() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    let wheels = [
        sandbox.wheel(bundled::HELLO_V1),
        sandbox.wheel(bundled::LEGACY),
    ];
    let report = install_into(&sandbox, &venv, &wheels, |_| {}).unwrap();

    let mut installed: Vec<(String, String)> = report
        .installed
        .iter()
        .map(|w| (w.name.to_string(), w.version.to_string()))
        .collect();
    installed.sort();
    assert_eq!(
        installed,
        [
            ("keel-demo-hello".to_owned(), "1.0.0".to_owned()),
            ("keel-demo-legacy".to_owned(), "0.9".to_owned()),
        ]
    );
    assert!(report.installed.iter().all(|w| w.replaced.is_none()));
    let hello = report
        .installed
        .iter()
        .find(|w| w.name == "keel-demo-hello")
        .unwrap();
    assert_eq!(absolute(&hello.wheel), absolute(&wheels[0]));

    let mut unpacked = report.unpacked.clone();
    unpacked.sort();
    assert_eq!(unpacked, [bundled::LEGACY, bundled::HELLO_V1]);
    assert!(report.reused.is_empty(), "{:?}", report.reused);
    assert!(report.repaired.is_empty(), "{:?}", report.repaired);
    assert!(report.unchanged.is_empty(), "{:?}", report.unchanged);
    assert!(report.link_mode.is_some());
    let total = files_in(&sandbox.only_archive_tree("keel-demo-hello"))
        + files_in(&sandbox.only_archive_tree("keel-demo-legacy"));
    assert_eq!(report.files_hashed + report.files_trusted, total);

    assert_eq!(
        python(
            &venv,
            "import keel_demo_hello, keel_demo_legacy; print('ok')"
        )
        .trim(),
        "ok"
    );
    assert_environment_matches_record(&venv);
}

#[test]
fn warm_cache_report_lists_reused_archives_proven_by_stamps() {
    let sandbox = Sandbox::new();
    let wheels = [sandbox.wheel(bundled::MANY)];
    let first = sandbox.venv("first");
    install_into(&sandbox, &first, &wheels, |_| {}).unwrap();

    let second = sandbox.venv("second");
    let report = install_into(&sandbox, &second, &wheels, |_| {}).unwrap();
    assert_eq!(report.reused, [bundled::MANY]);
    assert!(report.unpacked.is_empty(), "{:?}", report.unpacked);
    assert!(report.repaired.is_empty(), "{:?}", report.repaired);
    assert_eq!(report.installed.len(), 1);
    assert_eq!(report.installed[0].name, "keel-demo-many");
    assert!(report.files_trusted > 0, "{report:?}");
    let total = files_in(&sandbox.only_archive_tree("keel-demo-many"));
    assert!(total > bundled::MANY_MODULE_COUNT);
    assert_eq!(report.files_hashed + report.files_trusted, total);
    assert_eq!(
        script(&second, "keel-many", &[]).trim(),
        bundled::MANY_MODULE_COUNT.to_string()
    );
    assert_environment_matches_record(&second);
}

#[test]
fn full_verification_hashes_every_file_even_on_a_warm_cache() {
    let sandbox = Sandbox::new();
    let wheels = [sandbox.wheel(bundled::MANY), sandbox.wheel(bundled::DATA)];
    let first = sandbox.venv("first");
    install_into(&sandbox, &first, &wheels, |_| {}).unwrap();

    let second = sandbox.venv("second");
    let report = install_into(&sandbox, &second, &wheels, |o| {
        o.verification = Verification::Full;
    })
    .unwrap();
    let total = files_in(&sandbox.only_archive_tree("keel-demo-many"))
        + files_in(&sandbox.only_archive_tree("keel-demo-data"));
    assert_eq!(report.files_hashed, total, "{report:?}");
    assert_eq!(report.files_trusted, 0, "{report:?}");
    assert_eq!(report.reused.len(), 2);
    assert_environment_matches_record(&second);
}

#[test]
fn report_names_the_link_mode_actually_used() {
    let sandbox = Sandbox::new();
    let wheels = [sandbox.wheel(bundled::NS_A)];
    for (name, requested, allowed) in [
        ("copy", LinkMode::Copy, &[LinkMode::Copy][..]),
        (
            "hardlink",
            LinkMode::Hardlink,
            &[LinkMode::Hardlink, LinkMode::Copy][..],
        ),
        ("symlink", LinkMode::Symlink, &[LinkMode::Symlink][..]),
        (
            "clone",
            LinkMode::Clone,
            &[LinkMode::Clone, LinkMode::Hardlink, LinkMode::Copy][..],
        ),
    ] {
        let venv = sandbox.venv(name);
        let report = install_into(&sandbox, &venv, &wheels, |o| o.link_mode = requested).unwrap();
        let used = report.link_mode.expect("a link mode");
        assert!(
            allowed.contains(&used),
            "{requested:?} installed with {used:?}"
        );
        assert_eq!(
            python(&venv, "import keel_demo_ns.a; print('ok')").trim(),
            "ok"
        );
    }
}

#[test]
fn reinstall_report_says_what_it_replaced() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    let wheels = [sandbox.wheel(bundled::HELLO_V1)];
    install_into(&sandbox, &venv, &wheels, |_| {}).unwrap();

    let report = install_into(&sandbox, &venv, &wheels, |o| o.reinstall = true).unwrap();
    assert_eq!(
        report.installed,
        [InstalledWheel {
            name: keel_wheel::PackageName::new("keel-demo-hello"),
            version: "1.0.0".parse().unwrap(),
            replaced: Some("1.0.0".parse().unwrap()),
            wheel: report.installed[0].wheel.clone(),
        }]
    );
    assert_eq!(absolute(&report.installed[0].wheel), absolute(&wheels[0]));
    assert_eq!(report.reused, [bundled::HELLO_V1]);
    assert!(report.unchanged.is_empty());
    assert_environment_matches_record(&venv);
}

#[test]
fn upgrade_report_says_which_version_was_replaced() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    install_into(&sandbox, &venv, &[sandbox.wheel(bundled::HELLO_V1)], |_| {}).unwrap();
    let report =
        install_into(&sandbox, &venv, &[sandbox.wheel(bundled::HELLO_V2)], |_| {}).unwrap();
    assert_eq!(report.installed.len(), 1);
    assert_eq!(report.installed[0].version.to_string(), "2.0.0");
    assert_eq!(
        report.installed[0]
            .replaced
            .as_ref()
            .map(ToString::to_string),
        Some("1.0.0".to_string())
    );
    assert_eq!(report.unpacked, [bundled::HELLO_V2]);
    assert_environment_matches_record(&venv);
}

#[test]
fn already_installed_version_is_reported_unchanged_and_not_touched() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    let wheels = [sandbox.wheel(bundled::HELLO_V1)];
    install_into(&sandbox, &venv, &wheels, |_| {}).unwrap();
    let before = snapshot(&venv);

    let report = install_into(&sandbox, &venv, &wheels, |_| {}).unwrap();
    assert!(report.installed.is_empty(), "{report:?}");
    assert_eq!(
        unchanged(&report),
        [("keel-demo-hello".to_owned(), "1.0.0".to_owned())]
    );
    assert!(report.unpacked.is_empty() && report.reused.is_empty());
    assert_eq!(report.link_mode, None);
    assert_eq!(report.files_hashed + report.files_trusted, 0);
    assert_same_tree(&before, &snapshot(&venv));

    // A distribution whose name is spelled differently in the file name,
    // METADATA and .dist-info is still recognised as the same one.
    let legacy = [sandbox.wheel(bundled::LEGACY)];
    install_into(&sandbox, &venv, &legacy, |_| {}).unwrap();
    let report = install_into(&sandbox, &venv, &legacy, |_| {}).unwrap();
    assert!(report.installed.is_empty(), "{report:?}");
    assert_eq!(
        unchanged(&report),
        [("keel-demo-legacy".to_owned(), "0.9".to_owned())]
    );
    assert_environment_matches_record(&venv);
}

/// Records the reporter calls it receives.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
}

impl Reporter for Recorder {
    fn on_unpack_start(&self, wheel: &str, bytes: u64) {
        assert!(bytes > 0);
        self.calls.lock().unwrap().push(format!("start {wheel}"));
    }

    fn on_unpack_complete(&self, wheel: &str) {
        self.calls.lock().unwrap().push(format!("done {wheel}"));
    }
}

#[test]
fn reporter_hears_of_unpacks_only_on_a_cold_cache() {
    let sandbox = Sandbox::new();
    let wheels = [sandbox.wheel(bundled::HELLO_V1)];
    let recorder = Arc::new(Recorder::default());

    let cold = sandbox.venv("cold");
    install_into(&sandbox, &cold, &wheels, |o| {
        o.reporter = Some(recorder.clone());
    })
    .unwrap();
    assert_eq!(
        *recorder.calls.lock().unwrap(),
        [
            format!("start {}", bundled::HELLO_V1),
            format!("done {}", bundled::HELLO_V1)
        ]
    );

    recorder.calls.lock().unwrap().clear();
    let warm = sandbox.venv("warm");
    install_into(&sandbox, &warm, &wheels, |o| {
        o.reporter = Some(recorder.clone());
    })
    .unwrap();
    assert!(recorder.calls.lock().unwrap().is_empty());
}

#[test]
fn corrupt_wheel_error_names_the_wheel_and_the_entry() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    install_into(&sandbox, &venv, &[sandbox.wheel(bundled::HELLO_V1)], |_| {}).unwrap();
    let bad = WheelBuilder::new("keel-demo-corrupt", "1.0")
        .file("keel_demo_corrupt/__init__.py", "X = 1\n")
        .override_record(|record| record.replace(",6\n", ",7\n"))
        .build(&sandbox.path().join("bad"))
        .unwrap();
    let before = snapshot(&venv);

    let error = install_into(
        &sandbox,
        &venv,
        &[sandbox.wheel(bundled::NS_A), bad.clone()],
        |_| {},
    )
    .unwrap_err();
    let text = chain(&error);
    assert!(
        text.contains(&bad.display().to_string()),
        "the error does not name the wheel:\n{text}"
    );
    assert!(
        text.contains("keel_demo_corrupt/__init__.py"),
        "the error does not name the entry:\n{text}"
    );
    assert_same_tree(&before, &snapshot(&venv));
    assert!(sandbox.archives("keel-demo-corrupt").is_empty());
    assert_environment_matches_record(&venv);
}

#[test]
fn not_a_venv_is_an_environment_error_naming_the_path() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("plain");
    fs_err::create_dir(&dir).unwrap();
    let error = install_into(&sandbox, &dir, &[sandbox.wheel(bundled::NS_A)], |_| {}).unwrap_err();
    assert!(matches!(error, Error::Environment(_)), "{error:?}");
    let text = chain(&error);
    assert!(text.contains(&dir.display().to_string()), "{text}");
    assert!(text.contains("python3 -m venv"), "{text}");
    assert_eq!(
        fs_err::read_dir(&dir).unwrap().count(),
        0,
        "keel wrote into a directory that is not a venv"
    );
}

#[test]
fn two_versions_of_one_distribution_is_a_typed_error() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    let v1 = sandbox.wheel(bundled::HELLO_V1);
    let v2 = sandbox.wheel(bundled::HELLO_V2);
    let error = install_into(&sandbox, &venv, &[v1.clone(), v2.clone()], |_| {}).unwrap_err();
    match &error {
        Error::SameDistributionTwice {
            name,
            first,
            second,
        } => {
            assert_eq!(name, "keel-demo-hello");
            assert_eq!(absolute(first), absolute(&v1));
            assert_eq!(absolute(second), absolute(&v2));
        }
        other => panic!("unexpected error: {other:?}"),
    }
    assert!(error.to_string().contains(&v1.display().to_string()));
    assert!(!site_packages(&venv).join("keel_demo_hello").exists());
}

#[test]
fn missing_wheel_error_names_it() {
    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    let missing = sandbox.path().join("keel_demo_gone-1.0-py3-none-any.whl");
    let error = install_into(&sandbox, &venv, std::slice::from_ref(&missing), |_| {}).unwrap_err();
    let text = chain(&error);
    assert!(text.contains(&missing.display().to_string()), "{text}");
}

/// `(name, version)` of each distribution the report left unchanged.
fn unchanged(report: &keel_installer::InstallReport) -> Vec<(String, String)> {
    report
        .unchanged
        .iter()
        .map(|d| (d.name.to_string(), d.version.to_string()))
        .collect()
}

/// A wheel chosen from an index or a lock's `[[packages.wheels]]` is no
/// direct URL reference: no `direct_url.json`. A direct one (a lock's
/// `[packages.archive]`) records its URL and every hash, and RECORD lists
/// the file (*Recording the Direct URL Origin of installed distributions*).
#[test]
fn the_origin_of_each_wheel_decides_its_direct_url_json() {
    use keel_installer::{Origin, WheelRequest, install_requests};
    use keel_wheel::{HashAlgorithm, RecordHash};

    let sandbox = Sandbox::new();
    let venv = sandbox.venv("venv");
    let hello = sandbox.wheel(bundled::HELLO_V1);
    let legacy = sandbox.wheel(bundled::LEGACY);
    let bytes = fs_err::read(&legacy).unwrap();
    let sha256 = RecordHash::of(HashAlgorithm::Sha256, &bytes);
    let sha512 = RecordHash::of(HashAlgorithm::Sha512, &bytes);
    let url = url::Url::parse("http://127.0.0.1:9/files/legacy.whl").unwrap();
    let requests = [
        WheelRequest {
            path: hello,
            origin: Origin::Index,
            sha256: None,
        },
        WheelRequest {
            path: legacy,
            origin: Origin::DirectUrl {
                url: url.clone(),
                hashes: vec![sha256.clone(), sha512.clone()],
            },
            sha256: Some(sha256.hex()),
        },
    ];
    let options = InstallOptions::new(&venv, &sandbox.cache);
    install_requests(&requests, &options).expect("install");
    let site = site_packages(&venv);
    let infos = dist_infos(&venv);
    assert_eq!(infos.len(), 2, "{infos:?}");
    let (hello_info, legacy_info) = match infos[0].starts_with("keel_demo_hello") {
        true => (&infos[0], &infos[1]),
        false => (&infos[1], &infos[0]),
    };
    let hello_dir = site.join(hello_info);
    assert!(!hello_dir.join("direct_url.json").exists());
    assert!(
        !fs_err::read_to_string(hello_dir.join("RECORD"))
            .unwrap()
            .contains("direct_url.json")
    );

    let legacy_dir = site.join(legacy_info);
    let recorded: serde_json::Value =
        serde_json::from_slice(&fs_err::read(legacy_dir.join("direct_url.json")).unwrap()).unwrap();
    assert_eq!(
        recorded,
        serde_json::json!({
            "url": url.as_str(),
            "archive_info": {
                "hash": format!("sha256={}", sha256.hex()),
                "hashes": {"sha256": sha256.hex(), "sha512": sha512.hex()},
            },
        })
    );
    assert!(
        fs_err::read_to_string(legacy_dir.join("RECORD"))
            .unwrap()
            .contains("direct_url.json,sha256=")
    );
}
