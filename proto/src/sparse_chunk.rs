//! `SparseChunk` (0x15, protocol v2): a chunk whose zero pages cost one bit each. It replaces
//! `PageChunk` in v2; chunks may come in any order (each chunk index at most once per session).

use std::fmt;

use crate::chunk::PageData;
use crate::error::ProtocolError;
use crate::hex::Hex;
use crate::limits::{MAX_PAGES_PER_CHUNK, MAX_PAGE_SIZE};
use crate::reader::PayloadReader;
use crate::writer::PayloadWriter;

/// A chunk in v2 form. `pages` is the same list a `PageChunk` holds; only the wire form differs:
///
/// `first_page: u64`, `chunk_digest: bytes(32)` (the v2 chunk digest, docs/protocol.md),
/// `count: u16` (1..=`MAX_PAGES_PER_CHUNK`), `zero_map: bytes(ceil(count / 8))` (bit `i`, byte
/// `i / 8` mask `1 << (i % 8)`, set = page `i` is a zero page; bits past `count` must be clear),
/// then for each page whose bit is clear, in order: `encoding: u8` (1 raw, 2 zstd) and `data: blob`.
#[derive(Clone, PartialEq, Eq)]
pub struct SparseChunk {
    /// Index of the chunk's first page: a multiple of `pages_per_chunk`.
    pub first_page: u64,
    /// The v2 chunk digest (zero pages hashed as one tag byte, see docs/protocol.md).
    pub chunk_digest: [u8; 32],
    /// The pages; data are slices of the received frame.
    pub pages: Vec<PageData>,
}

impl SparseChunk {
    pub(crate) fn decode(r: &mut PayloadReader) -> Result<Self, ProtocolError> {
        let first_page = r.u64("first_page")?;
        let chunk_digest = r.array("chunk_digest")?;
        let count = r.u16("count")?;
        if !(1..=MAX_PAGES_PER_CHUNK).contains(&count) {
            return Err(r.invalid("count", u64::from(count)));
        }
        let count = usize::from(count);
        let map_len = count.div_ceil(8);
        let zero = r.take("zero_map", map_len)?;
        let bit = |i: usize| zero.get(i / 8).is_some_and(|b| b & (1u8 << (i % 8)) != 0);
        if let Some(last) = zero.last() {
            let used = count % 8;
            if used != 0 && last >> used != 0 {
                return Err(r.invalid("zero_map (bits past count)", u64::from(*last)));
            }
        }
        let mut pages = Vec::with_capacity(count);
        for i in 0..count {
            if bit(i) {
                pages.push(PageData::Zero);
                continue;
            }
            let encoding = r.u8("encoding")?;
            if !(1..=2).contains(&encoding) {
                // 0 too: a zero page is a bit in the map, never an entry.
                return Err(r.invalid("encoding", u64::from(encoding)));
            }
            let data = r.blob("data", MAX_PAGE_SIZE as usize)?;
            pages.push(match encoding {
                1 => PageData::Raw(data),
                _ if data.is_empty() => {
                    return Err(ProtocolError::EmptyField {
                        frame: "SparseChunk",
                        field: "data (zstd page)",
                    })
                }
                _ => PageData::Zstd(data),
            });
        }
        Ok(SparseChunk {
            first_page,
            chunk_digest,
            pages,
        })
    }

    pub(crate) fn encode(&self, w: &mut PayloadWriter) -> Result<(), ProtocolError> {
        let count = u16::try_from(self.pages.len())
            .ok()
            .filter(|n| (1..=MAX_PAGES_PER_CHUNK).contains(n))
            .ok_or_else(|| w.invalid("count", self.pages.len() as u64))?;
        w.u64(self.first_page);
        w.bytes(&self.chunk_digest);
        w.u16(count);
        let mut map = vec![0u8; self.pages.len().div_ceil(8)];
        for (i, page) in self.pages.iter().enumerate() {
            if matches!(page, PageData::Zero) {
                if let Some(b) = map.get_mut(i / 8) {
                    *b |= 1 << (i % 8);
                }
            }
        }
        w.bytes(&map);
        for page in &self.pages {
            match page {
                PageData::Zero => {}
                PageData::Zstd(data) if data.is_empty() => return Err(w.empty("data (zstd page)")),
                PageData::Raw(data) | PageData::Zstd(data) => {
                    w.u8(page.encoding());
                    w.blob("data", data, MAX_PAGE_SIZE as usize)?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for SparseChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SparseChunk")
            .field("first_page", &self.first_page)
            .field("chunk_digest", &Hex(&self.chunk_digest))
            .field("pages", &self.pages)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};

    use super::*;

    fn round_trip(chunk: &SparseChunk) -> (usize, SparseChunk) {
        let mut dst = BytesMut::new();
        chunk
            .encode(&mut PayloadWriter::new("SparseChunk", &mut dst))
            .expect("encodes");
        let len = dst.len();
        let mut r = PayloadReader::new("SparseChunk", dst.freeze());
        let back = SparseChunk::decode(&mut r).expect("decodes");
        r.finish().expect("consumed exactly");
        (len, back)
    }

    #[test]
    fn a_chunk_of_256_zero_pages_costs_32_bytes_of_map() {
        let chunk = SparseChunk {
            first_page: 0,
            chunk_digest: [1; 32],
            pages: vec![PageData::Zero; 256],
        };
        let (len, back) = round_trip(&chunk);
        assert_eq!(len, 8 + 32 + 2 + 32, "header + one bit per zero page");
        assert_eq!(back, chunk);
    }

    #[test]
    fn mixed_pages_keep_their_places() {
        let chunk = SparseChunk {
            first_page: 512,
            chunk_digest: [2; 32],
            pages: vec![
                PageData::Raw(Bytes::from(vec![7; 4096])),
                PageData::Zero,
                PageData::Zstd(Bytes::from_static(b"zz")),
            ],
        };
        assert_eq!(round_trip(&chunk).1, chunk);
    }

    #[test]
    fn stray_map_bits_and_zero_encodings_are_refused() {
        let mut p = vec![0u8; 8];
        p.extend_from_slice(&[0; 32]);
        p.extend_from_slice(&1u16.to_be_bytes());
        let mut stray = p.clone();
        stray.push(0b11); // page 0 zero, and a bit past count
        let mut r = PayloadReader::new("SparseChunk", Bytes::from(stray));
        assert!(SparseChunk::decode(&mut r).is_err());
        let mut zero_enc = p.clone();
        zero_enc.extend_from_slice(&[0, 0, 0, 0, 0]); // map 0, encoding 0: not allowed
        let mut r = PayloadReader::new("SparseChunk", Bytes::from(zero_enc));
        let err = SparseChunk::decode(&mut r).expect_err("encoding 0");
        assert!(err.to_string().contains("encoding"), "{err}");
    }
}
