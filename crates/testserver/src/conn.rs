//! One accepted connection, plain TCP or TLS over it: what the request
//! reader reads and the responses are written to, and how it ends.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// How long a connection closed cleanly waits for the client to close its
/// end, so that unread request bytes do not turn the close into a reset.
const LINGER: Duration = Duration::from_secs(1);

/// A connection as the server speaks on it.
pub(crate) enum Conn {
    /// HTTP straight on TCP.
    Plain(TcpStream),
    /// HTTP inside TLS; the handshake happens on the first read.
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Conn {
    /// `stream` as a TLS server with `config`.
    pub fn tls(stream: TcpStream, config: &Arc<ServerConfig>) -> io::Result<Conn> {
        let connection = ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
        Ok(Conn::Tls(Box::new(StreamOwned::new(connection, stream))))
    }

    /// The TCP connection underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(stream) => stream,
            Conn::Tls(stream) => stream.get_ref(),
        }
    }

    /// Whether this is a TLS connection.
    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }

    /// Ends the connection cleanly: TLS `close_notify` (once the handshake
    /// is done), a TCP half-close, then a short wait for the client's end
    /// of the close.
    pub fn close_gracefully(self) {
        let stream = match self {
            Conn::Plain(stream) => stream,
            Conn::Tls(mut tls) => {
                if !tls.conn.is_handshaking() {
                    tls.conn.send_close_notify();
                    while tls.conn.wants_write() {
                        match tls.conn.write_tls(&mut tls.sock) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                }
                tls.sock
            }
        };
        if stream.shutdown(Shutdown::Write).is_err() {
            return;
        }
        let _ = stream.set_read_timeout(Some(LINGER));
        let deadline = Instant::now() + LINGER;
        let mut buf = [0_u8; 4096];
        while Instant::now() < deadline {
            match (&stream).read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(stream) => stream.read(buf),
            Conn::Tls(stream) => stream.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(stream) => stream.write(buf),
            Conn::Tls(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(stream) => stream.flush(),
            Conn::Tls(stream) => stream.flush(),
        }
    }
}
