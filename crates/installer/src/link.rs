//! Putting one archive file into staging (clone, hardlink, copy or symlink)
//! and proving it matches RECORD: by a still-valid stamp, or by hashing.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use keel_cache::{ManifestFile, Stamp};
use keel_wheel::{Hasher, RecordHash};

/// How staged files are made from archive files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkMode {
    /// Copy-on-write clone (reflink); falls back to hardlink, then copy.
    #[default]
    Clone,
    /// Hardlink into the cache; falls back to copy.
    Hardlink,
    /// A full copy.
    Copy,
    /// A symbolic link into the cache (the environment then depends on the
    /// cache staying intact).
    Symlink,
}

impl LinkMode {
    /// The mode as `--link-mode` spells it.
    pub fn name(self) -> &'static str {
        match self {
            LinkMode::Clone => "clone",
            LinkMode::Hardlink => "hardlink",
            LinkMode::Copy => "copy",
            LinkMode::Symlink => "symlink",
        }
    }

    /// Decides, once per install, which mode this file system supports:
    /// tries the requested mode on a real archive file and falls back
    /// clone → hardlink → copy.
    pub(crate) fn probe(self, archive_file: &Path, scratch_dir: &Path) -> LinkMode {
        let target = scratch_dir.join("link-probe");
        let works = |mode: LinkMode| {
            let _ = fs_err::remove_file(&target);
            let result = match mode {
                LinkMode::Clone => reflink_copy::reflink(archive_file, &target),
                LinkMode::Hardlink => fs_err::hard_link(archive_file, &target),
                LinkMode::Copy | LinkMode::Symlink => Ok(()),
            };
            if let Err(e) = &result {
                tracing::debug!("link mode {} is not available here: {e}", mode.name());
            }
            result.is_ok()
        };
        let chosen = match self {
            LinkMode::Clone if works(LinkMode::Clone) => LinkMode::Clone,
            LinkMode::Clone | LinkMode::Hardlink if works(LinkMode::Hardlink) => LinkMode::Hardlink,
            LinkMode::Clone | LinkMode::Hardlink => LinkMode::Copy,
            other => other,
        };
        let _ = fs_err::remove_file(&target);
        if chosen != self {
            tracing::info!(
                "link mode {} is not supported here; using {}",
                self.name(),
                chosen.name()
            );
        }
        chosen
    }
}

pub(crate) use keel_cache::{Damage, Proof};

/// The outcome of staging one file: `Err` is a real I/O error on the
/// staging side; `Ok(Err(damage))` blames the archive.
pub(crate) type Placed = Result<Result<Proof, Damage>, std::io::Error>;

/// Stages `source` (an archive file) at `target` with `mode`, and proves the
/// staged content matches `expected` (hash and size from RECORD). With
/// `hash_everything`, every byte is hashed whatever the stamp says.
pub(crate) fn place(
    mode: LinkMode,
    source: &Path,
    target: &Path,
    expected: &ManifestFile,
    hash_everything: bool,
) -> Placed {
    match mode {
        // `std` rather than `fs_err`: the raw OS error decides the fallback.
        #[allow(clippy::disallowed_methods)]
        LinkMode::Hardlink => match std::fs::hard_link(source, target) {
            Ok(()) => {
                // The staged file *is* the archive file.
                let metadata = fs_err::symlink_metadata(target)?;
                Ok(keel_cache::check_metadata(
                    target,
                    &metadata,
                    expected,
                    hash_everything,
                ))
            }
            Err(e) => match blame_source(source, e)? {
                // Too many links, or a file system boundary: copy this one.
                None => place(LinkMode::Copy, source, target, expected, hash_everything),
                Some(damage) => Ok(Err(damage)),
            },
        },
        LinkMode::Clone | LinkMode::Copy | LinkMode::Symlink => {
            let metadata = match fs_err::symlink_metadata(source) {
                Ok(metadata) => metadata,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(Err(Damage::Missing));
                }
                Err(e) => return Ok(Err(Damage::unreadable(&e))),
            };
            let trusted = !hash_everything && Stamp::of(&metadata) == expected.stamp;
            if !metadata.is_file() {
                return Ok(Err(Damage::NotARegularFile));
            }
            if metadata.len() != expected.size {
                return Ok(Err(Damage::Size {
                    expected: expected.size,
                    actual: metadata.len(),
                }));
            }
            match mode {
                LinkMode::Copy if !trusted => {
                    return copy_hashing(source, target, &metadata, expected);
                }
                LinkMode::Copy => {
                    fs_err::copy(source, target)?;
                }
                LinkMode::Clone => {
                    if let Err(e) = reflink_copy::reflink(source, target) {
                        tracing::debug!("clone of {} failed ({e}); copying", source.display());
                        return place(LinkMode::Copy, source, target, expected, hash_everything);
                    }
                }
                _ => fs_err::os::unix::fs::symlink(source, target)?,
            }
            if trusted {
                return Ok(Ok(Proof::Stamp));
            }
            // Not trusted: hash the staged content (for a symlink, its target).
            Ok(match staged_hash_matches(target, expected) {
                Ok(true) => Ok(Proof::Hash(Some(Stamp::of(&metadata)))),
                Ok(false) => Err(Damage::Content),
                Err(e) => Err(Damage::unreadable(&e)),
            })
        }
    }
}

