//! Page descriptors and page data (2.7): encode/decode `page_desc`, compress and decompress pages.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::{KdumpError, FLAG_LZO, FLAG_SNAPPY, FLAG_ZLIB, FLAG_ZSTD, PAGE_DESC_LEN};
use crate::le::{i64_at, put, u32_at, u64_at};

/// `struct page_desc` (24 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageDesc {
    /// Absolute file offset of the page data; 0 means "never written" (2.10).
    pub offset: i64,
    /// Bytes of data at `offset` (≤ block size).
    pub size: u32,
    /// Compression bit, or 0 for raw.
    pub flags: u32,
    /// Always 0.
    pub page_flags: u64,
}

impl PageDesc {
    /// Encodes to 24 bytes.
    pub fn encode(&self) -> [u8; PAGE_DESC_LEN as usize] {
        let mut b = [0u8; PAGE_DESC_LEN as usize];
        put(&mut b, 0, &self.offset.to_le_bytes());
        put(&mut b, 8, &self.size.to_le_bytes());
        put(&mut b, 12, &self.flags.to_le_bytes());
        put(&mut b, 16, &self.page_flags.to_le_bytes());
        b
    }

    /// Decodes 24 bytes.
    pub fn decode(b: &[u8; PAGE_DESC_LEN as usize]) -> PageDesc {
        PageDesc {
            offset: i64_at(b, 0),
            size: u32_at(b, 8),
            flags: u32_at(b, 12),
            page_flags: u64_at(b, 16),
        }
    }
}

