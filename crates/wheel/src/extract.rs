//! Opening a wheel, checking its `.dist-info`, and extracting it into a
//! directory while hashing every byte against RECORD.
//!
//! *Binary distribution format § Signed wheel files*: the installer must
//! verify the hashes in RECORD against the extracted file contents. keel
//! does it while each file is written, in the same pass that inflates it,
//! on every core: a file whose content disagrees with RECORD is an error
//! naming the wheel and the entry.

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
    /// The number of bytes written.
    pub size: u64,
    /// `fstat` of the written file after its last write.
    pub stat: WrittenStat,
}

/// What `fstat` said of an extracted file after its last write: what tells
/// later whether it has been written since. 32 bytes, where a whole
/// [`std::fs::Metadata`] takes 144 (a wheel may have 100,000 files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenStat {
    /// The device (file system) the file is on.
    pub dev: u64,
    /// Its inode number.
    pub ino: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Its modification time in nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
}

impl WrittenStat {
    /// The stat `metadata` describes.
    pub fn of(metadata: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        WrittenStat {
            dev: metadata.dev(),
            ino: metadata.ino(),
            size: metadata.size(),
            mtime_ns: metadata
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(metadata.mtime_nsec()),
        }
    }
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
        let filename = parse_file_name(path)?;
        let (raw, zip) = open_zip(path)?;
        refuse_hidden_duplicates(path, &raw, &zip)?;
        let listing = list_entries(path, &zip)?;
        refuse_files_used_as_directories(path, &listing)?;
        let dist_info = the_dist_info(path, &filename, listing.dist_infos)?;

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
                requires_dist: Vec::new(),
            },
            entry_points: EntryPoints::default(),
            record: Vec::new(),
            files: listing.files,
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
    /// file exists. Each archive entry is checked in archive order, every
    /// rule of one entry before the next entry; the first broken rule is the
    /// error.
    fn check_entries_against_record(&self) -> Result<(), Error> {
        let listed = self.index_record()?;
        let data_dir = self.data_dir();
        let mut zip = self.zip.clone();
        let mut extents: Vec<(u64, u64, &str)> = Vec::with_capacity(self.files.len());
        let mut total = 0u64;
        for (index, entry) in &self.files {
            self.check_destination(entry, &data_dir)?;
            let file = zip.by_index_raw(*index).map_err(|source| Error::Zip {
                wheel: self.path.clone(),
                source,
            })?;
            let method = self.check_entry_kind(&file, entry)?;
            let end = self.check_local_header(&file, entry, method)?;
            extents.push((file.header_start(), end, entry));
            self.check_size_limits(&file, entry, &mut total)?;
            self.check_record_row(entry, file.size(), listed.get(entry.as_str()).copied())?;
        }
        self.refuse_overlapping_entries(extents)?;
        self.refuse_rows_missing_from_archive()
    }

    /// RECORD's rows by path, refusing a row whose path could escape the
    /// install directory ([`validate_relative_path`]) and a path listed twice
    /// (*Recording installed projects § The RECORD file*: one row per file,
    /// its path relative to the directory that holds `.dist-info`).
    fn index_record(&self) -> Result<HashMap<&str, &RecordEntry>, Error> {
        let mut listed = HashMap::with_capacity(self.record.len());
        for row in &self.record {
            validate_relative_path(&row.path).map_err(|rule| self.invalid(&row.path, rule))?;
            if listed.insert(row.path.as_str(), row).is_some() {
                return Err(self.invalid(&row.path, Rule::Duplicate));
            }
        }
        Ok(listed)
    }

    /// Refuses an entry with no install destination ([`classify_entry`]: an
    /// unknown `.data/<key>/`, a file directly in `.data/`), and a
    /// `.data/scripts/` file whose name cannot be a script
    /// ([`script_name_problem`]). *Binary distribution format § The .data
    /// directory* and *§ Installing a wheel*: each subdirectory of `.data/`
    /// is a key into the install scheme.
    fn check_destination(&self, entry: &str, data_dir: &str) -> Result<(), Error> {
        if let EntryDestination::Data(DataKey::Scripts, path) =
            classify_entry(entry, data_dir).map_err(|rule| self.invalid(entry, rule))?
        {
            let name = path.split('/').next().unwrap_or(path);
            if let Some(why) = script_name_problem(name) {
                return Err(self.invalid(entry, Rule::ScriptName(why)));
            }
        }
        Ok(())
    }

    /// Refuses an encrypted entry, a symlink or other non-regular file, and
    /// a compression method other than stored and deflate; returns the
    /// method's APPNOTE number (0 or 8). *Binary distribution format § File
    /// format*: a wheel is a ZIP-format archive of files to unpack; the rest
    /// is keel's policy (an installer must be able to read and hash every
    /// byte, and write only regular files).
    fn check_entry_kind(
        &self,
        file: &zip::read::ZipFile<'_, SharedFile>,
        entry: &str,
    ) -> Result<u16, Error> {
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
        match file.compression() {
            zip::CompressionMethod::Stored => Ok(0),
            zip::CompressionMethod::Deflated => Ok(8),
            other => Err(self.invalid(entry, Rule::UnsupportedCompression(format!("{other:?}")))),
        }
    }

    /// Refuses an entry whose local header disagrees with the central
    /// directory (PKWARE APPNOTE § 4.3.7 and § 4.3.12): a reader that trusts
    /// one would unpack another file than RECORD vouches for (*Binary
    /// distribution format § The .dist-info directory*). Returns where the
    /// entry's data ends in the wheel file.
    fn check_local_header(
        &self,
        file: &zip::read::ZipFile<'_, SharedFile>,
        entry: &str,
        method: u16,
    ) -> Result<u64, Error> {
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
        Ok(local.data_start.saturating_add(file.compressed_size()))
    }

    /// Refuses an entry over [`Limits::max_file_size`], one over
    /// [`Limits::RATIO_FLOOR`] compressed past [`Limits::max_ratio`], and
    /// one that takes the running `total` past [`Limits::max_total_size`].
    /// No spec section: this is keel's zip bomb defence, on the sizes the
    /// central directory declares (extraction holds each file to RECORD's
    /// size, [`WheelArchive::extract`]).
    fn check_size_limits(
        &self,
        file: &zip::read::ZipFile<'_, SharedFile>,
        entry: &str,
        total: &mut u64,
    ) -> Result<(), Error> {
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
        *total = total.saturating_add(size);
        if *total > self.limits.max_total_size {
            return Err(self.invalid(
                entry,
                Rule::TooLarge {
                    size: *total,
                    limit: self.limits.max_total_size,
                    what: "wheel",
                },
            ));
        }
        Ok(())
    }

    /// Checks an entry of `size` bytes against its RECORD `row`: the size,
    /// where RECORD gives one, must be the entry's; then every file but
    /// RECORD and its signatures must have a row, with a hash. *Binary
    /// distribution format § The .dist-info directory* (every file except
    /// RECORD must include its hash) and *§ Signed wheel files*
    /// (`RECORD.jws` and `RECORD.p7s` are not listed in RECORD).
    fn check_record_row(
        &self,
        entry: &str,
        size: u64,
        row: Option<&RecordEntry>,
    ) -> Result<(), Error> {
        if let Some(row) = row
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
            return Ok(());
        }
        match row {
            None => Err(self.invalid(entry, Rule::NotInRecord)),
            Some(row) if row.hash.is_none() => Err(self.invalid(
                entry,
                Rule::MalformedRecordRow {
                    line: 0,
                    reason: "the file has no hash in RECORD".into(),
                },
            )),
            Some(_) => Ok(()),
        }
    }

    /// Refuses entries whose bytes overlap in the wheel file: one compressed
    /// stream standing for many files (the "overlapping files" zip bomb), or
    /// two readers that would disagree (PKWARE APPNOTE § 4.3.6: each entry's
    /// header and data are its own). `extents` are `(start, end, entry)`;
    /// the error names the later entry of the first overlapping pair.
    fn refuse_overlapping_entries(&self, mut extents: Vec<(u64, u64, &str)>) -> Result<(), Error> {
        extents.sort_unstable();
        for pair in extents.windows(2) {
            if pair[1].0 < pair[0].1 {
                return Err(self.invalid(
                    pair[1].2,
                    Rule::InconsistentZip(format!("its data overlaps the entry `{}`", pair[0].2)),
                ));
            }
        }
        Ok(())
    }

    /// Refuses a RECORD row, in RECORD order, that names no file of the
    /// archive (*Recording installed projects § The RECORD file*: RECORD
    /// lists the files that are installed; *Binary distribution format §
    /// The .dist-info directory*).
    fn refuse_rows_missing_from_archive(&self) -> Result<(), Error> {
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

    /// The wheel file this archive was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The wheel's parsed file name.
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

    /// The entry path of RECORD: `{dist-info}/RECORD`.
    pub fn record_path(&self) -> String {
        format!("{}/RECORD", self.dist_info)
    }

    /// The parsed `.dist-info/WHEEL` file.
    pub fn info(&self) -> &WheelInfo {
        &self.info
    }

    /// The fields of `.dist-info/METADATA` an installer needs.
    pub fn metadata(&self) -> &CoreMetadata {
        &self.metadata
    }

    /// The scripts `.dist-info/entry_points.txt` declares (none when the
    /// file is absent).
    pub fn entry_points(&self) -> &EntryPoints {
        &self.entry_points
    }

    /// The rows of `.dist-info/RECORD`, in file order.
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

    /// Extracts entry `index` to `target`, verified against its RECORD row
    /// `expected` (*Binary distribution format § Signed wheel files*: an
    /// installer must verify RECORD's hashes against the extracted content).
    fn extract_one(
        &self,
        zip: &mut ZipArchive<SharedFile>,
        index: usize,
        entry: &str,
        expected: Option<&RecordEntry>,
        target: &Path,
        is_script: bool,
    ) -> Result<ExtractedFile, Error> {
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

        // The modes `open` is asked for by every tool (`0666`, `0777` for
        // an executable), masked by the umask: a cache several users share
        // (umask `002`) stays group-writable, a private one (`077`) private.
        let mut out = fs_err::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if executable { 0o777 } else { 0o666 })
            .open(target)?;
        let (hash, size) = self.copy_hashing(&mut file, &mut out, entry, algorithm, limit)?;
        if let Some(row) = expected {
            self.check_against_row(entry, row, &hash, size)?;
        }
        if executable {
            // The umask may have cleared execute bits (`0133`): whoever
            // may read a script may run it.
            let mode = out.metadata()?.permissions().mode() & 0o7777;
            let runnable = mode | ((mode & 0o444) >> 2);
            if runnable != mode {
                out.set_permissions(std::fs::Permissions::from_mode(runnable))?;
            }
        }
        let stat = WrittenStat::of(&out.metadata()?);
        Ok(ExtractedFile {
            path: entry.to_string(),
            hash,
            size,
            stat,
        })
    }

    /// Inflates `file` into `out`, hashing every byte with `algorithm` as it
    /// is written, and refuses it as soon as it grows past `limit` bytes
    /// (RECORD's size: *Recording installed projects § The RECORD file*;
    /// also keel's decompression bomb stop). Returns the hash and the size.
    fn copy_hashing(
        &self,
        file: &mut impl Read,
        out: &mut fs_err::File,
        entry: &str,
        algorithm: HashAlgorithm,
        limit: u64,
    ) -> Result<(RecordHash, u64), Error> {
        let read_error = |source: std::io::Error| Error::Entry {
            wheel: self.path.clone(),
            entry: entry.to_string(),
            source,
        };
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
        Ok((hasher.finish(), size))
    }

    /// Refuses extracted content whose `hash` or `size` is not what its
    /// RECORD `row` says (*Binary distribution format § Signed wheel files*:
    /// the installer must verify the hashes in RECORD; *Recording installed
    /// projects § The RECORD file*: the size is the file's in bytes). The
    /// hash is compared first.
    fn check_against_row(
        &self,
        entry: &str,
        row: &RecordEntry,
        hash: &RecordHash,
        size: u64,
    ) -> Result<(), Error> {
        if let Some(expected_hash) = &row.hash
            && expected_hash != hash
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
        Ok(())
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

/// The parsed file name of the wheel at `path`, checked before the file is
/// opened (*Binary distribution format § File name convention*).
fn parse_file_name(path: &Path) -> Result<WheelFilename, Error> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name.parse()
}

