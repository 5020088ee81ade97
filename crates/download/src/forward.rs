//! Plain-`http://` requests through an HTTP proxy, in absolute form.
//!
//! RFC 9112 § 3.2.2: "When making a request to a proxy, other than a
//! CONNECT or server-wide OPTIONS request, a client MUST send the target
//! URI in absolute-form" (`GET http://host/path HTTP/1.1`). `ureq` 3 opens a
//! `CONNECT host:80` tunnel instead, which Squid's default configuration
//! refuses (`http_access deny CONNECT !SSL_ports`) and which proxies that
//! only forward refuse too. (`ureq` 2 sent absolute form; `https://` targets
//! still go through `ureq`'s `CONNECT`, which is right for them.)
//!
//! So plain-http requests through a proxy use their own agent: its resolver
//! sends every connection to the proxy, and its transport rewrites each
//! request line `GET /path HTTP/1.1` to `GET http://host:port/path
//! HTTP/1.1` (adding `Proxy-Authorization` when the proxy URL has
//! credentials) as the request goes out. keel only sends body-less `GET`s,
//! so every transmission that starts with a request line is a request head.
//! This uses `ureq::unversioned`, the part of ureq's API outside semver; it
//! is small and tested against the loopback proxy.

use std::fmt;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, NextTimeout, TcpConnector, Transport,
};

/// An agent whose every connection goes to `proxy` and whose requests are
/// sent in absolute form.
pub(crate) fn agent(config: Config, proxy: Uri, authorization: Option<String>) -> ureq::Agent {
    let connector = ().chain(TcpConnector::default()).chain(AbsoluteForm { authorization });
    let resolver = ToProxy {
        proxy,
        inner: DefaultResolver::default(),
    };
    ureq::Agent::with_parts(config, connector, resolver)
}

/// Resolves every target to the proxy's addresses (the proxy resolves the
/// target's name: a client behind a proxy often cannot).
#[derive(Debug)]
struct ToProxy {
    proxy: Uri,
    inner: DefaultResolver,
}

impl Resolver for ToProxy {
    fn resolve(
        &self,
        _target: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        self.inner.resolve(&self.proxy, config, timeout)
    }
}

/// Wraps the TCP connection to the proxy in [`AbsoluteFormTransport`].
#[derive(Debug)]
struct AbsoluteForm {
    authorization: Option<String>,
}

impl<In: Transport> Connector<In> for AbsoluteForm {
    type Out = AbsoluteFormTransport<In>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let authority = details
            .uri
            .authority()
            .map(|a| a.as_str())
            .unwrap_or_default();
        // Never forward the target's own credentials in the request line.
        let host_port = authority
            .rsplit_once('@')
            .map_or(authority, |(_, rest)| rest);
        Ok(chained.map(|inner| AbsoluteFormTransport {
            inner,
            origin: format!("http://{host_port}"),
            authorization: self.authorization.clone(),
        }))
    }
}

/// A connection to the proxy for one target origin (ureq pools
/// connections by target, so one connection serves one origin).
struct AbsoluteFormTransport<T> {
    inner: T,
    origin: String,
    authorization: Option<String>,
}

impl<T> fmt::Debug for AbsoluteFormTransport<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbsoluteFormTransport")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> Transport for AbsoluteFormTransport<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let output = self.inner.buffers().output();
        let capacity = output.len().max(1);
        let Some(head) = output.get(..amount) else {
            return self.inner.transmit_output(amount, timeout);
        };
        let Some(rewritten) = absolute_form(head, &self.origin, self.authorization.as_deref())
        else {
            return self.inner.transmit_output(amount, timeout);
        };
        for chunk in rewritten.chunks(capacity) {
            let output = self.inner.buffers().output();
            output[..chunk.len()].copy_from_slice(chunk);
            self.inner.transmit_output(chunk.len(), timeout)?;
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }
}

/// `head` with its origin-form request line (`GET /p HTTP/1.1`) in
/// absolute form, and a `Proxy-Authorization` header after it; `None` when
/// `head` does not start with an origin-form request line.
fn absolute_form(head: &[u8], origin: &str, authorization: Option<&str>) -> Option<Vec<u8>> {
    let line_end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&head[..line_end]).ok()?;
    let mut parts = line.splitn(3, ' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let is_method = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
    if !is_method || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return None;
    }
    let mut out = format!("{method} {origin}{target} {version}\r\n").into_bytes();
    if let Some(credentials) = authorization {
        out.extend_from_slice(format!("Proxy-Authorization: {credentials}\r\n").as_bytes());
    }
    out.extend_from_slice(&head[line_end + 2..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_rewritten_to_absolute_form() {
        let head = b"GET /files/a.whl?x=1 HTTP/1.1\r\nhost: pkgs.test:8080\r\n\r\n";
        let out = absolute_form(head, "http://pkgs.test:8080", None).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET http://pkgs.test:8080/files/a.whl?x=1 HTTP/1.1\r\nhost: pkgs.test:8080\r\n\r\n"
        );
        let out = absolute_form(head, "http://h", Some("Basic dTpw")).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with(
            "GET http://h/files/a.whl?x=1 HTTP/1.1\r\nProxy-Authorization: Basic dTpw\r\nhost:"
        ));
    }

    #[test]
    fn anything_else_passes_unchanged() {
        assert_eq!(absolute_form(b"some body bytes", "http://h", None), None);
        assert_eq!(
            absolute_form(b"GET http://h/ HTTP/1.1\r\n\r\n", "http://h", None),
            None
        );
        assert_eq!(
            absolute_form(b"get / HTTP/1.1\r\n\r\n", "http://h", None),
            None
        );
        assert_eq!(absolute_form(b"GET / SPDY\r\n\r\n", "http://h", None), None);
    }
}
