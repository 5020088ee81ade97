//! Which proxy a URL goes through: `HTTP_PROXY`, `HTTPS_PROXY`,
//! `ALL_PROXY` and `NO_PROXY`, lowercase forms first (as curl and Python's
//! `urllib` read them).
//!
//! keel reads these itself rather than through `ureq::Proxy::try_from_env`,
//! which picks one proxy for every scheme (`ALL_PROXY`, then `HTTPS_PROXY`,
//! then `HTTP_PROXY`, so `HTTPS_PROXY` would carry plain-http requests too)
//! and matches `NO_PROXY` entries untrimmed, without ports or CIDR ranges,
//! and with `.example.com` not matching `example.com` itself. Here, as in
//! curl: entries are separated by commas (spaces trimmed); `*` matches every
//! host; `example.com`, `.example.com` and `*.example.com` all match
//! `example.com` and its subdomains; `host:port` matches that port only;
//! `10.0.0.0/8` and `fd00::/8` match addresses in the range; IPv6 literals
//! may be bracketed.
//!
//! The configuration is a value ([`ProxyEnv`]), not read from the process
//! environment on every request, so that a caller (and a test) decides
//! where it comes from.

use std::net::IpAddr;

use url::Url;

use crate::Error;
use crate::error::redacted_text;

/// Proxy settings as environment variables spell them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    vars: Vec<(String, String)>,
}

const HTTP_VARS: &[&str] = &["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"];
const HTTPS_VARS: &[&str] = &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"];
const NO_PROXY_VARS: &[&str] = &["no_proxy", "NO_PROXY"];

impl ProxyEnv {
    /// No proxy at all.
    pub fn none() -> Self {
        ProxyEnv::default()
    }

    /// The proxy variables of this process's environment.
    pub fn from_env() -> Self {
        let names = HTTP_VARS.iter().chain(HTTPS_VARS).chain(NO_PROXY_VARS);
        ProxyEnv::from_vars(names.filter_map(|name| Some((*name, std::env::var(name).ok()?))))
    }

    /// The given variables (`("HTTP_PROXY", "http://proxy:3128")`, …);
    /// names other than the proxy variables are ignored.
    pub fn from_vars<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        ProxyEnv {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The first of `names` that is set and not empty, with its value.
    fn first(&self, names: &[&'static str]) -> Option<(&'static str, &str)> {
        names.iter().find_map(|name| {
            self.vars
                .iter()
                .find(|(k, v)| k == name && !v.trim().is_empty())
                .map(|(_, v)| (*name, v.trim()))
        })
    }

    /// Parses the variables: an unusable proxy URL is an error naming the
    /// variable.
    pub(crate) fn resolve(&self) -> Result<ProxyConfig, Error> {
        let parse = |names| {
            self.first(names)
                .map(|(var, value)| ProxyUrl::parse(var, value))
                .transpose()
        };
        Ok(ProxyConfig {
            http: parse(HTTP_VARS)?,
            https: parse(HTTPS_VARS)?,
            no_proxy: self
                .first(NO_PROXY_VARS)
                .map(|(_, value)| NoProxy::parse(value))
                .unwrap_or_default(),
        })
    }
}

/// A proxy's URL, as `ureq` takes it, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProxyUrl {
    /// `http://user:pass@host:port` (scheme added when missing).
    pub url: Url,
    /// The variable it was read from, for messages.
    pub variable: &'static str,
}

impl ProxyUrl {
    fn parse(variable: &'static str, value: &str) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidProxy {
            variable: variable.to_owned(),
            value: redacted_text(value),
            reason,
        };
        let with_scheme = if value.contains("://") {
            value.to_owned()
        } else {
            format!("http://{value}")
        };
        let url = Url::parse(&with_scheme).map_err(|e| invalid(format!("not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "keel speaks to http:// and https:// proxies, not {}://",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("no host".to_owned()));
        }
        Ok(ProxyUrl { url, variable })
    }
}

/// The parsed proxy settings.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProxyConfig {
    pub http: Option<ProxyUrl>,
    pub https: Option<ProxyUrl>,
    pub no_proxy: NoProxy,
}

impl ProxyConfig {
    /// The proxy for `url`, if any (none when `NO_PROXY` matches it).
    pub fn for_url(&self, url: &Url) -> Option<&ProxyUrl> {
        let proxy = match url.scheme() {
            "http" => self.http.as_ref(),
            "https" => self.https.as_ref(),
            _ => None,
        }?;
        let host = url.host_str()?;
        (!self.no_proxy.matches(host, url.port_or_known_default())).then_some(proxy)
    }
}

/// `NO_PROXY`: hosts, domains and address ranges reached directly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NoProxy {
    entries: Vec<NoProxyEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum NoProxyEntry {
    All,
    /// A domain (lowercase, no leading dot), matched with its subdomains.
    Domain {
        name: String,
        port: Option<u16>,
    },
    /// An address or a range of addresses.
    Network {
        addr: IpAddr,
        prefix: u8,
        port: Option<u16>,
    },
}

impl NoProxy {
    pub fn parse(value: &str) -> Self {
        let entries = value
            .split([',', ' ', '\t'])
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .filter_map(NoProxyEntry::parse)
            .collect();
        NoProxy { entries }
    }

