//! Staging: every file of every wheel placed in
//! `<venv>/.keel/tx-<id>/staging/<n>-<name>/`, laid out like the environment,
//! and proven against RECORD; then the files keel writes itself (scripts,
//! `INSTALLER`, `REQUESTED`, `direct_url.json`, the new `RECORD`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use keel_cache::{Archive, ManifestFile, Stamp, WheelSource};
use keel_venv::Environment;
use keel_wheel::{
    DataKey, EntryDestination, HashAlgorithm, RecordEntry, RecordHash, classify_entry,
    script_name_problem, write_record,
};
use rayon::prelude::*;

use crate::Error;
use crate::link::{Damage, LinkDirs, LinkMode, Proof, hash_file, place};
use crate::scripts::{launcher, rewrite_python_shebang};

/// The `.dist-info` files keel writes itself; a wheel's own copies are not installed.
const GENERATED_DIST_INFO: [&str; 4] = ["RECORD", "INSTALLER", "REQUESTED", "direct_url.json"];

/// Where things go in the environment, as paths relative to its root.
pub(crate) struct Layout {
    site_packages: PathBuf,
    scripts: PathBuf,
    python: PathBuf,
    env: Environment,
}

impl Layout {
    pub(crate) fn new(env: &Environment) -> Self {
        let relative = |p: &Path| p.strip_prefix(env.root()).unwrap_or(p).to_path_buf();
        Layout {
            site_packages: relative(env.site_packages()),
            scripts: relative(env.scripts_dir()),
            python: env.python(),
            env: env.clone(),
        }
    }

    /// A destination relative to the environment root, as RECORD spells it:
    /// relative to site-packages (*Recording installed projects § The RECORD
    /// file*: paths may be relative to the directory holding `.dist-info`,
    /// with `..` for files outside it).
    fn record_path(&self, dest: &Path) -> String {
        if let Ok(inside) = dest.strip_prefix(&self.site_packages) {
            return to_slash(inside);
        }
        let ups = self.site_packages.components().count();
        format!("{}{}", "../".repeat(ups), to_slash(dest))
    }
}

fn to_slash(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// What staging does with one archive file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Link (or copy) it as is.
    Link,
    /// A `.data/scripts/` file: read, verify, rewrite `#!python`, write a real copy.
    Script,
    /// The archive's RECORD: checked (so a damaged archive is noticed and
    /// healed) but not installed; keel writes the environment's RECORD.
    CheckOnly,
}

#[derive(Debug, Clone)]
struct PlannedFile {
    /// Index into the manifest's files.
    index: usize,
    /// Destination relative to the environment root.
    dest: PathBuf,
    action: Action,
}

/// One wheel on its way into the environment.
pub(crate) struct WheelJob {
    pub source: WheelSource,
    pub archive: Archive,
    /// This wheel's staging root for site-packages: laid out like
    /// site-packages, so that each wheel's staging holds no skeleton of
    /// `lib/pythonX.Y/` (each directory of it is a `mkdir`, an `rmdir` and,
    /// as a rename's source, a flushed `fsync` at commit time).
    pub root: PathBuf,
    /// Its staging root for everything else (scripts, headers, data): laid
    /// out like the environment root; made only when needed.
    pub prefix_root: PathBuf,
    /// The environment's site-packages, relative to its root.
    site_packages: PathBuf,
    files: Vec<PlannedFile>,
    /// RECORD rows of files whose content staging changed (rewritten scripts).
    rewritten: HashMap<usize, (RecordHash, u64)>,
}

