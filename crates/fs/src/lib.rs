//! keel's file-system mechanics, written once: what every other crate of
//! keel does with files beyond a plain `fs_err` call.
//!
//! - [`open_no_follow`]: open a regular file for reading without following
//!   a symlink and without blocking on a FIFO or device (named `rustix`
//!   flags, never raw numbers: `O_NOFOLLOW` is `0o400000` on x86 and
//!   `0o100000` on arm).
//! - [`write_atomic`] and [`write_durable`]: replace a file in one
//!   `rename`, the second also `fsync`ing the file and its directory.
//! - [`sync_dir`]: make the entries of a directory durable.
//! - [`tempdir_in`] and [`tempfile_in`]: a temporary directory or file
//!   whose creation error names the directory it was made in.
//!
//! Every file and directory these make follows the process umask (mode
//! `0666` for files, `0777` for directories, masked by it), as `open` and
//! `mkdir` do, never `tempfile`'s private `0600`: a cache several users
//! share (group-writable, umask `002`) stays readable and writable by every
//! member. In a setgid directory the kernel gives new entries the
//! directory's group (and a new directory the setgid bit); a directory made
//! in `<cache>/tmp` and renamed into place keeps it.
//! - [`with_path`]: an `io::Error` that names the path it is about.
//! - [`is_link_refused`]: whether a failed `link` means "copy instead".
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("pointer.json");
//! keel_fs::write_atomic(&path, b"{}")?;
//! let mut text = String::new();
//! std::io::Read::read_to_string(&mut keel_fs::open_no_follow(&path)?, &mut text)?;
//! assert_eq!(text, "{}");
//!
//! // A symlink is refused, not followed.
//! let link = dir.path().join("link");
//! fs_err::os::unix::fs::symlink(&path, &link)?;
//! assert!(keel_fs::open_no_follow(&link).is_err());
//! # Ok::<(), std::io::Error>(())
//! ```
#![deny(missing_docs)]

use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use rustix::fs::{Mode, OFlags};

/// Prefix of the temporary files behind atomic writes; a killed process
/// may leave one behind (`keel cache prune` removes them).
pub const PARTIAL_PREFIX: &str = ".partial-";

/// The mode a new file is created with, before the umask masks it (what
/// `open(O_CREAT)` callers such as `touch` and Python's `open` ask for).
pub const FILE_MODE: u32 = 0o666;

/// The mode a new directory (or executable file) is created with, before
/// the umask masks it (what `mkdir` asks for).
pub const DIR_MODE: u32 = 0o777;

