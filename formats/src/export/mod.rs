//! Re-encoding a stored kdump-compressed dump for tools that cannot read it as it is: Debian 12's
//! makedumpfile reads no zstd pages, gdb and drgn read only ELF cores.
//!
//! One module per output format, all streaming from a [`KdumpReader`] with bounded memory: the
//! reader's two bitmaps (as the sender holds them, `max_mapnr / 4` bytes) plus one 64 KiB
//! descriptor buffer and one 64 KiB data buffer, never the dump itself.
//!
//! - [`kdump`]: kdump-compressed with zlib or raw pages (formats.md section 2), same bitmaps.
//! - [`flattened`]: the kdump-compressed file as a flattened stream (section 3), for pipes.
//! - [`elf`]: an ELF vmcore (section 1) with one PT_LOAD per run of pages present in the dump.
//!
//! Every writer writes through a [`PositionedSink`], so the same code fills a file, a pipe (ELF
//! only: its offsets only ever grow) or a flattened stream.

pub mod elf;
mod error;
pub mod flattened;
pub mod kdump;
mod sink;

#[cfg(test)]
mod tests;

pub use error::ExportError;
pub use sink::{FileSink, PositionedSink, StreamSink};

use crate::kdump::{KdumpReader, PageRead};

/// An output format of `crashdropd export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// ELF vmcore, PT_LOADs only for pages present in the dump.
    Elf,
    /// kdump-compressed with zlib pages (read by every crash and makedumpfile build).
    KdumpZlib,
    /// kdump-compressed with raw (uncompressed) pages.
    KdumpNone,
    /// kdump-compressed with zlib pages, as a flattened stream (`makedumpfile -R` rebuilds it).
    Flattened,
}

impl ExportFormat {
    /// Every format, in the order the command line lists them.
    pub const ALL: [ExportFormat; 4] = [
        ExportFormat::Elf,
        ExportFormat::KdumpZlib,
        ExportFormat::KdumpNone,
        ExportFormat::Flattened,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Elf => "elf",
            ExportFormat::KdumpZlib => "kdump-zlib",
            ExportFormat::KdumpNone => "kdump-none",
            ExportFormat::Flattened => "flattened",
        }
    }

    /// True if the output must be seekable: the kdump-compressed layout puts the descriptor
    /// table before the page data, and a descriptor's offset is known only once every earlier
    /// page is compressed, so the writer goes back and forth (2.9).
    pub fn needs_seekable_output(self) -> bool {
        matches!(self, ExportFormat::KdumpZlib | ExportFormat::KdumpNone)
    }
}

impl std::str::FromStr for ExportFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ExportFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                format!("unknown export format {s:?}: expected elf, kdump-zlib, kdump-none or flattened")
            })
    }
}

impl std::fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What an export wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Pages whose data the output holds.
    pub pages_written: u64,
    /// Of those, zero pages (sharing one block in kdump outputs at a level excluding zeros).
    pub zero_pages: u64,
    /// Dumpable pages whose data never arrived (incomplete dump): a zero descriptor in kdump
    /// outputs, no PT_LOAD in ELF.
    pub pages_lost: u64,
    /// Bytes of output (the rebuilt file's length for `flattened`).
    pub bytes: u64,
    /// ELF only: PT_LOAD segments written.
    pub segments: u64,
    /// True if the source carries the incomplete flag (and so does the output).
    pub incomplete: bool,
}

/// Writes `reader`'s dump in `format` to `sink` and finishes the sink.
pub fn export<S: PositionedSink>(
    reader: &KdumpReader,
    format: ExportFormat,
    sink: S,
) -> Result<ExportReport, ExportError> {
    match format {
        ExportFormat::Elf => elf::write_elf(reader, sink),
        ExportFormat::KdumpZlib => kdump::write_kdump(reader, kdump::PageCompression::Zlib, sink),
        ExportFormat::KdumpNone => kdump::write_kdump(reader, kdump::PageCompression::None, sink),
        ExportFormat::Flattened => kdump::write_kdump(
            reader,
            kdump::PageCompression::Zlib,
            flattened::FlattenedSink::new(sink)?,
        ),
    }
}

/// The page of `pfn` (descriptor `index`), or `None` if it never arrived.
fn source_page(
    reader: &KdumpReader,
    pfn: u64,
    index: u64,
    desc: &crate::kdump::PageDesc,
) -> Result<Option<Vec<u8>>, ExportError> {
    match reader.page_data(pfn, index, desc)? {
        PageRead::Data(page) => Ok(Some(page)),
        PageRead::Lost => Ok(None),
        // page_data only answers Data or Lost; anything else would be a reader bug.
        PageRead::NotInDump | PageRead::Excluded => Err(ExportError::Inconsistent {
            path: reader.path().to_path_buf(),
            pfn,
        }),
    }
}
