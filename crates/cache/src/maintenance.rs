//! Keeping the cache trustworthy and small: `keel cache clean`, `prune`,
//! `verify [--repair]` and `size`.
//!
//! Two guarantees hold here. `cache clean` removes everything keel owns,
//! whatever the permissions a failed build left behind, and never follows
//! a symlink out of the cache. And maintenance never pulls files from under
//! a running install: many keel processes may share one cache, and clean,
//! prune and repair wait for the installs using it to finish.
//!
//! - **clean** removes everything (or the archives and pointers of the
//!   distributions named), and refuses a directory that is not a keel
//!   cache.
//! - **prune** removes what nothing refers to: archives without a pointer,
//!   pointers without an archive, damaged archives (a file missing, not a
//!   regular file, or of the wrong size) and the temporary directories of
//!   unpacks that were killed.
//! - **verify** hashes every file of every archive against the RECORD hash
//!   its manifest holds; `--repair` re-extracts a damaged archive from its
//!   `.whl` where that wheel is still where it was unpacked from, and
//!   forgets it otherwise (the next install unpacks it again).
//!
//! clean, prune and repair hold the cache's exclusive lock, so they wait for
//! running installs (which hold it shared) and installs wait for them. A
//! dry run and `size` take no lock and change nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::key::{content_of_pointer, wheel_of_pointer};
use crate::removal::{measure, remove_beneath, remove_contents};
use crate::{
    ARCHIVES, Archive, Cache, Error, LOCK, Lookup, Manifest, PARTIAL, POINTERS, Removed, TAG, TMP,
    TURNSTILE, WheelSource, check_file,
};

/// What `clean` removed, or would remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanReport {
    /// What was removed (with a dry run, what would be).
    pub removed: Removed,
    /// Whether there was a cache at all.
    pub existed: bool,
    /// Names given that have nothing in the cache.
    pub not_cached: Vec<String>,
}

/// What `prune` removed, or would remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Archives no pointer leads to.
    pub unreferenced_archives: Vec<String>,
    /// Archives with a file missing, not regular, or of the wrong size,
    /// and archives whose manifest is unreadable.
    pub damaged_archives: Vec<String>,
    /// Pointers that are malformed or lead to no usable archive.
    pub dangling_pointers: Vec<PathBuf>,
    /// `tmp/unpack-*` directories of unpacks that never finished.
    pub unfinished_unpacks: usize,
    /// Temporary files of atomic writes that never finished.
    pub partial_files: usize,
    /// What was removed (with a dry run, what would be).
    pub removed: Removed,
}

impl PruneReport {
    /// Whether prune found nothing to remove.
    pub fn is_empty(&self) -> bool {
        self.unreferenced_archives.is_empty()
            && self.damaged_archives.is_empty()
            && self.dangling_pointers.is_empty()
            && self.unfinished_unpacks == 0
            && self.partial_files == 0
    }
}

/// One damaged file of an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamagedFile {
    /// The entry path in the wheel.
    pub entry: String,
    /// What is wrong, in the spelling every report shares (`size`).
    pub problem: keel_wheel::FileProblem,
    /// What is wrong, in words (`0 bytes instead of 23`).
    pub reason: String,
}

/// What `verify --repair` did about a damaged archive or pointer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum RepairAction {
    /// Unpacked again from the wheel into a fresh archive.
    Reextracted {
        /// The wheel it was unpacked from.
        from: PathBuf,
        /// The fresh archive, `<name>/<id>`.
        archive: String,
    },
    /// The wheel is unknown, gone or changed: the pointer and archive were
    /// removed, and the next install of the wheel unpacks it again.
    Forgotten {
        /// Why the wheel could not be unpacked again, in words.
        reason: String,
    },
    /// The repair failed. What it did before failing stays done (a fresh
    /// archive and its pointer, or the pointer's removal); the rest is as
    /// it was.
    Failed {
        /// The error and its causes, `: `-separated.
        reason: String,
    },
}

