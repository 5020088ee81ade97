//! A loopback HTTP/1.1 server for keel's tests: it serves the files of one
//! directory, a simple package index of them, and faults on demand, so that
//! no test ever talks to a remote index.
//!
//! - [`Server`]: started on `127.0.0.1` on a free port by
//!   [`Server::start`] (plain HTTP) or [`Server::start_tls`] (HTTPS, with a
//!   certificate authority made at start: [`Server::ca_pem`]), stopped
//!   (every thread joined) when dropped. It
//!   serves every file of its directory at `/files/<name>` and a simple
//!   index of the wheels (`*.whl`) and sdists (`*.tar.gz`) at `/simple/`:
//!   PEP 503 HTML and PEP 691 JSON, chosen by the `Accept` header
//!   ([`IndexFormat`]), with PEP 592 yanking ([`Server::yank`]),
//!   `Requires-Python` ([`Server::set_requires_python`]) and PEP 700
//!   sizes. It counts what it was asked ([`Server::requests`],
//!   [`Server::index_requests`]) and also answers as a forward proxy:
//!   `http://` URLs, whatever their host ([`Server::proxied`]), and
//!   `CONNECT 127.0.0.1:<port>` tunnels for `https://` URLs
//!   ([`Server::tunnels`]).
//! - [`Fault`]: what `/files/<name>` does wrong on purpose — an error
//!   status, a reset or truncated body, wrong bytes, a wrong size, a 404, a
//!   slow first byte ([`Server::fault`]).
//! - [`UrlStyle`]: whether index pages link files by relative or absolute
//!   URLs (by default relative in HTML, absolute in JSON).
//!
//! It speaks enough HTTP/1.1 for pip and uv: `Content-Length` on every
//! response, keep-alive (HTTP/1.1 by default, HTTP/1.0 on request) and
//! `Connection: close`, `HEAD`, absolute-form request lines, and
//! `Cache-Control: no-store` so that no client cache hides a request.
//!
//! ```
//! use std::io::{Read as _, Write as _};
//!
//! let dir = tempfile::tempdir()?;
//! fs_err::write(dir.path().join("hello.txt"), "hello")?;
//! let server = keel_testserver::Server::start(dir.path());
//! assert_eq!(server.file_url("hello.txt"), format!("{}/files/hello.txt", server.url()));
//!
//! let mut stream = std::net::TcpStream::connect(server.addr())?;
//! stream.write_all(b"GET /files/hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
//! let mut response = String::new();
//! stream.read_to_string(&mut response)?;
//! assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
//! assert!(response.contains("\r\nContent-Length: 5\r\n"));
//! assert!(response.ends_with("\r\n\r\nhello"));
//! assert_eq!(server.requests("hello.txt"), 1);
//!
//! // The next GET fails with a 503.
//! server.fault("hello.txt", keel_testserver::Fault::Status { status: 503, times: 1 });
//!
//! // The same over HTTPS, trusted by whoever trusts `ca_pem()`.
//! let https = keel_testserver::Server::start_tls(dir.path());
//! assert!(https.file_url("hello.txt").starts_with("https://127.0.0.1:"));
//! assert!(https.ca_pem().is_some_and(|pem| pem.starts_with("-----BEGIN CERTIFICATE-----")));
//! # Ok::<(), std::io::Error>(())
//! ```
#![deny(missing_docs)]

mod accept;
mod catalog;
mod conn;
mod faults;
mod http;
mod index;
mod serve;
mod state;
mod tls;
mod tunnel;

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

pub use catalog::normalize;
pub use faults::Fault;

use state::{Shared, lock};

/// Which formats the simple index serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IndexFormat {
    /// PEP 691 JSON only, whatever the `Accept` header asks.
    Json,
    /// PEP 503 HTML only, whatever the `Accept` header asks.
    Html,
    /// Both, by content negotiation (PEP 691): JSON when the `Accept`
    /// header weighs it highest, HTML otherwise.
    #[default]
    Both,
}

/// How index pages link to the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UrlStyle {
    /// Relative (`../../files/<name>`) in HTML, absolute in JSON.
    #[default]
    Mixed,
    /// Relative in both formats.
    Relative,
    /// Absolute (`http://<host>/files/<name>`) in both formats.
    Absolute,
}

