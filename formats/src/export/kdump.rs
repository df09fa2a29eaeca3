//! A kdump-compressed file (formats.md section 2) re-encoded with zlib or raw pages: the same
//! headers, notes and both bitmaps as the source, so excluded pages stay excluded and pages that
//! never arrived keep a zero descriptor (2.10); only the page data changes.
//!
//! Written as makedumpfile writes it (2.9): headers, bitmaps, then descriptors and page data in
//! pfn order through two 64 KiB buffers flushed together, so memory does not grow with the dump.

use super::{source_page, ExportError, ExportReport, PositionedSink};
use crate::kdump::{
    compress_zlib, encode_main_header, encode_sub_header_area, is_zero_page, KdumpLayout,
    KdumpReader, PageDesc, FLAG_EXCLUDED_VMEMMAP, FLAG_INCOMPLETE, FLAG_ZLIB, PAGE_DESC_LEN,
};

/// Size at which the descriptor or the data buffer is flushed (makedumpfile's `page_size << 4`).
const BUFFER: usize = 64 * 1024;

/// How pages are stored in the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageCompression {
    /// zlib (level 1, as makedumpfile `-c`); a page that does not shrink is stored raw.
    Zlib,
    /// Every page raw (`flags = 0`, 4096 bytes).
    None,
}

impl PageCompression {
    /// The compression bit of the main header's `status`.
    fn status_bit(self) -> u32 {
        match self {
            PageCompression::Zlib => FLAG_ZLIB,
            PageCompression::None => 0,
        }
    }
}

/// Writes `reader`'s dump to `sink` with `compression` and finishes the sink.
///
/// Zero pages share one block at the start of the data area when the source's dump level
/// excludes zero pages (bit 1), as makedumpfile does (2.7); otherwise they are stored like any
/// page. The incomplete flag of the source's `status` is kept.
pub fn write_kdump<S: PositionedSink>(
    reader: &KdumpReader,
    compression: PageCompression,
    mut sink: S,
) -> Result<ExportReport, ExportError> {
    let mut meta = reader.meta().clone();
    meta.status =
        (meta.status & (FLAG_INCOMPLETE | FLAG_EXCLUDED_VMEMMAP)) | compression.status_bit();
    let source = reader.layout();
    let layout = KdumpLayout::new(
        source.block_size,
        meta.notes.len() as u64,
        source.max_mapnr,
        source.num_dumpable,
    )?;
    sink.write_at(0, &encode_main_header(&meta, &layout))?;
    sink.write_at(layout.block_size, &encode_sub_header_area(&meta, &layout)?)?;
    sink.write_at(layout.bitmap1_offset, reader.bitmap1().as_bytes())?;
    sink.write_at(layout.bitmap2_offset, reader.bitmap2().as_bytes())?;

    let block = layout.block_size;
    let share_zero = meta.dump_level & 1 != 0;
    let mut pages = Pages {
        desc_at: layout.descriptors_offset,
        descs: Vec::with_capacity(BUFFER + PAGE_DESC_LEN as usize),
        data_at: layout.data_offset,
        data: Vec::with_capacity(BUFFER + block as usize),
    };
    if share_zero {
        pages.data.resize(block as usize, 0);
    }
    let zero_desc = PageDesc {
        offset: layout.data_offset as i64,
        size: block as u32,
        flags: 0,
        page_flags: 0,
    };
    let mut report = ExportReport {
        incomplete: reader.is_incomplete(),
        ..ExportReport::default()
    };
    for (index, entry) in reader.pages().enumerate() {
        let (pfn, desc) = entry?;
        let out_desc = match source_page(reader, pfn, index as u64, &desc)? {
            None => {
                report.pages_lost += 1;
                PageDesc::default()
            }
            Some(page) => {
                report.pages_written += 1;
                if share_zero && is_zero_page(&page) {
                    report.zero_pages += 1;
                    zero_desc
                } else {
                    pages.push_data(compression, page)
                }
            }
        };
        pages.descs.extend_from_slice(&out_desc.encode());
        if pages.descs.len() >= BUFFER || pages.data.len() >= BUFFER {
            pages.flush(&mut sink)?;
        }
    }
    pages.flush(&mut sink)?;
    report.bytes = sink.finish(pages.data_at)?;
    Ok(report)
}

/// The descriptor and data buffers and where each goes next.
struct Pages {
    /// File offset of the first buffered descriptor.
    desc_at: u64,
    descs: Vec<u8>,
    /// File offset of the first buffered data byte.
    data_at: u64,
    data: Vec<u8>,
}

impl Pages {
    /// Buffers one page's data; returns its descriptor.
    fn push_data(&mut self, compression: PageCompression, page: Vec<u8>) -> PageDesc {
        let (bytes, flags) = match compression {
            PageCompression::Zlib => {
                let z = compress_zlib(&page);
                // Stored raw unless compression makes it strictly smaller (2.7).
                if z.len() < page.len() {
                    (z, FLAG_ZLIB)
                } else {
                    (page, 0)
                }
            }
            PageCompression::None => (page, 0),
        };
        let desc = PageDesc {
            offset: (self.data_at + self.data.len() as u64) as i64,
            size: bytes.len() as u32,
            flags,
            page_flags: 0,
        };
        self.data.extend_from_slice(&bytes);
        desc
    }

    /// Writes both buffers and moves on.
    fn flush<S: PositionedSink>(&mut self, sink: &mut S) -> Result<(), ExportError> {
        if !self.descs.is_empty() {
            sink.write_at(self.desc_at, &self.descs)?;
            self.desc_at += self.descs.len() as u64;
            self.descs.clear();
        }
        if !self.data.is_empty() {
            sink.write_at(self.data_at, &self.data)?;
            self.data_at += self.data.len() as u64;
            self.data.clear();
        }
        Ok(())
    }
}
