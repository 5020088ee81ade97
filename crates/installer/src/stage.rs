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
    create_directories(jobs, layout)?;
    let work: Vec<(usize, usize)> = jobs
        .iter()
        .enumerate()
        .flat_map(|(j, job)| (0..job.files.len()).map(move |f| (j, f)))
        .collect();
    let runs = link_runs(jobs, &work, mode);
    // One small outcome per file (errors and damage boxed: they are rare),
    // so that a wheel of 100,000 files holds a few MB here, not tens.
    let results: Vec<Result<FileOutcome, Box<Error>>> = runs
        .par_iter()
        .flat_map_iter(|run| {
            // Ctrl-C: stop linking and hashing now; the caller removes staging.
            if cancelled() {
                return vec![Err(Box::new(Error::Interrupted))];
            }
            stage_run(jobs, &work[run.clone()], layout, mode, hash_everything)
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

/// Creates every staging directory of `jobs`, each once: level by level (a
/// level's parents all exist), each level on every core. A large wheel
/// (Django's thousands of locale directories) would otherwise be one long
/// sequence of `mkdir`s on one core.
fn create_directories(jobs: &[WheelJob], layout: &Layout) -> Result<(), Error> {
    let mut dirs = rustc_hash::FxHashSet::default();
    for job in jobs {
        job.directories(layout, &mut dirs);
    }
    let depth = |path: &PathBuf| {
        path.as_os_str()
            .as_bytes()
            .iter()
            .filter(|&&b| b == b'/')
            .count()
    };
    let mut levels: Vec<Vec<PathBuf>> = Vec::new();
    for dir in dirs {
        let level = depth(&dir);
        if levels.len() <= level {
            levels.resize_with(level + 1, Vec::new);
        }
        levels[level].push(dir);
    }
    for level in levels.iter().filter(|level| !level.is_empty()) {
        level
            .par_iter()
            .try_for_each(|dir| match fs_err::create_dir(dir) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(Error::from(e)),
            })?;
    }
    Ok(())
}

/// What staging one file found; the rare cases boxed, to keep it small.
enum FileOutcome {
    Proven(Proof),
    Rewritten(Box<(RecordHash, u64)>),
    Damaged(Box<Damage>),
}

/// Splits the work into runs of consecutive files (in archive order) that
/// are hardlinked from one archive directory into one staging directory,
/// so that each run opens its two directories once; every other file is a
/// run of its own.
fn link_runs(jobs: &[WheelJob], work: &[(usize, usize)], mode: LinkMode) -> Vec<Range<usize>> {
    let dirs = |&(j, f): &(usize, usize)| {
        let file = &jobs[j].files[f];
        (file.action == Action::Link && mode == LinkMode::Hardlink).then(|| {
            let entry = Path::new(&jobs[j].archive.manifest.files[file.index].path);
            (j, entry.parent(), file.dest.parent())
        })
    };
    let mut runs: Vec<Range<usize>> = Vec::new();
    for (position, item) in work.iter().enumerate() {
        match (runs.last_mut(), dirs(item)) {
            (Some(run), Some(key)) if dirs(&work[run.start]) == Some(key) => run.end += 1,
            _ => runs.push(position..position + 1),
        }
    }
    runs
}

/// Stages one run of [`link_runs`]: hardlinks through the run's two
/// directory descriptors, or (any other mode, any failure) file by file.
fn stage_run(
    jobs: &[WheelJob],
    run: &[(usize, usize)],
    layout: &Layout,
    mode: LinkMode,
    hash_everything: bool,
) -> Vec<Result<FileOutcome, Error>> {
    let by_path = |&(j, f): &(usize, usize)| {
        stage_file(&jobs[j], &jobs[j].files[f], layout, mode, hash_everything)
    };
    let (j, f) = run[0];
    let job = &jobs[j];
    let first = &job.files[f];
    let entry = Path::new(&job.archive.manifest.files[first.index].path);
    let dirs = (first.action == Action::Link && mode == LinkMode::Hardlink)
        .then(|| {
            LinkDirs::open(
                &job.archive
                    .tree()
                    .join(entry.parent().unwrap_or(Path::new(""))),
                &job.staged_path(first.dest.parent().unwrap_or(Path::new(""))),
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
