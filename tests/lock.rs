//! Installing from lock files over the network, against a server the test
//! starts on 127.0.0.1 (`keel-testserver`: the pinned PyPI wheels and a
//! PEP 503/691 simple index, with fault modes), never a remote index:
//! a `pylock.toml` of real wheels installs, imports and equals pip's tree;
//! a file served wrong fails before anything changes; a downloaded lock
//! installs offline; damaged downloads are fetched again; hash-pinned
//! requirements are found through the index and must be closed.

mod common;

use std::path::Path;

use common::lock::*;
use common::pypi::real_wheels;
use common::*;
use keel_testserver::Fault;

#[test]
fn a_lock_of_real_wheels_served_on_loopback_installs_imports_and_runs() {
    let served = serve(WEB);
    let sandbox = Sandbox::without_wheels("keel-lock-");
    let lock = write(sandbox.path(), "pylock.toml", &pylock(&served));
    let venv = sandbox.venv("venv");
    let output = install_from(&sandbox, &venv, &lock, &[]);
    assert_success(&output);
    assert_contains(&stderr(&output), "Installed 7 packages");
    assert_flask_runs(&venv);
    // A lock's [[packages.wheels]] are no direct URL references.
    for info in dist_infos(&venv) {
        assert!(
            !site_packages(&venv)
                .join(&info)
                .join("direct_url.json")
                .exists(),
            "{info}"
        );
    }
    for wheel in &served.wheels {
        assert_eq!(
            served.server.requests(&file_name(wheel)),
            1,
            "{}",
            file_name(wheel)
        );
    }
    assert_eq!(downloaded_wheels(&sandbox.cache).len(), 7);
}

#[test]
fn a_file_served_with_a_wrong_hash_fails_the_install_before_anything_changes() {
    let served = serve(WEB);
    let sandbox = Sandbox::without_wheels("keel-lock-");
    let lock = write(sandbox.path(), "pylock.toml", &pylock(&served));
    let venv = sandbox.venv("venv");
    let before = env_snapshot(&venv);
    let werkzeug = file_name(&served.wheels[1]);
    served.server.fault(&werkzeug, Fault::WrongBytes);
    let output = install_from(&sandbox, &venv, &lock, &[]);
    assert_exit(&output, 1);
    let message = stderr(&output);
    assert_contains(&message, "werkzeug");
    assert_contains(&message, &served.server.file_url(&werkzeug));
    assert_contains(&message, &sha256(&served.wheels[1]).hex());
    assert_eq!(
        served.server.requests(&werkzeug),
        1,
        "a complete body with a wrong hash is not retried"
    );
    assert_same_tree(&before, &env_snapshot(&venv));
    assert!(partial_downloads(&sandbox.cache).is_empty());
    assert!(
        !downloaded_wheels(&sandbox.cache)
            .iter()
            .any(|w| file_name(w) == werkzeug)
    );
}

#[test]
fn a_server_error_then_success_is_retried_and_a_cut_body_never_looks_complete() {
    let served = serve(WEB);
    let sandbox = Sandbox::without_wheels("keel-lock-");
    let lock = write(sandbox.path(), "pylock.toml", &pylock(&served));
    let venv = sandbox.venv("venv");
    let (flask, jinja) = (file_name(&served.wheels[0]), file_name(&served.wheels[2]));
    served.server.fault(
        &flask,
        Fault::Status {
            status: 503,
            times: 1,
        },
    );
    served.server.fault(&jinja, Fault::Truncate { times: 1 });
    assert_success(&install_from(&sandbox, &venv, &lock, &[]));
    assert_eq!(served.server.requests(&flask), 2);
    assert_eq!(served.server.requests(&jinja), 2);
    python(&venv, "import flask, jinja2");
}

