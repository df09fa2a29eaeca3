//! crashdrop's digests (protocol.md "Identity of a dump", "Digests" and, for version 2, "Zero
//! pages"): `DumpId`, `chunk_digest` and `dump_digest`, all SHA-256, in both digest versions.
//! Sender, receiver and `crashdropd verify` all use this one implementation.

use sha2::{Digest, Sha256};

use crate::kdump::is_zero_page;

/// Domain prefix of a `DumpId`.
pub const DUMP_ID_PREFIX: &[u8] = b"crashdrop-dump-id-v1";
/// Domain prefix of a `dump_digest`.
pub const DUMP_DIGEST_PREFIX: &[u8] = b"crashdrop-dump-digest-v1";

/// Domain prefix of a version-2 `dump_digest`.
pub const DUMP_DIGEST_PREFIX_V2: &[u8] = b"crashdrop-dump-digest-v2";

/// Which definition of the chunk and dump digests a dump uses: that of the protocol version it
/// was sent in (`dump.json` records it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DigestVersion {
    /// SHA-256 over the pages' bytes; zero pages hashed as `page_size` zeros.
    #[default]
    V1,
    /// Per page a tag byte: `0x00` for a page of zeros (nothing else), `0x01` and the page's
    /// bytes otherwise. Defined by content, so a raw page of zeros hashes as `0x00` too.
    V2,
}

impl DigestVersion {
    /// The digest version of a protocol version (1 or 2), `None` for another.
    pub fn of_protocol(version: u16) -> Option<DigestVersion> {
        match version {
            1 => Some(DigestVersion::V1),
            2 => Some(DigestVersion::V2),
            _ => None,
        }
    }

    /// The number recorded in `dump.json` (`digest_version`).
    pub fn as_u8(self) -> u8 {
        match self {
            DigestVersion::V1 => 1,
            DigestVersion::V2 => 2,
        }
    }
}

/// Zero bytes fed to the hasher for zero pages, so no buffer is allocated per page.
static ZEROS: [u8; 4096] = [0; 4096];

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// `DumpId`: SHA-256 of `crashdrop-dump-id-v1`, the 64-byte ELF header, the program header
/// table, the whole PT_NOTE segment and the dump level byte.
pub fn dump_id(
    elf_header: &[u8],
    program_headers: &[u8],
    notes: &[u8],
    dump_level: u8,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DUMP_ID_PREFIX);
    h.update(elf_header);
    h.update(program_headers);
    h.update(notes);
    h.update([dump_level]);
    h.finalize().into()
}

/// `chunk_digest`: version 1, SHA-256 over the uncompressed bytes of a chunk's pages in index
/// order; version 2, the same with each page tagged and zero pages reduced to their tag.
#[derive(Clone, Debug, Default)]
pub struct ChunkHasher {
    hasher: Sha256,
    version: DigestVersion,
}

impl ChunkHasher {
    /// An empty chunk, version-1 digest.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty chunk with the digest of `version`.
    pub fn with_version(version: DigestVersion) -> Self {
        ChunkHasher {
            hasher: Sha256::new(),
            version,
        }
    }

    /// Adds one page's bytes (in version 2, a page of zeros counts as a zero page).
    pub fn update(&mut self, page: &[u8]) {
        match self.version {
            DigestVersion::V1 => self.hasher.update(page),
            DigestVersion::V2 if is_zero_page(page) => self.hasher.update([0x00]),
            DigestVersion::V2 => {
                self.hasher.update([0x01]);
                self.hasher.update(page);
            }
        }
    }

    /// Adds a zero page of `page_size` bytes without allocating (version 2: its tag alone).
    pub fn update_zero_page(&mut self, page_size: usize) {
        if self.version == DigestVersion::V2 {
            self.hasher.update([0x00]);
            return;
        }
        let mut left = page_size;
        while left > 0 {
            let n = left.min(ZEROS.len());
            self.hasher.update(&ZEROS[..n]);
            left -= n;
        }
    }

    /// The chunk digest.
    pub fn finish(self) -> [u8; 32] {
        self.hasher.finalize().into()
    }
}

/// `dump_digest`: SHA-256 of `crashdrop-dump-digest-v1`, the `DumpId`, SHA-256 of each bitmap's
/// bytes, then every `chunk_digest` in chunk order.
#[derive(Clone, Debug)]
pub struct DumpDigest {
    hasher: Sha256,
}

