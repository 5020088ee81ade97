//! Obtaining the archives of a set of wheels: pointer lookups, then unpacks
//! of misses and damaged archives on every core, taking turns with other
//! processes unpacking the same distribution.

use rayon::prelude::*;

use crate::{Archive, ArchiveProblem, Cache, Error, Lookup, Unpack, WheelSource};

/// Where an archive came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveOrigin {
    /// An intact archive was already in the cache (this process's or
    /// another's).
    Reused,
    /// This process unpacked the wheel for the first time.
    Unpacked,
    /// The pointer or manifest was damaged; the wheel was unpacked again.
    Repaired(ArchiveProblem),
}

/// An archive and where it came from.
#[derive(Debug)]
pub struct Obtained {
    /// The archive (its files not yet proven: staging does that).
    pub archive: Archive,
    /// Where it came from.
    pub origin: ArchiveOrigin,
}

/// Told when an unpack starts and ends (a progress bar); both have no-op
/// defaults.
pub trait UnpackObserver: Sync {
    /// `wheel` (its file name, `bytes` long) is being unpacked.
    fn on_unpack_start(&self, _wheel: &str, _bytes: u64) {}
    /// The unpack of `wheel` ended, successfully or not.
    fn on_unpack_complete(&self, _wheel: &str) {}
}

/// An observer that observes nothing.
impl UnpackObserver for () {}

/// What one wheel's first, non-waiting attempt gave.
enum Attempt {
    Ready(Obtained),
    /// Another process is unpacking this distribution right now; the
    /// origin this process reports if it ends up unpacking it.
    Busy(ArchiveOrigin),
}

impl Cache {
    /// The archive of every wheel of `sources`, in order: each pointer
    /// followed, each miss or damaged archive unpacked (with a one-line
    /// warning for damage). Unpacks run on every core and never wait there:
    /// a wheel another process is unpacking is waited for afterwards, on
    /// this thread (a pool worker blocked on one distribution's turn could
    /// hold another's).
    pub fn obtain(
        &self,
        sources: &[WheelSource],
        observer: &dyn UnpackObserver,
    ) -> Result<Vec<Obtained>, Error> {
        let lookups = sources
            .iter()
            .map(|source| self.lookup(source))
            .collect::<Result<Vec<_>, _>>()?;
        self.obtain_looked_up(sources, lookups, observer)
    }

    /// [`Cache::obtain`] for wheels already looked up (`lookups[i]` is
    /// `sources[i]`'s): a caller that needed the lookups first (to read a
    /// cached wheel's metadata) does not pay for them twice.
    pub fn obtain_looked_up(
        &self,
        sources: &[WheelSource],
        lookups: Vec<Lookup>,
        observer: &dyn UnpackObserver,
    ) -> Result<Vec<Obtained>, Error> {
        let attempts: Vec<Result<Attempt, Error>> = sources
            .par_iter()
            .zip(lookups)
            .map(|(source, lookup)| self.attempt(source, lookup, observer))
            .collect();
        sources
            .iter()
            .zip(attempts)
            .map(|(source, attempt)| match attempt? {
                Attempt::Ready(obtained) => Ok(obtained),
                Attempt::Busy(origin) => {
                    // The observer heard of this unpack on the pool already.
                    let unpacked = self.unpack(source, None)?;
                    Ok(settle(unpacked, origin))
                }
            })
            .collect()
    }

    /// `keel cache add`: the archive of every wheel of `sources`, unpacked
    /// where missing or damaged (as [`Cache::obtain`]), each then also
    /// pointed at by the wheel's content, so that a copy of this cache (a
    /// shared layer published elsewhere) serves the same wheel downloaded
    /// anywhere. Takes the shared lock itself.
    pub fn add(
        &self,
        sources: &[WheelSource],
        observer: &dyn UnpackObserver,
    ) -> Result<Vec<Obtained>, Error> {
        let _lock = self.lock_shared()?;
        let obtained = self.obtain(sources, observer)?;
        for (source, obtained) in sources.iter().zip(&obtained) {
            let by_content = source
                .clone()
                .with_sha256(obtained.archive.manifest.wheel_sha256.clone());
            if !self.pointer_path(&by_content).exists() {
                self.write_pointers(source, &obtained.archive, true)?;
            }
        }
        Ok(obtained)
    }

    /// Unpacks `source` again into a fresh archive of the writable cache,
    /// its archive `stale` having been found damaged (waits for the
    /// distribution's turn). A damaged archive of a shared layer is noted,
    /// and passed over from now on.
    pub fn unpack_again(
        &self,
        source: &WheelSource,
        stale: &Archive,
        observer: &dyn UnpackObserver,
    ) -> Result<Archive, Error> {
        if stale.shared {
            self.note_layer_damaged(stale)?;
        }
        observed(source, observer, || self.unpack(source, Some(&stale.id)))
            .map(Unpack::into_archive)
    }

    /// Looks the wheel up and, on a miss or damage, unpacks it unless
    /// another process is doing so. Never waits.
    fn attempt(
        &self,
        source: &WheelSource,
        lookup: Lookup,
        observer: &dyn UnpackObserver,
    ) -> Result<Attempt, Error> {
        let origin = match lookup {
            Lookup::Hit(archive) => {
                return Ok(Attempt::Ready(Obtained {
                    archive,
                    origin: ArchiveOrigin::Reused,
                }));
            }
            Lookup::Miss => ArchiveOrigin::Unpacked,
            Lookup::Damaged { reason } => {
                tracing::warn!(
                    "the cached archive of {} is damaged ({reason}); re-extracting it from {}",
                    source.filename,
                    source.path.display()
                );
                ArchiveOrigin::Repaired(reason)
            }
        };
        let unpacked = observed(source, observer, || self.try_unpack(source, None))?;
        Ok(match unpacked {
            None => Attempt::Busy(origin),
            Some(unpacked) => Attempt::Ready(settle(unpacked, origin)),
        })
    }
}

/// An unpack's archive with its origin: one that another process unpacked
/// just before this one's turn was reused, not unpacked.
fn settle(unpacked: Unpack, origin: ArchiveOrigin) -> Obtained {
    match (unpacked, origin) {
        (Unpack::FoundReady(archive), ArchiveOrigin::Unpacked) => Obtained {
            archive,
            origin: ArchiveOrigin::Reused,
        },
        (unpacked, origin) => Obtained {
            archive: unpacked.into_archive(),
            origin,
        },
    }
}

/// Runs an unpack of `source`, telling the observer when it starts and ends.
fn observed<T>(
    source: &WheelSource,
    observer: &dyn UnpackObserver,
    unpack: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    let name = source.filename.to_string();
    observer.on_unpack_start(&name, source.size);
    let unpacked = unpack();
    observer.on_unpack_complete(&name);
    unpacked
}
