//! Where every file of a wheel goes: the environment's layout, each
//! archive file mapped to its destination and to what staging does with it
//! (*Binary distribution format § Installing a wheel*), and the rule that
//! two wheels of one transaction never install the same file.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::{Path, PathBuf};

use keel_cache::{Archive, WheelSource};
use keel_venv::Environment;
use keel_wheel::{DataKey, EntryDestination, RecordHash, classify_entry, script_name_problem};
use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::Error;
use crate::origin::Origin;

/// The `.dist-info` files keel writes itself; a wheel's own copies are not installed.
pub(crate) const GENERATED_DIST_INFO: [&str; 4] =
    ["RECORD", "INSTALLER", "REQUESTED", "direct_url.json"];

/// Where things go in the environment, as paths relative to its root.
pub(crate) struct Layout {
    pub site_packages: PathBuf,
    pub scripts: PathBuf,
    /// The interpreter scripts run with.
    pub python: PathBuf,
    pub env: Environment,
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

    /// A destination relative to the environment root, as RECORD spells it
    /// ([`Environment::record_spelling`]).
    ///
    /// A destination inside site-packages is spelled by its bytes after
    /// site-packages' (a plan's destinations are joins of validated,
    /// `/`-separated archive paths, so they are RECORD's spelling already):
    /// the general rule walked every component of 100,000 paths.
    pub(crate) fn record_path<'a>(&self, dest: &'a Path) -> Cow<'a, str> {
        let prefix = self.site_packages.as_os_str().as_bytes();
        let inside = dest
            .as_os_str()
            .as_bytes()
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix(b"/"))
            .and_then(|rest| std::str::from_utf8(rest).ok());
        match inside {
            Some(rest) if !prefix.is_empty() && !rest.is_empty() => Cow::Borrowed(rest),
            _ => Cow::Owned(self.env.record_spelling(&self.env.root().join(dest))),
        }
    }
}

/// Why a script name cannot be installed: not a plain file name (the wheel
/// format's rule) or one the environment reserves (its rule).
fn script_problem(name: &str) -> Option<&'static str> {
    script_name_problem(name).or_else(|| {
        keel_venv::is_reserved_script_name(name)
            .then_some("the name is reserved by the virtual environment")
    })
}

/// What staging does with one archive file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Link (or copy) it as is.
    Link,
    /// A `.data/scripts/` file: read, verify, rewrite `#!python`, write a real copy.
    Script,
    /// The archive's RECORD: checked (so a damaged archive is noticed and
    /// healed) but not installed; keel writes the environment's RECORD.
    CheckOnly,
}

#[derive(Debug, Clone)]
pub(crate) struct PlannedFile {
    /// Index into the manifest's files.
    pub index: usize,
    /// Destination relative to the environment root (boxed: no spare
    /// capacity, one per file of the wheel).
    pub dest: Box<Path>,
    /// What staging does with it.
    pub action: Action,
}

/// One wheel on its way into the environment.
pub(crate) struct WheelJob {
    pub source: WheelSource,
    /// Where it comes from (its `direct_url.json`).
    pub origin: Origin,
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
    /// Every archive file and where it goes.
    pub files: Vec<PlannedFile>,
    /// The launchers to write in `bin/`: each name and the index of its
    /// entry point ([`crate::scripts::script_names`]).
    pub scripts: Vec<(String, usize)>,
    /// RECORD rows of files whose content staging changed (rewritten scripts).
    pub rewritten: HashMap<usize, (RecordHash, u64)>,
    /// The bytecode compiled in staging, relative to the environment root
    /// (listed in RECORD without hash or size).
    pub compiled: Vec<PathBuf>,
}

