//! keel-testserver against a plain std HTTP/1.1 client written here (over
//! TCP, over TLS with rustls, and through a `CONNECT` tunnel), and against
//! a real `pip download`.

use std::io::{self, BufRead, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use keel_testserver::{Fault, IndexFormat, Server, UrlStyle};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use sha2::{Digest as _, Sha256};

const JSON: &str = "application/vnd.pypi.simple.v1+json";
/// What pip sends.
const PIP_ACCEPT: &str = "application/vnd.pypi.simple.v1+json, \
                          application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";
const PYTHON: &str = "/root/.pyenv/versions/3.11.7/bin/python3.11";

// ---------------------------------------------------------------- client

/// A response as the client saw it.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Why the body ended before `Content-Length`, if it did.
    cut: Option<io::ErrorKind>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let value = values.next().map(|(_, v)| v.as_str());
        assert!(values.next().is_none(), "header {name} sent twice");
        value
    }

    fn content_length(&self) -> usize {
        self.header("content-length")
            .expect("every response has a Content-Length")
            .parse()
            .expect("Content-Length is a number")
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("body is UTF-8")
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("body is JSON")
    }
}

/// One HTTP/1.1 connection.
struct Client {
    addr: SocketAddr,
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to the server");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client {
            addr,
            stream,
            reader,
        }
    }

    /// Sends one request (with `Host`) and reads its response.
    fn send(&mut self, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
        self.send_raw(&request_head(
            self.addr, method, target, "HTTP/1.1", headers,
        ));
        self.read_response(method == "HEAD")
    }

    fn send_raw(&mut self, head: &str) {
        self.stream
            .write_all(head.as_bytes())
            .expect("send the request");
    }

    fn get(&mut self, target: &str) -> Response {
        self.send("GET", target, &[])
    }

    fn read_response(&mut self, head_only: bool) -> Response {
        read_response(&mut self.reader, head_only)
    }

    /// Whether the server closed the connection (EOF or reset).
    fn is_closed(&mut self) -> bool {
        let mut byte = [0_u8; 1];
        match self.reader.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        }
    }
}

/// Reads one response (its body too, unless `head_only`).
fn read_response(reader: &mut impl BufRead, head_only: bool) -> Response {
    let mut line = String::new();
    reader.read_line(&mut line).expect("read the status line");
    let mut parts = line.trim_end().splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "status line {line:?}");
    let status = parts.next().and_then(|s| s.parse().ok()).expect("a status");
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).expect("read a header line");
        assert!(
            line.ends_with("\r\n"),
            "header line {line:?} ends with CRLF"
        );
        let Some((name, value)) = line.trim_end().split_once(':') else {
            break;
        };
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
        cut: None,
    };
    if !head_only {
        let length = response.content_length();
        response.cut = read_up_to(reader, length, &mut response.body);
    }
    response
}

/// A request head with `Host: <host>`.
fn request_head(
    host: SocketAddr,
    method: &str,
    target: &str,
    version: &str,
    headers: &[(&str, &str)],
) -> String {
    let mut head = format!("{method} {target} {version}\r\nHost: {host}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head + "\r\n"
}

/// Reads `length` bytes into `body`; why it stopped early, if it did.
fn read_up_to(
    reader: &mut impl io::Read,
    length: usize,
    body: &mut Vec<u8>,
) -> Option<io::ErrorKind> {
    let mut buf = [0_u8; 8192];
    while body.len() < length {
        let want = (length - body.len()).min(buf.len());
        match reader.read(&mut buf[..want]) {
            Ok(0) => return Some(io::ErrorKind::UnexpectedEof),
            Ok(n) => body.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Some(e.kind()),
        }
    }
    None
}

/// One request on a fresh connection.
fn get(server: &Server, target: &str) -> Response {
    Client::connect(server.addr()).get(target)
}

fn get_accept(server: &Server, target: &str, accept: &str) -> Response {
    Client::connect(server.addr()).send("GET", target, &[("Accept", accept)])
}

// ---------------------------------------------------------------- fixtures

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A directory with `a.bin` (1000 bytes) served.
fn server_with_file() -> (tempfile::TempDir, Server, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..1000_u32).map(|i| (i * 7 % 251) as u8).collect();
    fs_err::write(dir.path().join("a.bin"), &bytes).unwrap();
    let server = Server::start(dir.path());
    (dir, server, bytes)
}

