//! `CONNECT host:port` (RFC 9110 § 9.3.6): the server as the proxy of an
//! `https://` URL. It connects to the target (on `127.0.0.1` only, the one
//! host a test serves), answers `200 Connection established`, then relays
//! bytes both ways until both sides have closed: TLS runs end to end
//! between the client and the target, the proxy sees ciphertext only.

use std::io::{self, BufReader, Write as _};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use crate::conn::Conn;
use crate::http::{self, Request};
use crate::state::Shared;

/// How long connecting to the target may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a `CONNECT` may go: `127.0.0.1:<port>`, else the status and
/// message to refuse it with.
fn target(request: &Request) -> Result<SocketAddr, (u16, &'static str)> {
    let authority = request.target.authority.as_deref().unwrap_or_default();
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or((400, "CONNECT needs host:port"))?;
    let port: u16 = port.parse().map_err(|_| (400, "CONNECT needs host:port"))?;
    if host != "127.0.0.1" {
        return Err((403, "only 127.0.0.1 is tunnelled"));
    }
    Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
}

/// Answers a `CONNECT` on a plain connection and relays until the tunnel
/// closes. `reader` may already hold bytes the client sent after its
/// request head: they go to the target first.
pub(crate) fn serve(request: &Request, reader: BufReader<Conn>, shared: &Shared) {
    let refuse = |mut conn: Conn, status: u16, message: &str| {
        let body = format!("{message}\n");
        let headers = [("Content-Type", "text/plain; charset=utf-8".to_owned())];
        let sent = http::write_head(&mut conn, status, &headers, body.len(), false)
            .and_then(|()| conn.write_all(body.as_bytes()))
            .and_then(|()| conn.flush());
        if sent.is_ok() {
            conn.close_gracefully();
        }
    };
    let addr = match target(request) {
        Ok(addr) => addr,
        Err((status, message)) => return refuse(reader.into_inner(), status, message),
    };
    let upstream = match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
        Ok(upstream) => upstream,
        Err(_) => return refuse(reader.into_inner(), 502, "cannot connect to the target"),
    };
    // Registered, so that stopping the server also wakes the relay.
    let Some(id) = shared.register(&upstream) else {
        return refuse(reader.into_inner(), 502, "cannot relay to the target");
    };
    shared.tunnels.fetch_add(1, Ordering::SeqCst);
    let early = reader.buffer().to_vec();
    let client = match reader.into_inner() {
        Conn::Plain(stream) => stream,
        // The caller tunnels plain connections only.
        tls @ Conn::Tls(_) => {
            drop(tls);
            shared.deregister(id);
            return;
        }
    };
    let _ = relay(&client, &upstream, &early);
    shared.deregister(id);
}

/// Copies `client` to `upstream` (after `early`) and `upstream` to
/// `client` at once, each direction half-closing its destination when its
/// source ends.
fn relay(client: &TcpStream, upstream: &TcpStream, early: &[u8]) -> io::Result<()> {
    let timeout = client.read_timeout()?;
    upstream.set_read_timeout(timeout)?;
    upstream.set_write_timeout(timeout)?;
    let _ = upstream.set_nodelay(true);
    (&*client).write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    thread::scope(|scope| {
        let outbound = thread::Builder::new()
            .name("keel-testserver-tunnel".to_owned())
            .spawn_scoped(scope, move || {
                if (&*upstream).write_all(early).is_ok() {
                    let _ = io::copy(&mut &*client, &mut &*upstream);
                }
                let _ = upstream.shutdown(Shutdown::Write);
            });
        if outbound.is_err() {
            // No thread to read the client: end the tunnel now.
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
            return;
        }
        let _ = io::copy(&mut &*upstream, &mut &*client);
        let _ = client.shutdown(Shutdown::Write);
    });
    Ok(())
}
