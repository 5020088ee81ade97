//! Reading a `pylock.toml` (PEP 751; *pylock.toml specification*) into a
//! validated [`Lock`]: every key typed, every rule of the format checked,
//! every problem collected, nothing chosen yet (that is [`crate::select`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use keel_wheel::{HashAlgorithm, PackageName, RecordHash, Version, VersionSpecifiers};
use serde::Deserialize;
use url::Url;
use uv_pep508::MarkerTree;

use crate::error::{Error, Problem, Problems, Rule};
use crate::location::{Location, LockLocation};

/// A lock file, read and checked against the rules of its format.
#[derive(Debug, Clone)]
pub struct Lock {
    /// Where it was read from.
    pub location: LockLocation,
    /// `lock-version`.
    pub lock_version: Version,
    /// `environments`: the markers (as written, parsed) of which one must
    /// hold for the lock to apply.
    pub environments: Option<Vec<Marker>>,
    /// `requires-python`.
    pub requires_python: Option<VersionSpecifiers>,
    /// `extras`, normalized.
    pub extras: Vec<String>,
    /// `dependency-groups`, normalized.
    pub dependency_groups: Vec<String>,
    /// `default-groups`, normalized.
    pub default_groups: Vec<String>,
    /// `created-by`.
    pub created_by: String,
    /// `[[packages]]`, in order.
    pub packages: Vec<LockedPackage>,
    /// What a reader should hear: a newer minor `lock-version`, unknown keys.
    pub warnings: Vec<String>,
}

/// A marker expression, as written and as parsed.
#[derive(Debug, Clone)]
pub struct Marker {
    /// As the lock spells it (for messages).
    pub text: String,
    /// Parsed (*Dependency specifiers § Environment markers*, with the
    /// lock-file variables `extras` and `dependency_groups`).
    pub tree: MarkerTree,
}

/// One `[[packages]]` entry.
#[derive(Debug, Clone)]
pub struct LockedPackage {
    /// Its position in `[[packages]]` (for messages: `packages[3]`).
    pub index: usize,
    /// `packages.name`.
    pub name: PackageName,
    /// `packages.version`.
    pub version: Option<Version>,
    /// `packages.marker`.
    pub marker: Option<Marker>,
    /// `packages.requires-python`.
    pub requires_python: Option<VersionSpecifiers>,
    /// Where its files are.
    pub source: PackageSource,
}

impl LockedPackage {
    /// `packages[3] (numpy 2.4.6)`, for messages.
    pub fn describe(&self) -> String {
        match &self.version {
            Some(version) => format!("packages[{}] ({} {version})", self.index, self.name),
            None => format!("packages[{}] ({})", self.index, self.name),
        }
    }
}

/// What a package entry installs from (§ packages: the sources are
/// mutually exclusive).
#[derive(Debug, Clone)]
pub enum PackageSource {
    /// `[[packages.wheels]]` and/or `[packages.sdist]`.
    Distributions {
        /// The wheels, in the lock's order.
        wheels: Vec<LockedFile>,
        /// The sdist, if any.
        sdist: Option<LockedFile>,
    },
    /// `[packages.archive]`: a direct URL reference to one file.
    Archive(LockedFile),
    /// `[packages.vcs]`.
    Vcs,
    /// `[packages.directory]`.
    Directory,
}