/// The check of one pointer and the archive it leads to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArchiveReport {
    /// The wheel's file name.
    pub wheel: String,
    /// The pointer file.
    pub pointer: PathBuf,
    /// `<name>/<id>`, when the pointer names a readable archive.
    pub archive: Option<String>,
    /// Where the wheel was unpacked from (unknown for old pointers).
    pub wheel_path: Option<PathBuf>,
    /// The archive's files checked, damaged ones included.
    pub files: usize,
    /// Their sizes (as the manifest has them), summed.
    pub bytes: u64,
    /// A problem of the pointer or manifest (the files could not be checked).
    pub problem: Option<crate::ArchiveProblem>,
    /// The files that failed their check, in manifest order.
    pub damaged: Vec<DamagedFile>,
    /// Files whose stamp no longer held but whose content matched; with
    /// `--repair` their stamps were renewed.
    pub restamped: usize,
    /// What `--repair` did, if the entry was damaged and repair asked for.
    pub repair: Option<RepairAction>,
}

impl ArchiveReport {
    /// Whether the pointer, the manifest or any file is damaged (repaired
    /// or not).
    pub fn is_damaged(&self) -> bool {
        self.problem.is_some() || !self.damaged.is_empty()
    }

    /// Damaged and not (successfully) repaired.
    pub fn needs_attention(&self) -> bool {
        self.is_damaged()
            && !matches!(
                self.repair,
                Some(RepairAction::Reextracted { .. } | RepairAction::Forgotten { .. })
            )
    }
}

/// What `verify` found (and, with `--repair`, did).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The cache's root directory.
    pub cache: PathBuf,
    /// One report per pointer, by distribution name, then pointer file name.
    pub archives: Vec<ArchiveReport>,
    /// Archives no pointer leads to (`keel cache prune` removes them).
    pub unreferenced: Vec<String>,
}

impl VerifyReport {
    /// How many entries were found damaged (repaired or not).
    pub fn damaged(&self) -> usize {
        self.archives.iter().filter(|a| a.is_damaged()).count()
    }

    /// Every archive intact, or repaired.
    pub fn is_healthy(&self) -> bool {
        !self.archives.iter().any(ArchiveReport::needs_attention)
    }
}

/// A pointer file found in `pointers-v1/<name>/`.
struct PointerFile {
    path: PathBuf,
    /// The wheel file name the pointer's own name starts with.
    wheel: String,
}

/// The cache's entries, as found on disk.
#[derive(Default)]
struct Inventory {
    pointers: Vec<PointerFile>,
    /// `<name>/<id>` → archive directory.
    archives: BTreeMap<String, PathBuf>,
    /// Temporary files of atomic writes, relative to the root.
    partial: Vec<PathBuf>,
    /// Directories (relative to the root) that could not be read: removed
    /// by prune, reported by verify.
    unreadable: Vec<PathBuf>,
}

/// One pointer under `verify`: its report so far, and the archive it leads
/// to when its manifest could be read (`None`: the report names the problem).
struct Check {
    entry: ArchiveReport,
    archive: Option<Archive>,
}

impl Check {
    /// Counts the archive's file `index` as checked, with `outcome`: a
    /// damage is reported, a renewed stamp returned.
    fn record(
        &mut self,
        index: usize,
        outcome: Result<crate::Proof, crate::Damage>,
    ) -> Option<crate::Stamp> {
        let expected = &self
            .archive
            .as_ref()
            .expect("only archives have files")
            .manifest
            .files[index];
        self.entry.files += 1;
        self.entry.bytes += expected.size;
        match outcome {
            Ok(crate::Proof::Hash(Some(stamp))) => {
                self.entry.restamped += 1;
                return Some(stamp);
            }
            Ok(_) => {}
            Err(damage) => self.entry.damaged.push(DamagedFile {
                entry: expected.path.clone(),
                problem: damage.problem(),
                reason: damage.to_string(),
            }),
        }
        None
    }
}

/// Archives no pointer leads to, by the wheel their manifest names: each
/// one's `<name>/<id>` and where its wheel was.
type Leftovers = BTreeMap<String, Vec<(String, Option<PathBuf>)>>;

fn is_partial(name: &str) -> bool {
    name.starts_with(PARTIAL) || name.starts_with(".tmp")
}