/// Directories opened once for a run of hardlinks between them: every
/// `linkat`/`statat` then resolves one name instead of two deep paths (path
/// walking was a sixth of a warm install's time).
pub(crate) struct LinkDirs {
    source: std::os::fd::OwnedFd,
    target: std::os::fd::OwnedFd,
}

impl LinkDirs {
    /// `None` when either cannot be opened: the caller goes file by file
    /// by path, which tells a damaged archive from a real error.
    pub(crate) fn open(source: &Path, target: &Path) -> Option<Self> {
        let open = |dir: &Path| {
            rustix::fs::openat(
                rustix::fs::CWD,
                dir,
                rustix::fs::OFlags::PATH
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .ok()
        };
        Some(LinkDirs {
            source: open(source)?,
            target: open(target)?,
        })
    }

    /// Hardlinks `name` from the source directory into the target one and
    /// proves it (the staged file *is* the archive file: one `statat`, a
    /// hash only when the stamp no longer holds). `None` when the link
    /// itself failed: the caller retries by path, which falls back to a
    /// copy or names the damage.
    pub(crate) fn link(
        &self,
        name: &std::ffi::OsStr,
        expected: &ManifestFile,
        hash_everything: bool,
    ) -> Option<Result<Proof, Damage>> {
        use rustix::fs::{AtFlags, Mode, OFlags};
        rustix::fs::linkat(&self.source, name, &self.target, name, AtFlags::empty()).ok()?;
        let stat = match rustix::fs::statat(&self.target, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(e) => return Some(Err(Damage::unreadable(&e.into()))),
        };
        let open = || {
            rustix::fs::openat(
                &self.target,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map(std::fs::File::from)
            .map_err(std::io::Error::from)
        };
        Some(keel_cache::check_stat(
            &keel_cache::FileStat::of_stat(&stat),
            expected,
            hash_everything,
            open,
        ))
    }
}

/// Decides whether a failed link is the archive's fault. `Ok(None)`: the
/// source is fine and the link itself was refused (fall back to a copy).
fn blame_source(
    source: &Path,
    link_error: std::io::Error,
) -> Result<Option<Damage>, std::io::Error> {
    match fs_err::symlink_metadata(source) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some(Damage::Missing)),
        Err(e) => Ok(Some(Damage::unreadable(&e))),
        Ok(metadata) if !metadata.is_file() => Ok(Some(Damage::NotARegularFile)),
        // Too many links, another file system, links not allowed here.
        Ok(_) if keel_fs::is_link_refused(&link_error) => Ok(None),
        Ok(_) => Err(link_error),
    }
}

/// Copies while hashing, in one pass, refusing to follow a symlink.
fn copy_hashing(
    source: &Path,
    target: &Path,
    metadata: &std::fs::Metadata,
    expected: &ManifestFile,
) -> Placed {
    let mut input = match keel_cache::open_no_follow(source) {
        Ok(file) => file,
        Err(e) => return Ok(Err(Damage::unreadable(&e))),
    };
    let mut output = fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)?;
    let expected_hash = &expected.hash;
    let mut hasher = Hasher::new(expected_hash.algorithm);
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return Ok(Err(Damage::unreadable(&e))),
        };
        hasher.update(&buffer[..n]);
        output.write_all(&buffer[..n])?;
    }
    output.set_permissions(std::fs::Permissions::from_mode(
        metadata.permissions().mode() & 0o7777,
    ))?;
    if hasher.finish() != *expected_hash {
        return Ok(Err(Damage::Content));
    }
    Ok(Ok(Proof::Hash(Some(Stamp::of(metadata)))))
}

/// Hashes a staged file with RECORD's algorithm and compares (following a
/// final symlink: in symlink mode staging made it, into the cache).
fn staged_hash_matches(path: &Path, expected: &ManifestFile) -> std::io::Result<bool> {
    let file = fs_err::File::open(path)?;
    Ok(RecordHash::of_reader(expected.hash.algorithm, file)?.0 == expected.hash)
}