    /// Whether `host` (as a URL spells it: IPv6 in brackets) on `port` is
    /// reached directly.
    pub fn matches(&self, host: &str, port: Option<u16>) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let host = host.trim_end_matches('.');
        let ip = host.parse::<IpAddr>().ok();
        self.entries
            .iter()
            .any(|entry| entry.matches(host, ip, port))
    }
}

impl NoProxyEntry {
    fn parse(entry: &str) -> Option<Self> {
        if entry == "*" {
            return Some(NoProxyEntry::All);
        }
        let (host, port) = split_port(entry);
        if let Some((addr, prefix)) = host.split_once('/') {
            let addr: IpAddr = addr.parse().ok()?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = prefix.parse::<u8>().ok().filter(|p| *p <= max)?;
            return Some(NoProxyEntry::Network { addr, prefix, port });
        }
        if let Ok(addr) = host.parse::<IpAddr>() {
            let prefix = if addr.is_ipv4() { 32 } else { 128 };
            return Some(NoProxyEntry::Network { addr, prefix, port });
        }
        let name = host
            .trim_start_matches('*')
            .trim_start_matches('.')
            .trim_end_matches('.');
        (!name.is_empty()).then(|| NoProxyEntry::Domain {
            name: name.to_ascii_lowercase(),
            port,
        })
    }

    fn matches(&self, host: &str, ip: Option<IpAddr>, port: Option<u16>) -> bool {
        let port_ok = |wanted: &Option<u16>| wanted.is_none() || *wanted == port;
        match self {
            NoProxyEntry::All => true,
            NoProxyEntry::Domain { name, port: p } => {
                port_ok(p)
                    && (host == name
                        || host
                            .strip_suffix(name.as_str())
                            .is_some_and(|rest| rest.ends_with('.')))
            }
            NoProxyEntry::Network {
                addr,
                prefix,
                port: p,
            } => port_ok(p) && ip.is_some_and(|ip| in_network(ip, *addr, *prefix)),
        }
    }
}

