//! Page transfer: `PageChunk` (0x07, consecutive pages and their digest) and `ChunkAck` (0x08).

use std::fmt;

use bytes::Bytes;

use crate::error::ProtocolError;
use crate::hex::Hex;
use crate::limits::{MAX_PAGES_PER_CHUNK, MAX_PAGE_SIZE};
use crate::reader::PayloadReader;
use crate::writer::PayloadWriter;

/// Bytes of a `PageChunk` before its pages: type byte, `first_page`, `chunk_digest`, `count`.
const CHUNK_HEADER_LEN: u64 = 1 + 8 + 32 + 2;

/// Bytes of one page on the wire besides its data: `encoding` + blob length.
const PAGE_OVERHEAD: u64 = 1 + 4;

/// One page of a chunk, as it crosses the wire.
///
/// The codec knows no `page_size` (that is in the manifest), so it bounds page data only by
/// `MAX_PAGE_SIZE`; the receiver checks that `Raw` is exactly `page_size` bytes and that `Zstd`
/// decompresses to exactly that.
#[derive(Clone, PartialEq, Eq)]
pub enum PageData {
    /// A page of zeros; no data on the wire (encoding 0).
    Zero,
    /// The page verbatim, `page_size` bytes (encoding 1).
    Raw(Bytes),
    /// One zstd frame that decompresses to the page; never empty (encoding 2).
    Zstd(Bytes),
}

impl PageData {
    /// The wire encoding byte.
    pub fn encoding(&self) -> u8 {
        match self {
            PageData::Zero => 0,
            PageData::Raw(_) => 1,
            PageData::Zstd(_) => 2,
        }
    }

    /// The bytes carried on the wire (empty for `Zero`).
    pub fn data(&self) -> &[u8] {
        match self {
            PageData::Zero => &[],
            PageData::Raw(data) | PageData::Zstd(data) => data,
        }
    }

    fn decode(r: &mut PayloadReader) -> Result<Self, ProtocolError> {
        let encoding = r.u8("encoding")?;
        let data = r.blob("data", MAX_PAGE_SIZE as usize)?;
        match encoding {
            0 if data.is_empty() => Ok(PageData::Zero),
            0 => Err(r.invalid("data length (zero page)", data.len() as u64)),
            1 => Ok(PageData::Raw(data)),
            2 if data.is_empty() => Err(ProtocolError::EmptyField {
                frame: "PageChunk",
                field: "data (zstd page)",
            }),
            2 => Ok(PageData::Zstd(data)),
            other => Err(r.invalid("encoding", u64::from(other))),
        }
    }

    fn encode(&self, w: &mut PayloadWriter) -> Result<(), ProtocolError> {
        if let PageData::Zstd(data) = self {
            if data.is_empty() {
                return Err(w.empty("data (zstd page)"));
            }
        }
        w.u8(self.encoding());
        w.blob("data", self.data(), MAX_PAGE_SIZE as usize)
    }
}

impl fmt::Debug for PageData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageData::Zero => f.write_str("Zero"),
            PageData::Raw(data) => write!(f, "Raw({} bytes)", data.len()),
            PageData::Zstd(data) => write!(f, "Zstd({} bytes)", data.len()),
        }
    }
}

/// `pages.len()` consecutive pages starting at index `first_page` (1..=`MAX_PAGES_PER_CHUNK`).
#[derive(Clone, PartialEq, Eq)]
pub struct PageChunk {
    /// Index of the chunk's first page: a multiple of `pages_per_chunk`.
    pub first_page: u64,
    /// SHA-256 over the chunk's pages, uncompressed, in index order.
    pub chunk_digest: [u8; 32],
    /// The pages; their data are slices of the received frame, not copies.
    pub pages: Vec<PageData>,
}

impl PageChunk {
    /// The largest frame (type byte + payload) a chunk of `pages` raw pages of `page_size` bytes
    /// can take. A manifest whose `pages_per_chunk` and `page_size` give more than `MAX_FRAME_LEN`
    /// is invalid, since its chunks could not always be sent.
    pub fn max_encoded_len(pages: u16, page_size: u32) -> usize {
        let per_page = PAGE_OVERHEAD.saturating_add(u64::from(page_size));
        let len = CHUNK_HEADER_LEN.saturating_add(per_page.saturating_mul(u64::from(pages)));
        usize::try_from(len).unwrap_or(usize::MAX)
    }

    pub(crate) fn decode(r: &mut PayloadReader) -> Result<Self, ProtocolError> {
        let first_page = r.u64("first_page")?;
        let chunk_digest = r.array("chunk_digest")?;
        let count = r.u16("count")?;
        if !(1..=MAX_PAGES_PER_CHUNK).contains(&count) {
            return Err(r.invalid("count", u64::from(count)));
        }
        // Allocate for no more pages than the bytes present could hold.
        let fit = r
            .remaining()
            .checked_div(PAGE_OVERHEAD as usize)
            .unwrap_or(0);
        let mut pages = Vec::with_capacity(usize::from(count).min(fit));
        for _ in 0..count {
            pages.push(PageData::decode(r)?);
        }
        Ok(PageChunk {
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
        self.pages.iter().try_for_each(|page| page.encode(w))
    }
}

impl fmt::Debug for PageChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageChunk")
            .field("first_page", &self.first_page)
            .field("chunk_digest", &Hex(&self.chunk_digest))
            .field("pages", &self.pages)
            .finish()
    }
}

