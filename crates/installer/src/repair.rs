//! Staging with self-healing: every wheel staged and proven; a wheel whose
//! archive turns out damaged is warned about in one line, re-extracted from
//! its `.whl` into a fresh archive and staged again
//! (`shared` guarantee 2: a damaged cache is never an error, never a
//! silently broken install).

use keel_cache::Cache;

use crate::destinations::{Layout, WheelJob};
use crate::report::{Repair, RepairReason};
use crate::stage::{self, Staged};
use crate::{Error, LinkMode, Reporter};

/// What staging proved.
#[derive(Debug, Default)]
pub(crate) struct Proven {
    /// Files proven by hashing.
    pub hashed: usize,
    /// Files proven by a stamp that still held.
    pub trusted: usize,
    /// Archives rebuilt because staging found them damaged.
    pub repaired: Vec<Repair>,
}

/// How to stage.
pub(crate) struct StageSettings<'a> {
    pub mode: LinkMode,
    pub hash_everything: bool,
    pub observer: &'a dyn Reporter,
    pub cancelled: &'a (dyn Fn() -> bool + Sync),
}

/// Stages and proves every job; re-extracts and restages those whose
/// archives are damaged.
pub(crate) fn stage_and_repair(
    jobs: &mut [WheelJob],
    cache: &Cache,
    layout: &Layout,
    settings: &StageSettings<'_>,
) -> Result<Proven, Error> {
    let results = stage::stage(
        jobs,
        layout,
        settings.mode,
        settings.hash_everything,
        settings.cancelled,
    )?;
    let mut proven = Proven::default();
    let mut damaged = Vec::new();
    for (index, result) in results.into_iter().enumerate() {
        match result {
            Staged::Ok {
                hashed,
                trusted,
                restamps,
            } => {
                proven.hashed += hashed;
                proven.trusted += trusted;
                if let Err(e) = cache.restamp(&jobs[index].archive, &restamps) {
                    tracing::debug!("could not record new stamps: {e}");
                }
            }
            Staged::Damaged {
                entry,
                damage,
                more,
            } => damaged.push((
                index,
                RepairReason::Files {
                    entry,
                    damage,
                    more,
                },
            )),
        }
    }
    for (index, reason) in damaged {
        let job = &mut jobs[index];
        tracing::warn!(
            "the cached archive of {} is damaged ({reason}); re-extracting it from {}",
            job.source.filename,
            job.source.path.display()
        );
        proven.repaired.push(Repair {
            wheel: job.source.filename.to_string(),
            reason,
        });
        let (hashed, trusted) = restage(job, cache, layout, settings)?;
        proven.hashed += hashed;
        proven.trusted += trusted;
    }
    Ok(proven)
}

/// Discards one wheel's staging, unpacks it again into a fresh archive and
/// stages that; a fresh archive found damaged again is an error.
fn restage(
    job: &mut WheelJob,
    cache: &Cache,
    layout: &Layout,
    settings: &StageSettings<'_>,
) -> Result<(usize, usize), Error> {
    discard(job)?;
    let archive = cache.unpack_again(&job.source, &job.archive, settings.observer)?;
    let mut fresh = vec![WheelJob::plan(
        job.source.clone(),
        job.origin.clone(),
        archive,
        job.root.clone(),
        layout,
    )?];
    let staged = stage::stage(
        &mut fresh,
        layout,
        settings.mode,
        settings.hash_everything,
        settings.cancelled,
    )?
    .pop();
    let counts = match staged {
        Some(Staged::Ok {
            hashed, trusted, ..
        }) => (hashed, trusted),
        Some(Staged::Damaged { entry, damage, .. }) => {
            return Err(Error::StillDamaged {
                wheel: job.source.path.clone(),
                entry,
                reason: damage,
            });
        }
        None => (0, 0),
    };
    *job = fresh.remove(0);
    Ok(counts)
}

/// Removes one wheel's staging trees (before restaging it from a fresh archive).
fn discard(job: &WheelJob) -> Result<(), Error> {
    for root in [&job.root, &job.prefix_root] {
        match fs_err::remove_dir_all(root) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