impl WheelJob {
    /// Maps every archive file to its destination (*Binary distribution
    /// format § Installing a wheel*: root to purelib/platlib, each
    /// `.data/<key>/` subtree onto its scheme directory).
    pub(crate) fn plan(
        source: WheelSource,
        archive: Archive,
        root: PathBuf,
        layout: &Layout,
    ) -> Result<Self, Error> {
        let manifest = &archive.manifest;
        let data_dir = manifest.data_dir();
        let headers = layout
            .env
            .headers_dir(&manifest.name)
            .strip_prefix(layout.env.root())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let script_names: BTreeSet<&str> = manifest
            .entry_points
            .iter()
            .map(|ep| ep.name.as_str())
            .collect();
        let mut files = Vec::with_capacity(manifest.files.len());
        for (index, file) in manifest.files.iter().enumerate() {
            let invalid = |rule| {
                Error::InvalidWheel(keel_wheel::Error::invalid(&source.path, &file.path, rule))
            };
            keel_wheel::validate_relative_path(&file.path).map_err(invalid)?;
            let destination = classify_entry(&file.path, &data_dir).map_err(invalid)?;
            let (dest, action) = match destination {
                EntryDestination::Root(path) => {
                    let generated = path
                        .strip_prefix(manifest.dist_info.as_str())
                        .and_then(|rest| rest.strip_prefix('/'))
                        .filter(|name| GENERATED_DIST_INFO.contains(name));
                    match generated {
                        Some("RECORD") => (layout.site_packages.join(path), Action::CheckOnly),
                        Some(_) => continue,
                        None => (layout.site_packages.join(path), Action::Link),
                    }
                }
                EntryDestination::Data(DataKey::Purelib | DataKey::Platlib, path) => {
                    (layout.site_packages.join(path), Action::Link)
                }
                EntryDestination::Data(DataKey::Scripts, path) => {
                    if script_names.contains(path) {
                        tracing::debug!(
                            "{}: entry point `{path}` replaces the .data script of that name",
                            manifest.wheel
                        );
                        continue;
                    }
                    let name = path.split('/').next().unwrap_or(path);
                    if let Some(reason) = script_name_problem(name) {
                        return Err(Error::ScriptName {
                            wheel: source.path.clone(),
                            name: file.path.clone(),
                            reason,
                        });
                    }
                    (layout.scripts.join(path), Action::Script)
                }
                EntryDestination::Data(DataKey::Headers, path) => {
                    (headers.join(path), Action::Link)
                }
                EntryDestination::Data(DataKey::Data, path) => (PathBuf::from(path), Action::Link),
            };
            // Only `data` and `scripts` files can land on the environment's
            // own files (`pyvenv.cfg`, `bin/python`); site-packages cannot.
            if matches!(
                destination,
                EntryDestination::Data(DataKey::Data | DataKey::Scripts, _)
            ) && crate::commit::is_protected(&layout.env, &layout.env.root().join(&dest))
            {
                return Err(invalid(keel_wheel::Rule::UnsafePath(
                    "it would overwrite a file of the virtual environment itself",
                )));
            }
            files.push(PlannedFile {
                index,
                dest,
                action,
            });
        }
        for entry_point in &manifest.entry_points {
            if let Some(reason) = script_name_problem(&entry_point.name) {
                return Err(Error::ScriptName {
                    wheel: source.path.clone(),
                    name: entry_point.name.clone(),
                    reason,
                });
            }
        }
        Ok(WheelJob {
            source,
            archive,
            prefix_root: {
                let mut name = root.clone().into_os_string();
                name.push(".prefix");
                PathBuf::from(name)
            },
            root,
            site_packages: layout.site_packages.clone(),
            files,
            rewritten: HashMap::new(),
        })
    }

    /// Where a destination (relative to the environment root) is staged.
    pub(crate) fn staged_path(&self, dest: &Path) -> PathBuf {
        match dest.strip_prefix(&self.site_packages) {
            Ok(inside) => self.root.join(inside),
            Err(_) => self.prefix_root.join(dest),
        }
    }

