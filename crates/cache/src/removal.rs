//! Removing trees from the cache whatever permissions a failed build left
//! on them, never following a symlink: what lets `keel cache clean` remove
//! everything keel owns without ever touching anything outside the cache
//! (a symlink is unlinked, its target left alone).
//!
//! Failed or concurrent builds leave directories such as `d-w-------` or
//! `d--x------` behind, and `std::fs::remove_dir_all` (like `rm -r` and most
//! cache cleaners) gives up on them: listing a directory needs `r` and `x`,
//! unlinking inside it needs `w` and `x`. Their owner may still change their
//! mode, so this walker gives every directory of its own it is about to
//! remove the owner's `rwx` first (another user's directory in a shared,
//! group-writable cache is removed through its group bits, unchanged). No crate does this on Unix (std's own fix is an open
//! pull request, rust-lang/rust#158733), so it is done here, with the same
//! precautions std takes:
//!
//! - every directory is opened relative to its parent's descriptor with
//!   `O_NOFOLLOW | O_DIRECTORY`, so a symlink is unlinked, never entered,
//!   and a directory swapped for a symlink mid-walk is never followed;
//! - a mode is changed through an `O_PATH` descriptor of the directory
//!   itself (via `/proc/self/fd`), never through a path that could have
//!   become a symlink to something outside the cache.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Dir, FileType, Mode, OFlags};

use crate::Error;

/// What a removal removed (or, dry, would remove).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// Everything that is not a directory: files, symlinks, FIFOs….
    pub files: u64,
    /// Their apparent sizes (`st_size`).
    pub bytes: u64,
    /// Directories.
    pub dirs: u64,
    /// Directories a dry run could not look into (their mode forbids it and
    /// a dry run changes nothing); their contents are not counted.
    pub unreadable_dirs: u64,
}

impl std::ops::AddAssign for Removed {
    fn add_assign(&mut self, other: Removed) {
        self.files += other.files;
        self.bytes += other.bytes;
        self.dirs += other.dirs;
        self.unreadable_dirs += other.unreadable_dirs;
    }
}

fn io_error(path: &Path, errno: rustix::io::Errno) -> Error {
    let error = std::io::Error::from(errno);
    Error::Remove {
        path: path.to_path_buf(),
        source: error,
    }
}

fn c_name(name: &OsStr) -> CString {
    // A name read from a directory never holds a NUL byte.
    CString::new(name.as_bytes()).unwrap_or_default()
}

/// Opens `name` in `parent` as a directory to remove entries from: refuses
/// symlinks, and first gives the owner `rwx` where that is missing.
fn open_dir_fixing_mode(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    path: &Path,
) -> Result<OwnedFd, Error> {
    let handle = rustix::fs::openat(
        parent,
        c_name(name).as_c_str(),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_error(path, e))?;
    let stat = rustix::fs::fstat(&handle).map_err(|e| io_error(path, e))?;
    let mode = stat.st_mode & 0o7777;
    // Only the owner's bits can be missing for the owner, and only the
    // owner may change them: a directory another member of a shared cache
    // made is removable through its group bits, untouched (a `chmod` would
    // fail with `EPERM`; the open or unlink below names a real problem).
    let euid = rustix::process::geteuid();
    if mode & 0o700 != 0o700 && !euid.is_root() && stat.st_uid == euid.as_raw() {
        let fixed = Mode::from_raw_mode(mode | 0o700);
        let by_descriptor = format!("/proc/self/fd/{}", handle.as_raw_fd());
        let result = match rustix::fs::chmodat(CWD, by_descriptor.as_str(), fixed, AtFlags::empty())
        {
            // No /proc: through the name (the directory was just checked).
            Err(rustix::io::Errno::NOENT) => {
                rustix::fs::chmodat(parent, c_name(name).as_c_str(), fixed, AtFlags::empty())
            }
            other => other,
        };
        if let Err(e) = result {
            // Refused anyway: the open or unlink below names the real problem.
            tracing::debug!("cannot change the mode of `{}`: {e}", path.display());
        } else {
            tracing::debug!(
                "gave `{}` (mode {mode:o}) its owner's rwx to remove it",
                path.display()
            );
        }
    }
    rustix::fs::openat(
        &handle,
        c".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_error(path, e))
}

/// The names in a directory (without `.` and `..`).
fn entries(dir: &OwnedFd, path: &Path) -> Result<Vec<CString>, Error> {
    let dup = rustix::io::dup(dir).map_err(|e| io_error(path, e))?;
    let mut stream = Dir::new(dup).map_err(|e| io_error(path, e))?;
    let mut names = Vec::new();
    while let Some(entry) = stream.read() {
        let entry = entry.map_err(|e| io_error(path, e))?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// Removes `name` from the directory `parent` (whose path is `path`'s
/// parent): a file or symlink is unlinked, a directory emptied first.
fn remove_entry(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    path: &mut PathBuf,
    removed: &mut Removed,
) -> Result<(), Error> {
    let c = c_name(name);
    let stat = match rustix::fs::statat(parent, c.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        // Gone already (a concurrent cleaner): nothing to do.
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(io_error(path, e)),
    };
    if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
        match rustix::fs::unlinkat(parent, c.as_c_str(), AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(io_error(path, e)),
        }
        removed.files += 1;
        removed.bytes += stat.st_size as u64;
        return Ok(());
    }
    let dir = open_dir_fixing_mode(parent, name, path)?;
    for child in entries(&dir, path)? {
        path.push(OsStr::from_bytes(child.as_bytes()));
        let result = remove_entry(
            dir.as_fd(),
            OsStr::from_bytes(child.as_bytes()),
            path,
            removed,
        );
        path.pop();
        result?;
    }
    drop(dir);
    match rustix::fs::unlinkat(parent, c.as_c_str(), AtFlags::REMOVEDIR) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(io_error(path, e)),
    }
    removed.dirs += 1;
    Ok(())
}

/// Opens `root` (following it if it is a symlink: the user chose it), then
/// each component of `relative` with `O_NOFOLLOW`, fixing modes on the way.
/// `Ok(None)` when something on the way does not exist.
fn open_beneath(root: &Path, relative: &Path) -> Result<Option<OwnedFd>, Error> {
    let mut dir = match rustix::fs::openat(
        CWD,
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(io_error(root, e)),
    };
    let mut path = root.to_path_buf();
    for component in relative.components() {
        let Component::Normal(name) = component else {
            continue;
        };
        path.push(name);
        let stat =
            match rustix::fs::statat(&dir, c_name(name).as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => stat,
                Err(rustix::io::Errno::NOENT) => return Ok(None),
                Err(e) => return Err(io_error(&path, e)),
            };
        if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
            return Err(Error::NotADirectory { path });
        }
        dir = open_dir_fixing_mode(dir.as_fd(), name, &path)?;
    }
    Ok(Some(dir))
}