impl DumpDigest {
    /// Starts a version-1 dump digest.
    pub fn new(dump_id: &[u8; 32], bitmap1_sha256: &[u8; 32], bitmap2_sha256: &[u8; 32]) -> Self {
        Self::with_version(DigestVersion::V1, dump_id, bitmap1_sha256, bitmap2_sha256)
    }

    /// Starts a dump digest of `version`. In both versions chunk digests are pushed in chunk
    /// *index* order (version 2 chunks may arrive in any order; the digest does not).
    pub fn with_version(
        version: DigestVersion,
        dump_id: &[u8; 32],
        bitmap1_sha256: &[u8; 32],
        bitmap2_sha256: &[u8; 32],
    ) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(match version {
            DigestVersion::V1 => DUMP_DIGEST_PREFIX,
            DigestVersion::V2 => DUMP_DIGEST_PREFIX_V2,
        });
        hasher.update(dump_id);
        hasher.update(bitmap1_sha256);
        hasher.update(bitmap2_sha256);
        DumpDigest { hasher }
    }

    /// Adds the next chunk's digest.
    pub fn push_chunk(&mut self, chunk_digest: &[u8; 32]) {
        self.hasher.update(chunk_digest);
    }

    /// The dump digest.
    pub fn finish(self) -> [u8; 32] {
        self.hasher.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_answer() {
        let d = sha256(b"abc");
        assert_eq!(d[..4], [0xba, 0x78, 0x16, 0xbf]);
    }

    #[test]
    fn dump_id_is_prefix_then_fields() {
        let mut all = DUMP_ID_PREFIX.to_vec();
        all.extend_from_slice(&[1; 64]);
        all.extend_from_slice(&[2; 56]);
        all.extend_from_slice(&[3; 10]);
        all.push(31);
        assert_eq!(dump_id(&[1; 64], &[2; 56], &[3; 10], 31), sha256(&all));
        assert_ne!(dump_id(&[1; 64], &[2; 56], &[3; 10], 1), sha256(&all));
    }

    #[test]
    fn zero_page_equals_explicit_zeros() {
        for size in [0usize, 100, 4096, 65536, 5000] {
            let mut a = ChunkHasher::new();
            a.update(b"x");
            a.update_zero_page(size);
            let mut b = ChunkHasher::new();
            b.update(b"x");
            b.update(&vec![0; size]);
            assert_eq!(a.finish(), b.finish());
        }
    }

    #[test]
    fn v2_chunk_digest_tags_pages_and_is_defined_by_content() {
        let data = vec![7u8; 4096];
        let zeros = vec![0u8; 4096];
        let mut a = ChunkHasher::with_version(DigestVersion::V2);
        a.update(&data);
        a.update_zero_page(4096);
        // A page of zeros that crossed the wire raw hashes like a zero page.
        a.update(&zeros);
        let mut want = vec![0x01];
        want.extend_from_slice(&data);
        want.extend_from_slice(&[0x00, 0x00]);
        assert_eq!(a.finish(), sha256(&want));
        let mut v1 = ChunkHasher::new();
        v1.update(&data);
        assert_ne!(v1.finish(), sha256(&want), "the versions differ");
    }

    #[test]
    fn v2_dump_digest_has_its_own_prefix() {
        let mut d = DumpDigest::with_version(DigestVersion::V2, &[1; 32], &[2; 32], &[3; 32]);
        d.push_chunk(&[4; 32]);
        let mut all = DUMP_DIGEST_PREFIX_V2.to_vec();
        for part in [[1u8; 32], [2; 32], [3; 32], [4; 32]] {
            all.extend_from_slice(&part);
        }
        assert_eq!(d.finish(), sha256(&all));
        assert_eq!(DigestVersion::of_protocol(2), Some(DigestVersion::V2));
        assert_eq!(DigestVersion::of_protocol(3), None);
    }

    #[test]
    fn dump_digest_layout() {
        let (id, b1, b2, c1, c2) = ([1; 32], [2; 32], [3; 32], [4; 32], [5; 32]);
        let mut d = DumpDigest::new(&id, &b1, &b2);
        d.push_chunk(&c1);
        d.push_chunk(&c2);
        let mut all = DUMP_DIGEST_PREFIX.to_vec();
        for part in [id, b1, b2, c1, c2] {
            all.extend_from_slice(&part);
        }
        assert_eq!(d.finish(), sha256(&all));
    }
}