#[test]
fn a_downloaded_lock_installs_offline_whatever_its_urls_now_say() {
    let served = serve(WEB);
    let sandbox = Sandbox::without_wheels("keel-lock-");
    let text = pylock(&served);
    let lock = write(sandbox.path(), "pylock.toml", &text);
    assert_success(&install_from(&sandbox, &sandbox.venv("first"), &lock, &[]));
    let url = served.server.url();
    drop(served);
    // The files are found by their hashes, not their URLs.
    let moved = write(
        sandbox.path(),
        "pylock.moved.toml",
        &text.replace(&url, "http://127.0.0.1:9"),
    );
    let venv = sandbox.venv("second");
    assert_success(&install_from(&sandbox, &venv, &moved, &["--offline"]));
    python(&venv, "import flask");
}

#[test]
fn offline_names_what_is_missing_and_changes_nothing() {
    let served = serve(WEB);
    let sandbox = Sandbox::without_wheels("keel-lock-");
    let lock = write(sandbox.path(), "pylock.toml", &pylock(&served));
    let venv = sandbox.venv("venv");
    let before = env_snapshot(&venv);
    let output = install_from(&sandbox, &venv, &lock, &["--offline"]);
    assert_exit(&output, 1);
    assert_contains(&stderr(&output), &file_name(&served.wheels[0]));
    assert_same_tree(&before, &env_snapshot(&venv));
    for wheel in &served.wheels {
        assert_eq!(served.server.requests(&file_name(wheel)), 0);
    }
}

#[test]
fn a_download_tmpwatch_emptied_is_fetched_again() {
    let served = serve(WEB);
    let sandbox = Sandbox::without_wheels("keel-lock-");
    let lock = write(sandbox.path(), "pylock.toml", &pylock(&served));
    assert_success(&install_from(&sandbox, &sandbox.venv("first"), &lock, &[]));
    let click = file_name(&served.wheels[5]);
    let cached = downloaded_wheels(&sandbox.cache)
        .into_iter()
        .find(|w| file_name(w) == click)
        .expect("click was downloaded");
    fs_err::remove_file(&cached).expect("tmpwatch deletes the file");
    let venv = sandbox.venv("second");
    assert_success(&install_from(&sandbox, &venv, &lock, &[]));
    assert_eq!(served.server.requests(&click), 2);
    python(&venv, "import click");
}

/// `name==version --hash=sha256:…` per wheel, and the index.
fn requirements(served: &Served, skip: &[&str]) -> String {
    let mut text = format!("--index-url {}\n", served.server.index_url());
    for wheel in &served.wheels {
        let (project, version) = common::pypi::wheel_name_version(wheel);
        if skip.contains(&project.as_str()) {
            continue;
        }
        text += &format!(
            "{project}=={version} \\\n    --hash=sha256:{}\n",
            sha256(wheel).hex()
        );
    }
    text
}

#[test]
fn hashed_requirements_are_found_through_the_simple_index() {
    let served = serve(WEB);
    let sandbox = Sandbox::without_wheels("keel-lock-");
    let file = write(
        sandbox.path(),
        "requirements.txt",
        &requirements(&served, &[]),
    );
    let venv = sandbox.venv("venv");
    assert_success(&install_from(&sandbox, &venv, &file, &[]));
    assert!(served.server.index_requests() >= 7);
    python(&venv, "import flask, markupsafe._speedups");
}

#[test]
fn requirements_that_are_not_closed_are_refused_unless_no_deps() {
    let served = serve(WEB);
    let sandbox = Sandbox::without_wheels("keel-lock-");
    let file = write(
        sandbox.path(),
        "requirements.txt",
        &requirements(&served, &["werkzeug"]),
    );
    let venv = sandbox.venv("venv");
    let before = env_snapshot(&venv);
    let output = install_from(&sandbox, &venv, &file, &[]);
    assert_exit(&output, 1);
    assert_contains(
        &stderr(&output),
        "Flask 3.1.3 requires `werkzeug>=3.1.0`, but it is neither in the set nor installed",
    );
    assert_same_tree(&before, &env_snapshot(&venv));
    assert_success(&install_from(&sandbox, &venv, &file, &["--no-deps"]));
}