impl WheelJob {
    /// Maps every archive file to its destination (*Binary distribution
    /// format § Installing a wheel*: root to purelib/platlib, each
    /// `.data/<key>/` subtree onto its scheme directory).
    pub(crate) fn plan(
        source: WheelSource,
        origin: Origin,
        archive: Archive,
        root: PathBuf,
        layout: &Layout,
    ) -> Result<Self, Error> {
        let manifest = &archive.manifest;
        for entry_point in &manifest.entry_points {
            if let Some(reason) = script_problem(&entry_point.name) {
                return Err(Error::ScriptName {
                    wheel: source.path.clone(),
                    name: entry_point.name.clone(),
                    reason,
                });
            }
        }
        let scripts =
            crate::scripts::script_names(&manifest.entry_points, layout.env.python_version());
        let router = Router::new(&source, &archive, layout);
        // On every core: a wheel may have 100,000 files. In archive order,
        // so that the first problem reported is the first in the archive.
        let routed: Vec<Result<Option<PlannedFile>, Error>> = (0..manifest.files.len())
            .into_par_iter()
            .map(|index| router.route(index))
            .collect();
        let files = routed
            .into_iter()
            .filter_map(Result::transpose)
            .collect::<Result<Vec<PlannedFile>, Error>>()?;
        let mut prefix_root = root.clone().into_os_string();
        prefix_root.push(".prefix");
        Ok(WheelJob {
            source,
            origin,
            archive,
            prefix_root: PathBuf::from(prefix_root),
            root,
            site_packages: layout.site_packages.clone(),
            files,
            scripts,
            rewritten: HashMap::new(),
            compiled: Vec::new(),
        })
    }

    /// Where a destination (relative to the environment root) is staged.
    pub(crate) fn staged_path(&self, dest: &Path) -> PathBuf {
        match dest.strip_prefix(&self.site_packages) {
            Ok(inside) => self.root.join(inside),
            Err(_) => self.prefix_root.join(dest),
        }
    }

    /// Every destination this wheel installs (relative to the environment
    /// root), borrowed where the plan holds it already.
    pub(crate) fn destinations(&self, layout: &Layout) -> Vec<Cow<'_, Path>> {
        let mut all: Vec<Cow<'_, Path>> = self
            .files
            .iter()
            .filter(|f| f.action != Action::CheckOnly)
            .map(|f| Cow::Borrowed(&*f.dest))
            .collect();
        all.extend(
            self.scripts
                .iter()
                .map(|(name, _)| Cow::Owned(layout.scripts.join(name))),
        );
        let dist_info = layout.site_packages.join(&self.archive.manifest.dist_info);
        all.extend(
            GENERATED_DIST_INFO
                .iter()
                .map(|name| Cow::Owned(dist_info.join(name))),
        );
        all
    }

    /// Adds every directory this wheel's staging trees need (their roots
    /// included, the staging directory above them not) to `dirs`.
    pub(crate) fn directories(&self, layout: &Layout, dirs: &mut FxHashSet<PathBuf>) {
        let dist_info = self.root.join(&self.archive.manifest.dist_info);
        let scripts = (!self.scripts.is_empty()).then(|| self.staged_path(&layout.scripts));
        // Files come in archive order, a directory's files together: each
        // run of one parent is mapped once (not once per file of 100,000).
        let mut previous: Option<&Path> = None;
        let parents = self
            .files
            .iter()
            .filter(|file| file.action != Action::CheckOnly)
            .filter_map(|file| {
                let parent = file.dest.parent()?;
                (previous != Some(parent)).then(|| {
                    previous = Some(parent);
                    self.staged_path(parent)
                })
            });
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

/// Maps the files of one archive to their destinations.
struct Router<'a> {
    source: &'a WheelSource,
    archive: &'a Archive,
    layout: &'a Layout,
    data_dir: String,
    /// `include/site/pythonX.Y/<name>`, relative to the environment root.
    headers: PathBuf,
    /// The entry points' script names: a `.data/scripts/` file of one of
    /// these names is replaced by the entry point's launcher.
    script_names: BTreeSet<&'a str>,
}

impl<'a> Router<'a> {
    fn new(source: &'a WheelSource, archive: &'a Archive, layout: &'a Layout) -> Self {
        let manifest = &archive.manifest;
        Router {
            source,
            archive,
            layout,
            data_dir: manifest.data_dir(),
            headers: layout
                .env
                .headers_dir(&manifest.name)
                .strip_prefix(layout.env.root())
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            script_names: manifest
                .entry_points
                .iter()
                .map(|ep| ep.name.as_str())
                .collect(),
        }
    }

