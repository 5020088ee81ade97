//! The files keel writes itself into each staged wheel: entry-point
//! launchers, `INSTALLER`, `REQUESTED`, `direct_url.json`, and the RECORD
//! of what is installed (*Recording installed projects*; *Direct URL data
//! structure*; *Entry points specification*).

use std::collections::BTreeMap;
use std::path::PathBuf;

use keel_wheel::{HashAlgorithm, RecordHash, RecordWriter};
use rayon::prelude::*;
use serde::Serialize;

use crate::Error;
use crate::destinations::{Action, Layout, WheelJob};
use crate::origin::Origin;
use crate::scripts::{launcher, write_executable};

/// Writes the generated files of every staged wheel, on every core.
pub(crate) fn write_all(jobs: &[WheelJob], layout: &Layout) -> Result<(), Error> {
    jobs.par_iter()
        .try_for_each(|job| write_generated(job, layout))
}

/// `direct_url.json` of an archive URL (*Direct URL data structure §
/// Archive URLs*).
#[derive(Serialize)]
struct DirectUrl<'a> {
    archive_info: ArchiveInfo<'a>,
    url: &'a str,
}

#[derive(Serialize)]
struct ArchiveInfo<'a> {
    /// The legacy key, which must agree with `hashes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    hash: Option<String>,
    hashes: &'a BTreeMap<&'static str, String>,
}

/// Writes the files keel generates for one staged wheel: entry-point
/// launchers, `INSTALLER`, `REQUESTED`, `direct_url.json` and the new
/// RECORD listing every installed file with hash and size (*Recording
/// installed projects*; *Direct URL data structure*).
fn write_generated(job: &WheelJob, layout: &Layout) -> Result<(), Error> {
    let manifest = &job.archive.manifest;
    let dist_info = layout.site_packages.join(&manifest.dist_info);
    let record_dest = dist_info.join("RECORD");
    // Streamed row by row: a wheel of 100,000 files never holds its RECORD
    // whole (rows and text would be tens of MB).
    let record_file = fs_err::File::create(job.staged_path(&record_dest))?;
    let mut rows = RecordWriter::new(record_file);
    for file in job.files.iter().filter(|f| f.action != Action::CheckOnly) {
        let entry = &manifest.files[file.index];
        let (hash, size) = match job.rewritten.get(&file.index) {
            Some((hash, size)) => (hash, *size),
            None => (&entry.hash, entry.size),
        };
        rows.row(&layout.record_path(&file.dest), Some(hash), Some(size))?;
    }
    // *Recording installed projects § The RECORD file*: bytecode may be
    // listed without hash or size (it is not reproducible byte for byte).
    for dest in &job.compiled {
        rows.row(&layout.record_path(dest), None, None)?;
    }
    let mut generate = |dest: PathBuf, bytes: &[u8], executable: bool| -> Result<(), Error> {
        let target = job.staged_path(&dest);
        if executable {
            write_executable(&target, bytes)?;
        } else {
            fs_err::write(&target, bytes)?;
        }
        let hash = RecordHash::of(HashAlgorithm::Sha256, bytes);
        rows.row(
            &layout.record_path(&dest),
            Some(&hash),
            Some(bytes.len() as u64),
        )?;
        Ok(())
    };
    for (name, index) in &job.scripts {
        let entry_point = &manifest.entry_points[*index];
        generate(
            layout.scripts.join(name),
            &launcher(entry_point, &layout.python),
            true,
        )?;
    }
    generate(dist_info.join("INSTALLER"), b"keel\n", false)?;
    generate(dist_info.join("REQUESTED"), b"", false)?;
    if let Some(bytes) = direct_url(job)? {
        generate(dist_info.join("direct_url.json"), &bytes, false)?;
    }
    rows.row(&layout.record_path(&record_dest), None, None)?;
    rows.finish()?;
    Ok(())
}

/// *Direct URL data structure § Archive URLs*: a local wheel is recorded
/// with its `file://` URL and sha256, a direct URL reference with its URL
/// and every hash verified (the `hashes` map, and the legacy `hash` key,
/// which must agree with it); a wheel chosen through an index or a lock's
/// `[[packages.wheels]]` has none (*Recording the Direct URL Origin*).
fn direct_url(job: &WheelJob) -> Result<Option<Vec<u8>>, Error> {
    let (url, hashes) = match &job.origin {
        Origin::Index => return Ok(None),
        Origin::LocalFile => {
            let url =
                url::Url::from_file_path(&job.source.path).map_err(|()| Error::NotAbsolute {
                    path: job.source.path.clone(),
                })?;
            let sha256 = job.archive.manifest.wheel_sha256.clone();
            (url, BTreeMap::from([("sha256", sha256)]))
        }
        Origin::DirectUrl { url, hashes } => {
            let hashes = hashes
                .iter()
                .map(|h| (h.algorithm.name(), h.hex()))
                .collect();
            (url.clone(), hashes)
        }
    };
    let legacy = hashes
        .get("sha256")
        .map(|hex| ("sha256", hex))
        .or_else(|| hashes.iter().next().map(|(name, hex)| (*name, hex)))
        .map(|(name, hex)| format!("{name}={hex}"));
    let value = DirectUrl {
        archive_info: ArchiveInfo {
            hash: legacy,
            hashes: &hashes,
        },
        url: url.as_str(),
    };
    serde_json::to_vec(&value).map(Some).map_err(|e| {
        Error::Io(std::io::Error::other(format!(
            "cannot write direct_url.json for `{}`: {e}",
            job.source.path.display()
        )))
    })
}
