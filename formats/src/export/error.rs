//! Errors of exporting a stored dump in another format.

use std::path::PathBuf;

use crate::kdump::KdumpError;

/// Why an export failed. The output is then unusable (the command removes a partial file).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the source dump failed (a header, descriptor or page that does not decode).
    #[error(transparent)]
    Source(#[from] KdumpError),
    /// Writing the output failed.
    #[error("{output}: writing {len} bytes at offset {offset:#x}: {source}")]
    Write {
        output: String,
        offset: u64,
        len: u64,
        source: std::io::Error,
    },
    /// A sequential output (a pipe) was asked to go back: the format needs a seekable output.
    #[error(
        "{output} is not seekable, but the format writes at offset {offset:#x} after {position:#x}: \
         write to a file (-o FILE) or use --format flattened for a pipe"
    )]
    NotSequential {
        output: String,
        offset: u64,
        position: u64,
    },
    /// The source's layout cannot be re-encoded (a value out of range for the output format).
    #[error("{path}: cannot lay out the {format} output: {detail}")]
    Layout {
        path: PathBuf,
        format: &'static str,
        detail: String,
    },
    /// The reader answered "not in dump" for a pfn its own 2nd bitmap lists.
    #[error("{path}: pfn {pfn:#x} is in the 2nd bitmap but reads as absent (reader bug?)")]
    Inconsistent { path: PathBuf, pfn: u64 },
}
