//! The kdump-compressed format (section 2) that `crash` and makedumpfile read: layout, headers,
//! page descriptors and data, and a reader.

mod error;
mod header;
mod layout;
mod page;
mod reader;

pub use error::KdumpError;
pub use header::{encode_main_header, encode_sub_header_area, MainHeader, SubHeader};
pub use layout::KdumpLayout;
pub use page::{compress_zlib, compress_zstd, decompress_page, is_zero_page, PageDesc};
pub use reader::{KdumpReader, PageRead};

use crate::UTSNAME_LEN;

/// `disk_dump_header.signature`: "KDUMP" and three spaces, no NUL.
pub const SIGNATURE: [u8; 8] = *b"KDUMP   ";
/// The `header_version` crashdrop writes (and the minimum it reads).
pub const HEADER_VERSION: i32 = 6;
/// Page data is a zlib stream (also the `status` bit naming the compressor).
pub const FLAG_ZLIB: u32 = 0x1;
/// Page data is LZO1X.
pub const FLAG_LZO: u32 = 0x2;
/// Page data is raw snappy.
pub const FLAG_SNAPPY: u32 = 0x4;
/// `status` only: the dump was cut short (2.10).
pub const FLAG_INCOMPLETE: u32 = 0x8;
/// `status` only: unused vmemmap pages were excluded (`-e`).
pub const FLAG_EXCLUDED_VMEMMAP: u32 = 0x10;
/// Page data is one zstd frame.
pub const FLAG_ZSTD: u32 = 0x20;
/// `sizeof(struct disk_dump_header)` on x86_64.
pub const DISK_DUMP_HEADER_LEN: usize = 464;
/// `sizeof(struct kdump_sub_header)` on x86_64.
pub const SUB_HEADER_LEN: usize = 104;
/// `sizeof(struct page_desc)`.
pub const PAGE_DESC_LEN: u64 = 24;

/// What the headers of a kdump-compressed file say, independent of where things are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KdumpMeta {
    /// `struct new_utsname` of the crashed kernel.
    pub utsname: [u8; UTSNAME_LEN],
    /// `timestamp.tv_sec`: `CRASHTIME`, else 0.
    pub crash_time: i64,
    /// `status`: compression bit, `FLAG_INCOMPLETE` while unfinished.
    pub status: u32,
    /// Block size = page size.
    pub block_size: u32,
    /// Number of pfns (the full 64-bit value).
    pub max_mapnr: u64,
    /// Number of `CORE`/NT_PRSTATUS notes.
    pub nr_cpus: u32,
    /// x86_64 `phys_base`, 64-bit two's complement.
    pub phys_base: u64,
    /// The `-d` level (0..31).
    pub dump_level: u32,
    /// The ELF note segment, copied verbatim after the sub header; the VMCOREINFO offset and
    /// size of the sub header are derived from it.
    pub notes: Vec<u8>,
    /// Set bits of the 2nd bitmap = page descriptors.
    pub num_dumpable: u64,
}

#[cfg(test)]
mod tests;
