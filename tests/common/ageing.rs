//! Files made old, and what age-based cleaners (`tmpwatch --mtime`,
//! `systemd-tmpfiles`) do to a tree: delete every regular file last
//! modified before a cutoff, keep every directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Sets the modification and access times of a file to `when`, as if
/// nothing had touched it since.
pub fn backdate(path: &Path, when: SystemTime) {
    fs_err::File::open(path)
        .expect("open to set times")
        .set_times(
            std::fs::FileTimes::new()
                .set_modified(when)
                .set_accessed(when),
        )
        .expect("set times");
}

/// [`backdate`]s every regular file under `root`; returns how many.
pub fn backdate_files_under(root: &Path, when: SystemTime) -> usize {
    let mut count = 0;
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.expect("walk");
        if entry.file_type().is_file() {
            backdate(entry.path(), when);
            count += 1;
        }
    }
    count
}

/// Deletes every regular file under `root` last modified before `cutoff`
/// and keeps every directory, in a tree nothing else changes meanwhile (an
/// error fails the test). Returns the deleted files, in walk order.
pub fn sweep_files_older_than(root: &Path, cutoff: SystemTime) -> Vec<PathBuf> {
    sweep(root, cutoff, false)
}

/// [`sweep_files_older_than`] in a tree keel renames, writes and removes in
/// meanwhile: what vanishes or cannot be removed under the sweep is passed
/// over, and the walk pauses a millisecond every 20 files deleted, as a real
/// cleaner's walk of a large tree takes a while.
pub fn sweep_files_older_than_in_use(root: &Path, cutoff: SystemTime) -> Vec<PathBuf> {
    sweep(root, cutoff, true)
}

fn sweep(root: &Path, cutoff: SystemTime, in_use: bool) -> Vec<PathBuf> {
    let mut deleted = Vec::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(_) if in_use => continue,
            Err(e) => panic!("walk {}: {e}", root.display()),
        };
        let metadata = match fs_err::symlink_metadata(entry.path()) {
            Ok(metadata) => metadata,
            Err(_) if in_use => continue,
            Err(e) => panic!("lstat: {e}"),
        };
        if !metadata.file_type().is_file() || metadata.modified().expect("mtime") >= cutoff {
            continue;
        }
        match fs_err::remove_file(entry.path()) {
            Ok(()) => {}
            Err(_) if in_use => continue,
            Err(e) => panic!("tmpwatch remove: {e}"),
        }
        deleted.push(entry.path().to_path_buf());
        if in_use && deleted.len() % 20 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    deleted
}