    /// Every destination this wheel installs (relative to the environment root).
    pub(crate) fn destinations(&self, layout: &Layout) -> Vec<PathBuf> {
        let mut all: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|f| f.action != Action::CheckOnly)
            .map(|f| f.dest.clone())
            .collect();
        all.extend(
            self.archive
                .manifest
                .entry_points
                .iter()
                .map(|ep| layout.scripts.join(&ep.name)),
        );
        let dist_info = layout.site_packages.join(&self.archive.manifest.dist_info);
        all.extend(GENERATED_DIST_INFO.iter().map(|name| dist_info.join(name)));
        all
    }

    /// Adds every directory this wheel's staging trees need (their roots
    /// included, the staging directory above them not) to `dirs`.
    fn directories(&self, layout: &Layout, dirs: &mut HashSet<PathBuf>) {
        let dist_info = self.root.join(&self.archive.manifest.dist_info);
        let scripts = (!self.archive.manifest.entry_points.is_empty())
            .then(|| self.staged_path(&layout.scripts));
        let parents = self
            .files
            .iter()
            .filter(|file| file.action != Action::CheckOnly)
            .filter_map(|file| self.staged_path(&file.dest).parent().map(Path::to_path_buf));
        // Every directory here is a root or below one; the staging
        // directory holding the roots is shorter than both.
        let floor = self.root.parent().map_or(0, |p| p.as_os_str().len());
        for dir in [self.root.clone(), dist_info]
            .into_iter()
            .chain(scripts)
            .chain(parents)
        {
            // Walk up until a directory already known, or the staging directory.
            let mut cursor = Some(dir.as_path());
            while let Some(d) = cursor {
                if d.as_os_str().len() <= floor || !dirs.insert(d.to_path_buf()) {
                    break;
                }
                cursor = d.parent();
            }
        }
    }
}

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
    let results: Vec<Result<FileOutcome, Error>> = runs
        .par_iter()
        .flat_map_iter(|run| {
            // Ctrl-C: stop linking and hashing now; the caller removes staging.
            if cancelled() {
                return vec![Err(Error::Interrupted)];
            }
            stage_run(jobs, &work[run.clone()], layout, mode, hash_everything)
        })
        .collect();
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
        match (result?, &mut staged[j]) {
            (FileOutcome::Damaged(_), Staged::Damaged { more, .. }) => *more += 1,
            (FileOutcome::Damaged(damage), slot) => {
                let entry = jobs[j].archive.manifest.files[index].path.clone();
                *slot = Staged::Damaged {
                    entry,
                    damage,
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
            (FileOutcome::Rewritten(hash, size), Staged::Ok { hashed, .. }) => {
                *hashed += 1;
                jobs[j].rewritten.insert(index, (hash, size));
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
    let mut dirs = HashSet::new();
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

enum FileOutcome {
    Proven(Proof),
    Rewritten(RecordHash, u64),
    Damaged(Damage),
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
                Some(Err(damage)) => Ok(FileOutcome::Damaged(damage)),
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
            Err(damage) => FileOutcome::Damaged(damage),
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
        Err(damage) => FileOutcome::Damaged(damage),
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
            return Ok(FileOutcome::Damaged(Damage::Missing));
        }
        Err(e)
            if e.kind() == std::io::ErrorKind::InvalidInput
                || fs_err::symlink_metadata(source).is_ok_and(|m| !m.is_file()) =>
        {
            return Ok(FileOutcome::Damaged(Damage::NotARegularFile));
        }
        Err(e) => return Ok(FileOutcome::Damaged(Damage::Unreadable(e))),
    };
    let Ok(expected_hash) = expected.hash.parse::<RecordHash>() else {
        return Ok(FileOutcome::Damaged(Damage::Content));
    };
    if contents.len() as u64 != expected.size {
        return Ok(FileOutcome::Damaged(Damage::Size {
            expected: expected.size,
            actual: contents.len() as u64,
        }));
    }
    if RecordHash::of(expected_hash.algorithm, &contents) != expected_hash {
        return Ok(FileOutcome::Damaged(Damage::Content));
    }
    let written = rewrite_python_shebang(&contents, python).unwrap_or(contents);
    write_executable(target, &written)?;
    Ok(FileOutcome::Rewritten(
        RecordHash::of(HashAlgorithm::Sha256, &written),
        written.len() as u64,
    ))
}

/// Reads a regular file without following a symlink and without blocking
/// on a FIFO or device.
fn read_no_follow(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    keel_cache::open_no_follow(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn write_executable(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    fs_err::write(path, bytes)?;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Writes the files keel generates for one staged wheel: entry-point
/// launchers, `INSTALLER`, `REQUESTED`, `direct_url.json` and the new
/// RECORD listing every installed file with hash and size (*Recording
/// installed projects*; *Direct URL data structure*).
pub(crate) fn write_generated(job: &WheelJob, layout: &Layout) -> Result<(), Error> {
    let manifest = &job.archive.manifest;
    let mut rows: Vec<RecordEntry> = Vec::with_capacity(job.files.len() + 8);
    for file in job.files.iter().filter(|f| f.action != Action::CheckOnly) {
        let entry = &manifest.files[file.index];
        let (hash, size) = match job.rewritten.get(&file.index) {
            Some((hash, size)) => (hash.clone(), *size),
            None => match entry.hash.parse::<RecordHash>() {
                Ok(hash) => (hash, entry.size),
                Err(_) => hash_file(&job.staged_path(&file.dest), HashAlgorithm::Sha256)?,
            },
        };
        rows.push(RecordEntry {
            path: layout.record_path(&file.dest),
            hash: Some(hash),
            size: Some(size),
        });
    }
    let mut generate = |dest: PathBuf, bytes: &[u8], executable: bool| -> Result<(), Error> {
        let target = job.staged_path(&dest);
        if executable {
            write_executable(&target, bytes)?;
        } else {
            fs_err::write(&target, bytes)?;
        }
        rows.push(RecordEntry {
            path: layout.record_path(&dest),
            hash: Some(RecordHash::of(HashAlgorithm::Sha256, bytes)),
            size: Some(bytes.len() as u64),
        });
        Ok(())
    };
    for entry_point in &manifest.entry_points {
        generate(
            layout.scripts.join(&entry_point.name),
            &launcher(entry_point, &layout.python),
            true,
        )?;
    }
    let dist_info = layout.site_packages.join(&manifest.dist_info);
    generate(dist_info.join("INSTALLER"), b"keel\n", false)?;
    generate(dist_info.join("REQUESTED"), b"", false)?;
    generate(dist_info.join("direct_url.json"), &direct_url(job)?, false)?;
    let record_dest = dist_info.join("RECORD");
    rows.push(RecordEntry {
        path: layout.record_path(&record_dest),
        hash: None,
        size: None,
    });
    fs_err::write(job.staged_path(&record_dest), write_record(&rows))?;
    Ok(())
}

/// *Direct URL data structure*: a local wheel is an archive URL; keel
/// records the `file://` URL and the wheel's sha256 (both the `hashes` map
/// and the legacy `hash` key, which must agree).
fn direct_url(job: &WheelJob) -> Result<Vec<u8>, Error> {
    let url = url::Url::from_file_path(&job.source.path).map_err(|()| Error::NotAbsolute {
        path: job.source.path.clone(),
    })?;
    let sha256 = &job.archive.manifest.wheel_sha256;
    let value = serde_json::json!({
        "archive_info": {
            "hash": format!("sha256={sha256}"),
            "hashes": { "sha256": sha256 },
        },
        "url": url.as_str(),
    });
    Ok(value.to_string().into_bytes())
}

/// Removes one wheel's staging trees (before restaging it from a fresh archive).
pub(crate) fn discard(job: &WheelJob) -> Result<(), Error> {
    for root in [&job.root, &job.prefix_root] {
        match fs_err::remove_dir_all(root) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