#[test]
fn a_requirement_without_a_hash_is_refused_with_the_hash_to_add() {
    let served = serve(WEB);
    let sandbox = Sandbox::without_wheels("keel-lock-");
    let mut text = requirements(&served, &["blinker"]);
    text += "blinker==1.9.0\n";
    let file = write(sandbox.path(), "requirements.txt", &text);
    let output = install_from(&sandbox, &sandbox.venv("venv"), &file, &[]);
    assert_exit(&output, 1);
    let blinker = served
        .wheels
        .iter()
        .find(|w| file_name(w).starts_with("blinker"))
        .expect("blinker");
    assert_contains(
        &stderr(&output),
        &format!("blinker==1.9.0 --hash=sha256:{}", sha256(blinker).hex()),
    );
}

#[test]
fn cache_verify_clean_and_prune_know_the_downloads() {
    let served = serve(WEB);
    let sandbox = Sandbox::without_wheels("keel-lock-");
    let lock = write(sandbox.path(), "pylock.toml", &pylock(&served));
    assert_success(&install_from(&sandbox, &sandbox.venv("first"), &lock, &[]));
    let verified = run(&mut cache_command(&sandbox.cache, &["verify"]));
    assert_success(&verified);
    assert_contains(&stderr(&verified), "Checked 7 downloads: all intact");

    // Someone edits a downloaded wheel in place (same size).
    let click = file_name(&served.wheels[5]);
    let cached = downloaded_wheels(&sandbox.cache)
        .into_iter()
        .find(|w| file_name(w) == click)
        .expect("click was downloaded");
    let mut bytes = fs_err::read(&cached).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs_err::write(&cached, &bytes).expect("edit");
    let damaged = run(&mut cache_command(&sandbox.cache, &["verify"]));
    assert_exit(&damaged, 1);
    assert_contains(
        &stdout(&damaged),
        &format!("{}: damaged download", cached.display()),
    );
    let json = run(&mut cache_command(&sandbox.cache, &["verify", "--json"]));
    let report: serde_json::Value = serde_json::from_str(&stdout(&json)).expect("JSON");
    assert_eq!(report["healthy"], false);
    assert_eq!(
        report["downloads"]["damaged"][0]["path"],
        cached.display().to_string()
    );
    assert_success(&run(&mut cache_command(
        &sandbox.cache,
        &["verify", "--repair"],
    )));
    assert!(!cached.exists(), "--repair removes a damaged download");
    assert_success(&install_from(&sandbox, &sandbox.venv("second"), &lock, &[]));
    assert_eq!(served.server.requests(&click), 2, "fetched again");

    let cleaned = run(&mut cache_command(&sandbox.cache, &["clean", "Flask"]));
    assert_success(&cleaned);
    assert_contains(&stderr(&cleaned), "Removed 1 downloaded wheel");
    assert!(
        !downloaded_wheels(&sandbox.cache)
            .iter()
            .any(|w| file_name(w).starts_with("flask-"))
    );
    assert_eq!(downloaded_wheels(&sandbox.cache).len(), 6);
}

#[test]
fn sync_from_a_lock_leaves_exactly_the_lock() {
    let served = serve(WEB);
    let sandbox = Sandbox::without_wheels("keel-lock-");
    let lock = write(sandbox.path(), "pylock.toml", &pylock(&served));
    let venv = sandbox.venv("venv");
    let idna = real_wheels().some(&["idna"]);
    sandbox.install_paths_ok(&venv, &idna);
    let output = run(
        keel_with_venv_and_cache(keel(), "sync", &venv, &sandbox.cache)
            .arg("-r")
            .arg(&lock),
    );
    assert_success(&output);
    let names: Vec<String> = dist_infos(&venv)
        .iter()
        .map(|d| d.split('-').next().unwrap_or_default().to_lowercase())
        .collect();
    assert_eq!(
        names,
        [
            "blinker",
            "click",
            "flask",
            "itsdangerous",
            "jinja2",
            "markupsafe",
            "werkzeug"
        ]
    );
    python(&venv, "import flask");
}

