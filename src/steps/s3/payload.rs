//! Upload payloads made on the fly: a seeded pseudo-random byte stream cut into parts and
//! hashed with SHA-256 as it goes, so a 64 MiB upload never holds more than one part; and
//! parsing of expected checksums.

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// SplitMix64: fast, seedable, incompressible enough for storage payloads (not for secrets).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let last = self.next().to_le_bytes();
            rest.copy_from_slice(&last[..rest.len()]);
        }
    }
}

/// A payload of `size` bytes handed out in chunks, hashed while it is produced.
pub struct Payload {
    source: Source,
    remaining: u64,
    size: u64,
    hasher: Sha256,
}

enum Source {
    Random(SplitMix64),
    Fixed(Bytes),
}

impl Payload {
    /// `size` random bytes from `seed`.
    pub fn random(size: u64, seed: u64) -> Payload {
        Payload {
            source: Source::Random(SplitMix64(seed)),
            remaining: size,
            size,
            hasher: Sha256::new(),
        }
    }

    /// Fixed bytes (a `body:` from the scenario).
    pub fn fixed(body: Bytes) -> Payload {
        let size = body.len() as u64;
        Payload {
            source: Source::Fixed(body),
            remaining: size,
            size,
            hasher: Sha256::new(),
        }
    }

    /// Total size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The next chunk of at most `max` bytes, or `None` at the end.
    pub fn next_chunk(&mut self, max: usize) -> Option<Bytes> {
        if self.remaining == 0 {
            return None;
        }
        let n = (self.remaining.min(max as u64)) as usize;
        let chunk = match &mut self.source {
            Source::Random(rng) => {
                let mut buf = vec![0u8; n];
                rng.fill(&mut buf);
                Bytes::from(buf)
            }
            Source::Fixed(b) => b.split_to(n),
        };
        self.hasher.update(&chunk);
        self.remaining -= n as u64;
        Some(chunk)
    }

    /// Hex SHA-256 of everything handed out (call after the last chunk).
    pub fn finish(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}

/// SHA-256 and length of a stream read chunk by chunk, keeping at most `keep` bytes of it.
pub struct Digester {
    hasher: Sha256,
    pub size: u64,
    pub head: Vec<u8>,
    pub truncated: bool,
    keep: usize,
}

impl Digester {
    pub fn new(keep: usize) -> Digester {
        Digester {
            hasher: Sha256::new(),
            size: 0,
            head: Vec::new(),
            truncated: false,
            keep,
        }
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        let room = self.keep.saturating_sub(self.head.len());
        if chunk.len() > room {
            self.truncated = true;
        }
        self.head.extend_from_slice(&chunk[..room.min(chunk.len())]);
    }

    pub fn finish(self) -> (String, u64, Vec<u8>, bool) {
        (
            hex::encode(self.hasher.finalize()),
            self.size,
            self.head,
            self.truncated,
        )
    }
}

/// Normalises an expected checksum: `sha256:ABC…` or `abc…` → lower-case hex; `None` when it is
/// not 64 hex digits.
pub fn parse_checksum(s: &str) -> Option<String> {
    let t = s.trim();
    let hex = t
        .strip_prefix("sha256:")
        .or_else(|| t.strip_prefix("SHA256:"))
        .unwrap_or(t);
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(mut p: Payload, part: usize) -> (Vec<u8>, String) {
        let mut all = Vec::new();
        while let Some(c) = p.next_chunk(part) {
            assert!(c.len() <= part);
            all.extend_from_slice(&c);
        }
        (all, p.finish())
    }

    #[test]
    fn random_payloads_are_reproducible_from_the_seed_and_hashed_whole() {
        let (a, ha) = drain(Payload::random(100_003, 7), 4096);
        let (b, hb) = drain(Payload::random(100_003, 7), 1000);
        let (c, _) = drain(Payload::random(100_003, 8), 4096);
        assert_eq!(a.len(), 100_003);
        // Parts are whole multiples of 8 bytes (MiB-sized), so the stream does not depend on them.
        assert!(a == b, "chunking does not change the bytes");
        assert!(a != c, "another seed gives other bytes");
        assert_eq!(ha, hb);
        assert_eq!(ha, hex::encode(Sha256::digest(&a)));
    }

    #[test]
    fn fixed_bodies_are_cut_and_hashed() {
        let (all, h) = drain(Payload::fixed(Bytes::from_static(b"hello world")), 4);
        assert_eq!(all, b"hello world");
        assert_eq!(h, hex::encode(Sha256::digest(b"hello world")));
    }

    #[test]
    fn the_digester_keeps_only_the_head() {
        let mut d = Digester::new(5);
        d.update(b"abc");
        d.update(b"defg");
        let (h, size, head, truncated) = d.finish();
        assert_eq!((size, head.as_slice(), truncated), (7, &b"abcde"[..], true));
        assert_eq!(h, hex::encode(Sha256::digest(b"abcdefg")));
    }

    #[test]
    fn checksums_parse_with_or_without_prefix() {
        let hex = "A".repeat(64);
        assert_eq!(
            parse_checksum(&format!("sha256:{hex}")),
            Some("a".repeat(64))
        );
        assert_eq!(parse_checksum(&hex), Some("a".repeat(64)));
        assert_eq!(parse_checksum("abc"), None);
        assert_eq!(parse_checksum(&"g".repeat(64)), None);
    }
}
