//! `keel cache clean/prune/verify` on the download cache
//! (`<cache>/downloads-v1/`, owned by keel-download) beside the archive
//! cache: `clean NAME` removes NAME's downloads, `prune` the partial
//! downloads a killed keel left (older than an hour: a younger one may be
//! a running download), `verify` hashes every download against the digest
//! it is filed under and its stamp (`--repair` removes a damaged one; the
//! next install fetches it again).

use std::path::{Path, PathBuf};

use keel_download::{DownloadCache, EntryState};
use keel_wheel::{PackageName, WheelFilename};

/// A damaged download and what was done about it.
#[derive(Debug, serde::Serialize)]
pub struct DamagedDownload {
    /// The cached file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
    /// Removed by `--repair`.
    pub removed: bool,
}

/// What `keel cache verify` found among the downloads.
#[derive(Debug, Default, serde::Serialize)]
pub struct DownloadsReport {
    /// How many downloads were hashed.
    pub checked: usize,
    /// The damaged ones.
    pub damaged: Vec<DamagedDownload>,
}

/// The downloads of the distributions `names` (any spelling): how many,
/// removed unless `dry_run`.
pub fn clean_named(
    cache_dir: &Path,
    names: &[String],
    dry_run: bool,
) -> Result<usize, keel_download::Error> {
    let wanted: Vec<PackageName> = names.iter().map(|n| PackageName::new(n)).collect();
    let cache = DownloadCache::new(cache_dir);
    let mut removed = 0;
    for entry in cache.entries() {
        let entry = entry?;
        let name = entry
            .file_name
            .parse::<WheelFilename>()
            .map(|w| w.normalized_name());
        if name.is_ok_and(|n| wanted.contains(&n)) {
            if !dry_run {
                cache.remove_entry(&entry)?;
            }
            removed += 1;
        }
    }
    Ok(removed)
}

/// Removes partial downloads older than an hour; how many (`dry_run`: none
/// removed, none counted: their age is only known by removing them).
pub fn prune(cache_dir: &Path, dry_run: bool) -> Result<usize, keel_download::Error> {
    if dry_run {
        return Ok(0);
    }
    Ok(DownloadCache::new(cache_dir).remove_stale_partials()?.len())
}

/// Hashes every download; with `repair`, removes the damaged ones.
pub fn verify(cache_dir: &Path, repair: bool) -> Result<DownloadsReport, keel_download::Error> {
    let cache = DownloadCache::new(cache_dir);
    let mut report = DownloadsReport::default();
    for entry in cache.entries() {
        let entry = entry?;
        report.checked += 1;
        if let EntryState::Damaged { reason } = cache.verify_entry(&entry)? {
            if repair {
                cache.remove_entry(&entry)?;
            }
            report.damaged.push(DamagedDownload {
                path: entry.path.clone(),
                reason,
                removed: repair,
            });
        }
    }
    Ok(report)
}

/// `keel cache add`: each wheel unpacked into the archive cache (found
/// later by its path or its content) and copied into the download cache;
/// the archive origin of each, in order.
pub fn add(
    cache: &keel_cache::Cache,
    wheels: &[PathBuf],
    quiet: bool,
) -> Result<Vec<(String, keel_cache::ArchiveOrigin)>, crate::CliError> {
    let sources = wheels
        .iter()
        .map(|wheel| keel_cache::WheelSource::new(wheel))
        .collect::<Result<Vec<_>, _>>()?;
    let progress = crate::output::UnpackProgress::new(quiet);
    let observer: &dyn keel_cache::UnpackObserver = match &progress {
        Some(progress) => progress.as_ref(),
        None => &(),
    };
    let obtained = cache.add(&sources, observer);
    if let Some(progress) = &progress {
        progress.finish();
    }
    let downloads = DownloadCache::new(cache.root());
    for source in &sources {
        downloads.add(&source.path)?;
    }
    Ok(sources
        .iter()
        .zip(obtained?)
        .map(|(source, obtained)| (source.filename.to_string(), obtained.origin))
        .collect())
}