/// One `[[packages]]` entry of a served wheel, with `extra` lines (a marker).
fn entry(served: &Served, wheel: &Path, extra: &str) -> String {
    let (project, version) = common::pypi::wheel_name_version(wheel);
    let size = fs_err::metadata(wheel).expect("stat").len();
    format!(
        "\n[[packages]]\nname = \"{project}\"\nversion = \"{version}\"\n{extra}\n\
         wheels = [{{ url = \"{}\", size = {size}, hashes = {{ sha256 = \"{}\" }} }}]\n",
        served.server.file_url(&file_name(wheel)),
        sha256(wheel).hex()
    )
}

#[test]
fn extras_and_groups_choose_what_a_multi_use_lock_installs() {
    let served = serve(&["blinker", "click", "itsdangerous"]);
    let sandbox = Sandbox::without_wheels("keel-lock-");
    let mut text = String::from(
        "lock-version = \"1.0\"\ncreated-by = \"keel's tests\"\nextras = [\"cli\"]\n\
         dependency-groups = [\"dev\"]\ndefault-groups = [\"default\"]\n",
    );
    text += &entry(
        &served,
        &served.wheels[0],
        "marker = \"'default' in dependency_groups\"",
    );
    text += &entry(&served, &served.wheels[1], "marker = \"'cli' in extras\"");
    text += &entry(
        &served,
        &served.wheels[2],
        "marker = \"'dev' in dependency_groups\"",
    );
    let lock = write(sandbox.path(), "pylock.toml", &text);
    let names = |venv: &Path| -> Vec<String> {
        dist_infos(venv)
            .iter()
            .map(|d| d.split('-').next().unwrap_or_default().to_string())
            .collect()
    };
    let default = sandbox.venv("default");
    assert_success(&install_from(&sandbox, &default, &lock, &[]));
    assert_eq!(names(&default), ["blinker"]);
    let everything = sandbox.venv("everything");
    assert_success(&install_from(
        &sandbox,
        &everything,
        &lock,
        &["--extra", "cli", "--group", "dev", "--group", "default"],
    ));
    assert_eq!(names(&everything), ["blinker", "click", "itsdangerous"]);
    let dev = sandbox.venv("dev");
    assert_success(&install_from(&sandbox, &dev, &lock, &["--group", "dev"]));
    assert_eq!(names(&dev), ["itsdangerous"]);
    let undeclared = install_from(
        &sandbox,
        &sandbox.venv("undeclared"),
        &lock,
        &["--extra", "gui"],
    );
    assert_exit(&undeclared, 1);
    assert_contains(
        &stderr(&undeclared),
        "extra `gui` is not among the lock's extras (cli)",
    );
}

#[test]
fn every_problem_of_a_lock_is_reported_before_any_download() {
    let served = serve(&["blinker", "click"]);
    let sandbox = Sandbox::without_wheels("keel-lock-");
    let mut text = String::from(
        "lock-version = \"1.0\"\ncreated-by = \"keel's tests\"\nrequires-python = \">=3.99\"\n",
    );
    text += &entry(&served, &served.wheels[0], "requires-python = \">=3.99\"");
    text += &entry(&served, &served.wheels[1], "");
    text += &entry(&served, &served.wheels[1], "");
    let lock = write(sandbox.path(), "pylock.toml", &text);
    let venv = sandbox.venv("venv");
    let before = env_snapshot(&venv);
    let output = install_from(&sandbox, &venv, &lock, &[]);
    assert_exit(&output, 1);
    let message = stderr(&output);
    assert_contains(&message, "cannot be installed: 3 problems:");
    assert_contains(
        &message,
        "requires-python: the lock requires Python >=3.99; the environment has 3.11.7",
    );
    assert_contains(
        &message,
        "packages[0] (blinker 1.9.0): requires Python >=3.99",
    );
    assert_contains(
        &message,
        "packages[2] (click 8.5.1): also selected at packages[1] (click 8.5.1)",
    );
    for wheel in &served.wheels {
        assert_eq!(served.server.requests(&file_name(wheel)), 0);
    }
    assert_same_tree(&before, &env_snapshot(&venv));

    let named = write(sandbox.path(), "deps.toml", &pylock(&served));
    let refused = install_from(&sandbox, &venv, &named, &[]);
    assert_exit(&refused, 1);
    assert_contains(&stderr(&refused), "is not a lock file name");
}

