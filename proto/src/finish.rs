//! The end of a transfer: `Finish` (0x09, the whole-dump digest) and `Complete` (0x0a).

use std::fmt;

use crate::error::ProtocolError;
use crate::hex::Hex;
use crate::limits::MAX_STRING;
use crate::reader::PayloadReader;
use crate::writer::PayloadWriter;

/// Sent after the last chunk: the digest of the whole dump (see `docs/protocol.md`, Digests).
#[derive(Clone, PartialEq, Eq)]
pub struct Finish {
    /// SHA-256 over the id, both bitmaps' digests and every chunk digest.
    pub dump_digest: [u8; 32],
}

impl Finish {
    pub(crate) fn decode(r: &mut PayloadReader) -> Result<Self, ProtocolError> {
        Ok(Finish {
            dump_digest: r.array("dump_digest")?,
        })
    }

    pub(crate) fn encode(&self, w: &mut PayloadWriter) -> Result<(), ProtocolError> {
        w.bytes(&self.dump_digest);
        Ok(())
    }
}

impl fmt::Debug for Finish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Finish")
            .field("dump_digest", &Hex(&self.dump_digest))
            .finish()
    }
}

/// The receiver's last word: the dump is durable and marked complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Complete {
    /// Size of the stored kdump-compressed file.
    pub stored_bytes: u64,
    /// The dump's directory relative to the store, e.g. `web-7/2026-11-26T14-03-11Z-0a1b2c3d4e5f`
    /// (at most `MAX_STRING` bytes).
    pub location: String,
}

impl Complete {
    pub(crate) fn decode(r: &mut PayloadReader) -> Result<Self, ProtocolError> {
        Ok(Complete {
            stored_bytes: r.u64("stored_bytes")?,
            location: r.string("location", MAX_STRING)?,
        })
    }

    pub(crate) fn encode(&self, w: &mut PayloadWriter) -> Result<(), ProtocolError> {
        w.u64(self.stored_bytes);
        w.string("location", &self.location, MAX_STRING)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_debug_is_hex() {
        let finish = Finish {
            dump_digest: [0xab; 32],
        };
        assert_eq!(
            format!("{finish:?}"),
            format!("Finish {{ dump_digest: {} }}", "ab".repeat(32))
        );
    }
}
