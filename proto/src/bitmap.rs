//! `BitmapPiece` (0x05): one in-order slice of the 1st ("is RAM") or 2nd ("dumpable") bitmap.

use std::fmt;

use bytes::Bytes;

use crate::error::ProtocolError;
use crate::limits::MAX_BITMAP_PIECE;
use crate::reader::PayloadReader;
use crate::writer::PayloadWriter;

/// Which of the two bitmaps a piece belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BitmapKind {
    /// The 1st bitmap: the pfn is RAM (wire 1).
    First,
    /// The 2nd bitmap: the pfn is dumped (wire 2).
    Second,
}

impl BitmapKind {
    /// The wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            BitmapKind::First => 1,
            BitmapKind::Second => 2,
        }
    }

    /// The kind for a wire value, or `None` for an unknown one.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(BitmapKind::First),
            2 => Some(BitmapKind::Second),
            _ => None,
        }
    }
}

/// `bytes` of one bitmap, starting at byte `offset` (at most `MAX_BITMAP_PIECE` bytes). Whether the
/// pieces arrive in order and cover the bitmap is for the receiver's session to check.
#[derive(Clone, PartialEq, Eq)]
pub struct BitmapPiece {
    /// Which bitmap.
    pub bitmap: BitmapKind,
    /// Byte offset of `bytes` in that bitmap.
    pub offset: u64,
    /// The bitmap bytes (a slice of the received frame, not a copy).
    pub bytes: Bytes,
}

impl BitmapPiece {
    pub(crate) fn decode(r: &mut PayloadReader) -> Result<Self, ProtocolError> {
        let raw = r.u8("bitmap")?;
        let bitmap = BitmapKind::from_u8(raw).ok_or_else(|| r.invalid("bitmap", u64::from(raw)))?;
        Ok(BitmapPiece {
            bitmap,
            offset: r.u64("offset")?,
            bytes: r.blob("bytes", MAX_BITMAP_PIECE)?,
        })
    }

    pub(crate) fn encode(&self, w: &mut PayloadWriter) -> Result<(), ProtocolError> {
        w.u8(self.bitmap.as_u8());
        w.u64(self.offset);
        w.blob("bytes", &self.bytes, MAX_BITMAP_PIECE)
    }
}

impl fmt::Debug for BitmapPiece {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BitmapPiece")
            .field("bitmap", &self.bitmap)
            .field("offset", &self.offset)
            .field("len", &self.bytes.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    #[test]
    fn rejects_unknown_bitmap_kind() {
        for kind in [0u8, 3, 255] {
            let mut payload = vec![kind];
            payload.extend_from_slice(&[0; 12]);
            let mut r = PayloadReader::new("BitmapPiece", Bytes::from(payload));
            assert!(matches!(
                BitmapPiece::decode(&mut r),
                Err(ProtocolError::InvalidValue { field: "bitmap", value, .. }) if value == u64::from(kind)
            ));
        }
    }

    #[test]
    fn refuses_to_encode_an_oversize_piece() {
        let piece = BitmapPiece {
            bitmap: BitmapKind::Second,
            offset: 0,
            bytes: Bytes::from(vec![0; MAX_BITMAP_PIECE + 1]),
        };
        let mut dst = BytesMut::new();
        assert!(matches!(
            piece.encode(&mut PayloadWriter::new("BitmapPiece", &mut dst)),
            Err(ProtocolError::FieldTooLong { field: "bytes", .. })
        ));
    }

    #[test]
    fn debug_shows_length_not_contents() {
        let piece = BitmapPiece {
            bitmap: BitmapKind::First,
            offset: 4096,
            bytes: Bytes::from(vec![0xaa; 1000]),
        };
        let shown = format!("{piece:?}");
        assert_eq!(
            shown,
            "BitmapPiece { bitmap: First, offset: 4096, len: 1000 }"
        );
    }
}
