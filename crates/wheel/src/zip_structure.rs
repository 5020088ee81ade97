//! Checks of the zip structure that a zip reader does not make: the
//! central directory and each local header must agree, no two entries may
//! share a name or overlap in the file, and declared sizes must stay within
//! limits. A wheel that fails one of them is built to confuse one reader
//! or another (a zip bomb, a file that two tools unpack differently).
//!
//! Format: PKWARE APPNOTE.TXT § 4.3.7 (local file header) and § 4.3.12
//! (central directory file header).

use std::os::unix::fs::FileExt;

/// Limits on what a wheel may unpack to. The defaults are generous: the
/// largest wheels on PyPI unpack to a few GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest uncompressed size of one file.
    pub max_file_size: u64,
    /// Largest total uncompressed size of a wheel.
    pub max_total_size: u64,
    /// Largest uncompressed/compressed ratio of an entry larger than
    /// [`Limits::RATIO_FLOOR`]. Deflate reaches ~1032:1 on zeros; real
    /// files of a megabyte or more stay far below 250:1.
    pub max_ratio: u64,
}

impl Limits {
    /// Entries smaller than this are never refused for their ratio.
    pub const RATIO_FLOOR: u64 = 1 << 20;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_size: 4 << 30,
            max_total_size: 16 << 30,
            max_ratio: 250,
        }
    }
}

const LOCAL_HEADER_SIGNATURE: u32 = 0x0403_4b50;
const CENTRAL_HEADER_SIGNATURE: u32 = 0x0201_4b50;
/// General purpose bit 3: sizes and CRC follow the data instead.
const DATA_DESCRIPTOR_FLAG: u16 = 1 << 3;

/// The fields of a local file header keel compares with the central directory.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LocalHeader {
    pub name: Vec<u8>,
    pub flags: u16,
    pub method: u16,
    pub crc32: u32,
    pub compressed_size: u32,
    pub uncompressed_size: u32,
    /// Offset of the entry's data.
    pub data_start: u64,
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn read_exact_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    file.read_exact_at(buf, offset)
}

/// Reads the local file header at `offset` (APPNOTE § 4.3.7).
pub(crate) fn local_header(file: &std::fs::File, offset: u64) -> std::io::Result<LocalHeader> {
    let mut fixed = [0u8; 30];
    read_exact_at(file, &mut fixed, offset)?;
    if u32_at(&fixed, 0) != LOCAL_HEADER_SIGNATURE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "no local file header at its offset",
        ));
    }
    let name_len = u16_at(&fixed, 26) as usize;
    let extra_len = u16_at(&fixed, 28) as u64;
    let mut name = vec![0u8; name_len];
    read_exact_at(file, &mut name, offset + 30)?;
    Ok(LocalHeader {
        name,
        flags: u16_at(&fixed, 6),
        method: u16_at(&fixed, 8),
        crc32: u32_at(&fixed, 14),
        compressed_size: u32_at(&fixed, 18),
        uncompressed_size: u32_at(&fixed, 22),
        data_start: offset + 30 + name_len as u64 + extra_len,
    })
}

/// Whether the local header disagrees with what the central directory says
/// of the same entry; `None` when they agree.
pub(crate) fn disagreement(
    local: &LocalHeader,
    central_name: &[u8],
    central_method: u16,
    central_crc32: u32,
    central_compressed: u64,
    central_uncompressed: u64,
) -> Option<&'static str> {
    if local.name != central_name {
        return Some("the local header names a different file than the central directory");
    }
    if local.method != central_method {
        return Some(
            "the local header and the central directory disagree on the compression method",
        );
    }
    if local.flags & DATA_DESCRIPTOR_FLAG == 0 {
        // Zip64 entries keep 0xFFFFFFFF here and the real sizes in an extra field.
        let fits = |size: u64, local: u32| local == u32::MAX || u64::from(local) == size;
        if local.crc32 != central_crc32
            || !fits(central_compressed, local.compressed_size)
            || !fits(central_uncompressed, local.uncompressed_size)
        {
            return Some("the local header and the central directory disagree on the size or CRC");
        }
    }
    None
}

/// Every file name in the central directory starting at `start`, read raw
/// (the zip reader keeps only one entry per name, so duplicates must be
/// found here; APPNOTE § 4.3.12).
pub(crate) fn central_names(file: &std::fs::File, start: u64) -> std::io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    let mut offset = start;
    let mut fixed = [0u8; 46];
    while read_exact_at(file, &mut fixed, offset).is_ok()
        && u32_at(&fixed, 0) == CENTRAL_HEADER_SIGNATURE
    {
        let name_len = u16_at(&fixed, 28) as usize;
        let extra_len = u16_at(&fixed, 30) as u64;
        let comment_len = u16_at(&fixed, 32) as u64;
        let mut name = vec![0u8; name_len];
        read_exact_at(file, &mut name, offset + 46)?;
        names.push(name);
        offset += 46 + name_len as u64 + extra_len + comment_len;
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &[u8]) -> LocalHeader {
        LocalHeader {
            name: name.to_vec(),
            flags: 0,
            method: 8,
            crc32: 7,
            compressed_size: 10,
            uncompressed_size: 20,
            data_start: 0,
        }
    }

    #[test]
    fn agreeing_headers_pass() {
        assert_eq!(disagreement(&header(b"a.py"), b"a.py", 8, 7, 10, 20), None);
    }

    #[test]
    fn a_different_name_method_size_or_crc_is_a_disagreement() {
        assert!(disagreement(&header(b"a.py"), b"b.py", 8, 7, 10, 20).is_some());
        assert!(disagreement(&header(b"a.py"), b"a.py", 0, 7, 10, 20).is_some());
        assert!(disagreement(&header(b"a.py"), b"a.py", 8, 8, 10, 20).is_some());
        assert!(disagreement(&header(b"a.py"), b"a.py", 8, 7, 11, 20).is_some());
        assert!(disagreement(&header(b"a.py"), b"a.py", 8, 7, 10, 21).is_some());
    }

    #[test]
    fn data_descriptor_and_zip64_sizes_are_not_compared() {
        let mut streamed = header(b"a.py");
        streamed.flags = DATA_DESCRIPTOR_FLAG;
        streamed.crc32 = 0;
        streamed.compressed_size = 0;
        assert_eq!(disagreement(&streamed, b"a.py", 8, 7, 10, 20), None);
        let mut zip64 = header(b"a.py");
        zip64.compressed_size = u32::MAX;
        zip64.uncompressed_size = u32::MAX;
        assert_eq!(disagreement(&zip64, b"a.py", 8, 7, 1 << 33, 1 << 34), None);
    }
}
