//! `ProtocolError`: everything that can go wrong reading or writing frames.

use crate::error_frame::{ErrorCode, ErrorFrame};

/// A frame could not be decoded from, or encoded to, the byte stream.
///
/// Every variant except [`Io`](ProtocolError::Io) means the bytes broke `docs/protocol.md` (when
/// decoding) or that our own code tried to send something the peer would reject (when encoding);
/// the variants name the frame, the field and the limit at fault.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The underlying stream failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    /// A frame's length prefix (or an encoded frame) exceeds `MAX_FRAME_LEN`.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLong {
        /// The declared (or encoded) length: type byte + payload.
        len: usize,
        /// `MAX_FRAME_LEN`.
        max: usize,
    },

    /// A frame's length prefix is 0, so it has not even a type byte.
    #[error("frame length is 0")]
    EmptyFrame,

    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({buffered} bytes of it received)")]
    UnexpectedEof {
        /// Bytes of the partial frame (including its length prefix) that did arrive.
        buffered: usize,
    },

    /// A type byte no frame has.
    #[error("unknown frame type {0:#04x}")]
    UnknownFrameType(u8),

    /// The payload ended before a field did.
    #[error("{frame} frame is truncated: {field} is missing or short")]
    Truncated {
        /// The frame being read.
        frame: &'static str,
        /// The field that did not fit.
        field: &'static str,
    },

    /// The payload went on after the last field.
    #[error("{frame} frame has {extra} trailing bytes")]
    TrailingBytes {
        /// The frame being read.
        frame: &'static str,
        /// Bytes left over.
        extra: usize,
    },

    /// A string or blob is longer than its field's limit.
    #[error("{frame}.{field} is {len} bytes, more than the limit of {max}")]
    FieldTooLong {
        /// The frame being read or written.
        frame: &'static str,
        /// The field at fault.
        field: &'static str,
        /// Its (declared) length.
        len: usize,
        /// Its limit.
        max: usize,
    },

    /// A field that must not be empty is (a zstd page's data).
    #[error("{frame}.{field} must not be empty")]
    EmptyField {
        /// The frame being read or written.
        frame: &'static str,
        /// The field at fault.
        field: &'static str,
    },

    /// A number outside its field's range, or an unknown enum value.
    #[error("{frame}.{field} has invalid value {value}")]
    InvalidValue {
        /// The frame being read or written.
        frame: &'static str,
        /// The field at fault.
        field: &'static str,
        /// The value found.
        value: u64,
    },

    /// A `Hello` that does not start with `MAGIC`: not a crashdrop sender.
    #[error("Hello does not start with the crashdrop magic")]
    BadMagic,

    /// A string field that is not UTF-8.
    #[error("{frame}.{field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The frame being read.
        frame: &'static str,
        /// The field at fault.
        field: &'static str,
    },
}

impl ProtocolError {
    /// The `Error` frame to send the peer before closing because of this error: code `Protocol`
    /// and this error's message. (For [`Io`](ProtocolError::Io) there is usually nobody left to
    /// tell, but the frame is still well-formed.)
    pub fn to_error_frame(&self) -> ErrorFrame {
        ErrorFrame::new(ErrorCode::Protocol, self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_frame_field_and_limit() {
        let err = ProtocolError::FieldTooLong {
            frame: "Offer",
            field: "notes",
            len: 5_000_000,
            max: 3 << 20,
        };
        assert_eq!(
            err.to_string(),
            "Offer.notes is 5000000 bytes, more than the limit of 3145728"
        );
        assert_eq!(
            ProtocolError::UnknownFrameType(0x42).to_string(),
            "unknown frame type 0x42"
        );
        let frame = err.to_error_frame();
        assert_eq!(frame.code, ErrorCode::Protocol);
        assert!(frame.message.contains("Offer.notes"));
    }
}
