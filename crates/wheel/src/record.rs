//! RECORD: the list of every file of a wheel or installed project, with its
//! hash and size.
//!
//! *Recording installed projects § The RECORD file*: a CSV file (the
//! `csv` module's default dialect), one row per file, three fields: the
//! path, `algorithm=digest`, and the size in bytes. RECORD itself (and, for
//! wheels, `RECORD.jws` / `RECORD.p7s`) has empty hash and size.

use crate::{RecordHash, Rule};

/// The UTF-8 encoding of U+FEFF, the byte order mark.
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// One row of RECORD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordEntry {
    /// `/`-separated path, relative to the directory that holds `.dist-info`.
    pub path: String,
    /// The file's hash; `None` when the field is empty (RECORD itself and
    /// its signatures).
    pub hash: Option<RecordHash>,
    /// The file's size in bytes; `None` when the field is empty.
    pub size: Option<u64>,
}

/// Parses RECORD. Rows must have exactly three fields; a hash, when present,
/// must use an accepted algorithm; a size, when present, must be a number.
///
/// Blank lines are skipped (some tools end the file with one).
///
/// The bytes are read as they are, as Python's `csv` module reads the text:
/// a UTF-8 byte order mark at the start is part of the first path, not an
/// encoding mark to drop. (The `csv` crate drops one; a first RECORD row
/// that [`write_record`] wrote for a file named `\u{feff}x` would read back
/// as `x`, and an uninstall would go for `x` and leave `\u{feff}x` behind.)
pub fn parse_record(bytes: &[u8]) -> Result<Vec<RecordEntry>, Rule> {
    // `csv` drops a BOM only at the very start of its input, and only once:
    // put one in front for it to drop, so that the RECORD's own is kept.
    let with_bom;
    let input = if bytes.starts_with(UTF8_BOM) {
        with_bom = [UTF8_BOM, bytes].concat();
        with_bom.as_slice()
    } else {
        bytes
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
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
    let mut writer = RecordWriter::new(Vec::new());
    for entry in entries {
        // Writing to a Vec cannot fail.
        let _ = writer.row(&entry.path, entry.hash.as_ref(), entry.size);
    }
    writer.finish().unwrap_or_default()
}

/// Writes RECORD rows one at a time, as [`write_record`] spells them, so
/// that a RECORD of 100,000 rows is never held whole in memory.
pub struct RecordWriter<W: std::io::Write> {
    csv: csv::Writer<W>,
    /// The row being written's hash and size, as text.
    hash: String,
    size: String,
}

impl<W: std::io::Write> RecordWriter<W> {
    /// A writer of rows into `out` (buffered here).
    pub fn new(out: W) -> Self {
        let csv = csv::WriterBuilder::new()
            .has_headers(false)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(out);
        RecordWriter {
            csv,
            hash: String::new(),
            size: String::new(),
        }
    }

    /// Writes one row: the path, `algorithm=digest` (or empty), the size
    /// in bytes (or empty).
    pub fn row(
        &mut self,
        path: &str,
        hash: Option<&RecordHash>,
        size: Option<u64>,
    ) -> std::io::Result<()> {
        use std::fmt::Write as _;
        // Spelled into buffers kept from row to row (no allocation a row).
        self.hash.clear();
        self.size.clear();
        if let Some(hash) = hash {
            let _ = write!(self.hash, "{hash}");
        }
        if let Some(size) = size {
            let _ = write!(self.size, "{size}");
        }
        self.csv
            .write_record([path, &self.hash, &self.size])
            .map_err(std::io::Error::other)
    }

    /// Flushes every row and returns the underlying writer.
    pub fn finish(self) -> std::io::Result<W> {
        self.csv.into_inner().map_err(|e| e.into_error())
    }
}

/// How a file disagrees with its RECORD row, in one spelling for every
/// report keel writes (`keel verify --json`, `keel cache verify --json`):
/// `missing`, `size`, `hash`, `not-a-regular-file`, `symlinked-directory`,
/// `unreadable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileProblem {
    /// The file is not there.
    Missing,
    /// Its size is not RECORD's.
    Size,
    /// Its hash is not RECORD's.
    Hash,
    /// A symlink, directory, FIFO or device where a file should be.
    NotARegularFile,
    /// A directory on the way to it is a symlink: it is not followed.
    SymlinkedDirectory,
    /// It cannot be read.
    Unreadable,
}

impl FileProblem {
    /// The report spelling (`not-a-regular-file`).
    pub fn as_str(self) -> &'static str {
        match self {
            FileProblem::Missing => "missing",
            FileProblem::Size => "size",
            FileProblem::Hash => "hash",
            FileProblem::NotARegularFile => "not-a-regular-file",
            FileProblem::SymlinkedDirectory => "symlinked-directory",
            FileProblem::Unreadable => "unreadable",
        }
    }
}

impl std::fmt::Display for FileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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

    /// Found by `fuzz/text_parsers` (minimized input: the three bytes of a
    /// UTF-8 BOM, as a path): RECORD written for a first path starting with
    /// U+FEFF did not parse back, since the `csv` crate dropped a leading
    /// BOM. Python's `csv` module keeps it.
    #[test]
    fn a_leading_byte_order_mark_belongs_to_the_first_path() {
        let only_bom = vec![RecordEntry {
            path: "\u{feff}".into(),
            hash: None,
            size: Some(3),
        }];
        assert_eq!(parse_record(&write_record(&only_bom)).unwrap(), only_bom);
        let entries = vec![
            RecordEntry {
                path: "\u{feff}six.py".into(),
                hash: Some(RecordHash::of(HashAlgorithm::Sha256, b"")),
                size: Some(0),
            },
            RecordEntry {
                path: "\u{feff}b".into(),
                hash: None,
                size: None,
            },
        ];
        let bytes = write_record(&entries);
        assert!(bytes.starts_with(UTF8_BOM));
        assert_eq!(parse_record(&bytes).unwrap(), entries);
        // Two BOMs: `csv` dropped one, the path kept the other.
        assert_eq!(
            parse_record(b"\xef\xbb\xbf\xef\xbb\xbfa,,\n").unwrap()[0].path,
            "\u{feff}\u{feff}a"
        );
        // A quoted first field after a BOM is not quoted (as in Python).
        assert_eq!(
            parse_record(b"\xef\xbb\xbf\"a\",,\n").unwrap()[0].path,
            "\u{feff}\"a\""
        );
        // A RECORD of only a BOM is a malformed row, not an empty RECORD.
        assert!(matches!(
            parse_record(UTF8_BOM),
            Err(Rule::MalformedRecordRow { line: 1, .. })
        ));
    }
}