/// Writes a small valid wheel (`METADATA`, `WHEEL`, `RECORD`) of `name`
/// `version` into `dir`; returns its file name.
fn build_wheel(dir: &Path, name: &str, version: &str) -> String {
    let dist = name.replace('-', "_");
    let file_name = format!("{dist}-{version}-py3-none-any.whl");
    let info = format!("{dist}-{version}.dist-info");
    let files = [
        (format!("{dist}/__init__.py"), format!("VERSION = {version:?}\n")),
        (
            format!("{info}/METADATA"),
            format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"),
        ),
        (
            format!("{info}/WHEEL"),
            "Wheel-Version: 1.0\nGenerator: keel-testserver-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
                .to_owned(),
        ),
    ];
    let mut record = String::new();
    let file = fs_err::File::create(dir.join(&file_name)).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (path, content) in &files {
        zip.start_file(path, options).unwrap();
        zip.write_all(content.as_bytes()).unwrap();
        let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(content));
        record.push_str(&format!("{path},sha256={hash},{}\n", content.len()));
    }
    record.push_str(&format!("{info}/RECORD,,\n"));
    zip.start_file(format!("{info}/RECORD"), options).unwrap();
    zip.write_all(record.as_bytes()).unwrap();
    zip.finish().unwrap();
    file_name
}

// ---------------------------------------------------------------- serving

#[test]
fn files_are_served_with_get_and_head() {
    let (_dir, server, bytes) = server_with_file();
    assert_eq!(
        server.file_url("a.bin"),
        format!("{}/files/a.bin", server.url())
    );
    let mut client = Client::connect(server.addr());
    let r = client.get("/files/a.bin");
    assert_eq!((r.status, r.cut), (200, None));
    assert_eq!(r.body, bytes);
    assert_eq!(r.content_length(), 1000);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("connection"), Some("keep-alive"));
    assert!(r.header("date").is_some_and(|d| d.ends_with(" GMT")));
    let head = client.send("HEAD", "/files/a.bin", &[]);
    assert_eq!((head.status, head.content_length()), (200, 1000));
    assert!(head.body.is_empty());
    // The connection still works after a HEAD (no stray body bytes).
    assert_eq!(client.get("/files/a.bin").body, bytes);
    assert_eq!(server.requests("a.bin"), 2, "HEAD is not counted");
    assert_eq!(get(&server, "/files/missing.whl").status, 404);
    assert_eq!(server.requests("missing.whl"), 1);
    assert_eq!(get(&server, "/files/..").status, 404);
    assert_eq!(get(&server, "/files/..%2Fetc%2Fpasswd").status, 404);
    assert_eq!(get(&server, "/nothing").status, 404);
    assert_eq!(server.index_requests(), 0);
}

#[test]
fn connections_are_kept_alive_or_closed_as_asked() {
    let (_dir, server, bytes) = server_with_file();
    let mut client = Client::connect(server.addr());
    for _ in 0..3 {
        assert_eq!(client.get("/files/a.bin").body, bytes);
    }
    let r = client.send("GET", "/files/a.bin", &[("Connection", "close")]);
    assert_eq!(
        (r.header("connection"), r.body.len()),
        (Some("close"), 1000)
    );
    assert!(client.is_closed());

    // HTTP/1.0 closes unless asked to keep alive.
    let mut client = Client::connect(server.addr());
    client.send_raw(&request_head(
        client.addr,
        "GET",
        "/files/a.bin",
        "HTTP/1.0",
        &[],
    ));
    assert_eq!(
        client.read_response(false).header("connection"),
        Some("close")
    );
    assert!(client.is_closed());
    let mut client = Client::connect(server.addr());
    let keep = [("Connection", "keep-alive")];
    client.send_raw(&request_head(
        client.addr,
        "GET",
        "/files/a.bin",
        "HTTP/1.0",
        &keep,
    ));
    assert_eq!(
        client.read_response(false).header("connection"),
        Some("keep-alive")
    );
    assert_eq!(client.get("/files/a.bin").status, 200);

    // Two requests in one write (pipelining) get two responses in order.
    let mut client = Client::connect(server.addr());
    let two = request_head(client.addr, "HEAD", "/files/a.bin", "HTTP/1.1", &[])
        + &request_head(client.addr, "GET", "/files/missing", "HTTP/1.1", &[]);
    client.send_raw(&two);
    assert_eq!(client.read_response(true).status, 200);
    assert_eq!(client.read_response(false).status, 404);
}

#[test]
fn bad_requests_are_refused() {
    let (_dir, server, _) = server_with_file();
    let mut client = Client::connect(server.addr());
    client.send_raw("NONSENSE\r\n\r\n");
    assert_eq!(client.read_response(false).status, 400);
    assert!(client.is_closed());
    let mut client = Client::connect(server.addr());
    let length = [("Content-Length", "3")];
    let post = request_head(client.addr, "POST", "/files/a.bin", "HTTP/1.1", &length);
    client.send_raw(&(post + "abc"));
    let r = client.read_response(false);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    // The body was read: the connection goes on.
    assert_eq!(client.get("/files/a.bin").status, 200);
    let mut client = Client::connect(server.addr());
    client.send_raw("CONNECT example.invalid:443 HTTP/1.1\r\nHost: example.invalid:443\r\n\r\n");
    assert_eq!(
        client.read_response(false).status,
        403,
        "only 127.0.0.1 is tunnelled"
    );
    assert_eq!(server.tunnels(), 0);
    let mut client = Client::connect(server.addr());
    client.send_raw("GET /files/a.bin HTTP/2.0\r\n\r\n");
    assert_eq!(client.read_response(false).status, 505);
    assert_eq!(server.requests("a.bin"), 1);
}

