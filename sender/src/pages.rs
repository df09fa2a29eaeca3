//! `ChunkReader`: reads the dumpable pages in index order, a chunk at a time, and encodes them
//! for the wire (zero, raw, or one zstd frame per page) with the chunk's digest.

use bytes::Bytes;
use crashdrop_formats::digest::{ChunkHasher, DigestVersion};
use crashdrop_formats::kdump::is_zero_page;
use crashdrop_proto::{PageChunk, PageData};

use crate::error::SendError;
use crate::source::DumpSource;

/// zstd level 1: what makedumpfile uses, and the fastest on one CPU.
const ZSTD_LEVEL: i32 = 1;

/// Walks the 2nd bitmap and the vmcore in step. Memory: one chunk of pages plus its encoding.
pub struct ChunkReader<'a> {
    source: &'a DumpSource,
    pages_per_chunk: u64,
    /// Next page index to read, and the pfn search position that goes with it.
    next_index: u64,
    next_pfn: u64,
    buffer: Vec<u8>,
    compressor: zstd::bulk::Compressor<'static>,
    /// The chunk digest's definition (that of the protocol version spoken).
    digests: DigestVersion,
}

/// One chunk read from the vmcore, in wire form.
pub struct ReadChunk {
    pub chunk: PageChunk,
    /// Bytes of page data it puts on the wire (compressed or raw pages; zero pages are free).
    pub wire_bytes: u64,
}

impl<'a> ChunkReader<'a> {
    pub fn new(
        source: &'a DumpSource,
        pages_per_chunk: u16,
        digests: DigestVersion,
    ) -> Result<ChunkReader<'a>, SendError> {
        let compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL)
            .map_err(|e| SendError::Other(format!("zstd: {e}")))?;
        Ok(ChunkReader {
            source,
            pages_per_chunk: u64::from(pages_per_chunk),
            next_index: 0,
            next_pfn: 0,
            buffer: vec![0; usize::from(pages_per_chunk) * source.page_size()],
            compressor,
            digests,
        })
    }

    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// The pfns of the next `count` dumpable pages, advancing the cursor.
    fn take_pfns(&mut self, count: u64) -> Vec<u64> {
        let mut pfns = Vec::with_capacity(count as usize);
        while (pfns.len() as u64) < count {
            match self.source.dumpable.next_one(self.next_pfn) {
                Some(pfn) => {
                    pfns.push(pfn);
                    self.next_pfn = pfn + 1;
                }
                None => break,
            }
        }
        self.next_index += pfns.len() as u64;
        pfns
    }

    /// Reads the pages of `pfns` into the buffer, one read per run of consecutive pfns.
    fn read_pages(&mut self, pfns: &[u64]) -> Result<(), SendError> {
        let ps = self.source.page_size();
        let mut i = 0;
        while i < pfns.len() {
            let mut run = 1;
            while i + run < pfns.len() && pfns[i + run] == pfns[i] + run as u64 {
                run += 1;
            }
            let span = &mut self.buffer[i * ps..(i + run) * ps];
            self.source
                .vmcore
                .read_physical(pfns[i] * ps as u64, span)
                .map_err(|e| SendError::Vmcore(e.to_string()))?;
            i += run;
        }
        Ok(())
    }

    /// Reads the next chunk's pages into the buffer; returns its first index and page count, or
    /// `None` after the last page.
    fn read_next(&mut self) -> Result<Option<(u64, usize)>, SendError> {
        let first_page = self.next_index;
        let pfns = self.take_pfns(self.pages_per_chunk);
        if pfns.is_empty() {
            return Ok(None);
        }
        self.read_pages(&pfns)?;
        Ok(Some((first_page, pfns.len())))
    }

    /// Reads and encodes the next chunk; `None` after the last page.
    pub fn next_chunk(&mut self) -> Result<Option<ReadChunk>, SendError> {
        let Some((first_page, count)) = self.read_next()? else {
            return Ok(None);
        };
        let ps = self.source.page_size();
        let mut hasher = ChunkHasher::with_version(self.digests);
        let mut pages = Vec::with_capacity(count);
        let mut wire_bytes = 0u64;
        for page in self.buffer[..count * ps].chunks_exact(ps) {
            if is_zero_page(page) {
                hasher.update_zero_page(ps);
                pages.push(PageData::Zero);
                continue;
            }
            hasher.update(page);
            let compressed = self
                .compressor
                .compress(page)
                .map_err(|e| SendError::Other(format!("zstd: {e}")))?;
            wire_bytes += compressed.len().min(ps) as u64;
            if compressed.len() < ps {
                pages.push(PageData::Zstd(Bytes::from(compressed)));
            } else {
                pages.push(PageData::Raw(Bytes::copy_from_slice(page)));
            }
        }
        Ok(Some(ReadChunk {
            wire_bytes,
            chunk: PageChunk {
                first_page,
                chunk_digest: hasher.finish(),
                pages,
            },
        }))
    }

    /// Moves past the next chunk without reading it; false after the last page.
    pub fn skip_chunk_unread(&mut self) -> bool {
        !self.take_pfns(self.pages_per_chunk).is_empty()
    }

    /// Digest of the next chunk without compressing it (for chunks the receiver already holds).
    pub fn skip_chunk(&mut self) -> Result<Option<[u8; 32]>, SendError> {
        let Some((_, count)) = self.read_next()? else {
            return Ok(None);
        };
        let ps = self.source.page_size();
        let mut hasher = ChunkHasher::with_version(self.digests);
        for page in self.buffer[..count * ps].chunks_exact(ps) {
            hasher.update(page);
        }
        Ok(Some(hasher.finish()))
    }
}
