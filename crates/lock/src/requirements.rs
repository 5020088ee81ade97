//! Hash-pinned requirements files (pip's *Requirements File Format*), as
//! `pip-compile --generate-hashes` and `uv pip compile --generate-hashes`
//! write them: `name==version` (or `===`) or `name @ https://…whl`, each
//! with one or more `--hash=sha256:…`; continuation lines, comments,
//! `${VAR}` references, markers, `-r` includes, `--require-hashes`,
//! `-i/--index-url` and `--extra-index-url`.
//!
//! keel has no resolver and verifies every download, so every requirement
//! must be an exact pin with a strong hash (sha256, sha384, sha512) — what
//! pip's hash-checking mode demands once any line has a `--hash`
//! ([`RequirementsFile::unhashed`] lists the lines that break it, so the
//! caller can print the hash to add).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use keel_wheel::{HashAlgorithm, PackageName, RecordHash, Version};
use url::Url;
use uv_pep508::{MarkerTree, VersionOrUrl};

use crate::error::{Error, Problem, Problems, Rule};

/// A requirements file and the files it includes with `-r`, read.
#[derive(Debug, Clone)]
pub struct RequirementsFile {
    /// The file named on the command line.
    pub path: PathBuf,
    /// `-i/--index-url` (the last one given), then each
    /// `--extra-index-url`, in order.
    pub index_urls: Vec<Url>,
    /// `--no-index`: only direct URL requirements can be found.
    pub no_index: bool,
    /// `--require-hashes`, or any `--hash` anywhere (pip's rule).
    pub require_hashes: bool,
    /// Every requirement, in order.
    pub requirements: Vec<PinnedRequirement>,
}

/// One requirement line.
#[derive(Debug, Clone)]
pub struct PinnedRequirement {
    /// The project.
    pub name: PackageName,
    /// `name[extra,…]`, normalized.
    pub extras: Vec<String>,
    /// What exactly is asked for.
    pub pin: Pin,
    /// `; marker`, if any.
    pub marker: Option<MarkerTree>,
    /// `--hash=…` values keel can check.
    pub hashes: Vec<RecordHash>,
    /// `file:line` where it was written.
    pub origin: String,
}

/// What a requirement pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// `name==version` (PEP 440 equality, no wildcard).
    Version(Version),
    /// `name===text` (PEP 440 arbitrary equality: the string itself).
    Arbitrary(String),
    /// `name @ url` of a wheel: a direct URL reference.
    Url(Url),
    /// Anything else (`>=1`, `==1.*`, no version): not an exact pin.
    Unpinned(String),
}

impl std::fmt::Display for PinnedRequirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.pin {
            Pin::Version(v) => write!(f, "{}=={v}", self.name),
            Pin::Arbitrary(v) => write!(f, "{}==={v}", self.name),
            Pin::Url(url) => write!(f, "{} @ {url}", self.name),
            Pin::Unpinned(spec) => write!(f, "{}{spec}", self.name),
        }
    }
}

impl RequirementsFile {
    /// Reads `path` and every file it includes; all problems at once.
    pub fn from_path(path: &Path) -> Result<RequirementsFile, Error> {
        let mut reader = Reader {
            file: RequirementsFile {
                path: path.to_path_buf(),
                index_urls: Vec::new(),
                no_index: false,
                require_hashes: false,
                requirements: Vec::new(),
            },
            primary_index: None,
            problems: Vec::new(),
            including: Vec::new(),
        };
        reader.read_file(path)?;
        let mut file = reader.file;
        if let Some(primary) = reader.primary_index {
            file.index_urls.insert(0, primary);
        }
        file.require_hashes |= file.requirements.iter().any(|r| !r.hashes.is_empty());
        check_duplicates(&file.requirements, &mut reader.problems);
        if reader.problems.is_empty() {
            Ok(file)
        } else {
            Err(Error::Requirements {
                path: path.to_path_buf(),
                problems: Problems(reader.problems),
            })
        }
    }

    /// The requirements hash-checking mode refuses: not an exact pin, or
    /// without a hash keel can check.
    pub fn unhashed(&self) -> Vec<&PinnedRequirement> {
        self.requirements
            .iter()
            .filter(|r| matches!(r.pin, Pin::Unpinned(_)) || r.hashes.is_empty())
            .collect()
    }
}

struct Reader {
    file: RequirementsFile,
    primary_index: Option<Url>,
    problems: Vec<Problem>,
    /// The `-r` chain being read (a file including itself is refused).
    including: Vec<PathBuf>,
}

impl Reader {
    fn read_file(&mut self, path: &Path) -> Result<(), Error> {
        let text = fs_err::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let canonical = fs_err::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if self.including.contains(&canonical) {
            self.problems.push(Problem::new(
                path.display().to_string(),
                Rule::Requirement("includes itself through -r".into()),
            ));
            return Ok(());
        }
        self.including.push(canonical);
        for (line_number, line) in logical_lines(&text) {
            let at = format!("{}:{line_number}", path.display());
            let line = expand_variables(&line);
            if let Err(rule) = self.read_line(path, &at, line.trim()) {
                self.problems.push(Problem::new(at, rule));
            }
        }
        self.including.pop();
        Ok(())
    }

