//! Staging: every file of every wheel placed in
//! `<venv>/.keel/tx-<id>/staging/<n>-<name>/` (laid out like
//! site-packages; scripts, headers and data beside it in `….prefix/`) and
//! proven against RECORD, by a stamp that still holds or by hashing.

use std::io::Read;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use keel_cache::{ManifestFile, Stamp};
use keel_wheel::{HashAlgorithm, RecordHash};
use rayon::prelude::*;
use rustc_hash::FxHashSet;

use crate::Error;
use crate::destinations::{Action, Layout, PlannedFile, WheelJob};
use crate::link::{Damage, LinkDirs, LinkMode, Proof, place};
use crate::scripts::{rewrite_python_shebang, write_executable};

/// The result of staging one wheel.
pub(crate) enum Staged {
    /// Every file proven; `hashed` files were hashed, the rest trusted by stamp.
    Ok {
        hashed: usize,
        trusted: usize,
        restamps: Vec<(usize, Stamp)>,
    },
    /// The archive is damaged; the first problem found.
    Damaged {
        entry: String,
        damage: Damage,
        /// How many more files of the archive were damaged.
        more: usize,
    },
}

/// Stages every file of `jobs` on all cores and proves each one.
pub(crate) fn stage(
    jobs: &mut [WheelJob],
    layout: &Layout,
    mode: LinkMode,
    hash_everything: bool,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<Vec<Staged>, Error> {
    let work: Vec<(usize, usize)> = jobs
        .iter()
        .enumerate()
        .flat_map(|(j, job)| (0..job.files.len()).map(move |f| (j, f)))
        .collect();
    let runs = link_runs(jobs, &work, mode);
    let deferred = create_directories(jobs, layout, &runs, &work)?;
    // One small outcome per file (errors and damage boxed: they are rare),
    // so that a wheel of 100,000 files holds a few MB here, not tens.
    let results: Vec<Result<FileOutcome, Box<Error>>> = runs
        .par_iter()
        .flat_map_iter(|run| {
            // Ctrl-C: stop linking and hashing now; the caller removes staging.
            if cancelled() {
                return vec![Err(Box::new(Error::Interrupted))];
            }
            let settings = (layout, mode, hash_everything);
            stage_run(jobs, run, &work[run.files.clone()], settings, &deferred)
                .into_iter()
                .map(|result| result.map_err(Box::new))
                .collect()
        })
        .collect();
    drop(runs);
    if results.len() != work.len() {
        return Err(Error::Interrupted);
    }
    if cancelled() {
        return Err(Error::Interrupted);
    }

    let mut staged: Vec<Staged> = jobs
        .iter()
        .map(|_| Staged::Ok {
            hashed: 0,
            trusted: 0,
            restamps: Vec::new(),
        })
        .collect();
    for (&(j, f), result) in work.iter().zip(results) {
        let index = jobs[j].files[f].index;
        match (result.map_err(|e| *e)?, &mut staged[j]) {
            (FileOutcome::Damaged(_), Staged::Damaged { more, .. }) => *more += 1,
            (FileOutcome::Damaged(damage), slot) => {
                let entry = jobs[j].archive.manifest.files[index].path.clone();
                *slot = Staged::Damaged {
                    entry,
                    damage: *damage,
                    more: 0,
                };
            }
            (_, Staged::Damaged { .. }) => {}
            (FileOutcome::Proven(Proof::Stamp), Staged::Ok { trusted, .. }) => *trusted += 1,
            (
                FileOutcome::Proven(Proof::Hash(stamp)),
                Staged::Ok {
                    hashed, restamps, ..
                },
            ) => {
                *hashed += 1;
                restamps.extend(stamp.map(|stamp| (index, stamp)));
            }
            (FileOutcome::Rewritten(rewritten), Staged::Ok { hashed, .. }) => {
                *hashed += 1;
                jobs[j].rewritten.insert(index, *rewritten);
            }
        }
    }
    Ok(staged)
}

/// Creates the staging directories of `jobs`, each once: level by level (a
/// level's parents all exist), each level on every core. A large wheel
/// (Django's thousands of locale directories) would otherwise be one long
/// sequence of `mkdir`s on one core.
///
/// A directory that only a hardlink run fills and that holds no other
/// directory is left to that run (the returned set): siblings' `mkdir`s
/// all wait on their parent's lock, so made up front they are one serial
/// stretch (a tenth of a 100,000-file install), made by the runs they
/// overlap the other cores' links.
fn create_directories(
    jobs: &[WheelJob],
    layout: &Layout,
    runs: &[LinkRun],
    work: &[(usize, usize)],
) -> Result<FxHashSet<PathBuf>, Error> {
    let mut dirs = FxHashSet::default();
    for job in jobs {
        job.directories(layout, &mut dirs);
    }
    let parents: FxHashSet<&Path> = dirs.iter().filter_map(|dir| dir.parent()).collect();
    let deferred: FxHashSet<PathBuf> = runs
        .iter()
        .filter(|run| run.linked)
        .map(|run| {
            let (j, f) = work[run.files.start];
            jobs[j].staged_path(jobs[j].files[f].dest.parent().unwrap_or(Path::new("")))
        })
        .filter(|dir| dirs.contains(dir) && !parents.contains(dir.as_path()))
        .collect();
    drop(parents);
    let depth = |path: &PathBuf| {
        path.as_os_str()
            .as_bytes()
            .iter()
            .filter(|&&b| b == b'/')
            .count()
    };
    let mut levels: Vec<Vec<PathBuf>> = Vec::new();
    for dir in dirs.into_iter().filter(|dir| !deferred.contains(dir)) {
        let level = depth(&dir);
        if levels.len() <= level {
            levels.resize_with(level + 1, Vec::new);
        }
        levels[level].push(dir);
    }
    for level in levels.iter().filter(|level| !level.is_empty()) {
        level.par_iter().try_for_each(|dir| make_directory(dir))?;
    }
    Ok(deferred)
}

/// `mkdir`, content when the directory is there already.
fn make_directory(dir: &Path) -> Result<(), Error> {
    match fs_err::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::from(e)),
    }
}

