//! The `Error` frame (0x0f): a code saying whether retrying can help, and a message for a human.

use std::fmt;

use crate::error::ProtocolError;
use crate::limits::MAX_STRING;
use crate::reader::PayloadReader;
use crate::writer::PayloadWriter;

/// Why a peer gave up (`docs/protocol.md`, `Error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Malformed or unexpected frame. Fatal.
    Protocol,
    /// No protocol version in common. Fatal.
    UnsupportedVersion,
    /// An `Offer` or bitmap value is out of range or inconsistent. Fatal.
    InvalidManifest,
    /// A chunk failed to decompress or to match its digest. Retryable.
    ChunkCorrupt,
    /// The whole-dump digest did not match. Fatal.
    DigestMismatch,
    /// The receiver could not write (disk full, I/O error). Retryable.
    Storage,
    /// Another session is receiving this dump, or the receiver is at capacity. Retryable.
    Busy,
    /// A receiver bug; see its log. Retryable.
    Internal,
    /// A code this build does not know (a newer peer's). Retryable: a newer receiver may refuse
    /// for reasons that pass, and giving up loses the dump.
    Unknown(u16),
}

impl ErrorCode {
    /// Whether the sender should try again later (the table in `docs/protocol.md`).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::ChunkCorrupt
                | ErrorCode::Storage
                | ErrorCode::Busy
                | ErrorCode::Internal
                | ErrorCode::Unknown(_)
        )
    }

    /// The code for any wire value: an unknown one is `Unknown(v)`.
    pub fn from_wire(v: u16) -> Self {
        ErrorCode::from_u16(v).unwrap_or(ErrorCode::Unknown(v))
    }

    /// The code for a wire value, or `None` for one this build does not know.
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => ErrorCode::Protocol,
            2 => ErrorCode::UnsupportedVersion,
            3 => ErrorCode::InvalidManifest,
            4 => ErrorCode::ChunkCorrupt,
            5 => ErrorCode::DigestMismatch,
            6 => ErrorCode::Storage,
            7 => ErrorCode::Busy,
            8 => ErrorCode::Internal,
            _ => return None,
        })
    }

    /// The wire value.
    pub fn as_u16(self) -> u16 {
        match self {
            ErrorCode::Protocol => 1,
            ErrorCode::UnsupportedVersion => 2,
            ErrorCode::InvalidManifest => 3,
            ErrorCode::ChunkCorrupt => 4,
            ErrorCode::DigestMismatch => 5,
            ErrorCode::Storage => 6,
            ErrorCode::Busy => 7,
            ErrorCode::Internal => 8,
            ErrorCode::Unknown(v) => v,
        }
    }

    /// The code's name as `docs/protocol.md` spells it.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Protocol => "Protocol",
            ErrorCode::UnsupportedVersion => "UnsupportedVersion",
            ErrorCode::InvalidManifest => "InvalidManifest",
            ErrorCode::ChunkCorrupt => "ChunkCorrupt",
            ErrorCode::DigestMismatch => "DigestMismatch",
            ErrorCode::Storage => "Storage",
            ErrorCode::Busy => "Busy",
            ErrorCode::Internal => "Internal",
            ErrorCode::Unknown(_) => "Unknown",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::Unknown(v) => write!(f, "Unknown({v})"),
            known => f.write_str(known.name()),
        }
    }
}

/// An `Error` frame. Build it with [`ErrorFrame::new`], which keeps the message within
/// `MAX_STRING`; the encoder refuses a longer one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFrame {
    /// What kind of failure, and so whether to retry.
    pub code: ErrorCode,
    /// For a human: names the field, limit or file at fault.
    pub message: String,
}

impl ErrorFrame {
    /// An `Error` frame whose message is cut to at most `MAX_STRING` bytes, at a char boundary.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorFrame {
        let mut message = message.into();
        if message.len() > MAX_STRING {
            let mut end = MAX_STRING;
            while !message.is_char_boundary(end) {
                end = end.saturating_sub(1);
            }
            message.truncate(end);
        }
        ErrorFrame { code, message }
    }

    pub(crate) fn decode(r: &mut PayloadReader) -> Result<Self, ProtocolError> {
        // An unknown code is kept, not refused: it is a newer peer's, and retryable.
        let code = ErrorCode::from_wire(r.u16("code")?);
        let message = r.string("message", MAX_STRING)?;
        Ok(ErrorFrame { code, message })
    }

    pub(crate) fn encode(&self, w: &mut PayloadWriter) -> Result<(), ProtocolError> {
        w.u16(self.code.as_u16());
        w.string("message", &self.message, MAX_STRING)
    }
}

impl fmt::Display for ErrorFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_retryability_matches_the_spec() {
        let retryable = [4, 6, 7, 8];
        for v in 1..=8u16 {
            let code = ErrorCode::from_u16(v).expect("known");
            assert_eq!(code.as_u16(), v);
            assert_eq!(code.is_retryable(), retryable.contains(&v), "{code}");
        }
        assert_eq!(ErrorCode::from_u16(0), None);
        assert_eq!(ErrorCode::from_u16(9), None);
    }

    #[test]
    fn an_unknown_code_decodes_and_is_retryable() {
        use bytes::{Bytes, BytesMut};
        let mut payload = BytesMut::new();
        ErrorFrame::new(ErrorCode::Unknown(42), "newer")
            .encode(&mut PayloadWriter::new("Error", &mut payload))
            .expect("encodes");
        assert_eq!(&payload[..2], &[0, 42]);
        let mut r = PayloadReader::new("Error", Bytes::from(payload.to_vec()));
        let frame = ErrorFrame::decode(&mut r).expect("decodes");
        assert_eq!(frame.code, ErrorCode::Unknown(42));
        assert!(frame.code.is_retryable());
        assert_eq!(frame.to_string(), "Unknown(42): newer");
        assert_eq!(ErrorCode::from_wire(7), ErrorCode::Busy);
    }

    #[test]
    fn new_truncates_at_a_char_boundary() {
        let short = ErrorFrame::new(ErrorCode::Busy, "try later");
        assert_eq!(short.message, "try later");
        assert_eq!(short.to_string(), "Busy: try later");

        // 'é' is two bytes; 1023 ASCII bytes put one straddling the limit.
        let long = format!("{}é{}", "x".repeat(MAX_STRING - 1), "y".repeat(10));
        let frame = ErrorFrame::new(ErrorCode::Internal, long);
        assert_eq!(frame.message.len(), MAX_STRING - 1);
        assert!(frame.message.chars().all(|c| c == 'x'));

        let exact = "z".repeat(MAX_STRING);
        assert_eq!(
            ErrorFrame::new(ErrorCode::Storage, exact.clone()).message,
            exact
        );
    }
}
