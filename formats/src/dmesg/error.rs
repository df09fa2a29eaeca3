//! Why the kernel log could not be extracted.

use crate::filter::FilterError;

/// A failure to extract the kernel log. Variants caused by VMCOREINFO name the key.
#[derive(Debug, thiserror::Error)]
pub enum DmesgError {
    /// VMCOREINFO lacks a key the log's variant needs (formats.md 6.1 – 6.3).
    #[error("VMCOREINFO has no {key}, needed for the kernel log")]
    MissingKey { key: String },
    /// A VMCOREINFO value, or a value read from the kernel that it describes, is unusable.
    #[error("{key}={value} is unusable for the kernel log: {why}")]
    BadValue {
        key: String,
        value: String,
        why: String,
    },
    /// Translating or reading kernel memory failed (names what was being read).
    #[error("kernel log: {0}")]
    Memory(#[from] FilterError),
    /// The log's structures contradict each other (a walk left the buffer, looped, ...).
    #[error("kernel log: corrupt {what}: {why}")]
    Corrupt { what: &'static str, why: String },
    /// The formatted log would exceed the bound derived from the buffer's size.
    #[error("kernel log: output exceeds {limit} bytes (the ring buffer is malformed)")]
    OutputTooLarge { limit: u64 },
}

impl DmesgError {
    pub(crate) fn missing(key: impl Into<String>) -> DmesgError {
        DmesgError::MissingKey { key: key.into() }
    }

    pub(crate) fn bad(
        key: impl Into<String>,
        value: impl ToString,
        why: impl Into<String>,
    ) -> DmesgError {
        DmesgError::BadValue {
            key: key.into(),
            value: value.to_string(),
            why: why.into(),
        }
    }

    pub(crate) fn corrupt(what: &'static str, why: impl Into<String>) -> DmesgError {
        DmesgError::Corrupt {
            what,
            why: why.into(),
        }
    }
}