/// What staging one file found; the rare cases boxed, to keep it small.
enum FileOutcome {
    Proven(Proof),
    Rewritten(Box<(RecordHash, u64)>),
    Damaged(Box<Damage>),
}

/// A run of [`link_runs`]: positions in the work list.
struct LinkRun {
    files: Range<usize>,
    /// Hardlinked through two directory descriptors (else file by file).
    linked: bool,
}

/// Splits the work into runs of consecutive files (in archive order) that
/// are hardlinked from one archive directory into one staging directory,
/// so that each run opens its two directories once; every other file is a
/// run of its own.
fn link_runs(jobs: &[WheelJob], work: &[(usize, usize)], mode: LinkMode) -> Vec<LinkRun> {
    let dirs = |&(j, f): &(usize, usize)| {
        let file = &jobs[j].files[f];
        (file.action == Action::Link && mode == LinkMode::Hardlink).then(|| {
            let entry = Path::new(&jobs[j].archive.manifest.files[file.index].path);
            (j, entry.parent(), file.dest.parent())
        })
    };
    let mut runs: Vec<LinkRun> = Vec::new();
    for (position, item) in work.iter().enumerate() {
        let key = dirs(item);
        match runs.last_mut() {
            Some(run) if key.is_some() && dirs(&work[run.files.start]) == key => {
                run.files.end += 1;
            }
            _ => runs.push(LinkRun {
                files: position..position + 1,
                linked: key.is_some(),
            }),
        }
    }
    runs
}

/// How every file is staged: the layout, the link mode and whether every
/// byte is hashed.
type RunSettings<'a> = (&'a Layout, LinkMode, bool);

