//! Opening a wheel, checking its `.dist-info`, and extracting it into a
//! directory while hashing every byte against RECORD.
//!
//! *Binary distribution format § Installing a wheel*: the installer must
//! check that installed files match RECORD. keel does it while each file is
//! written, in the same pass that inflates it, on every core: a file whose
//! content disagrees with RECORD is an error naming the wheel and the entry.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};

use fs_err::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use zip::ZipArchive;

use crate::layout::{
    DataKey, DestinationCheck, EntryDestination, classify_entry, script_name_problem,
    validate_relative_path,
};
use crate::zip_structure::{Limits, central_names, disagreement, local_header};
use crate::{
    CoreMetadata, EntryPoints, Error, HashAlgorithm, Hasher, RecordEntry, RecordHash, Rule,
    WheelFilename, WheelInfo, parse_record,
};

/// A `Read + Seek` view of a shared file, reading with `pread` so that every
/// thread can hold its own cursor over one open file descriptor.
#[derive(Clone)]
struct SharedFile {
    file: Arc<std::fs::File>,
    position: u64,
    len: u64,
}

impl Read for SharedFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.position)?;
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for SharedFile {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(delta) => self.len.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        self.position = target.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            )
        })?;
        Ok(self.position)
    }
}

/// One file written by [`WheelArchive::extract`].
#[derive(Debug, Clone)]
pub struct ExtractedFile {
    /// The entry path inside the wheel.
    pub path: String,
    /// The verified hash (RECORD's algorithm; sha256 for RECORD itself).
    pub hash: RecordHash,
    pub size: u64,
    /// `fstat` of the written file after its last write.
    pub metadata: std::fs::Metadata,
}

/// An opened, checked wheel: its `.dist-info` has been found and parsed, and
/// every archive entry has been matched against RECORD.
pub struct WheelArchive {
    path: PathBuf,
    filename: WheelFilename,
    zip: ZipArchive<SharedFile>,
    dist_info: String,
    info: WheelInfo,
    metadata: CoreMetadata,
    entry_points: EntryPoints,
    record: Vec<RecordEntry>,
    /// `(zip index, entry path)` of every regular file, in archive order.
    files: Vec<(usize, String)>,
    /// The wheel file, for reading raw zip headers.
    raw: Arc<std::fs::File>,
    limits: Limits,
}

impl WheelArchive {
    /// Opens a wheel and checks its structure (*Binary distribution format §
    /// File contents*): the file name, exactly one `.dist-info` matching it,
    /// `WHEEL`, `METADATA` and `RECORD` present and well-formed, every entry a
    /// safe path listed in RECORD with an accepted hash, and every RECORD row
    /// present in the archive.
    pub fn open(path: &Path) -> Result<Self, Error> {
        Self::open_with_limits(path, Limits::default())
    }

    /// [`WheelArchive::open`] with explicit size limits (zip bomb defence).
    pub fn open_with_limits(path: &Path, limits: Limits) -> Result<Self, Error> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let filename: WheelFilename = name.parse()?;
        let (file, _) = fs_err::File::open(path)?.into_parts();
        let len = file
            .metadata()
            .map_err(|e| Error::Io(annotate(e, path)))?
            .len();
        let raw = Arc::new(file);
        let reader = SharedFile {
            file: Arc::clone(&raw),
            position: 0,
            len,
        };
        let zip = ZipArchive::new(reader).map_err(|source| Error::Zip {
            wheel: path.to_path_buf(),
            source,
        })?;
        let invalid = |entry: &str, rule: Rule| Error::invalid(path, entry, rule);
        if zip.has_duplicate_names() {
            // The reader kept one entry per name; find the name it hid.
            let names = central_names(&raw, zip.central_directory_start())
                .map_err(|e| Error::Io(annotate(e, path)))?;
            let mut seen = HashSet::new();
            let duplicate = names
                .into_iter()
                .find(|name| !seen.insert(name.clone()))
                .map(|name| String::from_utf8_lossy(&name).into_owned())
                .unwrap_or_default();
            return Err(invalid(&duplicate, Rule::Duplicate));
        }

