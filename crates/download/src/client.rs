//! The HTTP client: blocking `ureq` agents (one per route: direct, through
//! the `http://` proxy, through the `https://` proxy), timeouts, TLS roots,
//! `User-Agent: keel/<version>`, redirects, and offline mode.
//!
//! Redirects are followed here rather than by `ureq`, so that each hop picks
//! its own route (`NO_PROXY` may match one host and not the next) and the
//! final URL is known. Statuses are classified here too: 2xx is a response,
//! 408/429/5xx transient, any other a refusal. So are transport errors: a
//! certificate the TLS handshake refuses is fatal (asking again gets the
//! same certificate), other connection errors transient.

use std::path::PathBuf;
use std::time::Duration;

use ureq::http;
use url::Url;

use crate::error::redacted;
use crate::proxy::{ProxyConfig, ProxyUrl};
use crate::retry::{Failure, Transient, is_retryable_status, parse_retry_after};
use crate::{DownloadOptions, Error, forward, tls};

/// `keel/<version>`.
pub const USER_AGENT: &str = concat!("keel/", env!("CARGO_PKG_VERSION"));

const MAX_REDIRECTS: usize = 10;

/// A response with a 2xx status, and the URL it finally came from.
pub(crate) struct Response {
    pub url: Url,
    pub inner: http::Response<ureq::Body>,
}

impl Response {
    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner.headers().get(name)?.to_str().ok()
    }
}

/// The agents and the settings every request shares.
pub(crate) struct Client {
    direct: ureq::Agent,
    via_http_proxy: Option<ureq::Agent>,
    via_https_proxy: Option<ureq::Agent>,
    proxies: ProxyConfig,
    offline: bool,
    timeout: Duration,
    connect_timeout: Duration,
    /// `SSL_CERT_FILE`, for the message of an untrusted certificate.
    ca_file: Option<PathBuf>,
}

impl Client {
    pub fn new(options: &DownloadOptions) -> Result<Self, Error> {
        let proxies = options.proxy.resolve()?;
        let tls = tls::config(options.ca_file.as_deref())?;
        let config = |proxy: Option<ureq::Proxy>| {
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .user_agent(USER_AGENT)
                .timeout_resolve(Some(options.connect_timeout))
                .timeout_connect(Some(options.connect_timeout))
                .timeout_per_read(Some(options.timeout))
                .timeout_per_write(Some(options.timeout))
                .max_idle_connections(options.parallel.max(1) * 2)
                .max_idle_connections_per_host(options.parallel.max(1))
                .tls_config(tls.clone())
                .proxy(proxy)
                .build()
        };
        let via_http_proxy = match &proxies.http {
            // An http:// proxy: absolute-form requests (see `forward`).
            Some(proxy) if proxy.url.scheme() == "http" => Some(forward::agent(
                config(None),
                to_uri(proxy)?,
                basic_authorization(&proxy.url),
            )),
            // An https:// proxy (TLS to the proxy): a CONNECT tunnel.
            Some(proxy) => Some(tunnel_agent(config, proxy)?),
            None => None,
        };
        let via_https_proxy = proxies
            .https
            .as_ref()
            .map(|p| tunnel_agent(config, p))
            .transpose()?;
        Ok(Client {
            direct: ureq::Agent::new_with_config(config(None)),
            via_http_proxy,
            via_https_proxy,
            proxies,
            offline: options.offline,
            timeout: options.timeout,
            connect_timeout: options.connect_timeout,
            ca_file: options.ca_file.clone(),
        })
    }