/// Stages one run of [`link_runs`]: makes its staging directory when
/// [`create_directories`] left it to the run, then hardlinks through the
/// run's two directory descriptors, or (any other mode, any failure) file
/// by file.
fn stage_run(
    jobs: &[WheelJob],
    link_run: &LinkRun,
    run: &[(usize, usize)],
    (layout, mode, hash_everything): RunSettings<'_>,
    deferred: &FxHashSet<PathBuf>,
) -> Vec<Result<FileOutcome, Error>> {
    let by_path = |&(j, f): &(usize, usize)| {
        stage_file(&jobs[j], &jobs[j].files[f], layout, mode, hash_everything)
    };
    let (j, f) = run[0];
    let job = &jobs[j];
    let first = &job.files[f];
    let entry = Path::new(&job.archive.manifest.files[first.index].path);
    let target = job.staged_path(first.dest.parent().unwrap_or(Path::new("")));
    if deferred.contains(&target)
        && let Err(e) = make_directory(&target)
    {
        // Every file of the run fails as the directory did.
        let message = e.to_string();
        return run
            .iter()
            .map(|_| Err(Error::from(std::io::Error::other(message.clone()))))
            .collect();
    }
    let dirs = link_run
        .linked
        .then(|| {
            LinkDirs::open(
                &job.archive
                    .tree()
                    .join(entry.parent().unwrap_or(Path::new(""))),
                &target,
            )
        })
        .flatten();
    let Some(dirs) = dirs else {
        return run.iter().map(by_path).collect();
    };
    run.iter()
        .map(|item| {
            let file = &job.files[item.1];
            let expected = &job.archive.manifest.files[file.index];
            let linked = file
                .dest
                .file_name()
                .and_then(|name| dirs.link(name, expected, hash_everything));
            match linked {
                Some(Ok(proof)) => Ok(FileOutcome::Proven(proof)),
                Some(Err(damage)) => Ok(FileOutcome::Damaged(Box::new(damage))),
                None => by_path(item),
            }
        })
        .collect()
}

fn stage_file(
    job: &WheelJob,
    file: &PlannedFile,
    layout: &Layout,
    mode: LinkMode,
    hash_everything: bool,
) -> Result<FileOutcome, Error> {
    let expected = &job.archive.manifest.files[file.index];
    let source = job.archive.tree().join(&expected.path);
    let target = job.staged_path(&file.dest);
    let outcome = match file.action {
        Action::Link => match place(mode, &source, &target, expected, hash_everything)? {
            Ok(proof) => FileOutcome::Proven(proof),
            Err(damage) => FileOutcome::Damaged(Box::new(damage)),
        },
        Action::CheckOnly => check_in_place(&source, expected, hash_everything),
        Action::Script => stage_script(&source, &target, expected, &layout.python)?,
    };
    Ok(outcome)
}

/// Proves an archive file without staging it (the archive's RECORD).
fn check_in_place(source: &Path, expected: &ManifestFile, hash_everything: bool) -> FileOutcome {
    match keel_cache::check_file(source, expected, hash_everything) {
        Ok(proof) => FileOutcome::Proven(proof),
        Err(damage) => FileOutcome::Damaged(Box::new(damage)),
    }
}

/// A `.data/scripts/` file: always read and hashed (scripts are few and
/// small), `#!python` rewritten, written as a real executable copy.
fn stage_script(
    source: &Path,
    target: &Path,
    expected: &ManifestFile,
    python: &Path,
) -> Result<FileOutcome, Error> {
    let contents = match read_no_follow(source) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(FileOutcome::Damaged(Box::new(Damage::Missing)));
        }
        Err(e)
            if e.kind() == std::io::ErrorKind::InvalidInput
                || fs_err::symlink_metadata(source).is_ok_and(|m| !m.is_file()) =>
        {
            return Ok(FileOutcome::Damaged(Box::new(Damage::NotARegularFile)));
        }
        Err(e) => return Ok(FileOutcome::Damaged(Box::new(Damage::unreadable(&e)))),
    };
    let expected_hash = &expected.hash;
    if contents.len() as u64 != expected.size {
        return Ok(FileOutcome::Damaged(Box::new(Damage::Size {
            expected: expected.size,
            actual: contents.len() as u64,
        })));
    }
    if RecordHash::of(expected_hash.algorithm, &contents) != *expected_hash {
        return Ok(FileOutcome::Damaged(Box::new(Damage::Content)));
    }
    let written = rewrite_python_shebang(&contents, python).unwrap_or(contents);
    write_executable(target, &written)?;
    Ok(FileOutcome::Rewritten(Box::new((
        RecordHash::of(HashAlgorithm::Sha256, &written),
        written.len() as u64,
    ))))
}

/// Reads a regular file without following a symlink and without blocking
/// on a FIFO or device.
fn read_no_follow(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    keel_cache::open_no_follow(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}
