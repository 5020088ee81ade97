//! The hashes RECORD uses: `algorithm=urlsafe-base64-nopad(digest)`.
//!
//! *Recording installed projects § The RECORD file*: the hash is "the name of
//! a hash algorithm from `hashlib.algorithms_guaranteed`, followed by `=` and
//! the digest of the file's contents, encoded with the urlsafe-base64-nopad
//! encoding". keel accepts sha256, sha384 and sha512, and refuses md5 and sha1
//! (*Binary distribution format § The .dist-info directory*: "sha256 or
//! better").

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::display::Base64Display;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::Digest;

use crate::Rule;

/// A hash algorithm keel accepts in RECORD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-256 (`sha256`).
    Sha256,
    /// SHA-384 (`sha384`).
    Sha384,
    /// SHA-512 (`sha512`).
    Sha512,
}

impl HashAlgorithm {
    /// The name RECORD spells it with, `hashlib`'s (`sha256`).
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha384 => "sha384",
            HashAlgorithm::Sha512 => "sha512",
        }
    }

    /// The algorithm `hashlib` names `name` (`sha256`, `sha384`, `sha512`);
    /// `None` for any other (md5 and sha1 are not strong enough, *Binary
    /// distribution format*; pip's `--require-hashes` refuses them too).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(HashAlgorithm::Sha256),
            "sha384" => Some(HashAlgorithm::Sha384),
            "sha512" => Some(HashAlgorithm::Sha512),
            _ => None,
        }
    }

    /// How many bytes its digest has.
    pub fn digest_len(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha384 => 48,
            HashAlgorithm::Sha512 => 64,
        }
    }
}

/// A hash as RECORD writes it: the algorithm and the raw digest.
///
/// Also the hash of a whole archive, as lock files and requirements files
/// spell it in hex ([`RecordHash::from_hex`], [`RecordHash::hex`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordHash {
    /// The algorithm named before the `=`.
    pub algorithm: HashAlgorithm,
    /// The raw digest bytes (decoded from urlsafe base64; as long as the
    /// algorithm's output).
    pub digest: Vec<u8>,
}

impl RecordHash {
    /// Hashes `bytes` with `algorithm`.
    pub fn of(algorithm: HashAlgorithm, bytes: &[u8]) -> Self {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(bytes);
        hasher.finish()
    }

    /// Hashes everything `reader` yields; returns the hash and the number
    /// of bytes read.
    pub fn of_reader(
        algorithm: HashAlgorithm,
        mut reader: impl std::io::Read,
    ) -> std::io::Result<(Self, u64)> {
        let mut hasher = Hasher::new(algorithm);
        let size = std::io::copy(&mut reader, &mut hasher)?;
        Ok((hasher.finish(), size))
    }

    /// The hash spelled `algorithm` and `hex` (a lock file's
    /// `hashes = {sha256 = "…"}`, a requirement's `--hash=sha256:…`); hex
    /// digits of either case. The error says what is wrong with it.
    pub fn from_hex(algorithm: HashAlgorithm, hex: &str) -> Result<Self, String> {
        let wanted = algorithm.digest_len() * 2;
        if hex.len() != wanted {
            return Err(format!(
                "a {} digest has {wanted} hex digits, `{hex}` has {}",
                algorithm.name(),
                hex.len()
            ));
        }
        let digit = |b: u8| (b as char).to_digit(16);
        let digest = hex
            .as_bytes()
            .chunks(2)
            .map(|pair| Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| format!("`{hex}` is not hex"))?;
        Ok(RecordHash { algorithm, digest })
    }

    /// The digest as lowercase hex (for `direct_url.json`).
    pub fn hex(&self) -> String {
        self.digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl FromStr for RecordHash {
    type Err = Rule;

    /// Parses `sha256=<urlsafe-b64-nopad>`. Trailing `=` padding is tolerated,
    /// since some tools write it.
    fn from_str(text: &str) -> Result<Self, Rule> {
        let malformed = |reason: String| Rule::MalformedRecordRow { line: 0, reason };
        let (name, encoded) = text
            .split_once('=')
            .ok_or_else(|| malformed(format!("hash `{text}` is not `algorithm=digest`")))?;
        let algorithm = HashAlgorithm::from_name(name)
            .ok_or_else(|| Rule::UnsupportedHash(name.to_string()))?;
        let digest = URL_SAFE_NO_PAD
            .decode(encoded.trim_end_matches('='))
            .map_err(|_| malformed(format!("hash `{text}` is not urlsafe base64")))?;
        if digest.len() != algorithm.digest_len() {
            return Err(malformed(format!(
                "hash `{text}` has {} bytes, {} needs {}",
                digest.len(),
                algorithm.name(),
                algorithm.digest_len()
            )));
        }
        Ok(RecordHash { algorithm, digest })
    }
}

/// Text formats (JSON) spell a hash as RECORD does, `sha256=<base64>`;
/// binary ones (postcard, the archive manifest) as the algorithm's name
/// and the raw digest bytes, which read back without decoding base64.
impl serde::Serialize for RecordHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            use serde::ser::SerializeTuple;
            let mut tuple = serializer.serialize_tuple(2)?;
            tuple.serialize_element(self.algorithm.name())?;
            tuple.serialize_element(serde_bytes::Bytes::new(&self.digest))?;
            tuple.end()
        }
    }
}