/// The receiver's cumulative acknowledgement: every page index below `durable_pages` is written
/// and fsynced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkAck {
    /// Pages `0..durable_pages` are on disk.
    pub durable_pages: u64,
}

impl ChunkAck {
    pub(crate) fn decode(r: &mut PayloadReader) -> Result<Self, ProtocolError> {
        Ok(ChunkAck {
            durable_pages: r.u64("durable_pages")?,
        })
    }

    pub(crate) fn encode(&self, w: &mut PayloadWriter) -> Result<(), ProtocolError> {
        w.u64(self.durable_pages);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    fn decode(payload: Vec<u8>) -> Result<PageChunk, ProtocolError> {
        let mut r = PayloadReader::new("PageChunk", Bytes::from(payload));
        let chunk = PageChunk::decode(&mut r)?;
        r.finish()?;
        Ok(chunk)
    }

    fn header(count: u16) -> Vec<u8> {
        let mut p = vec![0, 0, 0, 0, 0, 0, 1, 0];
        p.extend_from_slice(&[9; 32]);
        p.extend_from_slice(&count.to_be_bytes());
        p
    }

    fn page(encoding: u8, data: &[u8]) -> Vec<u8> {
        let mut p = vec![encoding];
        p.extend_from_slice(&u32::try_from(data.len()).expect("small").to_be_bytes());
        p.extend_from_slice(data);
        p
    }

    #[test]
    fn decodes_all_three_encodings() {
        let mut p = header(3);
        p.extend(page(0, &[]));
        p.extend(page(1, &[5; 4096]));
        p.extend(page(2, &[1, 2, 3]));
        let chunk = decode(p).expect("valid");
        assert_eq!(chunk.first_page, 256);
        assert_eq!(chunk.pages.len(), 3);
        assert_eq!(chunk.pages[0], PageData::Zero);
        assert_eq!(chunk.pages[1].data().len(), 4096);
        assert_eq!(
            chunk.pages[2],
            PageData::Zstd(Bytes::from_static(&[1, 2, 3]))
        );
    }

    #[test]
    fn count_must_be_1_to_max() {
        for count in [0, MAX_PAGES_PER_CHUNK + 1, u16::MAX] {
            assert!(matches!(
                decode(header(count)),
                Err(ProtocolError::InvalidValue { field: "count", value, .. }) if value == u64::from(count)
            ));
        }
        // A count larger than the pages present is a truncation, and allocates for what is there.
        let mut p = header(MAX_PAGES_PER_CHUNK);
        p.extend(page(0, &[]));
        assert!(matches!(
            decode(p),
            Err(ProtocolError::Truncated {
                field: "encoding",
                ..
            })
        ));
    }

    #[test]
    fn page_data_rules() {
        let mut p = header(1);
        p.extend(page(0, &[0]));
        assert!(matches!(
            decode(p),
            Err(ProtocolError::InvalidValue { value: 1, .. })
        ));

        let mut p = header(1);
        p.extend(page(2, &[]));
        assert!(matches!(decode(p), Err(ProtocolError::EmptyField { .. })));

        let mut p = header(1);
        p.extend(page(3, &[1]));
        assert!(matches!(
            decode(p),
            Err(ProtocolError::InvalidValue {
                field: "encoding",
                value: 3,
                ..
            })
        ));

        let mut p = header(1);
        p.extend(page(1, &vec![0; MAX_PAGE_SIZE as usize + 1]));
        assert!(matches!(
            decode(p),
            Err(ProtocolError::FieldTooLong { field: "data", .. })
        ));

        // An empty raw page is the receiver's to reject (it knows page_size), not the codec's.
        let mut p = header(1);
        p.extend(page(1, &[]));
        assert_eq!(
            decode(p).expect("codec accepts").pages[0],
            PageData::Raw(Bytes::new())
        );
    }

    #[test]
    fn encoder_refuses_what_the_decoder_would_reject() {
        let mut dst = BytesMut::new();
        let mut w = PayloadWriter::new("PageChunk", &mut dst);
        let mut chunk = PageChunk {
            first_page: 0,
            chunk_digest: [0; 32],
            pages: vec![],
        };
        assert!(matches!(
            chunk.encode(&mut w),
            Err(ProtocolError::InvalidValue {
                field: "count",
                value: 0,
                ..
            })
        ));
        chunk.pages = vec![PageData::Zero; 257];
        assert!(chunk.encode(&mut w).is_err());
        chunk.pages = vec![PageData::Zstd(Bytes::new())];
        assert!(matches!(
            chunk.encode(&mut w),
            Err(ProtocolError::EmptyField { .. })
        ));
    }

    #[test]
    fn max_encoded_len() {
        assert_eq!(PageChunk::max_encoded_len(1, 4096), 43 + 5 + 4096);
        assert_eq!(PageChunk::max_encoded_len(256, 4096), 43 + 256 * 4101);
    }

    #[test]
    fn debug_shows_lengths_only() {
        let chunk = PageChunk {
            first_page: 0,
            chunk_digest: [0xcd; 32],
            pages: vec![
                PageData::Zero,
                PageData::Raw(Bytes::from(vec![0x41; 4096])),
                PageData::Zstd(Bytes::from(vec![0x42; 17])),
            ],
        };
        let shown = format!("{chunk:?}");
        assert!(
            shown.ends_with("pages: [Zero, Raw(4096 bytes), Zstd(17 bytes)] }"),
            "{shown}"
        );
        assert!(shown.contains(&"cd".repeat(32)));
        assert!(!shown.contains("AAAA"));
    }
}
