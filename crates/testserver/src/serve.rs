//! The server's threads: accepting connections, reading requests off each
//! connection (inside TLS for a TLS server), routing them to files or index
//! pages or a `CONNECT` tunnel, and writing the (possibly faulty)
//! responses.

use std::io::{self, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::accept::negotiate;
use crate::catalog::normalize;
use crate::conn::Conn;
use crate::faults::{Effect, alter};
use crate::http::{self, ReadError, Request, percent_encode};
use crate::index;
use crate::state::{Shared, lock};
use crate::tunnel;

/// How long a connection may sit idle (or stall mid-request, or refuse to
/// read a response) before its thread gives up on it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// Accepts connections until the server stops, one thread each; returns
/// the threads still running, for the caller to join.
pub(crate) fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) -> Vec<JoinHandle<()>> {
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    loop {
        let accepted = listener.accept();
        if shared.stopping() {
            break;
        }
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, or the peer gave up before accept:
                // back off a little and carry on.
                eprintln!("keel-testserver: accept failed: {e}");
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        for done in threads.extract_if(.., |t| t.is_finished()) {
            let _ = done.join();
        }
        let Some(id) = shared.register(&stream) else {
            continue;
        };
        let for_thread = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name("keel-testserver-conn".to_owned())
            .spawn(move || {
                connection(stream, &for_thread);
                for_thread.deregister(id);
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                eprintln!("keel-testserver: could not spawn a connection thread: {e}");
                shared.deregister(id);
            }
        }
    }
    threads
}

/// How a connection goes on after a response.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    KeepAlive,
    Close,
    /// Close with a TCP reset (`SO_LINGER` is already 0).
    Reset,
}

/// Serves requests on one connection until it closes, idles out, or a
/// response ends it; a `CONNECT` (on a plain connection) turns it into a
/// tunnel.
fn connection(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let conn = match &shared.tls {
        Some(tls) => match Conn::tls(stream, &tls.config) {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("keel-testserver: cannot set up TLS: {e}");
                return;
            }
        },
        None => Conn::Plain(stream),
    };
    let mut reader = BufReader::new(conn);
    let next = loop {
        let request = match http::read_request(&mut reader) {
            Ok(request) => request,
            Err(ReadError::Idle | ReadError::Io) => break Next::Close,
            Err(ReadError::Bad { status, message }) => {
                let reply = Reply::text(status, message);
                let _ = send(reader.get_mut(), reply, false, false, shared);
                break Next::Close;
            }
        };
        if request.method == "CONNECT" {
            if !reader.get_ref().is_tls() {
                return tunnel::serve(&request, reader, shared);
            }
            let reply = Reply::text(405, "CONNECT is served by the plain-http server only")
                .header("Allow", "GET, HEAD");
            let _ = send(reader.get_mut(), reply, false, false, shared);
            break Next::Close;
        }
        match respond(&request, reader.get_mut(), shared) {
            Ok(Next::KeepAlive) if !shared.stopping() => {}
            Ok(Next::KeepAlive) => break Next::Close,
            Ok(next) => break next,
            Err(_) => break Next::Reset,
        }
    };
    if next == Next::Close {
        reader.into_inner().close_gracefully();
    }
}

/// A response, and how to spoil it.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// Wait this long before the first byte.
    delay: Option<Duration>,
    /// Send only half of the body (`Content-Length` still says all of it),
    /// then close: with a reset if `true`, cleanly if `false`.
    cut: Option<bool>,
}

impl Reply {
    fn new(status: u16, content_type: &str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            headers: vec![
                ("Content-Type", content_type.to_owned()),
                ("Cache-Control", "no-store".to_owned()),
            ],
            body,
            delay: None,
            cut: None,
        }
    }

    fn text(status: u16, message: &str) -> Reply {
        Reply::new(
            status,
            "text/plain; charset=utf-8",
            format!("{message}\n").into_bytes(),
        )
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    fn redirect(location: String) -> Reply {
        Reply::text(301, &format!("moved to {location}")).header("Location", location)
    }
}

fn respond(request: &Request, conn: &mut Conn, shared: &Shared) -> io::Result<Next> {
    if request.target.authority.is_some() {
        shared.proxied.fetch_add(1, Ordering::SeqCst);
    }
    let head_only = request.method == "HEAD";
    let reply = if head_only || request.method == "GET" {
        route(request, shared)
    } else {
        Reply::text(405, "only GET and HEAD are served").header("Allow", "GET, HEAD")
    };
    send(conn, reply, head_only, request.keep_alive(), shared)
}

fn route(request: &Request, shared: &Shared) -> Reply {
    let segments: Vec<&str> = request.target.segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["files", name] => serve_file(name, request.method == "GET", shared),
        ["simple", rest @ ..] => {
            shared.index_requests.fetch_add(1, Ordering::SeqCst);
            serve_index(rest, request, shared)
        }
        _ => Reply::text(404, "not found: try /simple/ or /files/<name>"),
    }
}