    fn read_line(&mut self, file: &Path, at: &str, line: &str) -> Result<(), Rule> {
        if line.is_empty() {
            return Ok(());
        }
        if line.starts_with('-') {
            return self.read_option(file, line);
        }
        let requirement = read_requirement(file, at, line)?;
        self.file.requirements.push(requirement);
        Ok(())
    }

    /// A line of options (*Requirements File Format § Global options*).
    fn read_option(&mut self, file: &Path, line: &str) -> Result<(), Rule> {
        let (option, value) = split_option(line);
        let value = || {
            value
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Rule::Requirement(format!("`{option}` needs a value")))
        };
        let url = |text: &str| {
            Url::parse(text).map_err(|e| Rule::Requirement(format!("`{text}` is not a URL: {e}")))
        };
        match option {
            "-r" | "--requirement" => {
                let included = file.parent().unwrap_or(Path::new(".")).join(value()?);
                self.read_file(&included)
                    .map_err(|e| Rule::Requirement(e.to_string()))?;
            }
            "-i" | "--index-url" => self.primary_index = Some(url(value()?)?),
            "--extra-index-url" => self.file.index_urls.push(url(value()?)?),
            "--no-index" => self.file.no_index = true,
            "--require-hashes" => self.file.require_hashes = true,
            "-e" | "--editable" => {
                return Err(Rule::NeedsBuild("an editable source tree".into()));
            }
            "-c" | "--constraint" => {
                return Err(Rule::Requirement(
                    "`-c` constraints need a resolver; keel installs exactly the pins given".into(),
                ));
            }
            other => {
                return Err(Rule::Requirement(format!(
                    "option `{other}` is not supported by keel (it reads -r, -i/--index-url, --extra-index-url, --no-index, --require-hashes and --hash)"
                )));
            }
        }
        Ok(())
    }
}

/// `--opt=value`, `--opt value` or `-o value`.
fn split_option(line: &str) -> (&str, Option<&str>) {
    if let Some((option, value)) = line.split_once('=')
        && !option.contains(char::is_whitespace)
    {
        return (option, Some(value.trim()));
    }
    match line.split_once(char::is_whitespace) {
        Some((option, value)) => (option, Some(value.trim())),
        None => (line, None),
    }
}

/// `name==1.0 ; marker --hash=sha256:… --hash=…`.
fn read_requirement(file: &Path, at: &str, line: &str) -> Result<PinnedRequirement, Rule> {
    let (text, options) = split_requirement_options(line);
    let mut hashes = Vec::new();
    for option in options {
        let Some(value) = option
            .strip_prefix("--hash=")
            .or_else(|| option.strip_prefix("--hash "))
        else {
            return Err(Rule::Requirement(format!(
                "option `{option}` is not supported on a requirement line (only --hash)"
            )));
        };
        hashes.push(parse_hash(value.trim())?);
    }
    let dir = std::path::absolute(file.parent().unwrap_or(Path::new(".")))
        .unwrap_or_else(|_| PathBuf::from("."));
    let text = &with_absolute_path(text, &dir);
    let requirement = uv_pep508::Requirement::<uv_pep508::VerbatimUrl>::parse(text, &dir)
        .map_err(|e| Rule::Requirement(format!("`{text}` is not a requirement: {}", e.message)))?;
    let name = PackageName::new(requirement.name.as_ref());
    let pin = match requirement.version_or_url {
        Some(VersionOrUrl::VersionSpecifier(specifiers)) => pin_of(&specifiers),
        Some(VersionOrUrl::Url(url)) => wheel_url(&url)?,
        None => Pin::Unpinned(String::new()),
    };
    let marker = (!requirement.marker.is_true()).then_some(requirement.marker);
    Ok(PinnedRequirement {
        name,
        extras: requirement.extras.iter().map(|e| e.to_string()).collect(),
        pin,
        marker,
        hashes,
        origin: at.to_string(),
    })
}

/// `name @ ./x.whl`, `name @ file:x.whl` (a path relative to the
/// requirements file, which pip and uv accept but PEP 508 does not) as
/// `name @ file:///…/x.whl`.
fn with_absolute_path(text: &str, dir: &Path) -> String {
    let Some((name, rest)) = text.split_once('@') else {
        return text.to_string();
    };
    let reference = rest.trim_start();
    let end = reference
        .find(|c: char| c.is_whitespace() || c == ';')
        .unwrap_or(reference.len());
    let (token, tail) = reference.split_at(end);
    let path = match token.strip_prefix("file:") {
        Some(path) if !path.starts_with("//") => path,
        Some(_) => return text.to_string(),
        None if token.starts_with("./") || token.starts_with("../") || token.starts_with('/') => {
            token
        }
        None => return text.to_string(),
    };
    match Url::from_file_path(dir.join(path)) {
        Ok(url) => format!("{name}@ {url}{tail}"),
        Err(()) => text.to_string(),
    }
}

