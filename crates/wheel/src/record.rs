//! RECORD: the list of every file of a wheel or installed project, with its
//! hash and size.
//!
//! *Recording installed projects § The RECORD file*: a CSV file (the
//! `csv` module's default dialect), one row per file, three fields: the
//! path, `algorithm=digest`, and the size in bytes. RECORD itself (and, for
//! wheels, `RECORD.jws` / `RECORD.p7s`) has empty hash and size.

use crate::{RecordHash, Rule};

/// One row of RECORD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordEntry {
    /// `/`-separated path, relative to the directory that holds `.dist-info`.
    pub path: String,
    pub hash: Option<RecordHash>,
    pub size: Option<u64>,
}

/// Parses RECORD. Rows must have exactly three fields; a hash, when present,
/// must use an accepted algorithm; a size, when present, must be a number.
///
/// Blank lines are skipped (some tools end the file with one).
pub fn parse_record(bytes: &[u8]) -> Result<Vec<RecordEntry>, Rule> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut entries = Vec::new();
    for (index, row) in reader.byte_records().enumerate() {
        let line = index as u64 + 1;
        let malformed = |reason: String| Rule::MalformedRecordRow { line, reason };
        let row = row.map_err(|e| malformed(e.to_string()))?;
        if row.len() == 1 && row[0].is_empty() {
            continue;
        }
        if row.len() != 3 {
            return Err(malformed(format!("expected 3 fields, found {}", row.len())));
        }
        let path = std::str::from_utf8(&row[0])
            .map_err(|_| malformed("the path is not UTF-8".to_string()))?
            .to_string();
        if path.is_empty() {
            return Err(malformed("the path is empty".to_string()));
        }
        let text = |field: &[u8]| String::from_utf8_lossy(field).into_owned();
        let hash = if row[1].is_empty() {
            None
        } else {
            Some(
                text(&row[1])
                    .parse::<RecordHash>()
                    .map_err(|rule| match rule {
                        Rule::MalformedRecordRow { reason, .. } => malformed(reason),
                        other => other,
                    })?,
            )
        };
        let size = if row[2].is_empty() {
            None
        } else {
            Some(
                text(&row[2])
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| malformed(format!("size `{}` is not a number", text(&row[2]))))?,
            )
        };
        entries.push(RecordEntry { path, hash, size });
    }
    Ok(entries)
}

/// Writes RECORD rows in the csv module's default dialect (quoting only
/// where needed), `\n`-terminated.
pub fn write_record<'a>(entries: impl IntoIterator<Item = &'a RecordEntry>) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    for entry in entries {
        let hash = entry
            .hash
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let size = entry.size.map(|s| s.to_string()).unwrap_or_default();
        // Writing to a Vec cannot fail.
        let _ = writer.write_record([entry.path.as_str(), &hash, &size]);
    }
    writer.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HashAlgorithm;

    #[test]
    fn parses_rows_with_and_without_hashes() {
        let text = "pkg/__init__.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n\
                    \"pkg/a,b.py\",sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n\
                    pkg-1.0.dist-info/RECORD,,\n\n";
        let rows = parse_record(text.as_bytes()).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].path, "pkg/__init__.py");
        assert_eq!(rows[0].size, Some(0));
        assert_eq!(rows[1].path, "pkg/a,b.py");
        assert_eq!(rows[2].hash, None);
        assert_eq!(rows[2].size, None);
    }

    #[test]
    fn refuses_malformed_rows() {
        assert!(matches!(
            parse_record(b"a.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU\n"),
            Err(Rule::MalformedRecordRow { line: 1, .. })
        ));
        assert!(matches!(
            parse_record(b"ok,,\na.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,ten\n"),
            Err(Rule::MalformedRecordRow { line: 2, .. })
        ));
        assert!(matches!(
            parse_record(b"a.py,md5=1B2M2Y8AsgTpgAmY7PhCfg,3\n"),
            Err(Rule::UnsupportedHash(_))
        ));
        assert!(parse_record(b",,\n").is_err());
    }

    #[test]
    fn written_record_parses_back() {
        let entries = vec![
            RecordEntry {
                path: "pkg/x,y.py".into(),
                hash: Some(RecordHash::of(HashAlgorithm::Sha256, b"hello")),
                size: Some(5),
            },
            RecordEntry {
                path: "pkg-1.dist-info/RECORD".into(),
                hash: None,
                size: None,
            },
        ];
        let bytes = write_record(&entries);
        assert!(String::from_utf8_lossy(&bytes).ends_with("pkg-1.dist-info/RECORD,,\n"));
        assert_eq!(parse_record(&bytes).unwrap(), entries);
    }
}
