//! Installing from a lock over HTTPS, end to end: the real `keel` binary,
//! a real `python3 -m venv` environment, and `keel-testserver` speaking TLS
//! on 127.0.0.1 with a certificate authority made for that one server.
//!
//! A wheel served by a CA nobody trusts is refused before anything
//! changes, with the URL named and the certificate called untrusted;
//! `SSL_CERT_FILE` naming the CA makes the same lock install; an unusable
//! `SSL_CERT_FILE` is an error naming the file; `HTTPS_PROXY` tunnels with
//! `CONNECT` through the plain test server (which counts the tunnels) and
//! `NO_PROXY` bypasses it; faults over TLS are retried into a verified
//! install or end in a clear error.
//!
//! Every keel process here gets only the TLS and proxy variables its
//! scenario sets: whatever this machine exports (`SSL_CERT_FILE` is set
//! globally on some) is removed first.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::lock::*;
use common::*;
use keel_fixtures::bundled;
use keel_testserver::{Fault, Server};

/// The fixture wheels served over HTTPS: a plain package, one with
/// `.data` scripts and headers, and one of 300 modules.
const WHEELS: [&str; 3] = [bundled::HELLO_V1, bundled::DATA, bundled::MANY];

/// What every scenario starts from: a sandbox with the fixture wheels, a
/// TLS server holding copies of [`WHEELS`], a `pylock.toml` naming their
/// `https://127.0.0.1:…/files/…` URLs, the server's CA in `ca.pem`, and a
/// fresh environment.
struct Scenario {
    sandbox: Sandbox,
    served: Served,
    lock: PathBuf,
    /// The CA's PEM file, as `SSL_CERT_FILE` names it.
    ca_pem: String,
    venv: PathBuf,
}

fn scenario() -> Scenario {
    let sandbox = Sandbox::new();
    let served = serve_wheels_tls(&sandbox.wheels(&WHEELS));
    assert!(served.server.url().starts_with("https://127.0.0.1:"));
    let lock = write(sandbox.path(), "pylock.toml", &pylock(&served));
    let ca = served.server.ca_pem().expect("a TLS server has a CA");
    let ca_pem = text(&write(sandbox.path(), "ca.pem", ca));
    let venv = sandbox.venv("venv");
    Scenario {
        sandbox,
        served,
        lock,
        ca_pem,
        venv,
    }
}

/// A path as an environment variable's value.
fn text(path: &Path) -> String {
    path.to_str().expect("a UTF-8 temporary path").to_owned()
}

/// Whether this process's variable `name` changes how keel reaches the
/// network or what it trusts: `SSL_CERT_*`, any `*_proxy` / `*_PROXY`, and
/// pip's `PIP_*` (keel reads none of those, but none may leak in).
fn is_network_variable(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.starts_with("SSL_CERT") || upper.ends_with("_PROXY") || upper.starts_with("PIP_")
}

/// `keel install --venv VENV --cache-dir CACHE -r LOCK` with none of this
/// machine's TLS, proxy or pip variables, and exactly `vars` set instead.
fn install_with(scenario: &Scenario, venv: &Path, cache: &Path, vars: &[(&str, &str)]) -> Output {
    let mut command: Command = keel_install(venv, cache);
    command.arg("-r").arg(&scenario.lock);
    for (name, _) in std::env::vars_os() {
        if is_network_variable(&name.to_string_lossy()) {
            command.env_remove(&name);
        }
    }
    for (name, value) in vars {
        command.env(name, value);
    }
    run(&mut command)
}

/// [`install_with`] into the scenario's environment with its cache.
fn install(scenario: &Scenario, vars: &[(&str, &str)]) -> Output {
    install_with(scenario, &scenario.venv, &scenario.sandbox.cache, vars)
}

/// The three fixture packages import, their scripts run, and every file
/// matches its RECORD.
#[track_caller]
fn assert_installed(venv: &Path) {
    let version = python(
        venv,
        "import keel_demo_hello, keel_demo_data, keel_demo_many; print(keel_demo_hello.__version__)",
    );
    assert_eq!(version.trim(), "1.0.0");
    assert_contains(
        &script(venv, "keel-hello", &[]),
        "hello from keel_demo_hello 1.0.0",
    );
    assert_eq!(
        script(venv, "keel-many", &[]).trim(),
        bundled::MANY_MODULE_COUNT.to_string()
    );
    assert_environment_matches_record(venv);
}

#[test]
fn https_wheels_install_only_when_ssl_cert_file_trusts_the_servers_ca() {
    let s = scenario();
    let before = env_snapshot(&s.venv);

    // No SSL_CERT_FILE: the webpki roots alone do not trust a private CA.
    let output = install(&s, &[]);
    assert_exit(&output, 1);
    let message = stderr(&output);
    assert_contains(&message, &format!("{}/files/", s.served.server.url()));
    assert!(
        WHEELS.iter().any(|w| message.contains(w)),
        "a wheel's URL is named:\n{message}"
    );
    assert_contains(&message, "certificate is not trusted");
    assert_contains(&message, "SSL_CERT_FILE");
    assert!(
        !message.contains("attempts"),
        "an untrusted certificate is not retried:\n{message}"
    );
    assert_same_tree(&before, &env_snapshot(&s.venv));
    assert!(downloaded_wheels(&s.sandbox.cache).is_empty());
    assert!(partial_downloads(&s.sandbox.cache).is_empty());
    for wheel in WHEELS {
        assert_eq!(
            s.served.server.requests(wheel),
            0,
            "no request is sent over an untrusted connection"
        );
    }

    // SSL_CERT_FILE naming the test CA: the same lock installs.
    let output = install(&s, &[("SSL_CERT_FILE", s.ca_pem.as_str())]);
    assert_success(&output);
    assert_contains(&stderr(&output), "Installed 3 packages");
    assert_installed(&s.venv);
    for wheel in WHEELS {
        assert_eq!(s.served.server.requests(wheel), 1, "{wheel}");
    }
    assert_eq!(downloaded_wheels(&s.sandbox.cache).len(), 3);
}

