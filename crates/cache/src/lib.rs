//! keel's archive cache: every wheel unpacked once, every file hashed
//! against the wheel's RECORD while it was written, and remembered with a
//! stamp per file, so that a later install proves a file by one `stat`
//! instead of hashing it again.
//!
//! # Principal types
//!
//! - [`Cache`]: the cache at one root directory. [`Cache::lookup`] follows
//!   a wheel's pointer to its archive, [`Cache::unpack`] unpacks a wheel
//!   into a fresh archive, and [`Cache::obtain`] does both for a set of
//!   wheels on every core.
//! - [`WheelSource`]: a `.whl` the user named, with the file name, size and
//!   modification time that key its pointer.
//! - [`Archive`]: a wheel unpacked in the cache (its files under
//!   [`Archive::tree`]) and its [`Manifest`]: the wheel's identity and, per
//!   file, a [`ManifestFile`] holding RECORD's hash and size and the
//!   [`Stamp`] (device, inode, size, mtime) taken when it was last hashed.
//! - [`Lookup`]: what following a pointer found: an archive, no pointer,
//!   or a pointer or manifest that cannot be used.
//! - [`Obtained`]: an archive [`Cache::obtain`] returns, with its
//!   [`ArchiveOrigin`] (reused, unpacked, or unpacked again after damage);
//!   an [`UnpackObserver`] hears each unpack start and end.
//! - [`ArchiveProblem`]: what is wrong with a pointer or a manifest.
//! - [`Damage`] and [`Proof`]: what [`check_file`] found of one archive
//!   file: why it cannot be used, or how it was proven to match RECORD (its
//!   stamp still holds, or it was hashed).
//! - [`CacheLock`]: a held advisory lock, shared for installs
//!   ([`Cache::lock_shared`]), exclusive for maintenance
//!   ([`Cache::lock_exclusive`]).
//! - [`maintenance`]: `keel cache clean`, `prune`, `verify [--repair]` and
//!   `size`, and their reports.
//!
//! # Layout
//!
//! Under the cache root (see `README.md` § Cache layout):
//!
//! ```text
//! CACHEDIR.TAG                     marks the directory as a cache for backup tools
//! .lock                            shared by installs, exclusive for clean/prune/repair
//! .turnstile                       keeps clean/prune/repair from starving behind installs
//! tmp/unpack-XXXXXXXX/             an unpack in progress (removed on failure)
//! archives-v1/<name>/              locked while a wheel of <name> is unpacked
//! archives-v1/<name>/<id>/tree/    the wheel's files, exactly as in the zip
//! archives-v1/<name>/<id>/manifest.postcard
//!                                  the wheel's identity and, per file, RECORD
//!                                  hash and size plus the stamp taken when it
//!                                  was last hashed (binary; an older keel's
//!                                  manifest.json is still read)
//! archives-v1/<name>/<id>/bytecode-<tag>-<magic>-<mode>/
//!                                  its modules compiled by an install, with a
//!                                  manifest of hash, size and stamp per `.pyc`
//!                                  (`CachedBytecode`)
//! pointers-v1/<name>/<wheel file name>.<size>.<mtime ns>.json
//!                                  wheel → archive id; replaced atomically
//! ```
//!
//! A pointer is keyed by the wheel's file name, size and modification time,
//! so a warm install never hashes the `.whl`. An archive is never edited in
//! place: a damaged archive is abandoned and a fresh one unpacked beside it,
//! then the pointer is replaced with one `rename`.
//!
//! # Example
//!
//! Obtain a wheel's archive, prove its files, and record the stamps that
//! hashing renewed:
//!
//! ```no_run
//! use keel_cache::{Cache, Proof, WheelSource, check_file};
//!
//! # fn main() -> Result<(), keel_cache::Error> {
//! let cache = Cache::at(&Cache::default_root()?)?;
//! // Held until the archives are no longer needed: no clean meanwhile.
//! let _lock = cache.lock_shared()?;
//! let wheel = WheelSource::new("dist/flask-3.0.0-py3-none-any.whl".as_ref())?;
//! for obtained in cache.obtain(&[wheel], &())? {
//!     let archive = obtained.archive;
//!     let mut renewed = Vec::new();
//!     for (index, file) in archive.manifest.files.iter().enumerate() {
//!         match check_file(&archive.tree().join(&file.path), file, false) {
//!             Ok(Proof::Hash(Some(stamp))) => renewed.push((index, stamp)),
//!             Ok(_) => {}
//!             Err(damage) => eprintln!("{}: {damage}", file.path),
//!         }
//!     }
//!     cache.restamp(&archive, &renewed)?;
//! }
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod bytecode;
mod integrity;
mod key;
mod layer;
mod lock;
pub mod maintenance;
mod manifest;
mod obtain;
mod problem;
mod removal;

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use keel_wheel::{WheelArchive, WheelFilename};