/// A file the lock names: a wheel, an sdist, an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedFile {
    /// Its file name (`name`, else the last component of `path` or `url`).
    pub file_name: String,
    /// Where it is.
    pub location: Location,
    /// `size`, when the lock records it.
    pub size: Option<u64>,
    /// The hashes keel can check (sha256, sha384, sha512); others ignored.
    pub hashes: Vec<RecordHash>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawLock {
    lock_version: Option<String>,
    environments: Option<Vec<String>>,
    requires_python: Option<String>,
    extras: Option<Vec<String>>,
    dependency_groups: Option<Vec<String>>,
    default_groups: Option<Vec<String>>,
    created_by: Option<String>,
    packages: Option<Vec<RawPackage>>,
    #[allow(dead_code)]
    tool: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawPackage {
    name: Option<String>,
    version: Option<String>,
    marker: Option<String>,
    requires_python: Option<String>,
    // Informational only (§ packages.dependencies: MUST NOT be used when
    // installing), like `tool` and `attestation-identities`.
    #[allow(dead_code)]
    dependencies: Option<Vec<toml::Table>>,
    vcs: Option<RawVcs>,
    directory: Option<RawDirectory>,
    archive: Option<RawFile>,
    #[allow(dead_code)]
    index: Option<String>,
    sdist: Option<RawFile>,
    wheels: Option<Vec<RawFile>>,
    attestation_identities: Option<Vec<toml::Table>>,
    #[allow(dead_code)]
    tool: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawVcs {
    #[serde(rename = "type")]
    kind: Option<String>,
    url: Option<String>,
    path: Option<String>,
    // Informational (§ packages.vcs.requested-revision: MUST NOT be used).
    #[allow(dead_code)]
    requested_revision: Option<String>,
    commit_id: Option<String>,
    #[allow(dead_code)]
    subdirectory: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawDirectory {
    path: Option<String>,
    #[allow(dead_code)]
    editable: Option<bool>,
    #[allow(dead_code)]
    subdirectory: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawFile {
    name: Option<String>,
    #[allow(dead_code)]
    upload_time: Option<toml::value::Datetime>,
    url: Option<String>,
    path: Option<String>,
    size: Option<u64>,
    hashes: Option<BTreeMap<String, String>>,
    #[allow(dead_code)]
    subdirectory: Option<String>,
}

/// Whether `path`'s file name makes it a lock file (§ File Name:
/// `pylock.toml` or `pylock.<name>.toml`, the name without dots).
pub fn is_lock_file_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if name == "pylock.toml" {
        return true;
    }
    name.strip_prefix("pylock.")
        .and_then(|rest| rest.strip_suffix(".toml"))
        .is_some_and(|middle| !middle.is_empty() && !middle.contains('.'))
}

impl Lock {
    /// Reads and checks the lock file at `path`.
    pub fn from_path(path: &Path) -> Result<Lock, Error> {
        if !is_lock_file_name(path) {
            return Err(Error::NotALockFileName {
                path: path.to_path_buf(),
            });
        }
        let text = fs_err::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let location =
            LockLocation::File(std::path::absolute(path).map_err(|source| Error::Read {
                path: path.to_path_buf(),
                source,
            })?);
        Lock::from_str_at(&text, location)
    }

    /// Reads and checks a lock's `text`, read from `location` (relative
    /// paths in it are relative to that).
    pub fn from_str_at(text: &str, location: LockLocation) -> Result<Lock, Error> {
        let path = location.display_path();
        let mut unknown = Vec::new();
        let deserializer = toml::Deserializer::parse(text).map_err(|e| Error::Toml {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let raw: RawLock = serde_ignored::deserialize(deserializer, |key| {
            unknown.push(key.to_string());
        })
        .map_err(|e| Error::Toml {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut problems = Vec::new();
        let lock = read_lock(raw, location, &mut problems);
        match lock {
            Some(mut lock) if problems.is_empty() => {
                lock.warnings.extend(
                    unknown
                        .into_iter()
                        .map(|key| format!("unknown key `{key}` ignored")),
                );
                Ok(lock)
            }
            _ => Err(Error::Lock {
                path,
                problems: Problems(problems),
            }),
        }
    }
}

/// The lock, or `None` when a required key is missing (in `problems`).
fn read_lock(raw: RawLock, location: LockLocation, problems: &mut Vec<Problem>) -> Option<Lock> {
    let mut warnings = Vec::new();
    let lock_version = read_lock_version(raw.lock_version.as_deref(), problems, &mut warnings);
    let created_by = raw.created_by.or_else(|| {
        problems.push(Problem::new("lock", Rule::Missing("created-by")));
        None
    });
    let environments = raw.environments.map(|markers| {
        markers
            .iter()
            .enumerate()
            .filter_map(|(i, m)| parse_marker(&format!("environments[{i}]"), m, problems))
            .collect()
    });
    let requires_python = raw
        .requires_python
        .as_deref()
        .and_then(|s| parse_specifiers("requires-python", s, problems));
    let normalized = |names: Option<Vec<String>>| -> Vec<String> {
        names
            .unwrap_or_default()
            .iter()
            .map(|n| PackageName::new(n).as_str().to_string())
            .collect()
    };
    let packages = match raw.packages {
        Some(packages) => packages
            .into_iter()
            .enumerate()
            .filter_map(|(index, raw)| read_package(index, raw, &location, problems))
            .collect(),
        None => {
            problems.push(Problem::new("lock", Rule::Missing("packages")));
            Vec::new()
        }
    };
    Some(Lock {
        location,
        lock_version: lock_version?,
        environments,
        requires_python,
        extras: normalized(raw.extras),
        dependency_groups: normalized(raw.dependency_groups),
        default_groups: normalized(raw.default_groups),
        created_by: created_by?,
        packages,
        warnings,
    })
}

/// § lock-version: an unsupported major version is an error, a newer minor
/// one a warning (keel reads 1.0; `2.0.dev0` is already the next major).
fn read_lock_version(
    text: Option<&str>,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<String>,
) -> Option<Version> {
    let Some(text) = text else {
        problems.push(Problem::new("lock", Rule::Missing("lock-version")));
        return None;
    };
    let version = parse_version("lock-version", text, problems)?;
    let (one, next_major, supported) = (
        Version::new([1]),
        Version::from_str("2.dev0").ok()?,
        Version::new([1, 0]),
    );
    if version < one || version >= next_major {
        problems.push(Problem::new(
            "lock-version",
            Rule::UnsupportedLockVersion(text.to_string()),
        ));
        return None;
    }
    if version > supported {
        warnings.push(format!(
            "lock-version {text} is newer than the 1.0 keel knows: keys it does not know are ignored"
        ));
    }
    Some(version)
}

fn read_package(
    index: usize,
    raw: RawPackage,
    location: &LockLocation,
    problems: &mut Vec<Problem>,
) -> Option<LockedPackage> {
    let at = |name: &str| format!("packages[{index}] ({name})");
    let Some(name) = raw.name else {
        problems.push(Problem::new(
            format!("packages[{index}]"),
            Rule::Missing("packages.name"),
        ));
        return None;
    };
    let here = at(&name);
    let normalized = PackageName::new(&name);
    if normalized.as_str() != name {
        problems.push(Problem::new(
            &here,
            Rule::NameNotNormalized(name.clone(), normalized.as_str().to_string()),
        ));
    }
    let version = raw
        .version
        .as_deref()
        .and_then(|v| parse_version("version", v, problems).map(|v| (v, &here)))
        .map(|(v, _)| v);
    let marker = raw
        .marker
        .as_deref()
        .and_then(|m| parse_marker(&here, m, problems));
    let requires_python = raw
        .requires_python
        .as_deref()
        .and_then(|s| parse_specifiers(&here, s, problems));
    for (i, identity) in raw.attestation_identities.iter().flatten().enumerate() {
        if !matches!(identity.get("kind"), Some(toml::Value::String(_))) {
            problems.push(Problem::new(
                format!("{here} attestation-identities[{i}]"),
                Rule::Missing("kind"),
            ));
        }
    }
    let sources = RawSources {
        vcs: raw.vcs,
        directory: raw.directory,
        archive: raw.archive,
        sdist: raw.sdist,
        wheels: raw.wheels,
    };
    let source = read_source(&here, sources, location, problems)?;
    let package = LockedPackage {
        index,
        name: normalized,
        version,
        marker,
        requires_python,
        source,
    };
    check_file_names(&package, problems);
    Some(package)
}

struct RawSources {
    vcs: Option<RawVcs>,
    directory: Option<RawDirectory>,
    archive: Option<RawFile>,
    sdist: Option<RawFile>,
    wheels: Option<Vec<RawFile>>,
}

/// § packages.vcs, .directory, .archive, .sdist, .wheels: sdist and wheels
/// exclude the three direct sources, and without them exactly one direct
/// source must be given.
fn read_source(
    here: &str,
    raw: RawSources,
    location: &LockLocation,
    problems: &mut Vec<Problem>,
) -> Option<PackageSource> {
    let wheels = raw.wheels.unwrap_or_default();
    let distributions = usize::from(raw.sdist.is_some()) + wheels.len();
    let direct = usize::from(raw.vcs.is_some())
        + usize::from(raw.directory.is_some())
        + usize::from(raw.archive.is_some());
    if distributions > 0 && direct > 0 {
        problems.push(Problem::new(
            here,
            Rule::ConflictingSources(
                "vcs, directory and archive cannot be set with sdist or wheels",
            ),
        ));
        return None;
    }
    if distributions == 0 && direct != 1 {
        problems.push(Problem::new(
            here,
            Rule::ConflictingSources(
                "exactly one of vcs, directory and archive must be set without sdist or wheels",
            ),
        ));
        return None;
    }
    if let Some(vcs) = raw.vcs {
        check_vcs(here, &vcs, problems);
        return Some(PackageSource::Vcs);
    }
    if let Some(directory) = raw.directory {
        if directory.path.is_none() {
            problems.push(Problem::new(here, Rule::Missing("directory.path")));
        }
        return Some(PackageSource::Directory);
    }
    if let Some(archive) = raw.archive {
        let file = read_file(&format!("{here} archive"), archive, location, problems)?;
        return Some(PackageSource::Archive(file));
    }
    let wheels: Vec<LockedFile> = wheels
        .into_iter()
        .enumerate()
        .filter_map(|(i, w)| read_file(&format!("{here} wheels[{i}]"), w, location, problems))
        .collect();
    let sdist = raw
        .sdist
        .and_then(|s| read_file(&format!("{here} sdist"), s, location, problems));
    Some(PackageSource::Distributions { wheels, sdist })
}

fn check_vcs(here: &str, vcs: &RawVcs, problems: &mut Vec<Problem>) {
    if vcs.kind.is_none() {
        problems.push(Problem::new(here, Rule::Missing("vcs.type")));
    }
    if vcs.commit_id.is_none() {
        problems.push(Problem::new(here, Rule::Missing("vcs.commit-id")));
    }
    if vcs.url.is_none() && vcs.path.is_none() {
        problems.push(Problem::new(here, Rule::NoLocation("vcs".into())));
    }
}

/// A file entry: its location (resolved against the lock's), its name and
/// its hashes (§ hashes: at least one entry).
fn read_file(
    here: &str,
    raw: RawFile,
    location: &LockLocation,
    problems: &mut Vec<Problem>,
) -> Option<LockedFile> {
    let place = match (&raw.path, &raw.url) {
        (Some(path), _) => location.resolve_path(path),
        (None, Some(url)) => Url::parse(url)
            .map(Location::Url)
            .map_err(|e| Rule::Invalid {
                what: "url",
                value: url.clone(),
                reason: e.to_string(),
            }),
        (None, None) => Err(Rule::NoLocation(here.to_string())),
    };
    let place = place
        .map_err(|rule| problems.push(Problem::new(here, rule)))
        .ok();
    let hashes = read_hashes(here, raw.hashes, problems);
    let file_name = raw
        .name
        .or_else(|| place.as_ref().and_then(Location::file_name));
    let Some(file_name) = file_name else {
        if place.is_some() {
            problems.push(Problem::new(here, Rule::Missing("name")));
        }
        return None;
    };
    Some(LockedFile {
        file_name,
        location: place?,
        size: raw.size,
        hashes: hashes?,
    })
}

/// The hashes keel can check; a problem when there are none.
fn read_hashes(
    here: &str,
    raw: Option<BTreeMap<String, String>>,
    problems: &mut Vec<Problem>,
) -> Option<Vec<RecordHash>> {
    let Some(raw) = raw else {
        problems.push(Problem::new(here, Rule::Missing("hashes")));
        return None;
    };
    let mut hashes = Vec::new();
    for (algorithm, hex) in &raw {
        let Some(known) = HashAlgorithm::from_name(&algorithm.to_ascii_lowercase()) else {
            continue;
        };
        match RecordHash::from_hex(known, hex) {
            Ok(hash) => hashes.push(hash),
            Err(reason) => problems.push(Problem::new(
                here,
                Rule::Invalid {
                    what: "hash",
                    value: format!("{algorithm} = {hex}"),
                    reason,
                },
            )),
        }
    }
    if hashes.is_empty() {
        problems.push(Problem::new(here, Rule::NoUsableHash(here.to_string())));
        return None;
    }
    Some(hashes)
}

/// § packages.wheels / .sdist: each file name parses, and names this
/// package (and its version, when the entry has one).
fn check_file_names(package: &LockedPackage, problems: &mut Vec<Problem>) {
    let PackageSource::Distributions { wheels, sdist } = &package.source else {
        return;
    };
    let here = package.describe();
    for wheel in wheels {
        let problem = match wheel.file_name.parse::<keel_wheel::WheelFilename>() {
            Err(e) => Some(e.to_string()),
            Ok(name) => name_mismatch(package, &name.normalized_name(), name.pep440_version().ok()),
        };
        if let Some(reason) = problem {
            problems.push(Problem::new(
                &here,
                Rule::FileName {
                    file: wheel.file_name.clone(),
                    reason,
                },
            ));
        }
    }
    if let Some(sdist) = sdist {
        let problem = match sdist_name_version(&sdist.file_name) {
            None => Some("not `{name}-{version}.tar.gz` or `.zip`".to_string()),
            Some((name, version)) => name_mismatch(package, &name, version),
        };
        if let Some(reason) = problem {
            problems.push(Problem::new(
                &here,
                Rule::FileName {
                    file: sdist.file_name.clone(),
                    reason,
                },
            ));
        }
    }
}

fn name_mismatch(
    package: &LockedPackage,
    name: &PackageName,
    version: Option<Version>,
) -> Option<String> {
    if *name != package.name {
        return Some(format!("names `{name}`, not `{}`", package.name));
    }
    match (&package.version, version) {
        (Some(expected), Some(found)) if *expected != found => {
            Some(format!("is version {found}, not {expected}"))
        }
        (Some(_), None) => Some("has no valid version".to_string()),
        _ => None,
    }
}

/// `{name}-{version}.tar.gz` (or `.zip`): the name and version of an sdist
/// (*Source distribution format § Source distribution file name*).
fn sdist_name_version(file_name: &str) -> Option<(PackageName, Option<Version>)> {
    let stem = file_name
        .strip_suffix(".tar.gz")
        .or_else(|| file_name.strip_suffix(".zip"))?;
    let (name, version) = stem.rsplit_once('-')?;
    Some((PackageName::new(name), Version::from_str(version).ok()))
}

fn parse_version(what: &'static str, text: &str, problems: &mut Vec<Problem>) -> Option<Version> {
    Version::from_str(text)
        .map_err(|e| {
            problems.push(Problem::new(
                what,
                Rule::Invalid {
                    what: "version",
                    value: text.to_string(),
                    reason: e.to_string(),
                },
            ))
        })
        .ok()
}

fn parse_specifiers(
    at: &str,
    text: &str,
    problems: &mut Vec<Problem>,
) -> Option<VersionSpecifiers> {
    VersionSpecifiers::from_str(text)
        .map_err(|e| {
            problems.push(Problem::new(
                at,
                Rule::Invalid {
                    what: "requires-python",
                    value: text.to_string(),
                    reason: e.to_string(),
                },
            ))
        })
        .ok()
}

/// A marker; an unknown variable is an error (*Dependency specifiers §
/// Environment markers*).
fn parse_marker(at: &str, text: &str, problems: &mut Vec<Problem>) -> Option<Marker> {
    match MarkerTree::from_str(text) {
        Ok(tree) => Some(Marker {
            text: text.to_string(),
            tree,
        }),
        Err(e) => {
            problems.push(Problem::new(
                at,
                Rule::Invalid {
                    what: "marker",
                    value: text.to_string(),
                    reason: e.message.to_string(),
                },
            ));
            None
        }
    }
}

/// For [`Lock::from_path`]'s callers that need the lock file's path.
impl LockLocation {
    fn display_path(&self) -> PathBuf {
        match self {
            LockLocation::File(path) => path.clone(),
            LockLocation::Url(url) => PathBuf::from(url.as_str()),
        }
    }
}
