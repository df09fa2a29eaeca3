//! crashdrop's digests (protocol.md "Identity of a dump" and "Digests"): `DumpId`,
//! `chunk_digest` and `dump_digest`, all SHA-256.

use sha2::{Digest, Sha256};

/// Domain prefix of a `DumpId`.
pub const DUMP_ID_PREFIX: &[u8] = b"crashdrop-dump-id-v1";
/// Domain prefix of a `dump_digest`.
pub const DUMP_DIGEST_PREFIX: &[u8] = b"crashdrop-dump-digest-v1";

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

/// `chunk_digest`: SHA-256 over the uncompressed bytes of a chunk's pages in index order.
#[derive(Clone, Debug, Default)]
pub struct ChunkHasher {
    hasher: Sha256,
}

impl ChunkHasher {
    /// An empty chunk.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one page's bytes.
    pub fn update(&mut self, page: &[u8]) {
        self.hasher.update(page);
    }

    /// Adds `page_size` zero bytes (a zero page) without allocating.
    pub fn update_zero_page(&mut self, page_size: usize) {
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
    /// Starts a dump digest.
    pub fn new(dump_id: &[u8; 32], bitmap1_sha256: &[u8; 32], bitmap2_sha256: &[u8; 32]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(DUMP_DIGEST_PREFIX);
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