pub use bytecode::CachedBytecode;
pub use integrity::{
    Damage, FileStat, Proof, check_file, check_metadata, check_stat, hash_matches,
};
pub use keel_fs::open_no_follow;
pub use key::sha256_of;
pub use lock::CacheLock;
pub use manifest::{Manifest, ManifestEntryPoint, ManifestFile, Stamp};
pub use obtain::{ArchiveOrigin, Obtained, UnpackObserver};
pub use problem::ArchiveProblem;
pub use removal::Removed;

use lock::LockKind;

/// Everything that can go wrong in the cache.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No cache directory was given and [`Cache::default_root`] finds none
    /// in the environment.
    #[error(
        "cannot determine the cache directory: set KEEL_CACHE_DIR, XDG_CACHE_HOME or HOME, or pass --cache-dir"
    )]
    NoCacheDir,

    /// The wheel file named does not exist.
    #[error("wheel `{}` does not exist", path.display())]
    WheelNotFound {
        /// The wheel's absolute path.
        path: PathBuf,
    },

    /// The file's name is not a wheel file name.
    #[error("cannot use `{}` as a wheel", path.display())]
    Wheel {
        /// The file's absolute path.
        path: PathBuf,
        /// Why its name does not parse.
        #[source]
        source: keel_wheel::Error,
    },

    /// The wheel itself is bad; its error names the wheel, entry and rule.
    #[error(transparent)]
    InvalidWheel(keel_wheel::Error),

    /// A file system operation failed while unpacking (opening or reading
    /// the `.whl`, writing the archive); the wheel itself is not at fault.
    #[error("failed to unpack `{}` into the cache", wheel.display())]
    Unpack {
        /// The wheel's path.
        wheel: PathBuf,
        /// The wheel crate's I/O error.
        #[source]
        source: keel_wheel::Error,
    },

    /// A pointer could not be serialized.
    #[error("cannot write `{}`", path.display())]
    Serialize {
        /// The file it was to be written to.
        path: PathBuf,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },

    /// A manifest could not be encoded.
    #[error("cannot write `{}`", path.display())]
    Encode {
        /// The file it was to be written to.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: postcard::Error,
    },

    /// Removing something from the cache failed.
    #[error("cannot remove `{}`", path.display())]
    Remove {
        /// The file or directory being removed (or opened to remove from).
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },

    /// A path the cache needs as a directory is something else; a symlink
    /// there is never followed.
    #[error("`{}` is not a directory (keel never follows a symlink inside its cache)", path.display())]
    NotADirectory {
        /// What is there instead of a directory.
        path: PathBuf,
    },

    /// `clean` or `prune` was pointed at a directory that is not a keel
    /// cache, and removes nothing from it.
    #[error(
        "`{}` does not look like a keel cache (no CACHEDIR.TAG written by keel, no archives-v1/ or pointers-v1/); refusing to remove anything in it",
        path.display()
    )]
    NotACache {
        /// The directory.
        path: PathBuf,
    },

    /// Any other I/O error (`fs_err` names its path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The subdirectories, versioned so that a future layout can live beside this one.
const ARCHIVES: &str = "archives-v1";
const POINTERS: &str = "pointers-v1";
const TMP: &str = "tmp";
const LOCK: &str = ".lock";
const TURNSTILE: &str = ".turnstile";
const TAG: &str = "CACHEDIR.TAG";
/// Prefix of the temporary files behind atomic writes (pointers,
/// manifests); a killed process may leave one, which `cache prune` removes.
const PARTIAL: &str = keel_fs::PARTIAL_PREFIX;

/// A wheel file the user named, with the stat that keys its pointer.
#[derive(Debug, Clone)]
pub struct WheelSource {
    /// Absolute path of the `.whl`.
    pub path: PathBuf,
    /// Its file name, parsed (distribution, version, tags).
    pub filename: WheelFilename,
    /// Its size in bytes.
    pub size: u64,
    /// Its modification time in nanoseconds since the Unix epoch (0 before
    /// it).
    pub mtime_ns: i64,
    /// What keys its pointer: size, modification and change time, inode.
    key: key::PointerKey,
    /// Its sha256 (hex), when already known and verified (a download):
    /// its archive is then also found by content.
    pub sha256: Option<String>,
}