/// A running server; dropping it stops it (and joins all its threads).
///
/// Absolute URLs in index pages use the host the request addressed (its
/// `Host` header, or the host of an absolute-form request line), so a
/// client that reached the server as a proxy for `http://some.host/` keeps
/// using that host, and the server's own scheme (`https` for
/// [`Server::start_tls`]).
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<Vec<JoinHandle<()>>>>,
}

impl Server {
    /// Serves every file in `root` (not recursive) at `/files/<name>`, and
    /// a simple index at `/simple/` built from the `*.whl` and `*.tar.gz`
    /// files in `root`: `/simple/` lists projects,
    /// `/simple/<normalized-name>/` lists that project's files, each link
    /// carrying its sha256 and, when set, its `Requires-Python` and yank.
    /// The directory is read again on every request: files added later are
    /// served.
    ///
    /// # Panics
    ///
    /// If `root` is not a directory or no port can be bound (see
    /// [`Server::try_start`]).
    pub fn start(root: &Path) -> Server {
        match Server::try_start(root) {
            Ok(server) => server,
            Err(e) => panic!(
                "keel-testserver: could not serve {} on 127.0.0.1:0: {e}",
                root.display()
            ),
        }
    }

    /// [`Server::start`], returning the error if `root` is not a directory
    /// or no port can be bound.
    pub fn try_start(root: &Path) -> io::Result<Server> {
        Server::try_start_with(root, None)
    }

    /// [`Server::start`], but HTTPS: TLS (1.2 and 1.3) on every connection,
    /// with a certificate for IP `127.0.0.1` and DNS `localhost` signed by
    /// a certificate authority made for this server alone
    /// ([`Server::ca_pem`]; no client trusts it unless told to). Files, the
    /// index and faults work as over plain HTTP; a truncated body ends with
    /// a TLS `close_notify`, a reset one without. `CONNECT` is refused
    /// (405): the plain server is the proxy.
    ///
    /// # Panics
    ///
    /// As [`Server::start`], or if no certificate can be made.
    pub fn start_tls(root: &Path) -> Server {
        match Server::try_start_tls(root) {
            Ok(server) => server,
            Err(e) => panic!(
                "keel-testserver: could not serve {} over TLS on 127.0.0.1:0: {e}",
                root.display()
            ),
        }
    }

    /// [`Server::start_tls`], returning the error instead of panicking.
    pub fn try_start_tls(root: &Path) -> io::Result<Server> {
        Server::try_start_with(root, Some(tls::Tls::generate()?))
    }