/// Lists a directory's entries as `(name, is_dir)`, not following symlinks.
/// `Ok(None)` when it cannot be read (its mode forbids it).
/// Whether `clean` removes the (emptied) cache directory itself: a real
/// directory of this user's. A shared cache's directory stays: a setgid
/// one's group and setgid bit are how its members share it, and one another
/// user (an administrator) made is theirs to remove.
fn removable_root(root: &Path) -> bool {
    let Ok(metadata) = fs_err::symlink_metadata(root) else {
        return false;
    };
    let setgid = rustix::fs::Mode::from_raw_mode(metadata.mode()).contains(rustix::fs::Mode::SGID);
    let ours = metadata.uid() == rustix::process::geteuid().as_raw();
    metadata.is_dir() && ours && !setgid
}

fn list(dir: &Path) -> Result<Option<Vec<(String, bool)>>, Error> {
    let entries = match fs_err::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some(Vec::new())),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        found.push((name, entry.file_type()?.is_dir()));
    }
    found.sort();
    Ok(Some(found))
}

impl Cache {
    /// Whether `root` is something keel may empty: nothing there, keel's
    /// `CACHEDIR.TAG`, or keel's layout (a cleaner may have deleted the tag
    /// but kept the directories).
    fn check_is_keel_cache(&self) -> Result<(), Error> {
        let Some(entries) = list(&self.root)? else {
            return Ok(());
        };
        let tag_is_keels = fs_err::read_to_string(self.root.join(TAG))
            .is_ok_and(|tag| tag.contains("keel's cache"));
        let has_layout = entries
            .iter()
            .any(|(name, is_dir)| *is_dir && [ARCHIVES, POINTERS, TMP].contains(&name.as_str()));
        let only_lock = entries
            .iter()
            .all(|(name, _)| name == LOCK || name == TURNSTILE);
        if tag_is_keels || has_layout || only_lock {
            Ok(())
        } else {
            Err(Error::NotACache {
                path: self.root.clone(),
            })
        }
    }

    /// Before removing anything: refuses a directory that is not a keel
    /// cache, then waits for the exclusive lock (a dry run takes none: it
    /// changes nothing, not even a lock file).
    fn lock_for_removal(&self, dry_run: bool) -> Result<Option<crate::CacheLock>, Error> {
        self.check_is_keel_cache()?;
        if dry_run {
            Ok(None)
        } else {
            self.lock_exclusive().map(Some)
        }
    }

