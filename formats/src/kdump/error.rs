//! Errors of laying out, encoding, decoding and reading kdump-compressed files.

use std::path::PathBuf;

use crate::bitmap::BitmapError;
use crate::notes::NoteError;

/// A defect in a kdump-compressed file or in the values meant to describe one.
#[derive(Debug, thiserror::Error)]
pub enum KdumpError {
    /// `block_size` is not a power of two in 512..=1 MiB.
    #[error("kdump block_size {block_size} is not a power of two in 512..=1048576")]
    BadBlockSize { block_size: i64 },
    /// A layout number does not fit its header field or overflows 64 bits.
    #[error("kdump layout: {field} overflows ({detail})")]
    LayoutOverflow { field: &'static str, detail: String },
    /// More dumpable pages than pfns.
    #[error("kdump layout: num_dumpable {num_dumpable} exceeds max_mapnr {max_mapnr}")]
    TooManyDumpable { num_dumpable: u64, max_mapnr: u64 },
    /// A header field read from a file is inconsistent with the layout rules.
    #[error("kdump header field {field}: {detail}")]
    BadField { field: &'static str, detail: String },
    /// The notes given for a sub header do not match the layout's `notes_len`.
    #[error(
        "kdump sub header: notes are {actual} bytes but the layout was computed for {expected}"
    )]
    NotesLength { expected: u64, actual: u64 },
    /// The note segment to embed is malformed.
    #[error("kdump notes: {0}")]
    Notes(#[from] NoteError),
    /// A page descriptor's flags name LZO or snappy, which crashdrop does not decode.
    #[error("page flags {flags:#x}: unsupported compression (only raw, zlib and zstd are read)")]
    UnsupportedCompression { flags: u32 },
    /// A page descriptor's flags hold unknown bits or several compression bits.
    #[error("page flags {flags:#x} are not a single known compression")]
    BadPageFlags { flags: u32 },
    /// A page yields more than `page_size` bytes (output is cut at `page_size + 1`).
    #[error("{kind} page data yields more than {page_size} bytes, expected exactly {page_size}")]
    PageTooLong {
        kind: &'static str,
        page_size: usize,
    },
    /// A page yields fewer than `page_size` bytes.
    #[error("{kind} page data yields {len} bytes, expected exactly {page_size}")]
    PageTooShort {
        kind: &'static str,
        len: usize,
        page_size: usize,
    },
    /// Compressed page data is corrupt.
    #[error("{kind} page data is corrupt: {detail}")]
    CorruptPage { kind: &'static str, detail: String },
    /// Opening a file or reading its metadata failed.
    #[error("{path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A positional read failed (including a file shorter than its headers say).
    #[error("{path}: reading {len} bytes at file offset {offset:#x}: {source}")]
    Read {
        path: PathBuf,
        offset: u64,
        len: u64,
        source: std::io::Error,
    },
    /// The file is too short for the main header.
    #[error("{path}: not a kdump-compressed file: only {len} bytes long")]
    TooShort { path: PathBuf, len: u64 },
    /// The signature is not `KDUMP   `.
    #[error("{path}: not a kdump-compressed file: signature {found:?}")]
    BadSignature { path: PathBuf, found: String },
    /// `header_version` below 6.
    #[error("{path}: kdump header_version {version} is not supported (need 6 or later)")]
    UnsupportedVersion { path: PathBuf, version: i32 },
    /// A header value is wrong.
    #[error("{path}: {source}")]
    Header {
        path: PathBuf,
        source: Box<KdumpError>,
    },
    /// One part of a split dump.
    #[error("{path}: split dumps (sub header split = {split}) are not supported")]
    Split { path: PathBuf, split: i32 },
    /// A region named by the headers lies past the end of the file.
    #[error(
        "{path}: {region} ({offset:#x} + {len}) runs past the end of the file ({file_len} bytes)"
    )]
    PastEnd {
        path: PathBuf,
        region: &'static str,
        offset: u64,
        len: u64,
        file_len: u64,
    },
    /// A bitmap's bytes are invalid.
    #[error("{path}: bitmap {which}: {source}")]
    Bitmap {
        path: PathBuf,
        which: u8,
        source: BitmapError,
    },
    /// The 2nd bitmap has a bit the 1st does not.
    #[error("{path}: the 2nd bitmap is not a subset of the 1st (pfn {pfn:#x})")]
    NotSubset { path: PathBuf, pfn: u64 },
    /// A descriptor index beyond `num_dumpable`.
    #[error("{path}: descriptor index {index} is beyond num_dumpable {num_dumpable}")]
    NoSuchDescriptor {
        path: PathBuf,
        index: u64,
        num_dumpable: u64,
    },
    /// A descriptor's offset or size is impossible.
    #[error("{path}: pfn {pfn:#x} (descriptor {index}): {detail}")]
    BadDescriptor {
        path: PathBuf,
        pfn: u64,
        index: u64,
        detail: String,
    },
    /// A page's data does not decode.
    #[error("{path}: pfn {pfn:#x} (descriptor {index}): {source}")]
    PageData {
        path: PathBuf,
        pfn: u64,
        index: u64,
        source: Box<KdumpError>,
    },
}
