//! What a wanted file's hashes demand, and hashing with all of them at once.
//!
//! A wanted file may list several hashes. Across algorithms every one must
//! hold (a `pylock.toml` `hashes` table: `sha256` and `sha512` both
//! checked); within one algorithm any listed digest will do (a
//! requirements line's `--hash=sha256:a --hash=sha256:b`, pip's rule).

use keel_wheel::{HashAlgorithm, Hasher, RecordHash};

/// The digests a wanted file may have, by algorithm.
#[derive(Debug, Clone)]
pub(crate) struct Expected {
    /// Each algorithm once, with the digests it allows.
    groups: Vec<(HashAlgorithm, Vec<RecordHash>)>,
}

/// A listed algorithm whose digest the file does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mismatch {
    pub algorithm: HashAlgorithm,
    /// The allowed digests, hex, joined by " or ".
    pub expected: String,
    /// The file's digest, hex.
    pub actual: String,
}

impl Expected {
    /// `None` when `hashes` is empty.
    pub fn new(hashes: &[RecordHash]) -> Option<Self> {
        let mut groups: Vec<(HashAlgorithm, Vec<RecordHash>)> = Vec::new();
        for hash in hashes {
            match groups.iter_mut().find(|(a, _)| *a == hash.algorithm) {
                Some((_, digests)) if digests.contains(hash) => {}
                Some((_, digests)) => digests.push(hash.clone()),
                None => groups.push((hash.algorithm, vec![hash.clone()])),
            }
        }
        (!groups.is_empty()).then_some(Expected { groups })
    }

    /// Every listed algorithm, once.
    pub fn algorithms(&self) -> Vec<HashAlgorithm> {
        self.groups.iter().map(|(a, _)| *a).collect()
    }

    /// The algorithm the cache is keyed by: sha256 when listed (what most
    /// locks list, so they share entries), else the strongest listed.
    pub fn key_algorithm(&self) -> HashAlgorithm {
        let listed = self.algorithms();
        [
            HashAlgorithm::Sha256,
            HashAlgorithm::Sha512,
            HashAlgorithm::Sha384,
        ]
        .into_iter()
        .find(|a| listed.contains(a))
        .unwrap_or(HashAlgorithm::Sha256)
    }

    /// The digests of the key algorithm the file may have (usually one).
    pub fn key_candidates(&self) -> &[RecordHash] {
        let key = self.key_algorithm();
        self.groups
            .iter()
            .find(|(a, _)| *a == key)
            .map_or(&[], |(_, digests)| digests.as_slice())
    }

    /// Whether `actual` (one digest per listed algorithm at least) satisfies
    /// every listed algorithm; the first that does not otherwise. An
    /// algorithm missing from `actual` is a mismatch with an empty actual.
    pub fn check(&self, actual: &[RecordHash]) -> Result<(), Mismatch> {
        for (algorithm, allowed) in &self.groups {
            let found = actual.iter().find(|h| h.algorithm == *algorithm);
            if found.is_some_and(|h| allowed.contains(h)) {
                continue;
            }
            return Err(Mismatch {
                algorithm: *algorithm,
                expected: allowed
                    .iter()
                    .map(RecordHash::hex)
                    .collect::<Vec<_>>()
                    .join(" or "),
                actual: found.map(RecordHash::hex).unwrap_or_default(),
            });
        }
        Ok(())
    }

    /// Whether `known` (a stamp's digests) covers every listed algorithm.
    pub fn covered_by(&self, known: &[RecordHash]) -> bool {
        self.groups
            .iter()
            .all(|(a, _)| known.iter().any(|h| h.algorithm == *a))
    }
}

/// Hashes one stream with several algorithms at once.
#[derive(Clone)]
pub(crate) struct MultiHasher {
    hashers: Vec<Hasher>,
}

impl MultiHasher {
    pub fn new(algorithms: &[HashAlgorithm]) -> Self {
        MultiHasher {
            hashers: algorithms.iter().map(|a| Hasher::new(*a)).collect(),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for hasher in &mut self.hashers {
            hasher.update(bytes);
        }
    }

    pub fn finish(self) -> Vec<RecordHash> {
        self.hashers.into_iter().map(Hasher::finish).collect()
    }
}

/// Hashes everything `reader` yields with `algorithms`; the digests and the
/// number of bytes.
pub(crate) fn hash_reader(
    algorithms: &[HashAlgorithm],
    mut reader: impl std::io::Read,
) -> std::io::Result<(Vec<RecordHash>, u64)> {
    let mut hasher = MultiHasher::new(algorithms);
    let mut buffer = vec![0; 256 * 1024];
    let mut total = 0;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => return Ok((hasher.finish(), total)),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buffer[..n]);
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(algorithm: HashAlgorithm, bytes: &[u8]) -> RecordHash {
        RecordHash::of(algorithm, bytes)
    }

    #[test]
    fn every_algorithm_must_hold_any_digest_of_one_algorithm_will_do() {
        use HashAlgorithm::*;
        let expected =
            Expected::new(&[of(Sha256, b"a"), of(Sha256, b"b"), of(Sha512, b"b")]).unwrap();
        assert_eq!(expected.algorithms(), [Sha256, Sha512]);
        assert_eq!(
            expected.check(&[of(Sha256, b"b"), of(Sha512, b"b")]),
            Ok(())
        );
        let mismatch = expected
            .check(&[of(Sha256, b"a"), of(Sha512, b"a")])
            .unwrap_err();
        assert_eq!(mismatch.algorithm, Sha512);
        assert_eq!(mismatch.actual, of(Sha512, b"a").hex());
        let mismatch = expected
            .check(&[of(Sha256, b"c"), of(Sha512, b"b")])
            .unwrap_err();
        assert_eq!(
            mismatch.expected,
            format!("{} or {}", of(Sha256, b"a").hex(), of(Sha256, b"b").hex())
        );
        assert!(
            expected.check(&[of(Sha256, b"a")]).is_err(),
            "sha512 not computed"
        );
        assert!(Expected::new(&[]).is_none());
    }

    #[test]
    fn the_key_is_sha256_when_listed_else_the_strongest() {
        use HashAlgorithm::*;
        let key = |hashes: &[RecordHash]| Expected::new(hashes).unwrap().key_algorithm();
        assert_eq!(key(&[of(Sha512, b""), of(Sha256, b"")]), Sha256);
        assert_eq!(key(&[of(Sha384, b""), of(Sha512, b"")]), Sha512);
        assert_eq!(key(&[of(Sha384, b"")]), Sha384);
    }

    #[test]
    fn hashing_a_stream_with_several_algorithms_matches_hashing_it_once_each() {
        use HashAlgorithm::*;
        let bytes = vec![7u8; 600_000];
        let (digests, size) = hash_reader(&[Sha256, Sha384], &bytes[..]).unwrap();
        assert_eq!(size, 600_000);
        assert_eq!(digests, [of(Sha256, &bytes), of(Sha384, &bytes)]);
    }
}
