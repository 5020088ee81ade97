//! Any text as RECORD, WHEEL, METADATA, entry_points.txt, a wheel file name,
//! a RECORD hash or an entry path: the parsers return `Ok` or `Err`, never
//! panic; RECORD rows keel writes (the rows it parsed, or each line of the
//! input as a path) parse back to the same rows.

#![no_main]
// `fuzz_target!` itself opens files with `std::fs`; this crate's code uses `fs_err`.
#![allow(clippy::disallowed_methods)]

use keel_wheel::{
    CoreMetadata, EntryPoints, RecordEntry, RecordHash, WheelFilename, WheelInfo, classify_entry,
    parse_record, validate_relative_path, write_record,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rows) = parse_record(data) {
        let written = write_record(&rows);
        assert_eq!(
            parse_record(&written).as_ref(),
            Ok(&rows),
            "RECORD written from parsed rows does not parse back: {:?}",
            String::from_utf8_lossy(&written)
        );
    }
    let text = String::from_utf8_lossy(data);
    // Any path keel may write to RECORD (a wheel's entry, a generated
    // script, a `../` path outside site-packages) reads back as written.
    let rows: Vec<RecordEntry> = text
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| RecordEntry {
            path: line.to_string(),
            hash: None,
            size: Some(line.len() as u64),
        })
        .collect();
    let written = write_record(&rows);
    assert_eq!(
        parse_record(&written).as_ref(),
        Ok(&rows),
        "RECORD written from these paths does not parse back: {:?}",
        String::from_utf8_lossy(&written)
    );
    let _ = WheelInfo::parse(&text);
    let _ = CoreMetadata::parse(&text);
    let _ = EntryPoints::parse(&text);
    if let Ok(hash) = text.parse::<RecordHash>() {
        assert_eq!(hash.to_string().parse::<RecordHash>().as_ref(), Ok(&hash));
    }
    if let Ok(name) = text.parse::<WheelFilename>() {
        let _ = name.normalized_name();
        let _ = name.expected_dist_info();
        let _ = name.to_string().parse::<WheelFilename>();
    }
    for line in text.lines() {
        let _ = validate_relative_path(line);
        let _ = classify_entry(line, "fuzz-1.0.data");
    }
});