#[test]
fn an_archive_entry_is_a_direct_url_reference_with_its_hashes() {
    let served = serve(&["blinker"]);
    let sandbox = Sandbox::without_wheels("keel-lock-");
    let wheel = &served.wheels[0];
    let url = served.server.file_url(&file_name(wheel));
    let hex = sha256(wheel).hex();
    let text = format!(
        "lock-version = \"1.0\"\ncreated-by = \"keel's tests\"\n[[packages]]\nname = \"blinker\"\n\
         version = \"1.9.0\"\narchive = {{ url = \"{url}\", hashes = {{ sha256 = \"{hex}\" }} }}\n"
    );
    let lock = write(sandbox.path(), "pylock.toml", &text);
    let venv = sandbox.venv("venv");
    assert_success(&install_from(&sandbox, &venv, &lock, &[]));
    let info = site_packages(&venv).join(&dist_infos(&venv)[0]);
    let recorded: serde_json::Value = serde_json::from_slice(
        &fs_err::read(info.join("direct_url.json")).expect("direct_url.json"),
    )
    .expect("JSON");
    assert_eq!(recorded["url"], url.as_str());
    assert_eq!(recorded["archive_info"]["hashes"]["sha256"], hex.as_str());
}

#[test]
fn a_yanked_file_is_installed_with_a_warning() {
    let served = serve(&["blinker"]);
    let name = file_name(&served.wheels[0]);
    served.server.yank(&name, Some("broken on Tuesdays"));
    let sandbox = Sandbox::without_wheels("keel-lock-");
    let file = write(
        sandbox.path(),
        "requirements.txt",
        &requirements(&served, &[]),
    );
    let output = install_from(&sandbox, &sandbox.venv("venv"), &file, &[]);
    assert_success(&output);
    assert_contains(
        &stderr(&output),
        &format!("{name} is yanked: broken on Tuesdays"),
    );
}

#[test]
fn a_lock_fetched_by_url_resolves_paths_against_it_and_may_not_leave_it() {
    let served = serve(&["blinker"]);
    let wheel = &served.wheels[0];
    let entry = |path: &str| {
        format!(
            "lock-version = \"1.0\"\ncreated-by = \"keel's tests\"\n[[packages]]\nname = \"blinker\"\n\
             version = \"1.9.0\"\nwheels = [{{ path = \"{path}\", hashes = {{ sha256 = \"{}\" }} }}]\n",
            sha256(wheel).hex()
        )
    };
    let root = served.server.root().to_path_buf();
    write(&root, "pylock.toml", &entry(&file_name(wheel)));
    write(
        &root,
        "pylock.escape.toml",
        &entry("../../etc/blinker-1.9.0-py3-none-any.whl"),
    );
    let sandbox = Sandbox::without_wheels("keel-lock-");
    let venv = sandbox.venv("venv");
    let by_url = served.server.file_url("pylock.toml");
    assert_success(&run(
        keel_install(&venv, &sandbox.cache).args(["-r", &by_url])
    ));
    assert_eq!(served.server.requests(&file_name(wheel)), 1);
    python(&venv, "import blinker");

    let escaping = served.server.file_url("pylock.escape.toml");
    let output = run(keel_install(&sandbox.venv("other"), &sandbox.cache).args(["-r", &escaping]));
    assert_exit(&output, 1);
    assert_contains(
        &stderr(&output),
        "leaves the directory of a lock fetched by URL",
    );
}