// ---------------------------------------------------------------- faults

#[test]
fn status_faults_answer_then_recover() {
    let (_dir, server, bytes) = server_with_file();
    server.fault(
        "a.bin",
        Fault::Status {
            status: 503,
            times: 2,
        },
    );
    let mut client = Client::connect(server.addr());
    for _ in 0..2 {
        let r = client.get("/files/a.bin");
        assert_eq!((r.status, r.header("retry-after")), (503, Some("0")));
    }
    assert_eq!(
        client.get("/files/a.bin").body,
        bytes,
        "served after two 503s"
    );
    server.fault(
        "a.bin",
        Fault::Status {
            status: 429,
            times: 1,
        },
    );
    assert_eq!(client.get("/files/a.bin").header("retry-after"), Some("0"));
    server.fault(
        "a.bin",
        Fault::Status {
            status: 500,
            times: 1,
        },
    );
    assert_eq!(
        client.send("HEAD", "/files/a.bin", &[]).status,
        200,
        "HEAD uses no fault"
    );
    let r = client.get("/files/a.bin");
    assert_eq!((r.status, r.header("retry-after")), (500, None));
    assert_eq!(client.get("/files/a.bin").status, 200);
    assert_eq!(server.requests("a.bin"), 6);
}

#[test]
fn reset_mid_body_sends_part_then_resets() {
    let (_dir, server, bytes) = server_with_file();
    server.fault("a.bin", Fault::ResetMidBody { times: 1 });
    let mut client = Client::connect(server.addr());
    let r = client.get("/files/a.bin");
    assert_eq!((r.status, r.content_length()), (200, 1000));
    assert!(
        r.body.len() < 1000 && bytes.starts_with(&r.body),
        "{} bytes",
        r.body.len()
    );
    assert_eq!(r.cut, Some(io::ErrorKind::ConnectionReset));
    assert_eq!(get(&server, "/files/a.bin").body, bytes, "one reset only");
}

#[test]
fn truncate_sends_part_then_closes_cleanly() {
    let (_dir, server, bytes) = server_with_file();
    server.fault("a.bin", Fault::Truncate { times: 2 });
    for _ in 0..2 {
        let r = get(&server, "/files/a.bin");
        assert_eq!((r.status, r.content_length()), (200, 1000));
        assert_eq!(r.header("connection"), Some("close"));
        assert_eq!(r.body, bytes[..500]);
        assert_eq!(
            r.cut,
            Some(io::ErrorKind::UnexpectedEof),
            "a clean EOF, not a reset"
        );
    }
    assert_eq!(get(&server, "/files/a.bin").body, bytes);
}

#[test]
fn wrong_bytes_keep_the_length_and_change_the_hash() {
    let (_dir, server, bytes) = server_with_file();
    server.fault("a.bin", Fault::WrongBytes);
    for _ in 0..2 {
        let r = get(&server, "/files/a.bin");
        assert_eq!((r.status, r.body.len(), r.cut), (200, 1000, None));
        assert_ne!(sha256_hex(&r.body), sha256_hex(&bytes));
        let differing = r.body.iter().zip(&bytes).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 1);
    }
    server.clear_faults();
    assert_eq!(get(&server, "/files/a.bin").body, bytes);
}

#[test]
fn wrong_size_serves_a_consistent_other_length() {
    let (_dir, server, bytes) = server_with_file();
    server.fault("a.bin", Fault::WrongSize);
    for _ in 0..2 {
        let r = get(&server, "/files/a.bin");
        assert_eq!((r.status, r.cut), (200, None));
        assert_ne!(r.body.len(), bytes.len());
        assert_eq!(r.content_length(), r.body.len());
    }
    let mut client = Client::connect(server.addr());
    assert_eq!(
        client.send("HEAD", "/files/a.bin", &[]).content_length(),
        1001
    );
}

#[test]
fn not_found_is_permanent_until_cleared() {
    let (_dir, server, bytes) = server_with_file();
    server.fault("a.bin", Fault::NotFound);
    let mut client = Client::connect(server.addr());
    for _ in 0..3 {
        assert_eq!(client.get("/files/a.bin").status, 404);
    }
    assert_eq!(client.send("HEAD", "/files/a.bin", &[]).status, 404);
    server.clear_faults();
    assert_eq!(client.get("/files/a.bin").body, bytes);
    assert_eq!(server.requests("a.bin"), 4);
}