    /// Whether requests are refused ([`Error::Offline`]).
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// `GET url`, following redirects. `accept` is the `Accept` header;
    /// `identity` asks for the bytes as stored (`Accept-Encoding:
    /// identity`), so that `Content-Length` is the file's size.
    pub fn get(&self, url: &Url, accept: &str, identity: bool) -> Result<Response, Failure> {
        if self.offline {
            return Err(Failure::Fatal(Error::Offline { url: url.clone() }));
        }
        let mut url = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let (bare, authorization) = split_credentials(&url);
            let mut request = self
                .agent_for(&url)
                .get(bare.as_str())
                .header("Accept", accept);
            if let Some(authorization) = authorization {
                request = request.header("Authorization", authorization);
            }
            if identity {
                request = request.header("Accept-Encoding", "identity");
            }
            let response = request.call().map_err(|e| self.classify(&url, e))?;
            let status = response.status().as_u16();
            match status {
                200..=299 => {
                    return Ok(Response {
                        url,
                        inner: response,
                    });
                }
                301 | 302 | 303 | 307 | 308 => url = redirect_target(&url, &response)?,
                status if is_retryable_status(status) => {
                    let retry_after = response
                        .headers()
                        .get("Retry-After")
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    return Err(Failure::Transient(Transient::Status {
                        status,
                        retry_after,
                    }));
                }
                status => return Err(Failure::Refused { url, status }),
            }
        }
        Err(Failure::Fatal(Error::Redirect {
            url,
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        }))
    }

    fn agent_for(&self, url: &Url) -> &ureq::Agent {
        let proxied = self.proxies.for_url(url).and_then(|_| match url.scheme() {
            "http" => self.via_http_proxy.as_ref(),
            _ => self.via_https_proxy.as_ref(),
        });
        proxied.unwrap_or(&self.direct)
    }

    /// What a `ureq` error means for retrying.
    pub fn classify(&self, url: &Url, error: ureq::Error) -> Failure {
        use ureq::Error as E;
        match error {
            E::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => {
                Failure::Transient(Transient::Timeout(self.connect_timeout))
            }
            E::Timeout(_) => Failure::Transient(Transient::Timeout(self.timeout)),
            E::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                Failure::Transient(Transient::Timeout(self.timeout))
            }
            // rustls reports a refused certificate as an I/O error of the
            // handshake (`InvalidData`, the rustls error inside).
            E::Io(e) if certificate_error(&e).is_some() => {
                let refused = certificate_error(&e).map_or_else(String::new, ToString::to_string);
                Failure::Fatal(Error::Request {
                    url: url.clone(),
                    reason: self.untrusted(&refused),
                })
            }
            E::Io(_)
            | E::HostNotFound
            | E::ConnectionFailed
            | E::Protocol(_)
            | E::ConnectProxyFailed(_) => Failure::Transient(Transient::Connect(error.to_string())),
            other => Failure::Fatal(Error::Request {
                url: url.clone(),
                reason: other.to_string(),
            }),
        }
    }
}

impl Client {
    /// Why a refused certificate is refused, and what keel trusts.
    fn untrusted(&self, refused: &str) -> String {
        let trusted = match &self.ca_file {
            Some(path) => format!(
                "the webpki roots and the certificates of SSL_CERT_FILE `{}`",
                path.display()
            ),
            None => "the webpki roots only (SSL_CERT_FILE is not set; it names a PEM file \
                     of extra CA certificates)"
                .to_owned(),
        };
        format!("the server's TLS certificate is not trusted ({refused}); keel trusts {trusted}")
    }
}

/// The rustls certificate error inside a handshake's I/O error, if that is
/// what it is.
fn certificate_error(error: &std::io::Error) -> Option<&rustls::Error> {
    let inner = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    matches!(
        inner,
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
    )
    .then_some(inner)
}

/// An agent that tunnels through `proxy` with `CONNECT`.
fn tunnel_agent(
    config: impl Fn(Option<ureq::Proxy>) -> ureq::config::Config,
    proxy: &ProxyUrl,
) -> Result<ureq::Agent, Error> {
    let ureq_proxy = ureq::Proxy::new(proxy.url.as_str()).map_err(|e| Error::InvalidProxy {
        variable: proxy.variable.to_owned(),
        value: redacted(&proxy.url),
        reason: e.to_string(),
    })?;
    Ok(ureq::Agent::new_with_config(config(Some(ureq_proxy))))
}

fn to_uri(proxy: &ProxyUrl) -> Result<http::Uri, Error> {
    proxy
        .url
        .as_str()
        .parse()
        .map_err(|e: http::uri::InvalidUri| Error::InvalidProxy {
            variable: proxy.variable.to_owned(),
            value: redacted(&proxy.url),
            reason: e.to_string(),
        })
}