    fn try_start_with(root: &Path, tls: Option<tls::Tls>) -> io::Result<Server> {
        if !fs_err::metadata(root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(addr, catalog::Catalog::new(root), tls));
        let for_thread = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("keel-testserver-accept".to_owned())
            .spawn(move || serve::accept_loop(&listener, &for_thread))?;
        Ok(Server {
            shared,
            accept: Some(accept),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The directory served.
    pub fn root(&self) -> &Path {
        self.shared.catalog.root()
    }

    /// `http://127.0.0.1:PORT` (`https://` for a TLS server), without a
    /// trailing slash.
    pub fn url(&self) -> String {
        format!("{}://{}", self.shared.scheme(), self.shared.addr)
    }

    /// Whether the server speaks HTTPS ([`Server::start_tls`]).
    pub fn is_tls(&self) -> bool {
        self.shared.tls.is_some()
    }

    /// The PEM certificate of the authority that signed a TLS server's
    /// certificate (`-----BEGIN CERTIFICATE-----…`), for a client to trust
    /// (write it to a file and point `SSL_CERT_FILE` at it); `None` for a
    /// plain server.
    pub fn ca_pem(&self) -> Option<&str> {
        self.shared.tls.as_ref().map(|tls| tls.ca_pem.as_str())
    }

    /// The simple index: `http://127.0.0.1:PORT/simple/`.
    pub fn index_url(&self) -> String {
        format!("{}/simple/", self.url())
    }

    /// The URL of a file of the directory: `http://127.0.0.1:PORT/files/<name>`
    /// (the name percent-encoded).
    pub fn file_url(&self, file_name: &str) -> String {
        format!("{}/files/{}", self.url(), http::percent_encode(file_name))
    }

    /// The server as a forward proxy (`HTTP_PROXY`, `HTTPS_PROXY`): the
    /// same as [`Server::url`]. Requests for `http://` URLs of any host are
    /// served from this server's own files and index, and counted by
    /// [`Server::proxied`]. `CONNECT 127.0.0.1:<port>` (how a client
    /// reaches an `https://` URL through a proxy) is answered `200
    /// Connection established` and the bytes relayed both ways to that
    /// port, typically a [`Server::start_tls`] server, and counted by
    /// [`Server::tunnels`]; a `CONNECT` to any other host is refused (403).
    /// Only a plain server tunnels.
    pub fn proxy_url(&self) -> String {
        self.url()
    }

    /// Makes `/files/<file_name>` misbehave, replacing any earlier fault of
    /// that file.
    pub fn fault(&self, file_name: &str, fault: Fault) {
        lock(&self.shared.faults).set(file_name, fault);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// How many `GET` requests `/files/<file_name>` has had (faulty
    /// answers included; `HEAD` requests not).
    pub fn requests(&self, file_name: &str) -> usize {
        lock(&self.shared.file_requests)
            .get(file_name)
            .copied()
            .unwrap_or(0)
    }

    /// How many requests (any method, redirects included) arrived under
    /// `/simple`.
    pub fn index_requests(&self) -> usize {
        self.shared.index_requests.load(Ordering::SeqCst)
    }

    /// How many requests arrived with an absolute-form request line
    /// (`GET http://host/path`), as a client sends them to a forward proxy.
    pub fn proxied(&self) -> usize {
        self.shared.proxied.load(Ordering::SeqCst)
    }

    /// How many `CONNECT` tunnels were opened (answered 200), each one
    /// connection to the target however many requests it then carried.
    pub fn tunnels(&self) -> usize {
        self.shared.tunnels.load(Ordering::SeqCst)
    }

    /// Which formats the index serves (default [`IndexFormat::Both`]).
    pub fn set_index_format(&self, format: IndexFormat) {
        lock(&self.shared.settings).format = format;
    }

    /// How index pages link to files (default [`UrlStyle::Mixed`]).
    pub fn set_url_style(&self, style: UrlStyle) {
        lock(&self.shared.settings).url_style = style;
    }

    /// Marks a file yanked (PEP 592): `data-yanked="<reason>"` in HTML,
    /// `"yanked": "<reason>"` (or `true` without a reason) in JSON.
    pub fn yank(&self, file_name: &str, reason: Option<&str>) {
        lock(&self.shared.settings)
            .yanked
            .insert(file_name.to_owned(), reason.map(str::to_owned));
    }

    /// Sets a file's `Requires-Python` (e.g. `>=3.8`): `data-requires-python`
    /// in HTML (escaped), `"requires-python"` in JSON.
    pub fn set_requires_python(&self, file_name: &str, spec: &str) {
        lock(&self.shared.settings)
            .requires_python
            .insert(file_name.to_owned(), spec.to_owned());
    }

    /// Re-reads the directory and re-hashes every file, even one rewritten
    /// without a change of size or mtime. (The directory is read on every
    /// index request anyway; hashes are cached by size and mtime.)
    pub fn rescan(&self) {
        self.shared.catalog.forget();
        if let Err(e) = self.shared.catalog.scan() {
            eprintln!(
                "keel-testserver: reading {}: {e}",
                self.shared.catalog.root().display()
            );
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop();
        // Wake the accept thread blocked in `accept`.
        let _ = TcpStream::connect_timeout(&self.shared.addr, Duration::from_secs(1));
        let connections = match self.accept.take().map(JoinHandle::join) {
            Some(Ok(connections)) => connections,
            Some(Err(_)) | None => Vec::new(),
        };
        // Connections registered after `stop` were shut down as they
        // registered: every thread is on its way out.
        for connection in connections {
            let _ = connection.join();
        }
    }
}