#[test]
fn an_ssl_cert_file_that_is_missing_or_holds_no_certificate_is_an_error_naming_it() {
    let s = scenario();
    let before = env_snapshot(&s.venv);
    let missing = s.sandbox.path().join("no-such-ca.pem");
    let empty = write(s.sandbox.path(), "empty-ca.pem", "no certificates here\n");
    let key_only = write(
        s.sandbox.path(),
        "key-only.pem",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    for (file, reason) in [
        (&missing, "No such file"),
        (&empty, "holds no PEM certificate"),
        (&key_only, "holds no PEM certificate"),
    ] {
        let output = install(&s, &[("SSL_CERT_FILE", &text(file))]);
        assert_exit(&output, 1);
        let message = stderr(&output);
        assert_contains(&message, &file.display().to_string());
        assert_contains(&message, "SSL_CERT_FILE");
        assert_contains(&message, reason);
        assert_same_tree(&before, &env_snapshot(&s.venv));
    }
    for wheel in WHEELS {
        assert_eq!(s.served.server.requests(wheel), 0, "{wheel}");
    }
    assert!(downloaded_wheels(&s.sandbox.cache).is_empty());
}

#[test]
fn https_goes_through_https_proxy_by_connect_unless_no_proxy_matches() {
    let s = scenario();
    let proxy_root = tempfile::tempdir().expect("tempdir");
    let proxy = Server::start(proxy_root.path());
    let proxy_url = proxy.proxy_url();

    let output = install(
        &s,
        &[
            ("SSL_CERT_FILE", s.ca_pem.as_str()),
            ("HTTPS_PROXY", proxy_url.as_str()),
        ],
    );
    assert_success(&output);
    assert_installed(&s.venv);
    assert!(proxy.tunnels() >= 1, "the downloads were tunnelled");
    assert!(
        proxy.tunnels() <= WHEELS.len(),
        "at most one tunnel per download: {}",
        proxy.tunnels()
    );
    assert_eq!(proxy.proxied(), 0, "https is never forwarded in the clear");
    for wheel in WHEELS {
        assert_eq!(s.served.server.requests(wheel), 1, "{wheel}");
        assert_eq!(proxy.requests(wheel), 0, "{wheel}");
    }

    // NO_PROXY=127.0.0.1 (and HTTP_PROXY, which is for http:// only): a
    // fresh proxy, never used.
    let bypassed = Server::start(proxy_root.path());
    let bypassed_url = bypassed.proxy_url();
    for (proxy_var, no_proxy) in [
        ("HTTPS_PROXY", ("NO_PROXY", "127.0.0.1")),
        ("HTTP_PROXY", ("no_proxy", "localhost")),
    ] {
        let venv = s.sandbox.venv(&format!("venv-{proxy_var}"));
        let cache = s.sandbox.path().join(format!("cache-{proxy_var}"));
        let vars = [
            ("SSL_CERT_FILE", s.ca_pem.as_str()),
            (proxy_var, bypassed_url.as_str()),
            no_proxy,
        ];
        assert_success(&install_with(&s, &venv, &cache, &vars));
        assert_installed(&venv);
    }
    assert_eq!(
        (bypassed.tunnels(), bypassed.proxied()),
        (0, 0),
        "the proxy was bypassed"
    );
    for wheel in WHEELS {
        assert_eq!(s.served.server.requests(wheel), 3, "{wheel}");
    }
}

#[test]
fn faults_over_tls_are_retried_into_a_verified_install() {
    let s = scenario();
    let server = &s.served.server;
    let (hello, data, many) = (bundled::HELLO_V1, bundled::DATA, bundled::MANY);
    server.fault(
        hello,
        Fault::Status {
            status: 500,
            times: 1,
        },
    );
    server.fault(data, Fault::Truncate { times: 1 });
    server.fault(many, Fault::ResetMidBody { times: 1 });
    assert_success(&install(&s, &[("SSL_CERT_FILE", s.ca_pem.as_str())]));
    for wheel in [hello, data, many] {
        assert_eq!(server.requests(wheel), 2, "{wheel}: one fault, one retry");
    }
    assert!(partial_downloads(&s.sandbox.cache).is_empty());
    assert_installed(&s.venv);
}

#[test]
fn a_wrong_file_over_tls_fails_the_install_before_anything_changes() {
    let s = scenario();
    let before = env_snapshot(&s.venv);
    let data = bundled::DATA;
    s.served.server.fault(data, Fault::WrongBytes);
    let output = install(&s, &[("SSL_CERT_FILE", s.ca_pem.as_str())]);
    assert_exit(&output, 1);
    let message = stderr(&output);
    assert_contains(&message, "keel-demo-data");
    assert_contains(&message, &s.served.server.file_url(data));
    assert_contains(&message, &sha256(s.served.wheel("keel-demo-data")).hex());
    assert_eq!(
        s.served.server.requests(data),
        1,
        "a complete body with a wrong hash is not retried"
    );
    assert_same_tree(&before, &env_snapshot(&s.venv));
    assert!(partial_downloads(&s.sandbox.cache).is_empty());
}