fn serve_file(name: &str, get: bool, shared: &Shared) -> Reply {
    let effect = if get {
        *lock(&shared.file_requests)
            .entry(name.to_owned())
            .or_default() += 1;
        lock(&shared.faults).take(name)
    } else {
        lock(&shared.faults).peek(name)
    };
    match effect {
        Effect::NotFound => return Reply::text(404, &format!("{name}: not found (fault)")),
        Effect::Status(status) => {
            let reply = Reply::text(status, &format!("{name}: status {status} (fault)"));
            return if matches!(status, 429 | 503) {
                reply.header("Retry-After", "0")
            } else {
                reply
            };
        }
        _ => {}
    }
    let bytes = match shared.catalog.read(name) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Reply::text(404, &format!("{name}: not found")),
        Err(e) => return Reply::text(500, &format!("{name}: {e}")),
    };
    let mut reply = Reply::new(200, content_type(name), alter(effect, bytes));
    match effect {
        Effect::Reset => reply.cut = Some(true),
        Effect::Truncate => reply.cut = Some(false),
        Effect::Delay(delay) => reply.delay = Some(delay),
        _ => {}
    }
    reply
}

fn content_type(file_name: &str) -> &'static str {
    let extension = file_name.rsplit_once('.').map_or("", |(_, e)| e);
    match extension {
        "whl" | "zip" => "application/zip",
        // Never `Content-Encoding: gzip`: clients would unpack the sdist.
        "gz" => "application/gzip",
        "json" => "application/json",
        "html" => "text/html; charset=utf-8",
        "txt" | "toml" | "metadata" | "cfg" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `/simple/<rest>`: redirects to the canonical URL (trailing slash,
/// normalized name), or the page, negotiated by `Accept`.
fn serve_index(rest: &[&str], request: &Request, shared: &Shared) -> Reply {
    let query = request
        .target
        .query
        .as_ref()
        .map_or(String::new(), |q| format!("?{q}"));
    let project = match rest {
        [] => return Reply::redirect(format!("/simple/{query}")),
        [""] => None,
        [name] | [name, ""] if normalize(name) != *name || rest.len() == 1 => {
            let location = format!("/simple/{}/{query}", percent_encode(&normalize(name)));
            return Reply::redirect(location);
        }
        [name, ""] => Some(*name),
        _ => return Reply::text(404, "not found: /simple/<project>/ has no subpages"),
    };
    let dists = match shared.catalog.scan() {
        Ok(dists) => dists,
        Err(e) => return Reply::text(500, &format!("reading the served directory: {e}")),
    };
    let settings = lock(&shared.settings);
    let rep = negotiate(request.header("accept"), settings.format);
    let page = match project {
        None => index::project_list(&dists, rep),
        Some(project) => {
            let origin = format!(
                "{}://{}",
                shared.scheme(),
                request
                    .authority()
                    .map_or_else(|| shared.addr.to_string(), str::to_owned)
            );
            match index::project_page(project, &dists, &settings, &origin, rep) {
                Some(page) => page,
                None => return Reply::text(404, &format!("no project {project}")),
            }
        }
    };
    Reply::new(200, page.content_type, page.body).header("Vary", "Accept")
}

/// Writes `reply` (only its head for a `HEAD` request), spoiled as it
/// says; returns how the connection goes on.
fn send(
    out: &mut Conn,
    reply: Reply,
    head_only: bool,
    keep_alive: bool,
    shared: &Shared,
) -> io::Result<Next> {
    if let Some(delay) = reply.delay {
        sleep_unless_stopped(delay, shared);
    }
    let keep_alive = keep_alive && reply.cut.is_none();
    let mut buffered = io::BufWriter::with_capacity(64 * 1024, &mut *out);
    http::write_head(
        &mut buffered,
        reply.status,
        &reply.headers,
        reply.body.len(),
        keep_alive,
    )?;
    if head_only {
        buffered.flush()?;
        return Ok(if keep_alive {
            Next::KeepAlive
        } else {
            Next::Close
        });
    }
    let Some(reset) = reply.cut else {
        buffered.write_all(&reply.body)?;
        buffered.flush()?;
        return Ok(if keep_alive {
            Next::KeepAlive
        } else {
            Next::Close
        });
    };
    buffered.write_all(&reply.body[..reply.body.len() / 2])?;
    buffered.flush()?;
    drop(buffered);
    if !reset {
        return Ok(Next::Close);
    }
    // Give the client a moment to read what was sent, then reset.
    sleep_unless_stopped(Duration::from_millis(50), shared);
    rustix::net::sockopt::set_socket_linger(out.tcp(), Some(Duration::ZERO))?;
    Ok(Next::Reset)
}

/// Sleeps for `delay`, waking early if the server stops.
fn sleep_unless_stopped(delay: Duration, shared: &Shared) {
    let deadline = Instant::now() + delay;
    while !shared.stopping() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        thread::sleep(left.min(Duration::from_millis(10)));
    }
}