/// `host:port`, `[v6]:port`, `[v6]`, a bare IPv6 address or `host`.
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[')
        && let Some((addr, after)) = rest.split_once(']')
    {
        return (addr, after.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match entry.rsplit_once(':') {
        // One colon: a port. More: a bare IPv6 address (or range).
        Some((host, port)) if !host.contains(':') => (host, port.parse().ok()),
        _ => (entry, None),
    }
}

fn in_network(ip: IpAddr, network: IpAddr, prefix: u8) -> bool {
    let (ip, network, bits) = match (ip, network) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(a.to_bits()), u128::from(b.to_bits()), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (a.to_bits(), b.to_bits(), 128),
        _ => return false,
    };
    let shift = bits - u32::from(prefix);
    shift >= bits || (ip >> shift) == (network >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn each_scheme_has_its_own_proxy_lowercase_first_all_proxy_last() {
        let env = ProxyEnv::from_vars([
            ("HTTP_PROXY", "http://upper:1"),
            ("http_proxy", "lower:2"),
            ("ALL_PROXY", "http://all:3"),
        ]);
        let config = env.resolve().unwrap();
        let http = config.for_url(&url("http://example.org/")).unwrap();
        assert_eq!(
            (http.url.as_str(), http.variable),
            ("http://lower:2/", "http_proxy")
        );
        let https = config.for_url(&url("https://example.org/")).unwrap();
        assert_eq!(
            (https.url.as_str(), https.variable),
            ("http://all:3/", "ALL_PROXY")
        );
        assert!(config.for_url(&url("file:///tmp/x")).is_none());
        assert!(
            ProxyEnv::none()
                .resolve()
                .unwrap()
                .for_url(&url("http://a/"))
                .is_none()
        );
    }

    #[test]
    fn unusable_proxy_urls_name_the_variable() {
        let error = ProxyEnv::from_vars([("HTTPS_PROXY", "socks5://proxy:1080")])
            .resolve()
            .unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("HTTPS_PROXY=`socks5://proxy:1080`"),
            "{message}"
        );
        assert!(
            ProxyEnv::from_vars([("HTTP_PROXY", "http://")])
                .resolve()
                .is_err()
        );
        // Empty means unset.
        assert!(
            ProxyEnv::from_vars([("HTTP_PROXY", " ")])
                .resolve()
                .unwrap()
                .http
                .is_none()
        );
    }

    #[test]
    fn no_proxy_matches_domains_with_their_subdomains_ports_and_ranges() {
        let no = NoProxy::parse(
            " example.com, .internal ,*.corp:8080 , 10.0.0.0/8, ::1, [fd00::]:99, 127.0.0.1",
        );
        assert!(no.matches("example.com", Some(443)));
        assert!(no.matches("pkgs.Example.COM", Some(443)));
        assert!(!no.matches("notexample.com", Some(443)));
        assert!(no.matches("internal", None));
        assert!(no.matches("a.b.internal", None));
        assert!(no.matches("x.corp", Some(8080)));
        assert!(!no.matches("x.corp", Some(80)));
        assert!(no.matches("10.1.2.3", Some(80)));
        assert!(!no.matches("11.1.2.3", Some(80)));
        assert!(no.matches("[::1]", Some(80)));
        assert!(no.matches("[fd00::]", Some(99)));
        assert!(!no.matches("[fd00::]", Some(98)));
        assert!(no.matches("127.0.0.1", Some(5000)));
        assert!(!no.matches("127.0.0.2", Some(5000)));
        assert!(NoProxy::parse("*").matches("anything", None));
        assert!(!NoProxy::parse("").matches("anything", None));
    }

    #[test]
    fn no_proxy_bypasses_the_proxy_for_matching_urls_only() {
        let env = ProxyEnv::from_vars([
            ("HTTP_PROXY", "http://proxy:3128"),
            ("NO_PROXY", "127.0.0.1"),
        ]);
        let config = env.resolve().unwrap();
        assert!(
            config
                .for_url(&url("http://127.0.0.1:8000/simple/"))
                .is_none()
        );
        assert!(
            config
                .for_url(&url("http://localhost:8000/simple/"))
                .is_some()
        );
    }

    #[test]
    fn cidr_prefixes_of_zero_and_full_length() {
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        assert!(in_network("1.2.3.4".parse().unwrap(), any, 0));
        let one: IpAddr = "1.2.3.4".parse().unwrap();
        assert!(in_network(one, one, 32));
        assert!(!in_network("1.2.3.5".parse().unwrap(), one, 32));
        assert!(
            !in_network("::1".parse().unwrap(), one, 0),
            "families differ"
        );
    }
}