/// Opens the wheel at `path` as a zip archive (*Binary distribution format*:
/// a wheel is a ZIP-format archive), and returns the open file too, for
/// reading the raw headers the zip reader does not show.
fn open_zip(path: &Path) -> Result<(Arc<std::fs::File>, ZipArchive<SharedFile>), Error> {
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
    Ok((raw, zip))
}

/// Refuses two central directory entries of one name, which the zip reader
/// merges into one, naming the first name that repeats (PKWARE APPNOTE
/// § 4.3.12; *Binary distribution format § The .dist-info directory*:
/// RECORD vouches for one file per path, and two entries of a path are two
/// contents that two readers would unpack differently).
fn refuse_hidden_duplicates(
    path: &Path,
    raw: &std::fs::File,
    zip: &ZipArchive<SharedFile>,
) -> Result<(), Error> {
    if !zip.has_duplicate_names() {
        return Ok(());
    }
    // The reader kept one entry per name; find the name it hid.
    let names = central_names(raw, zip.central_directory_start())
        .map_err(|e| Error::Io(annotate(e, path)))?;
    let mut seen = HashSet::new();
    let duplicate = names
        .into_iter()
        .find(|name| !seen.insert(name.clone()))
        .map(|name| String::from_utf8_lossy(&name).into_owned())
        .unwrap_or_default();
    Err(Error::invalid(path, duplicate, Rule::Duplicate))
}