#[test]
fn slow_first_byte_delays_then_recovers() {
    let (_dir, server, bytes) = server_with_file();
    let delay = Duration::from_millis(600);
    server.fault("a.bin", Fault::SlowFirstByte { delay, times: 1 });
    let mut client = Client::connect(server.addr());
    let start = Instant::now();
    assert_eq!(client.get("/files/a.bin").body, bytes);
    assert!(start.elapsed() >= delay, "{:?}", start.elapsed());
    let start = Instant::now();
    assert_eq!(client.get("/files/a.bin").body, bytes);
    assert!(start.elapsed() < delay / 2, "{:?}", start.elapsed());
}

// ---------------------------------------------------------------- index

/// Two projects: `keel-tiny` (two wheels) and `Foo.Bar` (an sdist).
fn index_fixture() -> (tempfile::TempDir, Server, [String; 2]) {
    let dir = tempfile::tempdir().unwrap();
    let one = build_wheel(dir.path(), "keel-tiny", "1.0");
    let two = build_wheel(dir.path(), "keel-tiny", "2.0+local");
    fs_err::write(dir.path().join("Foo.Bar-0.1.tar.gz"), b"not really gzip").unwrap();
    fs_err::write(dir.path().join("notes.txt"), b"not a distribution").unwrap();
    let server = Server::start(dir.path());
    server.set_requires_python(&one, ">=3.8, <4");
    server.yank(&two, Some("broken \"build\""));
    (dir, server, [one, two])
}

