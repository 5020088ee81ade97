//! The files a hash-pinned requirements file asks for, found through the
//! simple index (PEP 691 JSON, PEP 503 HTML): of each `name==version` only
//! files of exactly that version whose hash the requirement allows, the one
//! whose tags rank first for the interpreter; yanked files with a warning
//! (PEP 592). A `name @ url` is fetched as given. Offline, a requirement is
//! found in the download cache by its hashes, or named as missing.

use keel_download::{Downloader, IndexFile, SimpleIndex, Wanted};
use keel_lock::MarkerContext;
use keel_lock::requirements::{Pin, PinnedRequirement, RequirementsFile};
use keel_wheel::{RecordHash, WheelFilename};
use url::Url;

use crate::Error;
use crate::compat::Target;
use crate::locked::{LockedRequest, Pending};
use crate::origin::Origin;

/// The wheels `request.file` pins for the target, as files to fetch.
pub(crate) fn from_requirements(
    request: &LockedRequest,
    target: &Target,
    downloader: &Downloader,
) -> Result<Vec<Pending>, Error> {
    let file = RequirementsFile::from_path(&request.file)?;
    let context = MarkerContext::new(target.interpreter.markers(), &[], &[])
        .map_err(|rule| Error::Markers(rule.to_string()))?;
    let active: Vec<&PinnedRequirement> = file
        .requirements
        .iter()
        .filter(|r| r.marker.is_none_or(|m| context.holds(m)))
        .collect();
    let indexes: Vec<Url> = request
        .index_urls
        .iter()
        .chain(if file.no_index {
            &[][..]
        } else {
            &file.index_urls[..]
        })
        .cloned()
        .collect();
    let finder = Finder {
        downloader,
        indexes: &indexes,
        target,
        offline: request.offline,
    };
    let unhashed: Vec<String> = active
        .iter()
        .filter(|r| matches!(r.pin, Pin::Unpinned(_)) || r.hashes.is_empty())
        .map(|r| finder.hint(r))
        .collect();
    if !unhashed.is_empty() {
        return Err(Error::MissingHashes {
            file: request.file.clone(),
            lines: unhashed,
        });
    }
    let mut pending = Vec::with_capacity(active.len());
    let mut missing = Vec::new();
    for requirement in active {
        match finder.find(requirement) {
            Ok(found) => pending.push(found),
            Err(reason) => missing.push(format!(
                "{} ({}): {reason}",
                requirement, requirement.origin
            )),
        }
    }
    if missing.is_empty() {
        Ok(pending)
    } else {
        Err(Error::NotFound {
            file: request.file.clone(),
            requirements: missing,
        })
    }
}

struct Finder<'a> {
    downloader: &'a Downloader,
    indexes: &'a [Url],
    target: &'a Target,
    offline: bool,
}

impl Finder<'_> {
    /// The file to fetch for one exactly pinned, hashed requirement.
    fn find(&self, requirement: &PinnedRequirement) -> Result<Pending, String> {
        if let Pin::Url(url) = &requirement.pin {
            return Ok(direct(requirement, url));
        }
        if self.offline {
            return self.find_cached(requirement);
        }
        let file = self.best_file(requirement)?;
        if let Some(reason) = file.yanked.as_ref() {
            tracing::warn!(
                "{} is yanked{}",
                file.file_name,
                reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
        }
        Ok(Pending {
            wanted: Wanted {
                package: requirement.to_string(),
                url: file.url.clone(),
                file_name: file.file_name.clone(),
                hashes: requirement.hashes.clone(),
                size: file.size,
            },
            origin: Origin::Index,
        })
    }

    /// Offline: a file already downloaded with one of the allowed hashes.
    fn find_cached(&self, requirement: &PinnedRequirement) -> Result<Pending, String> {
        let Some((path, file_name)) = cached_wheel(self.downloader, &requirement.hashes) else {
            return Err("not in the download cache, and --offline forbids fetching it".into());
        };
        let url = crate::locked::file_url(&path).map_err(|e| e.to_string())?;
        Ok(Pending {
            wanted: Wanted {
                package: requirement.to_string(),
                url,
                file_name,
                hashes: requirement.hashes.clone(),
                size: None,
            },
            origin: Origin::Index,
        })
    }

    /// The first index that knows the project, and of its files the best.
    fn best_file(&self, requirement: &PinnedRequirement) -> Result<IndexFile, String> {
        if self.indexes.is_empty() {
            return Err("no index to look it up in (give --index-url or -i in the file)".into());
        }
        let mut reasons = Vec::new();
        for index in self.indexes {
            let files =
                match SimpleIndex::new(self.downloader, index.clone()).files(&requirement.name) {
                    Ok(files) => files,
                    Err(e) => {
                        reasons.push(format!("{index}: {e}"));
                        continue;
                    }
                };
            match choose(&files, requirement, self.target) {
                Ok(file) => return Ok(file.clone()),
                Err(reason) => reasons.push(format!("{index}: {reason}")),
            }
        }
        Err(reasons.join("; "))
    }

    /// The requirement line with the hash to add, as pip prints it: the
    /// best file's hash as the index states it.
    fn hint(&self, requirement: &PinnedRequirement) -> String {
        if matches!(requirement.pin, Pin::Unpinned(_)) {
            return format!(
                "{requirement} ({}): not an exact pin (`==` or `===`)",
                requirement.origin
            );
        }
        let unhashed = PinnedRequirement {
            hashes: Vec::new(),
            ..requirement.clone()
        };
        let found = (!self.offline)
            .then(|| self.best_file(&unhashed).ok())
            .flatten();
        match found.as_ref().and_then(|f| {
            f.hashes
                .iter()
                .find(|h| h.algorithm == keel_wheel::HashAlgorithm::Sha256)
        }) {
            Some(hash) => format!(
                "{requirement} --hash=sha256:{} ({})",
                hash.hex(),
                requirement.origin
            ),
            None => format!(
                "{requirement} ({}): no --hash (and none found to suggest)",
                requirement.origin
            ),
        }
    }
}