/// The entries of a wheel's central directory, as [`list_entries`] found them.
struct Listing {
    /// `(zip index, entry path)` of every regular file, in archive order.
    files: Vec<(usize, String)>,
    /// The paths of `files`.
    names: HashSet<String>,
    /// Every top-level `*.dist-info` directory that holds a file.
    dist_infos: BTreeSet<String>,
}

/// Lists the files of the archive and its `.dist-info` directories, in
/// archive order, refusing an entry (file or directory) whose path could
/// escape the install directory ([`validate_relative_path`]) and a file
/// path that appears twice. *Binary distribution format § File contents*:
/// the archive unpacks into one directory (purelib or platlib).
fn list_entries(path: &Path, zip: &ZipArchive<SharedFile>) -> Result<Listing, Error> {
    let invalid = |entry: &str, rule: Rule| Error::invalid(path, entry, rule);
    let mut listing = Listing {
        files: Vec::with_capacity(zip.len()),
        names: HashSet::with_capacity(zip.len()),
        dist_infos: BTreeSet::new(),
    };
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
        if !listing.names.insert(entry.clone()) {
            return Err(invalid(&entry, Rule::Duplicate));
        }
        if let Some((top, _)) = entry.split_once('/')
            && top.ends_with(".dist-info")
        {
            listing.dist_infos.insert(top.to_string());
        }
        listing.files.push((index, entry));
    }
    Ok(listing)
}

