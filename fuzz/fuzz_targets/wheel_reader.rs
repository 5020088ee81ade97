//! Any bytes, as a `.whl` file: opening (with small limits) and extracting
//! must return `Ok` or an `Err`, never panic, hang or write outside the
//! destination.
//!
//! The file is named `fuzz-1.0-py3-none-any.whl`, unless the input names a
//! `{name}-{version}.dist-info/` directory short enough for a file name:
//! then it is named after that, so that mutations of a real wheel get past
//! the file-name check.

#![no_main]
// `fuzz_target!` itself opens files with `std::fs`; this crate's code uses `fs_err`.
#![allow(clippy::disallowed_methods)]

use keel_wheel::{Limits, WheelArchive};
use libfuzzer_sys::fuzz_target;

/// Small enough that no input can make an iteration slow.
const LIMITS: Limits = Limits {
    max_file_size: 1 << 20,
    max_total_size: 4 << 20,
    max_ratio: 250,
};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    let wheel = dir.path().join(file_name(data));
    fs_err::write(&wheel, data).expect("write the wheel");
    let Ok(archive) = WheelArchive::open_with_limits(&wheel, LIMITS) else {
        return;
    };
    for row in archive.record() {
        let _ = archive.destination(&row.path);
        let _ = archive.is_script(&row.path);
    }
    let _ = archive.sha256();
    let out = dir.path().join("out");
    fs_err::create_dir(&out).expect("mkdir out");
    if let Ok(files) = archive.extract(&out) {
        // Whatever was extracted is inside `out`, and is what RECORD says.
        for file in files {
            let path = out.join(&file.path);
            assert!(path.starts_with(&out), "{} escaped", file.path);
            let metadata = fs_err::symlink_metadata(&path).expect("extracted file");
            assert!(metadata.is_file(), "{} is not a regular file", file.path);
            assert_eq!(metadata.len(), file.size, "{}", file.path);
        }
    }
    // Nothing may appear beside the wheel and `out`.
    let beside: Vec<_> = fs_err::read_dir(dir.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(beside.len(), 2, "{beside:?}");
});

/// `{stem}-py3-none-any.whl` for the first `{stem}.dist-info/` in `data`,
/// if that is a file name Linux can create (at most 255 bytes).
fn file_name(data: &[u8]) -> String {
    const TAGS: &str = "-py3-none-any.whl";
    const NAME_MAX: usize = 255;
    let marker = b".dist-info/";
    let stem = data
        .windows(marker.len())
        .position(|w| w == marker)
        .map(|end| {
            let start = data[..end]
                .iter()
                .rposition(|&b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-'))
                .map_or(0, |i| i + 1);
            String::from_utf8_lossy(&data[start..end]).into_owned()
        })
        .filter(|stem| stem.contains('-') && !stem.starts_with('-'))
        .filter(|stem| stem.len() + TAGS.len() <= NAME_MAX);
    format!("{}{TAGS}", stem.as_deref().unwrap_or("fuzz-1.0"))
}