/// `url` without its credentials, and the `Authorization` they make (an
/// index URL `https://user:token@host/simple/`; a link resolved against it
/// keeps them, a redirect elsewhere does not).
fn split_credentials(url: &Url) -> (std::borrow::Cow<'_, Url>, Option<String>) {
    let Some(authorization) = basic_authorization(url) else {
        return (std::borrow::Cow::Borrowed(url), None);
    };
    let mut bare = url.clone();
    // Both only fail for URLs that cannot have credentials.
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    (std::borrow::Cow::Owned(bare), Some(authorization))
}

/// `Basic base64(user:password)` for a URL with credentials.
fn basic_authorization(url: &Url) -> Option<String> {
    use base64::Engine as _;
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8_lossy()
            .into_owned()
    };
    let pair = format!(
        "{}:{}",
        decode(url.username()),
        decode(url.password().unwrap_or(""))
    );
    Some(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    ))
}

/// Where a 3xx response points, resolved against the URL that answered.
fn redirect_target(from: &Url, response: &http::Response<ureq::Body>) -> Result<Url, Failure> {
    let bad = |reason: String| {
        Failure::Fatal(Error::Redirect {
            url: from.clone(),
            reason,
        })
    };
    let location = response
        .headers()
        .get("Location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            bad(format!(
                "HTTP {} without a Location",
                response.status().as_u16()
            ))
        })?;
    let target = from
        .join(location)
        .map_err(|e| bad(format!("redirects to `{location}`, not a URL ({e})")))?;
    if !matches!(target.scheme(), "http" | "https") {
        return Err(bad(format!("redirects to {target}, not an http(s) URL")));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::tests::pem_of;

    #[test]
    fn proxy_credentials_become_basic_authorization() {
        let url = Url::parse("http://us%40er:p%3Ass@proxy:3128").unwrap();
        // base64("us@er:p:ss")
        assert_eq!(
            basic_authorization(&url).as_deref(),
            Some("Basic dXNAZXI6cDpzcw==")
        );
        assert_eq!(
            basic_authorization(&Url::parse("http://proxy:3128").unwrap()),
            None
        );
    }

    #[test]
    fn url_credentials_move_to_an_authorization_header() {
        let url = Url::parse("https://__token__:s3cret@pkgs.test/simple/demo/").unwrap();
        let (bare, authorization) = split_credentials(&url);
        assert_eq!(bare.as_str(), "https://pkgs.test/simple/demo/");
        // base64("__token__:s3cret")
        assert_eq!(
            authorization.as_deref(),
            Some("Basic X190b2tlbl9fOnMzY3JldA==")
        );
        let plain = Url::parse("https://pkgs.test/simple/").unwrap();
        assert_eq!(
            split_credentials(&plain),
            (std::borrow::Cow::Borrowed(&plain), None)
        );
    }

    #[test]
    fn a_refused_certificate_is_fatal_and_says_what_keel_trusts() {
        let url = Url::parse("https://127.0.0.1:8443/files/a.whl").unwrap();
        let refused = || {
            let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
            ureq::Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, tls))
        };
        let mut options = DownloadOptions::new("/nonexistent");
        let client = Client::new(&options).unwrap();
        let Failure::Fatal(error) = client.classify(&url, refused()) else {
            panic!("an untrusted certificate is retried");
        };
        let message = error.to_string();
        assert!(
            message.starts_with("https://127.0.0.1:8443/files/a.whl: the server's TLS certificate is not trusted (invalid peer certificate: UnknownIssuer)"),
            "{message}"
        );
        assert!(message.contains("SSL_CERT_FILE is not set"), "{message}");

        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let der = webpki_root_certs::TLS_SERVER_ROOT_CERTS[0].as_ref();
        fs_err::write(&ca, pem_of(der)).unwrap();
        options.ca_file = Some(ca.clone());
        let client = Client::new(&options).unwrap();
        let Failure::Fatal(error) = client.classify(&url, refused()) else {
            panic!("an untrusted certificate is retried");
        };
        let message = error.to_string();
        assert!(
            message.contains(&format!("certificates of SSL_CERT_FILE `{}`", ca.display())),
            "{message}"
        );

        // Other I/O errors of a connection stay transient.
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(matches!(
            client.classify(&url, ureq::Error::Io(reset)),
            Failure::Transient(Transient::Connect(_))
        ));
    }

    #[test]
    fn the_user_agent_names_keel_and_its_version() {
        assert_eq!(USER_AGENT, format!("keel/{}", env!("CARGO_PKG_VERSION")));
    }
}