/// Refuses a file that is also the directory of another entry (`a.py` and
/// `a.py/b.py`), naming the first such entry in archive order: no file
/// system holds both, so extracting would fail half way, or write through
/// whichever came first (*Binary distribution format § Installing a wheel*:
/// the archive is unpacked onto the file system).
fn refuse_files_used_as_directories(path: &Path, listing: &Listing) -> Result<(), Error> {
    for (_, entry) in &listing.files {
        let mut ancestors = entry.match_indices('/').map(|(at, _)| &entry[..at]);
        if let Some(file) = ancestors.find(|dir| listing.names.contains(*dir)) {
            return Err(Error::invalid(
                path,
                entry,
                Rule::FileAndDirectory(file.to_string()),
            ));
        }
    }
    Ok(())
}

/// The one `.dist-info` directory of the wheel, which must belong to the
/// file name's distribution and version (*Binary distribution format § File
/// contents*: the wheel contains `{distribution}-{version}.dist-info/`;
/// *§ The .dist-info directory*).
fn the_dist_info(
    path: &Path,
    filename: &WheelFilename,
    dist_infos: BTreeSet<String>,
) -> Result<String, Error> {
    let invalid = |entry: &str, rule: Rule| Error::invalid(path, entry, rule);
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
    Ok(dist_info)
}

fn annotate(error: std::io::Error, path: &Path) -> std::io::Error {
    std::io::Error::new(
        error.kind(),
        format!("{error} (reading `{}`)", path.display()),
    )
}
