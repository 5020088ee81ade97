//! The HTTP/1.1 wire format (RFC 9112): reading one request from a
//! connection, writing the head of one response, and the percent-encoding of
//! path segments.

use std::io::{self, BufRead, Read as _, Write};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest request line or header line accepted.
const MAX_LINE: u64 = 8 * 1024;
/// Most header lines accepted in one request.
const MAX_HEADERS: usize = 100;
/// Largest request body read (and discarded) to keep a connection alive.
const MAX_BODY: u64 = 1024 * 1024;

/// One parsed request. The body, if any, has been read and discarded.
#[derive(Debug)]
pub(crate) struct Request {
    /// The method, as sent (methods are case-sensitive).
    pub method: String,
    /// The request target, parsed.
    pub target: Target,
    /// Whether the request line said `HTTP/1.0` (else `HTTP/1.1`).
    pub http10: bool,
    /// Header fields, names lowercased, in order.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client wants the connection kept open after the
    /// response: HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
    /// `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        let has = |token: &str| {
            self.headers
                .iter()
                .filter(|(n, _)| n == "connection")
                .flat_map(|(_, v)| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        if self.http10 {
            has("keep-alive")
        } else {
            !has("close")
        }
    }

    /// The authority the client addressed: the absolute-form request
    /// line's, else the `Host` header's.
    pub fn authority(&self) -> Option<&str> {
        self.target
            .authority
            .as_deref()
            .or_else(|| self.header("host"))
            .filter(|a| !a.is_empty())
    }
}

/// A request target in origin form (`/path?query`), absolute form
/// (`http://host/path?query`, what a client sends to a forward proxy) or,
/// for `CONNECT`, authority form (`host:port`: no segments).
#[derive(Debug)]
pub(crate) struct Target {
    /// The authority of an absolute-form or authority-form target; `None`
    /// in origin form.
    pub authority: Option<String>,
    /// The query, without the `?`, as sent.
    pub query: Option<String>,
    /// The path's segments after the leading `/`, each percent-decoded:
    /// `/simple/six/` is `["simple", "six", ""]`.
    pub segments: Vec<String>,
}

/// Why no request could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The connection closed, or stayed idle past its read timeout, before
    /// the first byte of a request: not an error.
    Idle,
    /// The request is malformed: answer `status` with `message`, then close.
    Bad {
        /// The status to answer.
        status: u16,
        /// What was wrong, for the response body.
        message: &'static str,
    },
    /// The connection failed mid-request.
    Io,
}

impl ReadError {
    fn bad(status: u16, message: &'static str) -> ReadError {
        ReadError::Bad { status, message }
    }
}

/// Reads one request (request line, header fields, and any
/// `Content-Length` body, discarded).
pub(crate) fn read_request(reader: &mut impl BufRead) -> Result<Request, ReadError> {
    // RFC 9112 §2.2: ignore empty lines before the request line.
    let mut line = read_line(reader, true)?;
    for _ in 0..4 {
        if !line.is_empty() {
            break;
        }
        line = read_line(reader, true)?;
    }
    let (method, target, http10) = parse_request_line(&line)?;
    let headers = read_headers(reader)?;
    let request = Request {
        method,
        target,
        http10,
        headers,
    };
    discard_body(reader, &request)?;
    Ok(request)
}

/// Reads one CRLF- (or LF-) terminated line, without its terminator.
fn read_line(reader: &mut impl BufRead, first: bool) -> Result<String, ReadError> {
    let mut buf = Vec::new();
    match reader.take(MAX_LINE + 2).read_until(b'\n', &mut buf) {
        Ok(0) if first => return Err(ReadError::Idle),
        Ok(0) => return Err(ReadError::Io),
        Ok(_) => {}
        Err(e) if first && buf.is_empty() && is_timeout(&e) => return Err(ReadError::Idle),
        Err(_) => return Err(ReadError::Io),
    }
    if buf.last() != Some(&b'\n') {
        return Err(if buf.len() as u64 > MAX_LINE {
            ReadError::bad(431, "request line or header line too long")
        } else {
            ReadError::Io
        });
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf).map_err(|_| ReadError::bad(400, "request head is not UTF-8"))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn parse_request_line(line: &str) -> Result<(String, Target, bool), ReadError> {
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::bad(400, "malformed request line"));
    };
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(ReadError::bad(505, "only HTTP/1.0 and HTTP/1.1 are served")),
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(ReadError::bad(400, "malformed method"));
    }
    if method == "CONNECT" {
        // RFC 9112 § 3.2.3: authority form, `host:port`.
        if target.is_empty() || target.contains(['/', '?']) {
            return Err(ReadError::bad(400, "CONNECT needs host:port"));
        }
        let target = Target {
            authority: Some(target.to_owned()),
            query: None,
            segments: Vec::new(),
        };
        return Ok((method.to_owned(), target, http10));
    }
    Ok((method.to_owned(), parse_target(target)?, http10))
}