/// The requirement and its `--hash` options: options start at the first
/// ` --` outside quotes.
fn split_requirement_options(line: &str) -> (&str, Vec<String>) {
    let mut quote = None;
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if q == b => quote = None,
            (None, b'-')
                if i > 0
                    && bytes[i - 1].is_ascii_whitespace()
                    && bytes.get(i + 1) == Some(&b'-') =>
            {
                let options =
                    line[i..]
                        .split_whitespace()
                        .fold(Vec::<String>::new(), |mut all, word| {
                            match all.last_mut() {
                                Some(last) if !word.starts_with("--") && !last.contains('=') => {
                                    last.push(' ');
                                    last.push_str(word);
                                }
                                _ => all.push(word.to_string()),
                            }
                            all
                        });
                return (line[..i].trim_end(), options);
            }
            _ => {}
        }
    }
    (line, Vec::new())
}

/// `sha256:<hex>`; md5 and sha1 are refused (pip's hash-checking mode
/// refuses them too: "sha256 or better").
fn parse_hash(value: &str) -> Result<RecordHash, Rule> {
    let (name, hex) = value
        .split_once(':')
        .ok_or_else(|| Rule::Requirement(format!("`--hash={value}` is not `algorithm:hex`")))?;
    let algorithm = HashAlgorithm::from_name(name).ok_or_else(|| {
        Rule::Requirement(format!(
            "`--hash={value}`: {name} is not strong enough (keel checks sha256, sha384 and sha512)"
        ))
    })?;
    RecordHash::from_hex(algorithm, hex)
        .map_err(|reason| Rule::Requirement(format!("`--hash={value}`: {reason}")))
}

/// `==1.2.3` (one specifier, no wildcard) or `===text`.
fn pin_of(specifiers: &uv_pep508::uv_pep440::VersionSpecifiers) -> Pin {
    use uv_pep508::uv_pep440::Operator;
    let text = specifiers.to_string();
    let [only] = specifiers.iter().collect::<Vec<_>>()[..] else {
        return Pin::Unpinned(text);
    };
    match only.operator() {
        Operator::Equal => match Version::from_str(&only.version().to_string()) {
            Ok(version) => Pin::Version(version),
            Err(_) => Pin::Unpinned(text),
        },
        Operator::ExactEqual => Pin::Arbitrary(only.version().to_string()),
        _ => Pin::Unpinned(text),
    }
}

/// A direct reference must be a wheel (keel builds nothing); a relative
/// path is relative to the requirements file (resolved by the parser).
fn wheel_url(url: &uv_pep508::VerbatimUrl) -> Result<Pin, Rule> {
    let url: &Url = url;
    let is_wheel = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .is_some_and(|last| last.ends_with(".whl"));
    if is_wheel {
        Ok(Pin::Url(url.clone()))
    } else {
        Err(Rule::NeedsBuild(format!("`{url}` (not a wheel)")))
    }
}

/// A project listed twice with different pins cannot be installed.
fn check_duplicates(requirements: &[PinnedRequirement], problems: &mut Vec<Problem>) {
    for (i, later) in requirements.iter().enumerate() {
        if let Some(first) = requirements[..i].iter().find(|r| r.name == later.name) {
            problems.push(Problem::new(
                &later.origin,
                Rule::Requirement(format!(
                    "`{later}` is listed again (first at {}); a project is pinned once",
                    first.origin
                )),
            ));
        }
    }
}

/// The file's logical lines with their first physical line's number:
/// comments removed (`#` at the start or after whitespace), lines ending
/// in `\` joined with the next.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        let (number, mut joined) = pending.take().unwrap_or((index + 1, String::new()));
        match line.strip_suffix('\\') {
            Some(head) => {
                joined.push_str(head);
                pending = Some((number, joined));
            }
            None => {
                joined.push_str(line);
                lines.push((number, joined));
            }
        }
    }
    lines.extend(pending);
    lines
}

fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let at = bytes
        .iter()
        .enumerate()
        .find(|&(i, &b)| b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()))
        .map(|(i, _)| i);
    match at {
        Some(i) => line[..i].trim_end(),
        None => line.trim_end(),
    }
}

/// `${NAME}` (upper case, digits, `_`) replaced by the variable's value,
/// as pip does; an unset variable is left as written.
fn expand_variables(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..name_len];
        match (after[name_len..].starts_with('}'), std::env::var(name)) {
            (true, Ok(value)) if !name.is_empty() => {
                out.push_str(&value);
                rest = &after[name_len + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}