    /// Removes the whole cache (`names` empty) or the archives and pointers
    /// of the distributions named, whatever their permissions, never
    /// following a symlink out of the cache. With `dry_run`, only counts.
    pub fn clean(&self, names: &[String], dry_run: bool) -> Result<CleanReport, Error> {
        let mut report = CleanReport {
            existed: fs_err::symlink_metadata(&self.root).is_ok(),
            ..CleanReport::default()
        };
        if !report.existed {
            report.not_cached = names.to_vec();
            return Ok(report);
        }
        let _lock = self.lock_for_removal(dry_run)?;
        if !names.is_empty() {
            for name in names {
                let normalized = keel_wheel::normalize_name(name);
                let mut found = Removed::default();
                for dir in [ARCHIVES, POINTERS] {
                    let relative = Path::new(dir).join(&normalized);
                    if fs_err::symlink_metadata(self.root.join(&relative)).is_err() {
                        continue;
                    }
                    found += if dry_run {
                        measure(&self.root.join(&relative), false)
                    } else {
                        remove_beneath(&self.root, &relative)?
                    };
                }
                if found == Removed::default() {
                    report.not_cached.push(name.clone());
                }
                report.removed += found;
            }
            return Ok(report);
        }
        if dry_run {
            report.removed = measure(&self.root, true);
            return Ok(report);
        }
        // Everything but the locks, then the locks (still held: installs
        // waiting for them notice that they are gone and lock new ones).
        report.removed = remove_contents(&self.root, &[LOCK, TURNSTILE])?;
        report.removed += remove_contents(&self.root, &[])?;
        if removable_root(&self.root) {
            match fs_err::remove_dir(&self.root) {
                Ok(()) => report.removed.dirs += 1,
                // An install that waited has just made a new cache there.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty
                    ) => {}
                Err(e) => {
                    return Err(Error::Remove {
                        path: self.root.clone(),
                        source: e,
                    });
                }
            }
        }
        Ok(report)
    }

    /// Counts the files and bytes of the cache (no lock, no change).
    pub fn size(&self) -> Removed {
        measure(&self.root, true)
    }

    /// Lists pointers, archives and partial files. Directories that cannot
    /// be read are collected, not entered.
    fn inventory(&self) -> Result<Inventory, Error> {
        let mut inventory = Inventory::default();
        let root_files = list(&self.root)?.unwrap_or_default();
        for (name, is_dir) in &root_files {
            if !is_dir && is_partial(name) {
                inventory.partial.push(PathBuf::from(name));
            }
        }
        for (top, is_pointers) in [(POINTERS, true), (ARCHIVES, false)] {
            let Some(names) = list(&self.root.join(top))? else {
                inventory.unreadable.push(PathBuf::from(top));
                continue;
            };
            for (name, is_dir) in names {
                let relative = Path::new(top).join(&name);
                if !is_dir {
                    if is_partial(&name) {
                        inventory.partial.push(relative);
                    }
                    continue;
                }
                let Some(children) = list(&self.root.join(&relative))? else {
                    inventory.unreadable.push(relative);
                    continue;
                };
                for (child, child_is_dir) in children {
                    let path = relative.join(&child);
                    if is_partial(&child) && !child_is_dir {
                        inventory.partial.push(path);
                    } else if is_pointers && !child_is_dir {
                        if let Some(wheel) = wheel_of_pointer(&child) {
                            inventory.pointers.push(PointerFile {
                                path: self.root.join(&path),
                                wheel: wheel.to_string(),
                            });
                        }
                    } else if !is_pointers && child_is_dir {
                        inventory
                            .archives
                            .insert(format!("{name}/{child}"), self.root.join(&path));
                        // A killed manifest rewrite leaves a partial file here.
                        if let Some(files) = list(&self.root.join(&path))? {
                            for (file, file_is_dir) in files {
                                if !file_is_dir && is_partial(&file) {
                                    inventory.partial.push(path.join(file));
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(inventory)
    }

    /// Removes what nothing refers to, and damaged archives (a cheap check:
    /// every file present, regular and of its RECORD size; no hashing).
    /// With `dry_run`, only reports and counts.
    pub fn prune(&self, dry_run: bool) -> Result<PruneReport, Error> {
        let mut report = PruneReport::default();
        if fs_err::symlink_metadata(&self.root).is_err() {
            return Ok(report);
        }
        let _lock = self.lock_for_removal(dry_run)?;
        let mut doomed: BTreeSet<PathBuf> = BTreeSet::new();
        let inventory = self.inventory()?;
        // Unfinished unpacks: no unpack runs while the exclusive lock is held.
        for (name, _) in list(&self.root.join(TMP))?.unwrap_or_default() {
            report.unfinished_unpacks += 1;
            doomed.insert(Path::new(TMP).join(name));
        }
        report.partial_files = inventory.partial.len();
        doomed.extend(inventory.partial.iter().cloned());
        for dir in &inventory.unreadable {
            // Unreadable: unusable by any install, and only removable.
            report.damaged_archives.push(dir.display().to_string());
            doomed.insert(dir.clone());
        }
        let mut referenced: BTreeSet<String> = BTreeSet::new();
        let mut damaged: BTreeSet<String> = BTreeSet::new();
        for pointer in &inventory.pointers {
            match self.follow_pointer(&pointer.path, &pointer.wheel) {
                Lookup::Hit(archive) => {
                    if damaged.contains(&archive.id) || !files_look_intact(&archive) {
                        damaged.insert(archive.id.clone());
                        report.dangling_pointers.push(pointer.path.clone());
                        doomed.insert(self.relative(&pointer.path));
                    } else {
                        referenced.insert(archive.id);
                    }
                }
                Lookup::Damaged { reason } => {
                    tracing::debug!("pruning a pointer: {reason}");
                    report.dangling_pointers.push(pointer.path.clone());
                    doomed.insert(self.relative(&pointer.path));
                }
                Lookup::Miss => {}
            }
        }
        for (id, dir) in &inventory.archives {
            if damaged.contains(id) {
                report.damaged_archives.push(id.clone());
            } else if !referenced.contains(id) {
                if Manifest::read(dir).is_err() {
                    report.damaged_archives.push(id.clone());
                } else {
                    report.unreferenced_archives.push(id.clone());
                }
            } else {
                continue;
            }
            doomed.insert(self.relative(dir));
        }
        for relative in &doomed {
            report.removed += if dry_run {
                measure(&self.root.join(relative), false)
            } else {
                remove_beneath(&self.root, relative)?
            };
        }
        if !dry_run {
            self.remove_empty_name_dirs()?;
        }
        Ok(report)
    }

    fn relative(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.root).unwrap_or(path).to_path_buf()
    }

    /// `archives-v1/<name>/` and `pointers-v1/<name>/` left empty.
    fn remove_empty_name_dirs(&self) -> Result<(), Error> {
        for top in [ARCHIVES, POINTERS] {
            for (name, is_dir) in list(&self.root.join(top))?.unwrap_or_default() {
                let dir = self.root.join(top).join(&name);
                if is_dir && list(&dir)?.is_some_and(|entries| entries.is_empty()) {
                    match fs_err::remove_dir(&dir) {
                        Ok(()) => {}
                        Err(e) => tracing::debug!("could not remove an empty directory: {e}"),
                    }
                }
            }
        }
        Ok(())
    }

    /// Hashes every file of every archive a pointer leads to against the
    /// RECORD hash in its manifest, on every core. With `repair`, a damaged
    /// archive (or a pointer to none) is unpacked again from its wheel where
    /// that wheel is still known, and forgotten otherwise; renewed stamps
    /// are recorded.
    pub fn verify(&self, repair: bool) -> Result<VerifyReport, Error> {
        let mut report = VerifyReport {
            cache: self.root.clone(),
            ..VerifyReport::default()
        };
        if fs_err::symlink_metadata(&self.root).is_err() {
            return Ok(report);
        }
        let _lock = if repair {
            self.lock_exclusive()?
        } else {
            self.lock_shared()?
        };
        let inventory = self.inventory()?;
        let mut checks = self.follow_pointers(&inventory.pointers);
        let leftovers = find_leftovers(&inventory.archives, &checks, &mut report.unreferenced);
        recall_wheel_paths(&mut checks, &leftovers);
        self.warn_unreadable(&inventory.unreadable);
        let restamps = check_every_file(&mut checks);
        if repair {
            self.repair_damaged(&mut checks, &leftovers, &restamps, &mut report.unreferenced)?;
        }
        report.archives = checks.into_iter().map(|check| check.entry).collect();
        Ok(report)
    }

    /// Follows every pointer: one check per pointer that is not a miss,
    /// with what the pointer file says (its archive, its wheel's path) and,
    /// when the manifest could be read, the archive to check.
    fn follow_pointers(&self, pointers: &[PointerFile]) -> Vec<Check> {
        let mut checks = Vec::new();
        for pointer in pointers {
            let readable = crate::read_pointer(&pointer.path).ok().flatten();
            let mut entry = ArchiveReport {
                wheel: pointer.wheel.clone(),
                pointer: pointer.path.clone(),
                archive: readable.as_ref().map(|p| p.archive.clone()),
                wheel_path: readable.and_then(|p| p.wheel),
                files: 0,
                bytes: 0,
                problem: None,
                damaged: Vec::new(),
                restamped: 0,
                repair: None,
            };
            match self.follow_pointer(&pointer.path, &pointer.wheel) {
                Lookup::Hit(archive) => {
                    entry.archive = Some(archive.id.clone());
                    entry.wheel_path = entry.wheel_path.or(archive.manifest.wheel_path.clone());
                    checks.push(Check {
                        entry,
                        archive: Some(archive),
                    });
                }
                Lookup::Damaged { reason } => {
                    entry.problem = Some(reason);
                    checks.push(Check {
                        entry,
                        archive: None,
                    });
                }
                Lookup::Miss => {}
            }
        }
        checks
    }

    /// Warns of the directories the inventory could not read (verify
    /// leaves them; prune removes them).
    fn warn_unreadable(&self, unreadable: &[PathBuf]) {
        for dir in unreadable {
            tracing::warn!(
                "cannot read `{}`; `keel cache prune` removes it",
                self.root.join(dir).display()
            );
        }
    }

    /// With the exclusive lock held: repairs every damaged check (removing
    /// its wheel's leftovers too, and dropping the archives that repair
    /// removed from `unreferenced`), records the renewed stamps of every
    /// intact archive, then removes the name directories left empty.
    fn repair_damaged(
        &self,
        checks: &mut [Check],
        leftovers: &Leftovers,
        restamps: &[Vec<(usize, crate::Stamp)>],
        unreferenced: &mut Vec<String>,
    ) -> Result<(), Error> {
        for (check, restamps) in checks.iter_mut().zip(restamps) {
            if check.entry.is_damaged() {
                let stale = stale_archives(&check.entry, leftovers);
                check.entry.repair = Some(self.repair(&check.entry, &stale));
                let gone = |id: &String| !self.root.join(ARCHIVES).join(id).exists();
                unreferenced.retain(|id| !gone(id));
            } else if let Some(archive) = &check.archive
                && let Err(e) = self.restamp(archive, restamps)
            {
                tracing::warn!("could not renew the stamps of {}: {e}", archive.id);
            }
        }
        self.remove_empty_name_dirs()
    }

    /// Repairs one damaged pointer and its archive (holding the exclusive
    /// lock): unpacks the wheel again where it is still what the pointer
    /// was made from, else removes the pointer. Either way the `stale`
    /// archives of the wheel (the damaged one, leftovers) are removed.
    fn repair(&self, entry: &ArchiveReport, stale: &[String]) -> RepairAction {
        let remove_stale = |keep: Option<&str>| -> Result<(), Error> {
            for id in stale.iter().filter(|id| Some(id.as_str()) != keep) {
                remove_beneath(&self.root, &Path::new(ARCHIVES).join(id))?;
            }
            Ok(())
        };
        let wheel = entry.wheel_path.as_ref().map(|path| {
            let source = WheelSource::new(path);
            (path, source.map(|s| keyed_as(s, &entry.pointer)))
        });
        let result = match wheel {
            Some((path, Ok(Some(source)))) => self.unpack_now(&source).and_then(|fresh| {
                remove_stale(Some(&fresh.id))?;
                Ok(RepairAction::Reextracted {
                    from: path.clone(),
                    archive: fresh.id,
                })
            }),
            other => {
                let reason = match other {
                    None => "keel does not know where its wheel is".to_string(),
                    Some((path, Ok(_))) => {
                        format!("its wheel `{}` has changed since", path.display())
                    }
                    Some((path, Err(_))) => format!("its wheel `{}` is gone", path.display()),
                };
                remove_beneath(&self.root, &self.relative(&entry.pointer))
                    .and_then(|_| remove_stale(None))
                    .map(|()| RepairAction::Forgotten { reason })
            }
        };
        result.unwrap_or_else(|e| RepairAction::Failed {
            reason: error_chain(&e),
        })
    }
}

/// `source` keyed as the pointer at `pointer` is, when it is the wheel file
/// that pointer was made for: by its stat, or (a pointer by content) by
/// hashing it.
fn keyed_as(source: WheelSource, pointer: &Path) -> Option<WheelSource> {
    let name = pointer.file_name()?.to_str()?;
    let source = match content_of_pointer(name) {
        Some(sha256) if crate::key::sha256_of(&source.path).ok()? == sha256 => {
            source.with_sha256(sha256)
        }
        Some(_) => return None,
        None => source,
    };
    let same = pointer
        .parent()?
        .join(source.pointer_key().file_name(&source.filename.to_string()))
        == pointer;
    same.then_some(source)
}

/// Archives no pointer leads to (each pushed to `unreferenced`), by the wheel
/// their manifest names, for those whose manifest is readable: leftovers
/// that a repair of that wheel removes, and where that wheel was when its
/// pointer is unreadable.
fn find_leftovers(
    archives: &BTreeMap<String, PathBuf>,
    checks: &[Check],
    unreferenced: &mut Vec<String>,
) -> Leftovers {
    let referenced: BTreeSet<&str> = checks
        .iter()
        .filter_map(|check| check.archive.as_ref())
        .map(|archive| archive.id.as_str())
        .collect();
    let mut leftovers = Leftovers::new();
    for (id, dir) in archives {
        if referenced.contains(id.as_str()) {
            continue;
        }
        unreferenced.push(id.clone());
        if let Ok(manifest) = Manifest::read(dir) {
            leftovers
                .entry(manifest.wheel)
                .or_default()
                .push((id.clone(), manifest.wheel_path));
        }
    }
    leftovers
}

/// Where neither the pointer nor its manifest says where the wheel was, the
/// first leftover of that wheel that does.
fn recall_wheel_paths(checks: &mut [Check], leftovers: &Leftovers) {
    for check in checks {
        let entry = &mut check.entry;
        if entry.wheel_path.is_none() {
            entry.wheel_path = leftovers
                .get(&entry.wheel)
                .and_then(|found| found.iter().find_map(|(_, path)| path.clone()));
        }
    }
}

/// Hashes every file of every archive against its manifest, on every core,
/// and records each outcome in its check's report. Returns, per check, the
/// stamps to renew: files whose stamp no longer held but whose content
/// matched.
fn check_every_file(checks: &mut [Check]) -> Vec<Vec<(usize, crate::Stamp)>> {
    let files: Vec<(usize, usize)> = checks
        .iter()
        .enumerate()
        .flat_map(|(a, check)| {
            let count = check.archive.as_ref().map_or(0, |x| x.manifest.files.len());
            (0..count).map(move |f| (a, f))
        })
        .collect();
    let outcomes: Vec<Result<crate::Proof, crate::Damage>> = files
        .par_iter()
        .map(|&(a, f)| {
            let archive = checks[a]
                .archive
                .as_ref()
                .expect("only archives have files");
            let expected = &archive.manifest.files[f];
            check_file(&archive.tree().join(&expected.path), expected, true)
        })
        .collect();
    let mut restamps: Vec<Vec<(usize, crate::Stamp)>> = vec![Vec::new(); checks.len()];
    for (&(a, f), outcome) in files.iter().zip(outcomes) {
        if let Some(stamp) = checks[a].record(f, outcome) {
            restamps[a].push((f, stamp));
        }
    }
    restamps
}

/// The archives a repair of `entry`'s wheel removes: the one its pointer
/// names, then the wheel's leftovers.
fn stale_archives(entry: &ArchiveReport, leftovers: &Leftovers) -> Vec<String> {
    let mut stale: Vec<String> = entry.archive.iter().cloned().collect();
    stale.extend(
        leftovers
            .get(&entry.wheel)
            .into_iter()
            .flatten()
            .map(|(id, _)| id.clone()),
    );
    stale
}

/// Every file of the archive present, a regular file, and of its size.
fn files_look_intact(archive: &Archive) -> bool {
    let tree = archive.tree();
    archive.manifest.files.par_iter().all(|file| {
        fs_err::symlink_metadata(tree.join(&file.path))
            .is_ok_and(|m| m.is_file() && m.size() == file.size)
    })
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_file_names_give_their_wheel() {
        assert_eq!(
            wheel_of_pointer("flask-3.0.0-py3-none-any.whl.1234.1700000000123456789.json"),
            Some("flask-3.0.0-py3-none-any.whl")
        );
        assert_eq!(wheel_of_pointer("flask-3.0.0-py3-none-any.whl.json"), None);
        assert_eq!(wheel_of_pointer(".partial-abc"), None);
        assert_eq!(wheel_of_pointer("notes.txt.1.2.json"), None);
    }
}