    /// Where archive file `index` goes and what staging does with it;
    /// `None` for a file keel does not install (a `.dist-info` file keel
    /// writes itself, a script an entry point replaces).
    fn route(&self, index: usize) -> Result<Option<PlannedFile>, Error> {
        let manifest = &self.archive.manifest;
        let file = &manifest.files[index];
        let invalid = |rule| {
            Error::InvalidWheel(keel_wheel::Error::invalid(
                &self.source.path,
                &file.path,
                rule,
            ))
        };
        keel_wheel::validate_relative_path(&file.path).map_err(invalid)?;
        let destination = classify_entry(&file.path, &self.data_dir).map_err(invalid)?;
        // Only `data` and `scripts` files can land on the environment's own
        // files (`pyvenv.cfg`, `bin/python`); site-packages cannot. Checked
        // here too, not only at unpack time: an archive a cache already held
        // was unpacked for some other environment.
        if let EntryDestination::Data(key @ (DataKey::Data | DataKey::Scripts), path) = destination
            && let Some(why) = keel_venv::reserved_destination(key, path)
        {
            return Err(match key {
                DataKey::Scripts => Error::ScriptName {
                    wheel: self.source.path.clone(),
                    name: file.path.clone(),
                    reason: why,
                },
                _ => invalid(keel_wheel::Rule::UnsafePath(why)),
            });
        }
        let layout = self.layout;
        let (dest, action) = match destination {
            EntryDestination::Root(path) => {
                let generated = path
                    .strip_prefix(manifest.dist_info.as_str())
                    .and_then(|rest| rest.strip_prefix('/'))
                    .filter(|name| GENERATED_DIST_INFO.contains(name));
                match generated {
                    Some("RECORD") => (layout.site_packages.join(path), Action::CheckOnly),
                    Some(_) => return Ok(None),
                    None => (layout.site_packages.join(path), Action::Link),
                }
            }
            EntryDestination::Data(DataKey::Purelib | DataKey::Platlib, path) => {
                (layout.site_packages.join(path), Action::Link)
            }
            EntryDestination::Data(DataKey::Scripts, path) => {
                if self.script_names.contains(path) {
                    tracing::debug!(
                        "{}: entry point `{path}` replaces the .data script of that name",
                        manifest.wheel
                    );
                    return Ok(None);
                }
                let name = path.split('/').next().unwrap_or(path);
                if let Some(reason) = script_problem(name) {
                    return Err(Error::ScriptName {
                        wheel: self.source.path.clone(),
                        name: file.path.clone(),
                        reason,
                    });
                }
                (layout.scripts.join(path), Action::Script)
            }
            EntryDestination::Data(DataKey::Headers, path) => {
                (self.headers.join(path), Action::Link)
            }
            EntryDestination::Data(DataKey::Data, path) => (PathBuf::from(path), Action::Link),
        };
        Ok(Some(PlannedFile {
            index,
            dest: dest.into_boxed_path(),
            action,
        }))
    }
}

/// Two wheels of one transaction may not install the same file.
///
/// Destinations are compared as bytes: every one is a join of validated
/// archive paths (no `.`, `..` or empty components), so equal paths are
/// equal bytes.
pub(crate) fn check_overlaps(jobs: &[WheelJob], layout: &Layout) -> Result<(), Error> {
    let files = jobs.iter().map(|job| job.files.len()).sum();
    let mut owners: FxHashMap<Cow<'_, [u8]>, &Path> =
        FxHashMap::with_capacity_and_hasher(files, Default::default());
    for job in jobs {
        for dest in job.destinations(layout) {
            let key = match dest {
                Cow::Borrowed(path) => Cow::Borrowed(path.as_os_str().as_bytes()),
                Cow::Owned(path) => Cow::Owned(path.into_os_string().into_vec()),
            };
            if let Some(first) = owners.get(&key) {
                return Err(Error::WheelsOverlap {
                    path: PathBuf::from(std::ffi::OsStr::from_bytes(&key)),
                    first: first.to_path_buf(),
                    second: job.source.path.clone(),
                });
            }
            owners.insert(key, &job.source.path);
        }
    }
    Ok(())
}