/// Parses an origin-form or an `http://` absolute-form request target.
pub(crate) fn parse_target(target: &str) -> Result<Target, ReadError> {
    let (authority, rest) = if target.starts_with('/') {
        (None, target)
    } else if target.len() > 7 && target[..7].eq_ignore_ascii_case("http://") {
        let rest = &target[7..];
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        (Some(rest[..end].to_owned()), &rest[end..])
    } else {
        return Err(ReadError::bad(
            400,
            "request target is neither /path nor http://host/path",
        ));
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (rest, None),
    };
    let path = if path.is_empty() { "/" } else { path };
    let segments = path[1..]
        .split('/')
        .map(|s| percent_decode(s).ok_or(ReadError::bad(400, "bad percent-encoding in path")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Target {
        authority,
        query,
        segments,
    })
}

fn read_headers(reader: &mut impl BufRead) -> Result<Vec<(String, String)>, ReadError> {
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader, false)?;
        if line.is_empty() {
            return Ok(headers);
        }
        if headers.len() == MAX_HEADERS {
            return Err(ReadError::bad(431, "too many header fields"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ReadError::bad(400, "header line without a colon"));
        };
        // RFC 9112 §5.1: no whitespace in or after the name (this also
        // refuses obsolete line folding).
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(ReadError::bad(400, "malformed header name"));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
}

fn discard_body(reader: &mut impl BufRead, request: &Request) -> Result<(), ReadError> {
    if request.header("transfer-encoding").is_some() {
        return Err(ReadError::bad(
            501,
            "request bodies with Transfer-Encoding are not supported",
        ));
    }
    let mut lengths = request
        .headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .flat_map(|(_, v)| v.split(','))
        .map(|v| v.trim().parse::<u64>());
    let Some(first) = lengths.next() else {
        return Ok(());
    };
    let length = match first {
        Ok(n) if lengths.all(|other| other.as_ref() == Ok(&n)) => n,
        _ => return Err(ReadError::bad(400, "malformed Content-Length")),
    };
    if length > MAX_BODY {
        return Err(ReadError::bad(413, "request body too large"));
    }
    match io::copy(&mut reader.take(length), &mut io::sink()) {
        Ok(n) if n == length => Ok(()),
        _ => Err(ReadError::Io),
    }
}

/// Writes a response head: status line, `Date`, `Server`,
/// `Content-Length`, `Connection`, then `headers`.
pub(crate) fn write_head(
    out: &mut impl Write,
    status: u16,
    headers: &[(&str, String)],
    content_length: usize,
    keep_alive: bool,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nDate: {}\r\nServer: keel-testserver\r\n\
         Content-Length: {content_length}\r\nConnection: {}\r\n",
        reason(status),
        http_date(SystemTime::now()),
        if keep_alive { "keep-alive" } else { "close" },
    );
    for (name, value) in headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())
}

/// The reason phrase of `status` (informative only, RFC 9112 §4).
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}

/// `time` as an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) fn http_date(time: SystemTime) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    )
}

/// Howard Hinnant's `civil_from_days`, for days since 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Percent-encodes one path segment: everything but RFC 3986 unreserved
/// characters (so `+` in a local version becomes `%2B`).
pub(crate) fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; `None` for a malformed escape or non-UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_are_imf_fixdates() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(http_date(leap), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn targets_parse_in_both_forms() {
        let t = parse_target("/simple/six/?x=1").unwrap();
        assert_eq!((t.authority, t.query.as_deref()), (None, Some("x=1")));
        assert_eq!(t.segments, ["simple", "six", ""]);
        let t = parse_target("HTTP://example.invalid:8080").unwrap();
        assert_eq!(t.authority.as_deref(), Some("example.invalid:8080"));
        assert_eq!(t.segments, [""]);
        let t = parse_target("/files/a%2Bb%2Fc").unwrap();
        assert_eq!(t.segments, ["files", "a+b/c"]);
        assert!(parse_target("/files/%zz").is_err());
        assert!(parse_target("*").is_err());
    }

    #[test]
    fn segments_round_trip() {
        let name = "pkg-1.0+local.7-py3-none-any.whl";
        let encoded = percent_encode(name);
        assert_eq!(encoded, "pkg-1.0%2Blocal.7-py3-none-any.whl");
        assert_eq!(percent_decode(&encoded).as_deref(), Some(name));
    }
}