/// True if every byte of `page` is zero (dump level bit 1, 4.9).
pub fn is_zero_page(page: &[u8]) -> bool {
    // OR-folding 64-byte runs vectorises well and still stops at the first non-zero run.
    page.chunks(64)
        .all(|run| run.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

thread_local! {
    /// Per-thread zlib state: deflate's tables are costly to set up for every 4 KiB page.
    static ZLIB: RefCell<Option<Compress>> = const { RefCell::new(None) };
    static INFLATE: RefCell<Option<Decompress>> = const { RefCell::new(None) };
    static ZSTD_D: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Zlib-wrapped deflate at level 1 (`Z_BEST_SPEED`), what makedumpfile's `compress2` writes
/// (2.7). The caller stores the page raw unless the result is strictly smaller than a page.
pub fn compress_zlib(page: &[u8]) -> Vec<u8> {
    ZLIB.with(|cell| {
        let mut slot = cell.borrow_mut();
        let c = slot.get_or_insert_with(|| Compress::new(Compression::fast(), true));
        c.reset();
        // zlib's bound for stored blocks: 5 bytes per 16 KiB block plus header and trailer.
        let mut out = Vec::with_capacity(page.len() + page.len() / 1000 + 64);
        loop {
            let consumed = c.total_in() as usize;
            let input = page.get(consumed..).unwrap_or_default();
            match c.compress_vec(input, &mut out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => return out,
                Ok(_) => out.reserve(out.capacity().max(64)),
                // Deflating from a slice into a Vec has no failure mode; start over on a
                // fresh stream if the library ever reports one.
                Err(_) => {
                    *c = Compress::new(Compression::fast(), true);
                    out.clear();
                }
            }
        }
    })
}

/// One zstd frame at level 1, with the content size recorded (makedumpfile's
/// `ZSTD_compressCCtx`). Only fails if zstd cannot allocate its context.
pub fn compress_zstd(page: &[u8]) -> std::io::Result<Vec<u8>> {
    zstd::bulk::compress(page, 1)
}

/// Decodes one page's stored data per its descriptor `flags` (2.7): raw (flags 0, `data` must be
/// exactly `page_size` bytes), zlib or zstd. The result must be exactly `page_size` bytes; no
/// more than `page_size + 1` bytes are ever produced, so a decompression bomb costs nothing.
/// LZO and snappy pages are refused as unsupported.
pub fn decompress_page(flags: u32, data: &[u8], page_size: usize) -> Result<Vec<u8>, KdumpError> {
    const KNOWN: u32 = FLAG_ZLIB | FLAG_LZO | FLAG_SNAPPY | FLAG_ZSTD;
    if flags & !KNOWN != 0 || (flags & KNOWN).count_ones() > 1 {
        return Err(KdumpError::BadPageFlags { flags });
    }
    match flags {
        0 => check_len("raw", data.to_vec(), page_size),
        FLAG_ZLIB => inflate(data, page_size),
        FLAG_ZSTD => unzstd(data, page_size),
        _ => Err(KdumpError::UnsupportedCompression { flags }),
    }
}

fn check_len(kind: &'static str, page: Vec<u8>, page_size: usize) -> Result<Vec<u8>, KdumpError> {
    if page.len() > page_size {
        Err(KdumpError::PageTooLong { kind, page_size })
    } else if page.len() < page_size {
        Err(KdumpError::PageTooShort {
            kind,
            len: page.len(),
            page_size,
        })
    } else {
        Ok(page)
    }
}

fn inflate(data: &[u8], page_size: usize) -> Result<Vec<u8>, KdumpError> {
    INFLATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let d = slot.get_or_insert_with(|| Decompress::new(true));
        d.reset(true);
        let limit = page_size.saturating_add(1);
        let mut out = Vec::with_capacity(limit);
        let status = d
            .decompress_vec(data, &mut out, FlushDecompress::Finish)
            .map_err(|e| KdumpError::CorruptPage {
                kind: "zlib",
                detail: e.to_string(),
            });
        if out.len() > page_size {
            return Err(KdumpError::PageTooLong {
                kind: "zlib",
                page_size,
            });
        }
        match status? {
            Status::StreamEnd => check_len("zlib", out, page_size),
            _ => Err(KdumpError::CorruptPage {
                kind: "zlib",
                detail: format!("stream ends early after {} bytes of output", out.len()),
            }),
        }
    })
}

fn unzstd(data: &[u8], page_size: usize) -> Result<Vec<u8>, KdumpError> {
    ZSTD_D.with(|cell| {
        let mut slot = cell.borrow_mut();
        let d = match &mut *slot {
            Some(d) => d,
            empty => empty.insert(zstd::bulk::Decompressor::new().map_err(|e| {
                KdumpError::CorruptPage {
                    kind: "zstd",
                    detail: format!("cannot create a decompression context: {e}"),
                }
            })?),
        };
        let mut out = Vec::with_capacity(page_size);
        match d.decompress_to_buffer(data, &mut out) {
            Ok(_) => check_len("zstd", out, page_size),
            // zstd refuses to write past the buffer: a frame that inflates further lands here.
            Err(e) if e.to_string().contains("too small") => Err(KdumpError::PageTooLong {
                kind: "zstd",
                page_size,
            }),
            Err(e) => Err(KdumpError::CorruptPage {
                kind: "zstd",
                detail: e.to_string(),
            }),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_page() -> Vec<u8> {
        b"the quick brown fox jumps over the lazy dog; "
            .iter()
            .cycle()
            .take(4096)
            .copied()
            .collect()
    }

    #[test]
    fn desc_round_trip() {
        let d = PageDesc {
            offset: 0x1234_5678,
            size: 999,
            flags: FLAG_ZLIB,
            page_flags: 0,
        };
        let b = d.encode();
        assert_eq!(&b[..8], &0x1234_5678i64.to_le_bytes());
        assert_eq!(PageDesc::decode(&b), d);
    }

    #[test]
    fn zlib_and_zstd_round_trip() {
        let page = text_page();
        let z = compress_zlib(&page);
        assert!(z.len() < 4096);
        assert_eq!(z[0], 0x78, "zlib header");
        assert_eq!(decompress_page(FLAG_ZLIB, &z, 4096).expect("zlib"), page);
        let s = compress_zstd(&page).expect("zstd");
        assert_eq!(decompress_page(FLAG_ZSTD, &s, 4096).expect("zstd"), page);
        assert_eq!(decompress_page(0, &page, 4096).expect("raw"), page);
        // Repeated use of the per-thread state.
        for _ in 0..3 {
            assert_eq!(
                decompress_page(FLAG_ZLIB, &compress_zlib(&page), 4096).expect("zlib"),
                page
            );
        }
    }

    #[test]
    fn wrong_sizes_are_refused() {
        let big = vec![7u8; 8192];
        let small = vec![7u8; 100];
        for (flags, data) in [
            (FLAG_ZLIB, compress_zlib(&big)),
            (FLAG_ZSTD, compress_zstd(&big).expect("zstd")),
        ] {
            assert!(matches!(
                decompress_page(flags, &data, 4096),
                Err(KdumpError::PageTooLong { .. })
            ));
        }
        for (flags, data) in [
            (FLAG_ZLIB, compress_zlib(&small)),
            (FLAG_ZSTD, compress_zstd(&small).expect("zstd")),
            (0, small.clone()),
        ] {
            assert!(matches!(
                decompress_page(flags, &data, 4096),
                Err(KdumpError::PageTooShort { len: 100, .. })
            ));
        }
        assert!(decompress_page(0, &big, 4096).is_err());
    }

    #[test]
    fn bombs_and_garbage() {
        let bomb = vec![0u8; 64 << 20];
        let z = compress_zlib(&bomb);
        assert!(matches!(
            decompress_page(FLAG_ZLIB, &z, 4096),
            Err(KdumpError::PageTooLong { .. })
        ));
        let s = compress_zstd(&bomb).expect("zstd");
        assert!(matches!(
            decompress_page(FLAG_ZSTD, &s, 4096),
            Err(KdumpError::PageTooLong { .. })
        ));
        let page = text_page();
        let z = compress_zlib(&page);
        assert!(decompress_page(FLAG_ZLIB, &z[..z.len() / 2], 4096).is_err());
        assert!(decompress_page(FLAG_ZSTD, b"not zstd at all", 4096).is_err());
        assert!(decompress_page(FLAG_ZLIB, b"not zlib at all", 4096).is_err());
        assert!(matches!(
            decompress_page(FLAG_LZO, &z, 4096),
            Err(KdumpError::UnsupportedCompression { .. })
        ));
        assert!(matches!(
            decompress_page(FLAG_SNAPPY, &z, 4096),
            Err(KdumpError::UnsupportedCompression { .. })
        ));
        assert!(matches!(
            decompress_page(FLAG_ZLIB | FLAG_ZSTD, &z, 4096),
            Err(KdumpError::BadPageFlags { .. })
        ));
        assert!(matches!(
            decompress_page(0x40, &z, 4096),
            Err(KdumpError::BadPageFlags { .. })
        ));
        let msg = decompress_page(FLAG_SNAPPY, &z, 4096)
            .expect_err("snappy")
            .to_string();
        assert!(msg.contains("unsupported compression"), "{msg}");
    }

    #[test]
    fn zero_pages() {
        assert!(is_zero_page(&[0u8; 4096]));
        assert!(is_zero_page(&[0u8; 13]));
        let mut p = [0u8; 4096];
        p[4095] = 1;
        assert!(!is_zero_page(&p));
        p[4095] = 0;
        p[0] = 1;
        assert!(!is_zero_page(&p));
    }
}