impl WheelSource {
    /// Parses the file name and stats the file (one `stat`, no read).
    pub fn new(path: &Path) -> Result<Self, Error> {
        let path = std::path::absolute(path)?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let filename: WheelFilename = name.parse().map_err(|source| Error::Wheel {
            path: path.clone(),
            source,
        })?;
        let metadata = match fs_err::metadata(&path) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::WheelNotFound { path });
            }
            Err(e) => return Err(e.into()),
        };
        if !metadata.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("`{}` is not a file", path.display()),
            )
            .into());
        }
        let mtime_ns = metadata
            .modified()?
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or_default();
        Ok(WheelSource {
            path,
            filename,
            size: metadata.len(),
            mtime_ns,
            key: key::PointerKey::of(&metadata),
            sha256: None,
        })
    }

    /// The same wheel, whose sha256 (hex) the caller verified (a download
    /// checked by hash): its archive is found by content first, in any
    /// cache layer, wherever the file now is.
    pub fn with_sha256(mut self, sha256: impl Into<String>) -> Self {
        self.sha256 = Some(sha256.into());
        self
    }

    /// The key of its pointer: its content when its sha256 is known, else
    /// its stat.
    pub(crate) fn pointer_key(&self) -> key::PointerKey {
        match &self.sha256 {
            Some(sha256) => key::PointerKey::Content(sha256.clone()),
            None => self.key.clone(),
        }
    }
}

/// An archive: a wheel unpacked in the cache, and its manifest.
#[derive(Debug, Clone)]
pub struct Archive {
    /// `<name>/<id>`, unique in the cache.
    pub id: String,
    /// The archive directory (holds `tree/` and `manifest.postcard`).
    pub dir: PathBuf,
    /// Boxed: archives travel in enums and results by value.
    pub manifest: Box<Manifest>,
    /// In a read-only shared layer (`--shared-cache`): never written; its
    /// renewed stamps are kept in the writable cache.
    pub shared: bool,
}

impl Archive {
    /// The wheel's files, laid out as in the zip.
    pub fn tree(&self) -> PathBuf {
        self.dir.join("tree")
    }

    /// Its manifest file (an older keel's `manifest.json` when that is the
    /// only one there).
    pub fn manifest_path(&self) -> PathBuf {
        Manifest::path_in(&self.dir)
    }
}

/// What a pointer lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// An archive whose manifest could be read; its files still need checking.
    Hit(Archive),
    /// No pointer: this wheel was never unpacked (or its pointer was cleaned).
    Miss,
    /// A pointer whose archive is gone or unreadable.
    Damaged {
        /// What is wrong with the pointer or the manifest.
        reason: ArchiveProblem,
    },
}

/// What [`Cache::unpack`] did.
#[derive(Debug)]
pub enum Unpack {
    /// This process unpacked the wheel.
    Fresh(Archive),
    /// Another process unpacked it while this one waited for its turn.
    FoundReady(Archive),
}

impl Unpack {
    /// The archive, whoever unpacked it.
    pub fn into_archive(self) -> Archive {
        match self {
            Unpack::Fresh(archive) | Unpack::FoundReady(archive) => archive,
        }
    }
}

/// The archive cache at one root directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    /// Read-only layers consulted before `root`, in order.
    layers: Vec<layer::Layer>,
    /// Size limits every wheel is unpacked under (zip bombs).
    limits: keel_wheel::Limits,
    /// The rule of the environment the archives are for: destinations a
    /// wheel may not write (refused before anything is unpacked).
    destinations: Option<keel_wheel::DestinationCheck>,
}

