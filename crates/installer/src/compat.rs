//! Does each wheel fit the environment's interpreter? Checked before
//! anything changes, in the environment or in the cache:
//!
//! - its tags (*Platform compatibility tags*; *Binary distribution format §
//!   File name convention*): one of the wheel's expanded tags must be among
//!   the interpreter's supported tags. Nothing bypasses this: a wheel built
//!   for another interpreter fails at import time.
//! - its `Requires-Python` (*Core metadata specifications §
//!   Requires-Python*, PEP 440 specifiers) must contain the interpreter's
//!   version; `--ignore-requires-python` (pip's name) skips this one check,
//!   with a warning.

use keel_cache::{Cache, Lookup, WheelSource};
use keel_python::{Interpreter, Tags};
use keel_wheel::{Version, VersionSpecifiers, WheelArchive};
use rayon::prelude::*;

use crate::Error;

/// The interpreter a transaction installs for, and what it supports.
pub(crate) struct Target {
    pub interpreter: Interpreter,
    pub tags: Tags,
}

impl Target {
    /// `CPython 3.13.0`.
    fn describe(&self) -> String {
        format!(
            "{} {}",
            self.interpreter.implementation_display(),
            self.interpreter.python_full_version()
        )
    }

    fn version(&self) -> &Version {
        self.interpreter.python_full_version()
    }
}

/// Refuses a wheel none of whose tags the interpreter supports.
pub(crate) fn check_tags(source: &WheelSource, target: &Target) -> Result<(), Error> {
    let name = &source.filename;
    if target
        .tags
        .rank(&name.python_tags, &name.abi_tags, &name.platform_tags)
        .is_some()
    {
        return Ok(());
    }
    let mut expanded = Vec::new();
    for python in &name.python_tags {
        for abi in &name.abi_tags {
            for platform in &name.platform_tags {
                expanded.push(format!("{python}-{abi}-{platform}"));
            }
        }
    }
    Err(Error::UnsupportedWheel {
        wheel: source.filename.to_string(),
        interpreter: target.interpreter.executable().to_path_buf(),
        description: target.describe(),
        tags: expanded.join(", "),
    })
}

/// The cache lookups of `sources`, each wheel's `Requires-Python` checked
/// against the interpreter (from the cached manifest, or from the wheel's
/// METADATA on a miss: nothing is unpacked before every wheel fits).
pub(crate) fn check_requires_python(
    cache: &Cache,
    sources: &[WheelSource],
    target: &Target,
    ignore: bool,
) -> Result<Vec<Lookup>, Error> {
    // On every core, as the lookups were before this check needed them
    // first: a large manifest's parse is most of a warm wheel's lookup.
    sources
        .par_iter()
        .map(|source| {
            let lookup = cache.lookup(source)?;
            let requires = match &lookup {
                Lookup::Hit(archive) => archive_requires_python(archive)?,
                Lookup::Miss | Lookup::Damaged { .. } => {
                    let wheel = WheelArchive::open_with_limits(&source.path, cache.limits())
                        .map_err(Error::InvalidWheel)?;
                    wheel.metadata().requires_python.clone()
                }
            };
            if let Some(requires) = requires {
                check_one(source, &requires, target, ignore)?;
            }
            Ok(lookup)
        })
        .collect()
}

/// A cached archive's `Requires-Python`: recorded in its manifest, or (a
/// manifest of an older keel) read from its METADATA.
fn archive_requires_python(archive: &keel_cache::Archive) -> Result<Option<String>, Error> {
    if let Some(recorded) = &archive.manifest.requires_python {
        return Ok(recorded.clone());
    }
    let path = archive
        .tree()
        .join(&archive.manifest.dist_info)
        .join("METADATA");
    let text = match fs_err::read_to_string(&path) {
        Ok(text) => text,
        // A damaged archive: staging repairs it; the wheel is read then.
        Err(_) => return Ok(None),
    };
    Ok(keel_wheel::CoreMetadata::parse(&text)
        .ok()
        .and_then(|metadata| metadata.requires_python))
}

fn check_one(
    source: &WheelSource,
    requires: &str,
    target: &Target,
    ignore: bool,
) -> Result<(), Error> {
    let specifiers: VersionSpecifiers =
        requires
            .parse()
            .map_err(
                |e: keel_wheel::VersionSpecifiersParseError| Error::InvalidRequiresPython {
                    wheel: source.path.clone(),
                    requires: requires.to_string(),
                    reason: e.to_string(),
                },
            )?;
    if specifiers.contains(target.version()) {
        return Ok(());
    }
    if ignore {
        tracing::warn!(
            "{} requires Python {requires}; installing it into {} ({}) anyway (--ignore-requires-python)",
            source.filename,
            target.interpreter.executable().display(),
            target.version()
        );
        return Ok(());
    }
    Err(Error::RequiresPython {
        wheel: source.filename.to_string(),
        requires: requires.to_string(),
        version: target.version().clone(),
        interpreter: target.interpreter.executable().to_path_buf(),
    })
}