        // Regular files and the one `.dist-info` directory.
        let mut files = Vec::with_capacity(zip.len());
        let mut seen = HashSet::with_capacity(zip.len());
        let mut dist_infos = BTreeSet::new();
        for index in 0..zip.len() {
            let entry = match zip.name_for_index(index) {
                Some(Ok(name)) => name.to_string(),
                Some(Err(source)) => {
                    return Err(Error::Zip {
                        wheel: path.to_path_buf(),
                        source,
                    });
                }
                None => continue,
            };
            if let Some(dir) = entry.strip_suffix('/') {
                validate_relative_path(dir).map_err(|rule| invalid(&entry, rule))?;
                continue;
            }
            validate_relative_path(&entry).map_err(|rule| invalid(&entry, rule))?;
            if !seen.insert(entry.clone()) {
                return Err(invalid(&entry, Rule::Duplicate));
            }
            if let Some((top, _)) = entry.split_once('/')
                && top.ends_with(".dist-info")
            {
                dist_infos.insert(top.to_string());
            }
            files.push((index, entry));
        }
        // A file that is also another entry's directory: extracting would
        // fail half way, or write through whichever came first.
        for (_, entry) in &files {
            let mut ancestors = entry.match_indices('/').map(|(at, _)| &entry[..at]);
            if let Some(file) = ancestors.find(|dir| seen.contains(*dir)) {
                return Err(invalid(entry, Rule::FileAndDirectory(file.to_string())));
            }
        }
        let dist_info = match dist_infos.len() {
            0 => return Err(invalid(&filename.expected_dist_info(), Rule::NoDistInfo)),
            1 => dist_infos.into_iter().next().unwrap_or_default(),
            _ => {
                return Err(invalid(
                    &filename.expected_dist_info(),
                    Rule::SeveralDistInfo(dist_infos.into_iter().collect()),
                ));
            }
        };
        let stem = dist_info.trim_end_matches(".dist-info");
        if !filename.matches_dir_stem(stem) {
            return Err(invalid(
                &dist_info,
                Rule::DistInfoMismatch {
                    expected: filename.expected_dist_info(),
                },
            ));
        }