impl<'de> serde::Deserialize<'de> for RecordHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(RecordHashVisitor)
        } else {
            deserializer.deserialize_tuple(2, RecordHashVisitor)
        }
    }
}

/// Parses a hash from the input's own bytes where it can (serde's
/// `Cow<str>` always copies into a new `String`: 100,000 allocations for
/// a large manifest).
struct RecordHashVisitor;

impl<'de> serde::de::Visitor<'de> for RecordHashVisitor {
    type Value = RecordHash;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a RECORD hash, `algorithm=urlsafe-base64-digest` or (algorithm, digest)")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<RecordHash, E> {
        text.parse().map_err(E::custom)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<RecordHash, A::Error> {
        use serde::de::Error;
        let name: &str = seq
            .next_element()?
            .ok_or_else(|| A::Error::invalid_length(0, &self))?;
        let digest: &serde_bytes::Bytes = seq
            .next_element()?
            .ok_or_else(|| A::Error::invalid_length(1, &self))?;
        let algorithm = HashAlgorithm::from_name(name)
            .ok_or_else(|| A::Error::custom(Rule::UnsupportedHash(name.to_string())))?;
        if digest.len() != algorithm.digest_len() {
            return Err(A::Error::invalid_length(digest.len(), &self));
        }
        Ok(RecordHash {
            algorithm,
            digest: digest.to_vec(),
        })
    }
}

impl fmt::Display for RecordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Encoded straight into the formatter (no String a hash): RECORD
        // rows are written 100,000 at a time.
        let digest = Base64Display::new(&self.digest, &URL_SAFE_NO_PAD);
        write!(f, "{}={digest}", self.algorithm.name())
    }
}

/// An incremental hasher for any accepted algorithm.
#[derive(Clone)]
pub enum Hasher {
    /// Hashing with SHA-256.
    Sha256(sha2::Sha256),
    /// Hashing with SHA-384.
    Sha384(sha2::Sha384),
    /// Hashing with SHA-512.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A hasher for `algorithm` that has seen no bytes yet.
    pub fn new(algorithm: HashAlgorithm) -> Self {
        match algorithm {
            HashAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlgorithm::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            HashAlgorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    /// Feeds `bytes` to the hash.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha384(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The hash of every byte fed so far.
    pub fn finish(self) -> RecordHash {
        let (algorithm, digest) = match self {
            Hasher::Sha256(h) => (HashAlgorithm::Sha256, h.finalize().to_vec()),
            Hasher::Sha384(h) => (HashAlgorithm::Sha384, h.finalize().to_vec()),
            Hasher::Sha512(h) => (HashAlgorithm::Sha512, h.finalize().to_vec()),
        };
        RecordHash { algorithm, digest }
    }
}

impl std::io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_sha256_of_empty_input() {
        let hash = RecordHash::of(HashAlgorithm::Sha256, b"");
        assert_eq!(
            hash.to_string(),
            "sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
        );
        assert_eq!(
            hash.hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let parsed: RecordHash = hash.to_string().parse().unwrap();
        assert_eq!(parsed, hash);
    }

    #[test]
    fn hex_digests_round_trip_and_wrong_lengths_or_digits_are_named() {
        let hash = RecordHash::of(HashAlgorithm::Sha256, b"keel");
        let upper = hash.hex().to_uppercase();
        assert_eq!(
            RecordHash::from_hex(HashAlgorithm::Sha256, &upper),
            Ok(hash.clone())
        );
        let short = RecordHash::from_hex(HashAlgorithm::Sha256, "abcd").unwrap_err();
        assert!(short.contains("64 hex digits"), "{short}");
        let not_hex = "g".repeat(64);
        assert!(RecordHash::from_hex(HashAlgorithm::Sha256, &not_hex).is_err());
        assert_eq!(HashAlgorithm::from_name("md5"), None);
    }

    #[test]
    fn accepts_sha384_and_sha512_and_padding() {
        for alg in [HashAlgorithm::Sha384, HashAlgorithm::Sha512] {
            let hash = RecordHash::of(alg, b"keel");
            assert_eq!(hash.to_string().parse::<RecordHash>().unwrap(), hash);
        }
        let padded = format!("{}=", RecordHash::of(HashAlgorithm::Sha256, b"x"));
        assert!(padded.parse::<RecordHash>().is_ok());
    }

    #[test]
    fn refuses_weak_unknown_and_malformed_hashes() {
        assert_eq!(
            "md5=1B2M2Y8AsgTpgAmY7PhCfg".parse::<RecordHash>(),
            Err(Rule::UnsupportedHash("md5".into()))
        );
        assert_eq!(
            "sha1=2jmj7l5rSw0yVb_vlWAYkK_YBwk".parse::<RecordHash>(),
            Err(Rule::UnsupportedHash("sha1".into()))
        );
        assert!(matches!(
            "blake2=abc".parse::<RecordHash>(),
            Err(Rule::UnsupportedHash(_))
        ));
        assert!("sha256".parse::<RecordHash>().is_err());
        assert!("sha256=!!!".parse::<RecordHash>().is_err());
        assert!("sha256=AAAA".parse::<RecordHash>().is_err(), "too short");
    }
}