impl Cache {
    /// `$KEEL_CACHE_DIR`, else `$XDG_CACHE_HOME/keel`, else `~/.cache/keel`.
    pub fn default_root() -> Result<PathBuf, Error> {
        let non_empty = |key: &str| {
            std::env::var_os(key)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(dir) = non_empty("KEEL_CACHE_DIR") {
            return Ok(dir);
        }
        if let Some(dir) = non_empty("XDG_CACHE_HOME") {
            return Ok(dir.join("keel"));
        }
        non_empty("HOME")
            .map(|home| home.join(".cache").join("keel"))
            .ok_or(Error::NoCacheDir)
    }

    /// Opens (creating if needed) the cache at `root`. Takes no lock: an
    /// install calls [`Cache::at`] and then [`Cache::lock_shared`], which
    /// creates the layout once the lock is held (a `cache clean` that held
    /// the lock meanwhile may have removed it).
    pub fn open(root: &Path) -> Result<Self, Error> {
        let cache = Cache::at(root)?;
        cache.ensure_layout()?;
        Ok(cache)
    }

    /// The cache at `root`, without creating or locking anything.
    pub fn at(root: &Path) -> Result<Self, Error> {
        Ok(Cache {
            root: std::path::absolute(root)?,
            layers: Vec::new(),
            limits: keel_wheel::Limits::default(),
            destinations: None,
        })
    }

    /// Creates the subdirectories and `CACHEDIR.TAG` where missing.
    fn ensure_layout(&self) -> Result<(), Error> {
        for dir in [ARCHIVES, POINTERS, TMP] {
            fs_err::create_dir_all(self.root.join(dir))?;
        }
        let tag = self.root.join(TAG);
        if !tag.exists() {
            // https://bford.info/cachedir/
            write_atomically(
                &tag,
                b"Signature: 8a477f597d28d172789f06886806bc55\n# This directory is keel's cache. See https://bford.info/cachedir/\n",
            )?;
        }
        Ok(())
    }

    /// The cache's root directory (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Unpacks wheels under `limits` instead of the defaults (4 GiB a file,
    /// 16 GiB a wheel, 250:1 compression above 1 MiB).
    pub fn with_limits(mut self, limits: keel_wheel::Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The size limits wheels are unpacked under.
    pub fn limits(&self) -> keel_wheel::Limits {
        self.limits
    }

    /// Refuses, when unpacking, a wheel that would write where `check`
    /// forbids (the target environment's own files), so that such a wheel
    /// never becomes an archive.
    pub fn with_destination_check(mut self, check: keel_wheel::DestinationCheck) -> Self {
        self.destinations = Some(check);
        self
    }

    /// A shared lock: any number of installs at once, none during a clean,
    /// prune or repair, nor once one of those is waiting (see the `lock` module).
    /// Creates the cache's layout once it is held.
    pub fn lock_shared(&self) -> Result<CacheLock, Error> {
        let turnstile = CacheLock::acquire(&self.root.join(TURNSTILE), LockKind::TurnstileShared)?;
        let lock = CacheLock::acquire(&self.root.join(LOCK), LockKind::CacheShared)?;
        drop(turnstile);
        self.ensure_layout()?;
        Ok(lock)
    }

    /// An exclusive lock: waits for every install to finish, and says so;
    /// installs that start meanwhile wait for it.
    pub fn lock_exclusive(&self) -> Result<CacheLock, Error> {
        let turnstile =
            CacheLock::acquire(&self.root.join(TURNSTILE), LockKind::TurnstileExclusive)?;
        let lock = CacheLock::acquire(&self.root.join(LOCK), LockKind::CacheExclusive)?;
        Ok(turnstile.and(lock))
    }

    /// The pointer file of `wheel` under `root`.
    fn pointer_path_in(root: &Path, wheel: &WheelSource) -> PathBuf {
        root.join(POINTERS)
            .join(wheel.filename.normalized_name())
            .join(wheel.pointer_key().file_name(&wheel.filename.to_string()))
    }

    /// Where the writable cache keeps `wheel`'s pointer.
    pub fn pointer_path(&self, wheel: &WheelSource) -> PathBuf {
        Self::pointer_path_in(&self.root, wheel)
    }

    /// Follows the wheel's pointer to its archive and reads the manifest:
    /// in each shared layer, then in the writable cache. A layer's archive
    /// that this cache found damaged before is passed over. Reads a few
    /// small files; writes nothing.
    pub fn lookup(&self, wheel: &WheelSource) -> Result<Lookup, Error> {
        let mut damaged = None;
        for layer in &self.layers {
            match lookup_in(layer.root(), wheel, true) {
                Lookup::Hit(archive) => {
                    if let Some(archive) = self.with_layer_notes(archive) {
                        return Ok(Lookup::Hit(archive));
                    }
                }
                Lookup::Miss => {}
                found @ Lookup::Damaged { .. } => {
                    damaged.get_or_insert(found);
                }
            }
        }
        Ok(match lookup_in(&self.root, wheel, false) {
            Lookup::Miss => damaged.unwrap_or(Lookup::Miss),
            found => found,
        })
    }

    /// Reads a pointer file of the writable cache and the manifest of the
    /// archive it names, which must be the archive of the wheel file
    /// `wheel_name`.
    pub(crate) fn follow_pointer(&self, pointer_path: &Path, wheel_name: &str) -> Lookup {
        follow_pointer_in(&self.root, pointer_path, wheel_name, false)
    }

    /// Unpacks a wheel into a fresh archive and points the wheel at it,
    /// unless another process did so while this one waited for its turn.
    ///
    /// Unpacks of one distribution take turns (an exclusive lock on
    /// `archives-v1/<name>/`), and the pointer is read again once the lock
    /// is held: several processes unpacking the same wheel at once make one
    /// archive. `stale` is the id of an archive of this wheel found damaged;
    /// the pointer still leading there does not count as ready.
    pub fn unpack(&self, wheel: &WheelSource, stale: Option<&str>) -> Result<Unpack, Error> {
        let turn = CacheLock::acquire(&self.unpack_turn(wheel), LockKind::Unpack)?;
        self.unpack_in_turn(wheel, stale, turn)
    }

    /// [`Cache::unpack`] if no other process is unpacking a wheel of this
    /// distribution right now; `None` if one is. Never waits: callers that
    /// run on a thread pool must not block there (a blocked worker can hold
    /// one distribution's turn while it waits for another's).
    pub fn try_unpack(
        &self,
        wheel: &WheelSource,
        stale: Option<&str>,
    ) -> Result<Option<Unpack>, Error> {
        match CacheLock::try_acquire(&self.unpack_turn(wheel), LockKind::Unpack)? {
            Some(turn) => self.unpack_in_turn(wheel, stale, turn).map(Some),
            None => Ok(None),
        }
    }

    /// The directory whose lock is the turn to unpack a distribution.
    fn unpack_turn(&self, wheel: &WheelSource) -> PathBuf {
        self.root
            .join(ARCHIVES)
            .join(wheel.filename.normalized_name())
    }

    fn unpack_in_turn(
        &self,
        wheel: &WheelSource,
        stale: Option<&str>,
        _turn: CacheLock,
    ) -> Result<Unpack, Error> {
        if let Lookup::Hit(archive) = lookup_in(&self.root, wheel, false)
            && Some(archive.id.as_str()) != stale
        {
            tracing::debug!(
                "{} was unpacked by another keel process meanwhile",
                wheel.filename
            );
            return Ok(Unpack::FoundReady(archive));
        }
        self.unpack_now(wheel).map(Unpack::Fresh)
    }

    /// The unpack itself.
    ///
    /// The wheel is opened and checked, then extracted into a temporary
    /// directory inside the cache, every file hashed against RECORD as it is
    /// written (and the `.whl` hashed beside it for `direct_url.json`), then
    /// renamed into place; only then is the pointer replaced. A failure at
    /// any point leaves no archive and the old pointer (if any) untouched.
    fn unpack_now(&self, wheel: &WheelSource) -> Result<Archive, Error> {
        let unpack_error = |source| match source {
            keel_wheel::Error::Io(_) => Error::Unpack {
                wheel: wheel.path.clone(),
                source,
            },
            invalid => Error::InvalidWheel(invalid),
        };
        let archive =
            WheelArchive::open_with_limits(&wheel.path, self.limits).map_err(unpack_error)?;
        if let Some(check) = self.destinations {
            archive.check_destinations(check).map_err(unpack_error)?;
        }
        let staging = keel_fs::tempdir_in(&self.root.join(TMP), "unpack-")?;
        let tree = staging.path().join("tree");
        fs_err::create_dir(&tree)?;
        let (files, wheel_hash) = rayon::join(|| archive.extract(&tree), || archive.sha256());
        let files = files.map_err(unpack_error)?;
        let wheel_hash = wheel_hash.map_err(unpack_error)?;
        let manifest = Manifest::new(&archive, wheel_hash.hex(), files);
        // The zip's central directory and RECORD are not needed any more.
        drop(archive);
        manifest.write(staging.path())?;

        let name = wheel.filename.normalized_name();
        let parent = self.root.join(ARCHIVES).join(&name);
        fs_err::create_dir_all(&parent)?;
        let suffix = staging
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("unpack-"))
            .unwrap_or("archive")
            .to_string();
        let id = format!("{name}/{suffix}");
        let dir = parent.join(&suffix);
        fs_err::rename(staging.path(), &dir)?;
        // The directory now lives at `dir`; nothing is left for the guard to remove.
        let _ = staging.keep();

        let archive = Archive {
            id,
            dir,
            manifest: Box::new(manifest),
            shared: false,
        };
        self.write_pointers(wheel, &archive, false)?;
        tracing::debug!("unpacked {} into {}", wheel.filename, archive.dir.display());
        Ok(archive)
    }

    /// Points the wheel at the archive `id` (its pointer replaced in one
    /// rename); with `by_content`, also by its sha256 (hashed while it was
    /// unpacked), which finds it wherever a copy of the cache is.
    pub(crate) fn write_pointers(
        &self,
        wheel: &WheelSource,
        archive: &Archive,
        by_content: bool,
    ) -> Result<(), Error> {
        let name = wheel.filename.to_string();
        let dir = self
            .root
            .join(POINTERS)
            .join(wheel.filename.normalized_name());
        fs_err::create_dir_all(&dir)?;
        let pointer = serde_json::to_vec(&manifest::Pointer {
            archive: archive.id.clone(),
            wheel: Some(wheel.path.clone()),
        })
        .map_err(|source| Error::Serialize {
            path: dir.clone(),
            source,
        })?;
        let content = key::PointerKey::Content(archive.manifest.wheel_sha256.clone());
        let extra = by_content.then_some(content);
        for key in std::iter::once(wheel.pointer_key()).chain(extra) {
            write_atomically(&dir.join(key.file_name(&name)), &pointer)?;
        }
        Ok(())
    }

    /// Records new stamps for files of an archive that were hashed again and
    /// still matched (their stat had changed, their content had not).
    /// Replaces the manifest atomically; a concurrent writer's version is as
    /// good as this one.
    /// A shared layer's archive is not written: its stamps are noted in
    /// this cache instead.
    pub fn restamp(&self, archive: &Archive, updates: &[(usize, Stamp)]) -> Result<(), Error> {
        if updates.is_empty() {
            return Ok(());
        }
        if archive.shared {
            return self.note_layer_stamps(archive, updates);
        }
        let mut manifest = archive.manifest.clone();
        for (index, stamp) in updates {
            if let Some(file) = manifest.files.get_mut(*index) {
                file.stamp = *stamp;
            }
        }
        manifest.write(&archive.dir)
    }
}

/// The wheel's archive in the cache (or shared layer) at `root`.
fn lookup_in(root: &Path, wheel: &WheelSource, shared: bool) -> Lookup {
    let path = Cache::pointer_path_in(root, wheel);
    follow_pointer_in(root, &path, &wheel.filename.to_string(), shared)
}

/// Reads a pointer file under `root` and the manifest of the archive it
/// names, which must be the archive of the wheel file `wheel_name`.
fn follow_pointer_in(root: &Path, pointer_path: &Path, wheel_name: &str, shared: bool) -> Lookup {
    let damaged = |reason: ArchiveProblem| Lookup::Damaged { reason };
    let pointer = match read_pointer(pointer_path) {
        Ok(Some(pointer)) => pointer,
        Ok(None) => return Lookup::Miss,
        Err(reason) => return damaged(reason),
    };
    let dir = root.join(ARCHIVES).join(&pointer.archive);
    match Manifest::read(&dir) {
        Ok(manifest) if manifest.wheel == wheel_name => Lookup::Hit(Archive {
            id: pointer.archive,
            dir,
            manifest: Box::new(manifest),
            shared,
        }),
        Ok(manifest) => damaged(ArchiveProblem::OtherWheel {
            pointer: pointer_path.to_path_buf(),
            wheel: manifest.wheel,
        }),
        Err(reason) => damaged(reason),
    }
}

/// Reads a pointer: `Ok(None)` when there is none, `Err` when it is
/// unreadable, malformed or names no archive directory of this cache.
pub(crate) fn read_pointer(path: &Path) -> Result<Option<manifest::Pointer>, ArchiveProblem> {
    let bytes = match fs_err::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ArchiveProblem::PointerUnreadable {
                pointer: path.to_path_buf(),
                error: e.to_string(),
            });
        }
    };
    let malformed = || ArchiveProblem::PointerMalformed {
        pointer: path.to_path_buf(),
    };
    let pointer = serde_json::from_slice::<manifest::Pointer>(&bytes).map_err(|_| malformed())?;
    let parts: Vec<&str> = pointer.archive.split('/').collect();
    if parts.len() != 2
        || parts
            .iter()
            .any(|c| c.is_empty() || *c == "." || *c == "..")
    {
        return Err(malformed());
    }
    Ok(Some(pointer))
}

/// Writes `bytes` over `path` in one rename (a reader sees the old or the
/// new content).
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    Ok(keel_fs::write_atomic(path, bytes)?)
}