/// A wheel in the download cache under one of `hashes` (its bucket holds
/// the file under its own name).
fn cached_wheel(
    downloader: &Downloader,
    hashes: &[RecordHash],
) -> Option<(std::path::PathBuf, String)> {
    hashes.iter().find_map(|hash| {
        let bucket = downloader.cache().bucket(hash);
        fs_err::read_dir(&bucket).ok()?.flatten().find_map(|entry| {
            let name = entry.file_name().to_str()?.to_string();
            name.ends_with(".whl").then(|| (entry.path(), name))
        })
    })
}

fn direct(requirement: &PinnedRequirement, url: &Url) -> Pending {
    let file_name = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or_default()
        .to_string();
    Pending {
        wanted: Wanted {
            package: requirement.to_string(),
            url: url.clone(),
            file_name,
            hashes: requirement.hashes.clone(),
            size: None,
        },
        origin: Origin::DirectUrl {
            url: url.clone(),
            hashes: requirement.hashes.clone(),
        },
    }
}

/// Of an index's files, the wheel of exactly the pinned version, allowed
/// by the requirement's hashes and the interpreter's `Requires-Python`,
/// whose tags rank first; why none, otherwise.
fn choose<'a>(
    files: &'a [IndexFile],
    requirement: &PinnedRequirement,
    target: &Target,
) -> Result<&'a IndexFile, String> {
    let version = target.interpreter.python_full_version();
    let of_version: Vec<(&IndexFile, WheelFilename)> = files
        .iter()
        .filter_map(|f| Some((f, f.file_name.parse::<WheelFilename>().ok()?)))
        .filter(|(_, w)| {
            w.normalized_name() == requirement.name && pin_matches(&requirement.pin, w)
        })
        .collect();
    if of_version.is_empty() {
        return Err(format!(
            "no wheel of that version among its {} files",
            files.len()
        ));
    }
    let allowed: Vec<&(&IndexFile, WheelFilename)> = of_version
        .iter()
        .filter(|(f, _)| {
            requirement.hashes.is_empty()
                || f.hashes.is_empty()
                || f.hashes.iter().any(|h| allowed(h, &requirement.hashes))
        })
        .filter(|(f, _)| {
            f.requires_python.as_deref().is_none_or(|spec| {
                spec.parse::<keel_wheel::VersionSpecifiers>()
                    .map_or(true, |s| s.contains(version))
            })
        })
        .collect();
    if allowed.is_empty() {
        return Err(format!(
            "none of its {} wheels of that version has a hash the requirement allows (or fits Requires-Python)",
            of_version.len()
        ));
    }
    allowed
        .iter()
        .filter_map(|(f, w)| {
            Some((
                target
                    .tags
                    .rank(&w.python_tags, &w.abi_tags, &w.platform_tags)?,
                *f,
            ))
        })
        .min_by_key(|(rank, _)| *rank)
        .map(|(_, f)| f)
        .ok_or_else(|| {
            format!(
                "none of its wheels of that version fits {} {} ({})",
                target.interpreter.implementation_display(),
                target.interpreter.python_full_version(),
                allowed
                    .iter()
                    .map(|(f, _)| f.file_name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

fn pin_matches(pin: &Pin, wheel: &WheelFilename) -> bool {
    match pin {
        Pin::Version(version) => wheel.pep440_version().is_ok_and(|v| v == *version),
        Pin::Arbitrary(text) => wheel.version == *text,
        Pin::Url(_) | Pin::Unpinned(_) => false,
    }
}

fn allowed(hash: &RecordHash, hashes: &[RecordHash]) -> bool {
    hashes.contains(hash)
}