#[test]
fn html_index_lists_projects_and_files() {
    let (dir, server, [one, two]) = index_fixture();
    let root = get(&server, "/simple/");
    assert_eq!(
        root.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(root.header("vary"), Some("Accept"));
    assert!(root.text().starts_with("<!DOCTYPE html>"));
    assert!(root.text().contains("<a href=\"foo-bar/\">foo-bar</a>"));
    assert!(root.text().contains("<a href=\"keel-tiny/\">keel-tiny</a>"));
    assert!(!root.text().contains("notes"));
    let page = get(&server, "/simple/keel-tiny/");
    assert_eq!(page.status, 200);
    let hash = |f: &str| sha256_hex(&fs_err::read(dir.path().join(f)).unwrap());
    let first = format!(
        "<a href=\"../../files/{one}#sha256={}\" data-requires-python=\"&gt;=3.8, &lt;4\">{one}</a>",
        hash(&one)
    );
    assert!(page.text().contains(&first), "{}", page.text());
    let encoded = two.replace('+', "%2B");
    let second = format!(
        "<a href=\"../../files/{encoded}#sha256={}\" data-yanked=\"broken &quot;build&quot;\">{two}</a>",
        hash(&two)
    );
    assert!(page.text().contains(&second), "{}", page.text());
    // The relative link resolves to the file.
    assert_eq!(get(&server, &format!("/files/{encoded}")).status, 200);
    server.yank(&one, None);
    assert!(
        get(&server, "/simple/keel-tiny/")
            .text()
            .contains("data-yanked=\"\"")
    );
    assert_eq!(server.index_requests(), 3);
}

#[test]
fn json_index_lists_projects_and_files() {
    let (dir, server, [one, two]) = index_fixture();
    let root = get_accept(&server, "/simple/", JSON);
    assert_eq!(root.header("content-type"), Some(JSON));
    let root = root.json();
    assert_eq!(root["meta"]["api-version"], "1.1");
    assert_eq!(
        root["projects"],
        serde_json::json!([{ "name": "foo-bar" }, { "name": "keel-tiny" }])
    );
    let page = get_accept(&server, "/simple/keel-tiny/", PIP_ACCEPT);
    assert_eq!(page.header("content-type"), Some(JSON));
    let page = page.json();
    assert_eq!(page["name"], "keel-tiny");
    assert_eq!(page["versions"], serde_json::json!(["1.0", "2.0+local"]));
    let files = page["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    let bytes = fs_err::read(dir.path().join(&one)).unwrap();
    assert_eq!(files[0]["filename"], one.as_str());
    assert_eq!(files[0]["url"], server.file_url(&one));
    assert_eq!(files[0]["hashes"]["sha256"], sha256_hex(&bytes));
    assert_eq!(files[0]["size"], bytes.len());
    assert_eq!(files[0]["requires-python"], ">=3.8, <4");
    assert_eq!(files[0]["yanked"], false);
    assert_eq!(
        files[1]["url"],
        format!("{}/files/{}", server.url(), two.replace('+', "%2B"))
    );
    assert_eq!(files[1]["yanked"], "broken \"build\"");
    assert!(files[1].get("requires-python").is_none());
    server.yank(&one, None);
    let page = get_accept(&server, "/simple/keel-tiny/", JSON).json();
    assert_eq!(page["files"][0]["yanked"], true);
    let sdist = get_accept(&server, "/simple/foo-bar/", JSON).json();
    assert_eq!(sdist["files"][0]["filename"], "Foo.Bar-0.1.tar.gz");
    assert_eq!(sdist["versions"], serde_json::json!(["0.1"]));
}

#[test]
fn formats_follow_accept_and_settings() {
    let (_dir, server, _) = index_fixture();
    let content_type = |accept: Option<&str>| {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let r = Client::connect(server.addr()).send("GET", "/simple/keel-tiny/", &headers);
        assert_eq!(r.status, 200);
        r.header("content-type").unwrap().to_owned()
    };
    assert_eq!(content_type(None), "text/html; charset=utf-8");
    assert_eq!(content_type(Some(PIP_ACCEPT)), JSON);
    assert_eq!(content_type(Some("*/*")), "text/html; charset=utf-8");
    assert_eq!(
        content_type(Some(
            "text/html;q=0.5, application/vnd.pypi.simple.v1+json;q=0.4"
        )),
        "text/html; charset=utf-8"
    );
    assert_eq!(
        content_type(Some("application/vnd.pypi.simple.v1+html")),
        "application/vnd.pypi.simple.v1+html"
    );
    server.set_index_format(IndexFormat::Json);
    assert_eq!(content_type(Some("text/html")), JSON);
    assert_eq!(content_type(None), JSON);
    server.set_index_format(IndexFormat::Html);
    assert_eq!(content_type(Some(JSON)), "text/html; charset=utf-8");
    assert_eq!(
        content_type(Some(PIP_ACCEPT)),
        "application/vnd.pypi.simple.v1+html"
    );

    // URL styles.
    server.set_index_format(IndexFormat::Both);
    server.set_url_style(UrlStyle::Relative);
    let json = get_accept(&server, "/simple/keel-tiny/", JSON).json();
    assert!(
        json["files"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with("../../files/")
    );
    server.set_url_style(UrlStyle::Absolute);
    let html = get(&server, "/simple/keel-tiny/");
    assert!(
        html.text()
            .contains(&format!("href=\"{}/files/", server.url()))
    );
}

#[test]
fn names_are_normalized_by_redirects() {
    let (_dir, server, _) = index_fixture();
    for (target, location) in [
        ("/simple", "/simple/"),
        ("/simple/Foo.Bar/", "/simple/foo-bar/"),
        ("/simple/foo__bar", "/simple/foo-bar/"),
        ("/simple/keel-tiny", "/simple/keel-tiny/"),
        ("/simple/KEEL_tiny/?x=1", "/simple/keel-tiny/?x=1"),
    ] {
        let r = get(&server, target);
        assert_eq!(
            (r.status, r.header("location")),
            (301, Some(location)),
            "{target}"
        );
    }
    assert_eq!(get(&server, "/simple/foo-bar/").status, 200);
    assert_eq!(get(&server, "/simple/absent/").status, 404);
    assert_eq!(get(&server, "/simple/keel-tiny/extra").status, 404);
    assert_eq!(server.index_requests(), 8);
}

#[test]
fn files_added_later_are_indexed() {
    let (dir, server, _) = index_fixture();
    assert_eq!(get(&server, "/simple/late/").status, 404);
    let late = build_wheel(dir.path(), "late", "1.0");
    assert!(get(&server, "/simple/late/").text().contains(&late));
    // Rewritten in place: the hash follows after `rescan`.
    let old = sha256_hex(&fs_err::read(dir.path().join(&late)).unwrap());
    fs_err::write(dir.path().join(&late), b"other bytes").unwrap();
    server.rescan();
    let page = get(&server, "/simple/late/");
    assert!(page.text().contains(&sha256_hex(b"other bytes")));
    assert!(!page.text().contains(&old));
}

// ---------------------------------------------------------------- proxy

#[test]
fn absolute_form_requests_are_served_as_a_proxy() {
    let (_dir, server, [one, _]) = index_fixture();
    let mut client = Client::connect(server.addr());
    let r = client.get(&format!("{}/files/{one}", server.url()));
    assert_eq!(r.status, 200);
    assert_eq!(server.proxied(), 1);
    // Any host: absolute links keep the host the client asked for.
    let r = client.send(
        "GET",
        "http://index.invalid/simple/keel-tiny/",
        &[("Accept", JSON)],
    );
    assert_eq!(
        r.json()["files"][0]["url"],
        format!("http://index.invalid/files/{one}")
    );
    assert_eq!(client.get("http://index.invalid").status, 404);
    client.get("/simple/");
    assert_eq!(
        (
            server.proxied(),
            server.requests(&one),
            server.index_requests()
        ),
        (3, 1, 2)
    );
    assert_eq!(server.proxy_url(), server.url());
}

// ---------------------------------------------------------------- tls

/// A rustls client configuration trusting `ca_pem` only (nothing at all
/// for `None`), with ring as keel-download has it.
fn client_config(ca_pem: Option<&str>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(ca_pem.unwrap_or_default().as_bytes()) {
        roots
            .add(certificate.expect("the CA PEM parses"))
            .expect("the CA is a usable trust anchor");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// One HTTP/1.1 connection inside TLS.
struct TlsClient {
    addr: SocketAddr,
    reader: BufReader<TlsStream>,
}

impl TlsClient {
    /// TLS over `tcp` (a connection to the server, or a tunnel to it) for
    /// `server_name`, trusting `ca_pem`; the handshake's error if it fails.
    fn over(
        tcp: TcpStream,
        addr: SocketAddr,
        server_name: &str,
        ca_pem: Option<&str>,
    ) -> Result<TlsClient, io::Error> {
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let name = ServerName::try_from(server_name.to_owned()).expect("a server name");
        let connection = rustls::ClientConnection::new(client_config(ca_pem), name)
            .expect("a client connection");
        let mut stream = rustls::StreamOwned::new(connection, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(TlsClient {
            addr,
            reader: BufReader::new(stream),
        })
    }

    /// A connection to a TLS server trusting its CA, as `server_name`.
    fn connect(server: &Server, server_name: &str) -> TlsClient {
        let tcp = TcpStream::connect(server.addr()).expect("connect to the server");
        TlsClient::over(tcp, server.addr(), server_name, server.ca_pem())
            .expect("the TLS handshake succeeds")
    }

    fn send(&mut self, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
        let head = request_head(self.addr, method, target, "HTTP/1.1", headers);
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes()).expect("send the request");
        stream.flush().expect("send the request");
        read_response(&mut self.reader, method == "HEAD")
    }

    fn get(&mut self, target: &str) -> Response {
        self.send("GET", target, &[])
    }
}

/// The index fixture's files, served over TLS.
fn tls_index_fixture() -> (tempfile::TempDir, Server, [String; 2]) {
    let (dir, plain, files) = index_fixture();
    drop(plain);
    let server = Server::start_tls(dir.path());
    (dir, server, files)
}

#[test]
fn tls_serves_files_and_the_index_to_a_client_that_trusts_its_ca() {
    let (dir, server, [one, _]) = tls_index_fixture();
    assert!(server.is_tls());
    assert!(server.url().starts_with("https://127.0.0.1:"));
    assert_eq!(
        server.file_url(&one),
        format!("https://{}/files/{one}", server.addr())
    );
    let pem = server.ca_pem().expect("a TLS server has a CA");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    // The certificate names the address and `localhost`.
    for name in ["127.0.0.1", "localhost"] {
        let mut client = TlsClient::connect(&server, name);
        let r = client.get(&format!("/files/{one}"));
        assert_eq!(r.status, 200, "as {name}");
        assert_eq!(r.body, fs_err::read(dir.path().join(&one)).unwrap());
        // Keep-alive inside TLS.
        assert_eq!(
            client.send("HEAD", &format!("/files/{one}"), &[]).status,
            200
        );
    }
    assert_eq!(server.requests(&one), 2);
    // Absolute links in the index are https.
    let mut client = TlsClient::connect(&server, "127.0.0.1");
    let page = client.send("GET", "/simple/keel-tiny/", &[("Accept", JSON)]);
    assert_eq!(
        page.json()["files"][0]["url"],
        format!("https://{}/files/{one}", server.addr())
    );
    assert!(server.index_requests() >= 1);
    // A plain server has no CA.
    assert_eq!(Server::start(dir.path()).ca_pem(), None);
}

#[test]
fn every_tls_server_has_its_own_ca_and_no_one_else_trusts_it() {
    let (_dir, server, _) = tls_index_fixture();
    let other = Server::start_tls(server.root());
    assert_ne!(server.ca_pem(), other.ca_pem());
    let untrusted = |ca_pem: Option<&str>| {
        let tcp = TcpStream::connect(server.addr()).unwrap();
        match TlsClient::over(tcp, server.addr(), "127.0.0.1", ca_pem) {
            Ok(_) => panic!("the handshake succeeded with {ca_pem:?}"),
            Err(e) => e.to_string(),
        }
    };
    let message = untrusted(None);
    assert!(message.contains("invalid peer certificate"), "{message}");
    let message = untrusted(other.ca_pem());
    assert!(message.contains("invalid peer certificate"), "{message}");
    // A name the certificate does not have.
    let tcp = TcpStream::connect(server.addr()).unwrap();
    let wrong_name = TlsClient::over(tcp, server.addr(), "pkgs.invalid", server.ca_pem());
    assert!(wrong_name.is_err());
    // Plain HTTP to a TLS server gets no HTTP answer.
    let mut plain = Client::connect(server.addr());
    plain.send_raw("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut head = [0_u8; 5];
    let read = plain.reader.read(&mut head).unwrap_or(0);
    assert_ne!(&head[..read], b"HTTP/", "no plain-text response");
}

#[test]
fn faults_work_over_tls() {
    let (dir, server, [one, _]) = tls_index_fixture();
    let bytes = fs_err::read(dir.path().join(&one)).unwrap();
    let path = format!("/files/{one}");
    server.fault(
        &one,
        Fault::Status {
            status: 500,
            times: 1,
        },
    );
    let mut client = TlsClient::connect(&server, "127.0.0.1");
    assert_eq!(client.get(&path).status, 500);
    assert_eq!(client.get(&path).body, bytes, "then served");

    server.fault(&one, Fault::Truncate { times: 1 });
    let r = TlsClient::connect(&server, "127.0.0.1").get(&path);
    assert_eq!((r.status, r.content_length()), (200, bytes.len()));
    assert_eq!(r.body, bytes[..bytes.len() / 2]);
    assert_eq!(
        r.cut,
        Some(io::ErrorKind::UnexpectedEof),
        "a clean end (close_notify), not a reset"
    );

    server.fault(&one, Fault::ResetMidBody { times: 1 });
    let r = TlsClient::connect(&server, "127.0.0.1").get(&path);
    assert!(r.body.len() < bytes.len() && bytes.starts_with(&r.body));
    assert_eq!(r.cut, Some(io::ErrorKind::ConnectionReset));

    server.fault(&one, Fault::WrongBytes);
    let r = TlsClient::connect(&server, "127.0.0.1").get(&path);
    assert_eq!(r.body.len(), bytes.len());
    assert_ne!(r.body, bytes);
    server.clear_faults();
    assert_eq!(
        TlsClient::connect(&server, "127.0.0.1").get(&path).body,
        bytes
    );
    assert_eq!(server.requests(&one), 6);
}

/// `CONNECT target` on a fresh connection to `proxy`; the response head's
/// status line, and the connection (a tunnel when it says 200).
fn connect(proxy: &Server, target: &str) -> (String, TcpStream) {
    let mut tcp = TcpStream::connect(proxy.addr()).expect("connect to the proxy");
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(tcp, "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").unwrap();
    // Byte by byte, so that nothing of the tunnel is read with the head.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0_u8; 1];
        assert_eq!(tcp.read(&mut byte).expect("read the proxy's answer"), 1);
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).expect("the head is text");
    let status_line = head.lines().next().unwrap_or_default().to_owned();
    (status_line, tcp)
}

#[test]
fn connect_tunnels_to_a_tls_server_and_is_counted() {
    let (dir, target, [one, _]) = tls_index_fixture();
    let proxy_dir = tempfile::tempdir().unwrap();
    let proxy = Server::start(proxy_dir.path());
    let (status, tcp) = connect(&proxy, &target.addr().to_string());
    assert_eq!(status, "HTTP/1.1 200 Connection established");
    // TLS end to end: the client checks the target's certificate.
    let mut client = TlsClient::over(tcp, target.addr(), "127.0.0.1", target.ca_pem())
        .expect("the handshake through the tunnel succeeds");
    for _ in 0..2 {
        let r = client.get(&format!("/files/{one}"));
        assert_eq!(r.body, fs_err::read(dir.path().join(&one)).unwrap());
    }
    assert_eq!(
        (proxy.tunnels(), proxy.proxied()),
        (1, 0),
        "one tunnel, two requests"
    );
    assert_eq!(target.requests(&one), 2);
    assert_eq!(proxy.requests(&one), 0);

    // Only 127.0.0.1; a port nobody listens on is a 502.
    let (status, _) = connect(&proxy, &format!("localhost:{}", target.addr().port()));
    assert!(status.starts_with("HTTP/1.1 403 "), "{status}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (status, _) = connect(&proxy, &format!("127.0.0.1:{port}"));
    assert!(status.starts_with("HTTP/1.1 502 "), "{status}");
    // The TLS server itself is no proxy.
    let mut inside = TlsClient::connect(&target, "127.0.0.1");
    let addr = target.addr().to_string();
    assert_eq!(inside.send("CONNECT", &addr, &[]).status, 405);
    assert_eq!(proxy.tunnels(), 1);

    // Dropping the proxy ends an open tunnel at once.
    let (status, _tunnel) = connect(&proxy, &target.addr().to_string());
    assert!(status.contains(" 200 "), "{status}");
    let start = Instant::now();
    drop(proxy);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

// ---------------------------------------------------------------- threads

#[test]
fn twenty_parallel_keep_alive_downloads() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..20_u32)
        .map(|i| {
            let bytes: Vec<u8> = (0..200_000_u32)
                .map(|j| (j.wrapping_mul(i + 3) % 253) as u8)
                .collect();
            let name = format!("f{i}.bin");
            fs_err::write(dir.path().join(&name), &bytes).unwrap();
            (name, bytes)
        })
        .collect();
    let server = Server::start(dir.path());
    std::thread::scope(|scope| {
        for (name, bytes) in &files {
            let server = &server;
            scope.spawn(move || {
                let mut client = Client::connect(server.addr());
                for _ in 0..3 {
                    let r = client.get(&format!("/files/{name}"));
                    assert!(r.status == 200 && r.body == *bytes, "{name}");
                }
            });
        }
    });
    for (name, _) in &files {
        assert_eq!(server.requests(name), 3);
    }
}

#[test]
fn drop_stops_promptly_with_connections_open() {
    let (_dir, server, _) = server_with_file();
    let addr = server.addr();
    let mut idle = Client::connect(addr);
    let mut kept = Client::connect(addr);
    assert_eq!(kept.get("/files/a.bin").status, 200);
    server.fault(
        "a.bin",
        Fault::SlowFirstByte {
            delay: Duration::from_secs(60),
            times: 1,
        },
    );
    let mut slow = Client::connect(addr);
    slow.send_raw(&request_head(addr, "GET", "/files/a.bin", "HTTP/1.1", &[]));
    while server.requests("a.bin") < 2 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let start = Instant::now();
    drop(server);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(idle.is_closed() && kept.is_closed() && slow.is_closed());
    assert!(
        TcpStream::connect(addr).is_err(),
        "nothing listens any more"
    );
}

// ---------------------------------------------------------------- pip

/// Runs `python -m pip download` with `args`, isolated from the user's
/// configuration and proxies; panics with pip's output if it fails.
fn pip_download(dest: &Path, args: &[&str]) -> String {
    let output = Command::new(PYTHON)
        .args(["-m", "pip", "download", "--isolated", "--no-cache-dir"])
        .args([
            "--disable-pip-version-check",
            "--no-input",
            "--retries",
            "0",
            "--timeout",
            "20",
        ])
        .args(["--no-deps", "--dest"])
        .arg(dest)
        .args(args)
        .env_remove("PIP_INDEX_URL")
        .env_remove("PIP_EXTRA_INDEX_URL")
        .env_remove("PIP_FIND_LINKS")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("no_proxy")
        .env_remove("NO_PROXY")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {PYTHON} -m pip (pip is required): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "pip download {args:?} failed:\n{text}"
    );
    text
}

/// The file names pip left in `dest`.
fn downloaded(dest: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs_err::read_dir(dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn pip_downloads_a_pinned_wheel(format: IndexFormat) {
    let dir = tempfile::tempdir().unwrap();
    let wheel = build_wheel(dir.path(), "keel-tiny", "1.0");
    build_wheel(dir.path(), "keel-tiny", "2.0");
    let server = Server::start(dir.path());
    server.set_index_format(format);
    let dest = tempfile::tempdir().unwrap();
    pip_download(
        dest.path(),
        &["--index-url", &server.index_url(), "keel-tiny==1.0"],
    );
    assert_eq!(downloaded(dest.path()), [wheel.as_str()]);
    assert_eq!(
        fs_err::read(dest.path().join(&wheel)).unwrap(),
        fs_err::read(dir.path().join(&wheel)).unwrap()
    );
    assert_eq!(server.requests(&wheel), 1);
    assert!(server.index_requests() >= 1);
}

#[test]
fn pip_downloads_a_pinned_wheel_json() {
    pip_downloads_a_pinned_wheel(IndexFormat::Json);
}

#[test]
fn pip_downloads_a_pinned_wheel_html() {
    pip_downloads_a_pinned_wheel(IndexFormat::Html);
}

/// pip reads yanks and `Requires-Python` from the index: of 1.0, 2.0
/// (yanked) and 3.0 (Python >= 4), it picks 1.0.
fn pip_skips_yanked_and_incompatible(format: IndexFormat) {
    let dir = tempfile::tempdir().unwrap();
    let one = build_wheel(dir.path(), "keel-tiny", "1.0");
    let two = build_wheel(dir.path(), "keel-tiny", "2.0");
    let three = build_wheel(dir.path(), "keel-tiny", "3.0");
    let server = Server::start(dir.path());
    server.set_index_format(format);
    server.yank(&two, Some("broken"));
    server.set_requires_python(&three, ">=4");
    let dest = tempfile::tempdir().unwrap();
    pip_download(
        dest.path(),
        &["--index-url", &server.index_url(), "keel-tiny"],
    );
    assert_eq!(downloaded(dest.path()), [one]);
    assert_eq!((server.requests(&two), server.requests(&three)), (0, 0));
}

#[test]
fn pip_skips_yanked_and_incompatible_json() {
    pip_skips_yanked_and_incompatible(IndexFormat::Json);
}

#[test]
fn pip_skips_yanked_and_incompatible_html() {
    pip_skips_yanked_and_incompatible(IndexFormat::Html);
}

/// pip through the server as its proxy, for an index whose host does not
/// even resolve.
#[test]
fn pip_downloads_through_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let wheel = build_wheel(dir.path(), "keel-tiny", "1.0");
    let server = Server::start(dir.path());
    let dest = tempfile::tempdir().unwrap();
    let args = [
        "--proxy",
        &server.proxy_url(),
        "--trusted-host",
        "index.invalid",
        "--index-url",
        "http://index.invalid/simple/",
        "keel-tiny==1.0",
    ];
    pip_download(dest.path(), &args);
    assert_eq!(downloaded(dest.path()), [wheel.as_str()]);
    assert_eq!(
        server.proxied(),
        server.index_requests() + server.requests(&wheel)
    );
    assert!(server.proxied() >= 2);
}