        let mut archive = WheelArchive {
            path: path.to_path_buf(),
            filename,
            zip,
            dist_info,
            info: WheelInfo {
                version_major: 1,
                version_minor: 0,
                root_is_purelib: true,
            },
            metadata: CoreMetadata {
                name: String::new(),
                version: String::new(),
                requires_python: None,
            },
            entry_points: EntryPoints::default(),
            record: Vec::new(),
            files,
            raw,
            limits,
        };
        archive.read_dist_info()?;
        archive.check_entries_against_record()?;
        Ok(archive)
    }

    fn read_dist_info(&mut self) -> Result<(), Error> {
        let required = |this: &mut Self, file: &str| -> Result<Vec<u8>, Error> {
            let entry = format!("{}/{file}", this.dist_info);
            this.read_small_entry(&entry)?
                .ok_or_else(|| this.invalid(&entry, Rule::MissingDistInfoFile))
        };
        let wheel_entry = format!("{}/WHEEL", self.dist_info);
        let wheel = required(self, "WHEEL")?;
        self.info = WheelInfo::parse(&String::from_utf8_lossy(&wheel))
            .map_err(|rule| self.invalid(&wheel_entry, rule))?;
        if self.info.is_newer_minor() {
            tracing::warn!(
                "{} declares Wheel-Version {}.{}, newer than keel knows (1.{}); installing anyway",
                self.filename,
                self.info.version_major,
                self.info.version_minor,
                WheelInfo::SUPPORTED_MINOR
            );
        }

        let metadata_entry = format!("{}/METADATA", self.dist_info);
        let metadata = required(self, "METADATA")?;
        self.metadata = CoreMetadata::parse(&String::from_utf8_lossy(&metadata))
            .map_err(|rule| self.invalid(&metadata_entry, rule))?;
        if crate::PackageName::new(&self.metadata.name) != self.filename.normalized_name() {
            return Err(self.invalid(
                &metadata_entry,
                Rule::MalformedMetadata(format!(
                    "`Name: {}` does not match the file name `{}`",
                    self.metadata.name, self.filename.name
                )),
            ));
        }

        // Compared loosely (case, separators): METADATA may spell the version
        // unnormalized; anything more than spelling is a different release.
        let loose = |v: &str| -> String {
            v.chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_ascii_lowercase()
        };
        if loose(&self.metadata.version) != loose(&self.filename.version) {
            return Err(self.invalid(
                &metadata_entry,
                Rule::VersionMismatch {
                    metadata: self.metadata.version.clone(),
                    filename: self.filename.version.clone(),
                },
            ));
        }

        let entry_points_entry = format!("{}/entry_points.txt", self.dist_info);
        if let Some(text) = self.read_small_entry(&entry_points_entry)? {
            self.entry_points = EntryPoints::parse(&String::from_utf8_lossy(&text))
                .map_err(|rule| self.invalid(&entry_points_entry, rule))?;
            for script in &self.entry_points.scripts {
                if let Some(why) = script_name_problem(&script.name) {
                    return Err(self.invalid(&script.name, Rule::ScriptName(why)));
                }
            }
        }

        let record_entry = self.record_path();
        let record = required(self, "RECORD")?;
        self.record = parse_record(&record).map_err(|rule| self.invalid(&record_entry, rule))?;
        Ok(())
    }

    /// *Binary distribution format § The .dist-info directory*: every file
    /// except RECORD and its signatures is listed with a hash; every listed
    /// file exists.
    fn check_entries_against_record(&self) -> Result<(), Error> {
        let mut listed = HashMap::with_capacity(self.record.len());
        for row in &self.record {
            validate_relative_path(&row.path).map_err(|rule| self.invalid(&row.path, rule))?;
            if listed.insert(row.path.as_str(), row).is_some() {
                return Err(self.invalid(&row.path, Rule::Duplicate));
            }
        }
        let data_dir = self.data_dir();
        let mut zip = self.zip.clone();
        let mut extents: Vec<(u64, u64, &str)> = Vec::with_capacity(self.files.len());
        let mut total = 0u64;
        for (index, entry) in &self.files {
            if let EntryDestination::Data(DataKey::Scripts, path) =
                classify_entry(entry, &data_dir).map_err(|rule| self.invalid(entry, rule))?
            {
                let name = path.split('/').next().unwrap_or(path);
                if let Some(why) = script_name_problem(name) {
                    return Err(self.invalid(entry, Rule::ScriptName(why)));
                }
            }
            let file = zip.by_index_raw(*index).map_err(|source| Error::Zip {
                wheel: self.path.clone(),
                source,
            })?;
            if file.encrypted() {
                return Err(self.invalid(entry, Rule::Encrypted));
            }
            if file.is_symlink()
                || file
                    .unix_mode()
                    .is_some_and(|m| m & 0o170000 != 0o100000 && m & 0o170000 != 0)
            {
                return Err(self.invalid(entry, Rule::NotARegularFile));
            }
            let method = match file.compression() {
                zip::CompressionMethod::Stored => 0,
                zip::CompressionMethod::Deflated => 8,
                other => {
                    return Err(
                        self.invalid(entry, Rule::UnsupportedCompression(format!("{other:?}")))
                    );
                }
            };
            let local = local_header(&self.raw, file.header_start()).map_err(|e| {
                self.invalid(
                    entry,
                    Rule::InconsistentZip(format!("unreadable local header: {e}")),
                )
            })?;
            if let Some(why) = disagreement(
                &local,
                file.name_raw(),
                method,
                file.crc32(),
                file.compressed_size(),
                file.size(),
            ) {
                return Err(self.invalid(entry, Rule::InconsistentZip(why.to_string())));
            }
            extents.push((
                file.header_start(),
                local.data_start.saturating_add(file.compressed_size()),
                entry,
            ));
            let size = file.size();
            if size > self.limits.max_file_size {
                return Err(self.invalid(
                    entry,
                    Rule::TooLarge {
                        size,
                        limit: self.limits.max_file_size,
                        what: "file",
                    },
                ));
            }
            if size > Limits::RATIO_FLOOR
                && size / file.compressed_size().max(1) > self.limits.max_ratio
            {
                return Err(self.invalid(
                    entry,
                    Rule::CompressionRatio {
                        ratio: size / file.compressed_size().max(1),
                        limit: self.limits.max_ratio,
                    },
                ));
            }
            total = total.saturating_add(size);
            if total > self.limits.max_total_size {
                return Err(self.invalid(
                    entry,
                    Rule::TooLarge {
                        size: total,
                        limit: self.limits.max_total_size,
                        what: "wheel",
                    },
                ));
            }
            if let Some(row) = listed.get(entry.as_str())
                && let Some(expected) = row.size
                && expected != size
            {
                return Err(self.invalid(
                    entry,
                    Rule::SizeMismatch {
                        expected,
                        actual: size,
                    },
                ));
            }
            if self.is_unhashed_entry(entry) {
                continue;
            }
            match listed.get(entry.as_str()) {
                None => return Err(self.invalid(entry, Rule::NotInRecord)),
                Some(row) if row.hash.is_none() => {
                    return Err(self.invalid(
                        entry,
                        Rule::MalformedRecordRow {
                            line: 0,
                            reason: "the file has no hash in RECORD".into(),
                        },
                    ));
                }
                Some(_) => {}
            }
        }
        // Entries whose bytes overlap let one compressed stream stand for many
        // files (the "overlapping files" zip bomb), or two readers disagree.
        extents.sort_unstable();
        for pair in extents.windows(2) {
            if pair[1].0 < pair[0].1 {
                return Err(self.invalid(
                    pair[1].2,
                    Rule::InconsistentZip(format!("its data overlaps the entry `{}`", pair[0].2)),
                ));
            }
        }
        let present: HashSet<&str> = self.files.iter().map(|(_, e)| e.as_str()).collect();
        for row in &self.record {
            if !present.contains(row.path.as_str()) {
                return Err(self.invalid(&row.path, Rule::MissingFromArchive));
            }
        }
        Ok(())
    }

    fn invalid(&self, entry: &str, rule: Rule) -> Error {
        Error::invalid(&self.path, entry, rule)
    }

    /// RECORD and its signature files carry no hash of their own.
    fn is_unhashed_entry(&self, entry: &str) -> bool {
        entry
            .strip_prefix(self.dist_info.as_str())
            .is_some_and(|rest| matches!(rest, "/RECORD" | "/RECORD.jws" | "/RECORD.p7s"))
    }

    fn read_small_entry(&mut self, entry: &str) -> Result<Option<Vec<u8>>, Error> {
        /// `.dist-info` text files larger than this are refused (a bomb, not
        /// metadata), and so are ones over the caller's per-file limit.
        const METADATA_LIMIT: u64 = 64 << 20;
        let limit = METADATA_LIMIT.min(self.limits.max_file_size);
        let wheel = self.path.clone();
        let mut file = match self.zip.by_name(entry) {
            Ok(file) => file,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(source) => return Err(Error::Zip { wheel, source }),
        };
        let declared = file.size();
        let mut bytes = Vec::with_capacity(declared.min(limit) as usize);
        file.by_ref()
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| Error::Entry {
                wheel,
                entry: entry.to_string(),
                source,
            })?;
        drop(file);
        if bytes.len() as u64 > limit {
            return Err(self.invalid(
                entry,
                Rule::TooLarge {
                    size: declared.max(bytes.len() as u64),
                    limit,
                    what: "file",
                },
            ));
        }
        Ok(Some(bytes))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn filename(&self) -> &WheelFilename {
        &self.filename
    }

    /// The `.dist-info` directory name as the archive spells it.
    pub fn dist_info(&self) -> &str {
        &self.dist_info
    }

    /// The `.data` directory name that goes with the `.dist-info`.
    pub fn data_dir(&self) -> String {
        format!("{}.data", self.dist_info.trim_end_matches(".dist-info"))
    }

    pub fn record_path(&self) -> String {
        format!("{}/RECORD", self.dist_info)
    }

    pub fn info(&self) -> &WheelInfo {
        &self.info
    }

    pub fn metadata(&self) -> &CoreMetadata {
        &self.metadata
    }

    pub fn entry_points(&self) -> &EntryPoints {
        &self.entry_points
    }

    pub fn record(&self) -> &[RecordEntry] {
        &self.record
    }

    /// Hashes the whole `.whl` file with sha256 (for `direct_url.json`'s
    /// `archive_info.hashes`).
    pub fn sha256(&self) -> Result<RecordHash, Error> {
        let mut reader = self.zip.clone().into_inner();
        reader.position = 0;
        RecordHash::of_reader(HashAlgorithm::Sha256, reader)
            .map(|(hash, _)| hash)
            .map_err(|e| Error::Io(annotate(e, &self.path)))
    }

    /// Refuses the wheel if a file or script of it would land where the
    /// environment's rule `check` forbids: each `.data/<key>/` file and
    /// each entry-point script (a `Scripts` destination) is asked. The
    /// error names the entry and the rule.
    pub fn check_destinations(&self, check: DestinationCheck) -> Result<(), Error> {
        for script in &self.entry_points.scripts {
            if let Some(why) = check(DataKey::Scripts, &script.name) {
                return Err(self.invalid(&script.name, Rule::ScriptName(why)));
            }
        }
        for (_, entry) in &self.files {
            match self.destination(entry) {
                EntryDestination::Data(DataKey::Scripts, path) => {
                    if let Some(why) = check(DataKey::Scripts, path) {
                        return Err(self.invalid(entry, Rule::ScriptName(why)));
                    }
                }
                EntryDestination::Data(key, path) => {
                    if let Some(why) = check(key, path) {
                        return Err(self.invalid(entry, Rule::UnsafePath(why)));
                    }
                }
                EntryDestination::Root(_) => {}
            }
        }
        Ok(())
    }

    /// Extracts every file into `dest` (which must exist and be empty),
    /// hashing each one as it is written and comparing hash and size with
    /// RECORD. Runs on every core of rayon's pool. Scripts in
    /// `.data/scripts/` are made executable (*Binary distribution format §
    /// Installing a wheel*), as is every entry whose zip mode has an `x` bit.
    ///
    /// On error, `dest` holds a partial tree that the caller must discard.
    pub fn extract(&self, dest: &Path) -> Result<Vec<ExtractedFile>, Error> {
        let record: HashMap<&str, &RecordEntry> = self
            .record
            .iter()
            .map(|row| (row.path.as_str(), row))
            .collect();

        let mut directories = BTreeSet::new();
        for (_, entry) in &self.files {
            let mut parent = Path::new(entry).parent();
            while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
                if !directories.insert(dir.to_path_buf()) {
                    break;
                }
                parent = dir.parent();
            }
        }
        for dir in &directories {
            fs_err::create_dir(dest.join(dir))?;
        }

        let scripts_prefix = format!("{}/scripts/", self.data_dir());
        self.files
            .par_iter()
            .map_init(
                || self.zip.clone(),
                |zip, (index, entry)| {
                    let expected = record.get(entry.as_str()).copied();
                    self.extract_one(
                        zip,
                        *index,
                        entry,
                        expected,
                        &dest.join(entry),
                        entry.starts_with(&scripts_prefix),
                    )
                },
            )
            .collect()
    }

    fn extract_one(
        &self,
        zip: &mut ZipArchive<SharedFile>,
        index: usize,
        entry: &str,
        expected: Option<&RecordEntry>,
        target: &Path,
        is_script: bool,
    ) -> Result<ExtractedFile, Error> {
        let read_error = |source: std::io::Error| Error::Entry {
            wheel: self.path.clone(),
            entry: entry.to_string(),
            source,
        };
        let mut file = zip.by_index(index).map_err(|source| Error::Zip {
            wheel: self.path.clone(),
            source,
        })?;
        let executable = is_script || file.unix_mode().is_some_and(|m| m & 0o111 != 0);
        let algorithm = expected
            .and_then(|row| row.hash.as_ref())
            .map_or(HashAlgorithm::Sha256, |hash| hash.algorithm);
        // A file may not grow past the size RECORD gives it: this is also
        // what stops a decompression bomb without reading it to the end.
        let limit = expected.and_then(|row| row.size).unwrap_or(u64::MAX);

        let mut out = fs_err::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if executable { 0o755 } else { 0o644 })
            .open(target)?;
        let mut hasher = Hasher::new(algorithm);
        let mut buffer = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buffer).map_err(read_error)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > limit {
                return Err(self.invalid(
                    entry,
                    Rule::SizeMismatch {
                        expected: limit,
                        actual: size,
                    },
                ));
            }
            hasher.update(&buffer[..n]);
            out.write_all(&buffer[..n])?;
        }
        let hash = hasher.finish();
        if let Some(row) = expected {
            if let Some(expected_hash) = &row.hash
                && *expected_hash != hash
            {
                return Err(self.invalid(
                    entry,
                    Rule::HashMismatch {
                        expected: expected_hash.to_string(),
                        actual: hash.to_string(),
                    },
                ));
            }
            if let Some(expected_size) = row.size
                && expected_size != size
            {
                return Err(self.invalid(
                    entry,
                    Rule::SizeMismatch {
                        expected: expected_size,
                        actual: size,
                    },
                ));
            }
        }
        if executable {
            // The umask may have cleared bits; scripts must be executable by all.
            out.set_permissions(std::fs::Permissions::from_mode(0o755))?;
        }
        let metadata = out.metadata()?;
        Ok(ExtractedFile {
            path: entry.to_string(),
            hash,
            size,
            metadata,
        })
    }

    /// Where an entry goes ([`classify_entry`] against this wheel's `.data`
    /// directory). Entries were classified when the wheel was opened.
    pub fn destination<'a>(&self, entry: &'a str) -> EntryDestination<'a> {
        classify_entry(entry, &self.data_dir()).unwrap_or(EntryDestination::Root(entry))
    }

    /// Whether an entry is a `.data/scripts/` file.
    pub fn is_script(&self, entry: &str) -> bool {
        matches!(
            self.destination(entry),
            EntryDestination::Data(DataKey::Scripts, _)
        )
    }
}

fn annotate(error: std::io::Error, path: &Path) -> std::io::Error {
    std::io::Error::new(
        error.kind(),
        format!("{error} (reading `{}`)", path.display()),
    )
}