/// Removes `root/relative` (a file, a symlink or a whole tree), never
/// following a symlink below `root`. Nothing there is not an error.
pub(crate) fn remove_beneath(root: &Path, relative: &Path) -> Result<Removed, Error> {
    let mut removed = Removed::default();
    let (Some(parent), Some(name)) = (relative.parent(), relative.file_name()) else {
        return Ok(removed);
    };
    let Some(parent_fd) = open_beneath(root, parent)? else {
        return Ok(removed);
    };
    let mut path = root.join(relative);
    remove_entry(parent_fd.as_fd(), name, &mut path, &mut removed)?;
    Ok(removed)
}

/// Removes everything inside `root` except the entries named in `keep`;
/// `root` itself stays.
pub(crate) fn remove_contents(root: &Path, keep: &[&str]) -> Result<Removed, Error> {
    let mut removed = Removed::default();
    let Some(dir) = open_beneath(root, Path::new(""))? else {
        return Ok(removed);
    };
    for name in entries(&dir, root)? {
        let name = OsStr::from_bytes(name.as_bytes());
        if keep.iter().any(|k| OsStr::new(k) == name) {
            continue;
        }
        let mut path = root.join(name);
        remove_entry(dir.as_fd(), name, &mut path, &mut removed)?;
    }
    Ok(removed)
}

/// Counts what removing `path` would remove, changing nothing. With
/// `contents_only`, `path` itself is followed if it is a symlink and not
/// counted (what [`remove_contents`] removes).
pub(crate) fn measure(path: &Path, contents_only: bool) -> Removed {
    let mut measured = Removed::default();
    let walk = walkdir::WalkDir::new(path)
        .follow_links(false)
        .follow_root_links(contents_only)
        .min_depth(usize::from(contents_only));
    for entry in walk {
        match entry {
            Ok(entry) if entry.file_type().is_dir() => measured.dirs += 1,
            Ok(entry) => {
                measured.files += 1;
                measured.bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
            Err(e)
                if e.io_error()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound) => {}
            Err(_) => measured.unreadable_dirs += 1,
        }
    }
    measured
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tree(root: &Path) {
        fs_err::create_dir_all(root.join("a/b/c")).expect("mkdir");
        fs_err::write(root.join("a/one.py"), b"1234").expect("write");
        fs_err::write(root.join("a/b/c/two.py"), b"123456").expect("write");
    }

    #[test]
    fn removes_a_tree_and_counts_files_and_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        tree(&dir.path().join("t"));
        let measured = measure(&dir.path().join("t"), false);
        let removed = remove_beneath(dir.path(), Path::new("t")).expect("remove");
        assert_eq!((removed.files, removed.bytes, removed.dirs), (2, 10, 4));
        assert_eq!(measured, removed);
        assert!(!dir.path().join("t").exists());
    }

    #[test]
    fn symlinks_are_unlinked_and_their_targets_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = dir.path().join("outside");
        tree(&outside);
        let cache = dir.path().join("cache");
        fs_err::create_dir_all(cache.join("x")).expect("mkdir");
        fs_err::os::unix::fs::symlink(&outside, cache.join("x/dir-link")).expect("symlink");
        fs_err::os::unix::fs::symlink(outside.join("a/one.py"), cache.join("x/file-link"))
            .expect("symlink");
        let removed = remove_contents(&cache, &[]).expect("remove");
        assert_eq!(removed.files, 2);
        assert!(outside.join("a/b/c/two.py").is_file());
        assert!(outside.join("a/one.py").is_file());
        assert!(!cache.join("x").exists());
    }

    #[test]
    fn a_symlink_on_the_way_is_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = dir.path().join("outside");
        tree(&outside);
        let cache = dir.path().join("cache");
        fs_err::create_dir_all(&cache).expect("mkdir");
        fs_err::os::unix::fs::symlink(&outside, cache.join("archives")).expect("symlink");
        let result = remove_beneath(&cache, Path::new("archives/a"));
        assert!(
            matches!(result, Err(Error::NotADirectory { .. })),
            "{result:?}"
        );
        assert!(outside.join("a/one.py").is_file());
    }

    #[test]
    fn read_only_files_and_directories_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("t");
        tree(&root);
        let mode = |p: &Path, m: u32| {
            fs_err::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod")
        };
        mode(&root.join("a/one.py"), 0o444);
        mode(&root.join("a/b/c"), 0o555);
        let removed = remove_beneath(dir.path(), Path::new("t")).expect("remove");
        assert_eq!(removed.files, 2);
        assert!(!root.exists());
    }
}