/// Opens a regular file for reading without following a final symlink and
/// without blocking on a FIFO or device. A symlink fails with `ELOOP`;
/// anything but a regular file with `InvalidInput`. Errors name the path.
pub fn open_no_follow(path: &Path) -> std::io::Result<fs_err::File> {
    let fd: OwnedFd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| with_path(e.into(), path))?;
    let file = fs_err::File::from_parts(std::fs::File::from(fd), path);
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{}` is not a regular file", path.display()),
        ));
    }
    Ok(file)
}

/// Replaces `path` with `bytes` in one `rename` from a temporary file in
/// the same directory: a reader sees the old content or the new, never
/// part of either. Not durable across a power cut (see [`write_durable`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_replacing(path, bytes, false)
}

/// [`write_atomic`], durably: the temporary file is `fsync`ed before the
/// rename and the directory after it, so after a power cut `path` holds
/// the new content or the old.
pub fn write_durable(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_replacing(path, bytes, true)
}

fn write_replacing(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    let dir = parent_of(path);
    let mut file = tempfile_in(dir, PARTIAL_PREFIX)?;
    file.write_all(bytes)
        .map_err(|e| with_path(e, file.path()))?;
    if durable {
        file.as_file()
            .sync_all()
            .map_err(|e| with_path(e, file.path()))?;
    }
    file.persist(path).map_err(|e| with_path(e.error, path))?;
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// `fsync`s a directory, so that the entries renamed or created in it are
/// durable (what PostgreSQL's `durable_rename` does for the destination).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs_err::File::open(dir)?.sync_all()
}

/// A temporary directory named `PREFIX…` inside `dir`, mode [`DIR_MODE`]
/// masked by the umask; an error names `dir`.
pub fn tempdir_in(dir: &Path, prefix: &str) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(std::fs::Permissions::from_mode(DIR_MODE))
        .tempdir_in(dir)
        .map_err(|e| with_path(e, dir))
}

/// A temporary file named `PREFIX…` inside `dir`, mode [`FILE_MODE`]
/// masked by the umask (`tempfile` alone makes it `0600`, whatever the
/// umask), to be persisted in place; an error names `dir`.
pub fn tempfile_in(dir: &Path, prefix: &str) -> std::io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(std::fs::Permissions::from_mode(FILE_MODE))
        .tempfile_in(dir)
        .map_err(|e| with_path(e, dir))
}

/// The same error, its message naming `path` (for errors of crates that do
/// not, such as `tempfile` and `rustix`).
pub fn with_path(error: std::io::Error, path: &Path) -> std::io::Error {
    std::io::Error::new(error.kind(), format!("{error} at `{}`", path.display()))
}

/// Whether a failed hard link is the file system refusing the link itself
/// (too many links, another file system, links not permitted here), so
/// that a copy is the right fallback, rather than a problem with either
/// path.
pub fn is_link_refused(error: &std::io::Error) -> bool {
    use rustix::io::Errno;
    matches!(
        Errno::from_io_error(error),
        Some(Errno::MLINK | Errno::XDEV | Errno::PERM)
    )
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_to_a_regular_file_is_refused_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("real.py");
        fs_err::write(&target, b"x = 1\n").expect("write");
        let link = dir.path().join("link.py");
        fs_err::os::unix::fs::symlink(&target, &link).expect("symlink");
        let error = open_no_follow(&link).expect_err("a symlink must not be opened");
        // ELOOP: `O_NOFOLLOW` refused the final symlink.
        let eloop = std::io::Error::from(rustix::io::Errno::LOOP).to_string();
        let eloop = eloop.split(" (os error").next().unwrap_or_default();
        assert!(error.to_string().contains(eloop), "{error}");
        assert!(error.to_string().contains("link.py"), "{error}");
        assert!(open_no_follow(&target).is_ok());
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        let error = open_no_follow(&fifo).expect_err("a FIFO is not a regular file");
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    }

    #[test]
    fn writes_replace_the_whole_file_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("manifest.json");
        write_atomic(&path, b"old").expect("first write");
        write_durable(&path, b"new content").expect("second write");
        assert_eq!(fs_err::read(&path).expect("read"), b"new content");
        let names: Vec<_> = fs_err::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("manifest.json")]);
    }

    /// The process umask, from `/proc/self/status` (reading it with
    /// `umask(2)` would change it for every thread meanwhile).
    fn umask() -> u32 {
        let status = fs_err::read_to_string("/proc/self/status").expect("status");
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .expect("a Umask line");
        u32::from_str_radix(line.trim(), 8).expect("octal umask")
    }

    #[test]
    fn files_and_directories_follow_the_umask() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| fs_err::metadata(p).expect("stat").permissions().mode() & 0o7777;
        let dir = tempfile::tempdir().expect("tempdir");
        let umask = umask();
        let path = dir.path().join("pointer.json");
        write_atomic(&path, b"{}").expect("write");
        assert_eq!(mode(&path), FILE_MODE & !umask);
        write_durable(&path, b"{}").expect("write");
        assert_eq!(mode(&path), FILE_MODE & !umask);
        let made = tempdir_in(dir.path(), "unpack-").expect("tempdir_in");
        assert_eq!(mode(made.path()), DIR_MODE & !umask);
        let file = tempfile_in(dir.path(), PARTIAL_PREFIX).expect("tempfile_in");
        assert_eq!(mode(file.path()), FILE_MODE & !umask);
    }

    #[test]
    fn errors_name_the_path() {
        let missing = Path::new("/nonexistent-keel-dir/sub");
        let error = tempdir_in(missing, "tx-").expect_err("no such directory");
        assert!(
            error.to_string().contains("/nonexistent-keel-dir/sub"),
            "{error}"
        );
        let error = write_atomic(&missing.join("f"), b"").expect_err("no such directory");
        assert!(
            error.to_string().contains("/nonexistent-keel-dir/sub"),
            "{error}"
        );
    }

    #[test]
    fn link_refusals_are_told_from_other_errors() {
        use rustix::io::Errno;
        for refused in [Errno::MLINK, Errno::XDEV, Errno::PERM] {
            assert!(is_link_refused(&refused.into()));
        }
        for other in [Errno::NOENT, Errno::ACCESS, Errno::NOSPC] {
            assert!(!is_link_refused(&other.into()));
        }
    }
}
