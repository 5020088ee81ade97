//! Is this archive really of this wheel file? A reused archive's recorded
//! sha256 against the wheel's: free when the wheel's sha256 is already
//! known (a download verified by hash), by hashing the `.whl` with
//! `--verify`. A wheel rebuilt in place with its size and modification time
//! restored changes its change time, so its pointer misses anyway; this
//! catches what `stat` cannot (a file whose every time was restored, a
//! cache copied with its pointers).

use rayon::prelude::*;

use keel_cache::{ArchiveOrigin, ArchiveProblem, Cache, Obtained, WheelSource};

use crate::{Error, Reporter};

/// Checks every reused archive of `obtained` (`sources[i]`'s) against its
/// wheel; one that was unpacked from another build is warned about in one
/// line and unpacked again from the `.whl`.
pub(crate) fn check(
    cache: &Cache,
    sources: &[WheelSource],
    obtained: Vec<Obtained>,
    hash_wheels: bool,
    observer: &dyn Reporter,
) -> Result<Vec<Obtained>, Error> {
    let mismatches: Vec<Option<ArchiveProblem>> = sources
        .par_iter()
        .zip(&obtained)
        .map(|(source, obtained)| mismatch(source, obtained, hash_wheels))
        .collect::<Result<_, _>>()?;
    sources
        .iter()
        .zip(obtained)
        .zip(mismatches)
        .map(|((source, obtained), mismatch)| match mismatch {
            None => Ok(obtained),
            Some(problem) => {
                tracing::warn!(
                    "the cached archive of {} is damaged ({problem}); re-extracting it from {}",
                    source.filename,
                    source.path.display()
                );
                let archive = cache.unpack_again(source, &obtained.archive, observer)?;
                Ok(Obtained {
                    archive,
                    origin: ArchiveOrigin::Repaired(problem),
                })
            }
        })
        .collect()
}

/// The wheel's sha256 against the one its reused archive recorded.
fn mismatch(
    source: &WheelSource,
    obtained: &Obtained,
    hash_wheels: bool,
) -> Result<Option<ArchiveProblem>, Error> {
    if obtained.origin != ArchiveOrigin::Reused {
        return Ok(None);
    }
    let actual = match &source.sha256 {
        Some(known) => known.clone(),
        None if hash_wheels => {
            keel_cache::sha256_of(&source.path).map_err(|e| keel_fs::with_path(e, &source.path))?
        }
        None => return Ok(None),
    };
    let recorded = &obtained.archive.manifest.wheel_sha256;
    Ok(
        (!actual.eq_ignore_ascii_case(recorded)).then(|| ArchiveProblem::OtherBuild {
            archive: obtained.archive.dir.clone(),
            recorded: recorded.clone(),
            actual,
        }),
    )
}
