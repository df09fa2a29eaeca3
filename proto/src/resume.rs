//! `ResumeFrom` (0x04): the receiver's answer to an `Offer`, saying where the sender should start.

use crate::error::ProtocolError;
use crate::reader::PayloadReader;
use crate::writer::PayloadWriter;

/// What the sender should do after its `Offer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResumeState {
    /// Send, starting at `next_page` (wire 0).
    Send,
    /// The receiver already holds the whole dump: send nothing and close (wire 1).
    Complete,
}

impl ResumeState {
    /// The wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            ResumeState::Send => 0,
            ResumeState::Complete => 1,
        }
    }

    /// The state for a wire value, or `None` for an unknown one.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(ResumeState::Send),
            1 => Some(ResumeState::Complete),
            _ => None,
        }
    }
}

/// Where to resume: whether the bitmaps are already durable, and the first page index that is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeFrom {
    /// Send, or nothing to do.
    pub state: ResumeState,
    /// The receiver holds both bitmaps durably: skip straight to pages.
    pub bitmaps_stored: bool,
    /// First page index not durably stored: a multiple of `pages_per_chunk`, or `num_dumpable`.
    pub next_page: u64,
}

impl ResumeFrom {
    pub(crate) fn decode(r: &mut PayloadReader) -> Result<Self, ProtocolError> {
        let raw = r.u8("state")?;
        let state = ResumeState::from_u8(raw).ok_or_else(|| r.invalid("state", u64::from(raw)))?;
        Ok(ResumeFrom {
            state,
            bitmaps_stored: r.bool("bitmaps_stored")?,
            next_page: r.u64("next_page")?,
        })
    }

    pub(crate) fn encode(&self, w: &mut PayloadWriter) -> Result<(), ProtocolError> {
        w.u8(self.state.as_u8());
        w.bool(self.bitmaps_stored);
        w.u64(self.next_page);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn decode(bytes: &'static [u8]) -> Result<ResumeFrom, ProtocolError> {
        let mut r = PayloadReader::new("ResumeFrom", Bytes::from_static(bytes));
        let frame = ResumeFrom::decode(&mut r)?;
        r.finish()?;
        Ok(frame)
    }

    #[test]
    fn decodes_both_states() {
        let frame = decode(&[1, 1, 0, 0, 0, 0, 0, 0, 1, 0]).expect("valid");
        assert_eq!(
            frame,
            ResumeFrom {
                state: ResumeState::Complete,
                bitmaps_stored: true,
                next_page: 256
            }
        );
        let frame = decode(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).expect("valid");
        assert_eq!(frame.state, ResumeState::Send);
        assert!(!frame.bitmaps_stored);
    }

    #[test]
    fn rejects_unknown_enum_values() {
        assert!(matches!(
            decode(&[2, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(ProtocolError::InvalidValue {
                field: "state",
                value: 2,
                ..
            })
        ));
        assert!(matches!(
            decode(&[0, 7, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(ProtocolError::InvalidValue {
                field: "bitmaps_stored",
                value: 7,
                ..
            })
        ));
    }
}
