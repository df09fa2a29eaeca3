//! `PayloadReader`: reads one frame's payload field by field without ever panicking.
//!
//! Every read checks what remains before it splits (rustls' `Reader`, quinn's `Buf` use), names
//! the frame and field when the payload is short, and hands out blobs as zero-copy `Bytes` slices of
//! the payload, so a 1 MiB chunk is never copied.

use bytes::{Buf, Bytes};

use crate::error::ProtocolError;

/// A cursor over one frame's payload.
pub(crate) struct PayloadReader {
    frame: &'static str,
    buf: Bytes,
}

impl PayloadReader {
    /// A reader over `payload`, which belongs to the frame named `frame` (for error messages).
    pub(crate) fn new(frame: &'static str, payload: Bytes) -> Self {
        PayloadReader {
            frame,
            buf: payload,
        }
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// An `InvalidValue` error for `field` of this frame.
    pub(crate) fn invalid(&self, field: &'static str, value: u64) -> ProtocolError {
        ProtocolError::InvalidValue {
            frame: self.frame,
            field,
            value,
        }
    }

    fn truncated(&self, field: &'static str) -> ProtocolError {
        ProtocolError::Truncated {
            frame: self.frame,
            field,
        }
    }

    /// The next `N` bytes.
    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], ProtocolError> {
        let head = *self
            .buf
            .first_chunk::<N>()
            .ok_or_else(|| self.truncated(field))?;
        self.buf.advance(N);
        Ok(head)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ProtocolError> {
        self.array::<1>(field).map(u8::from_be_bytes)
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, ProtocolError> {
        self.array(field).map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ProtocolError> {
        self.array(field).map(u32::from_be_bytes)
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, ProtocolError> {
        self.array(field).map(u64::from_be_bytes)
    }

    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, ProtocolError> {
        self.array(field).map(i64::from_be_bytes)
    }

    /// A `u8` that must be 0 (false) or 1 (true).
    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, ProtocolError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.invalid(field, u64::from(other))),
        }
    }

    /// The next `len` bytes, as a slice of the payload (no copy).
    pub(crate) fn take(&mut self, field: &'static str, len: usize) -> Result<Bytes, ProtocolError> {
        if len > self.buf.len() {
            return Err(self.truncated(field));
        }
        Ok(self.buf.split_to(len))
    }

    fn too_long(&self, field: &'static str, len: usize, max: usize) -> ProtocolError {
        ProtocolError::FieldTooLong {
            frame: self.frame,
            field,
            len,
            max,
        }
    }

    /// A `blob`: `u32` length, then that many bytes, at most `max`. The limit is checked before
    /// the length is compared with what remains, so the error names the limit.
    pub(crate) fn blob(&mut self, field: &'static str, max: usize) -> Result<Bytes, ProtocolError> {
        let declared = self.u32(field)?;
        let len = usize::try_from(declared).map_err(|_| self.too_long(field, usize::MAX, max))?;
        if len > max {
            return Err(self.too_long(field, len, max));
        }
        self.take(field, len)
    }

    /// A `string`: `u16` length, then that many bytes of UTF-8, at most `max`.
    pub(crate) fn string(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<String, ProtocolError> {
        let len = usize::from(self.u16(field)?);
        if len > max {
            return Err(self.too_long(field, len, max));
        }
        let bytes = self.take(field, len)?;
        match std::str::from_utf8(&bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(ProtocolError::InvalidUtf8 {
                frame: self.frame,
                field,
            }),
        }
    }

    /// Ends the read: the payload must have been consumed exactly.
    pub(crate) fn finish(self) -> Result<(), ProtocolError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(ProtocolError::TrailingBytes {
                frame: self.frame,
                extra: self.buf.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &'static [u8]) -> PayloadReader {
        PayloadReader::new("Test", Bytes::from_static(bytes))
    }

    #[test]
    fn reads_big_endian_integers() {
        let mut r = reader(&[
            1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xfe,
        ]);
        assert_eq!(r.u8("a").expect("u8"), 1);
        assert_eq!(r.u16("b").expect("u16"), 2);
        assert_eq!(r.u32("c").expect("u32"), 3);
        assert_eq!(r.u64("d").expect("u64"), 4);
        assert_eq!(r.i64("e").expect("i64"), -2);
        r.finish().expect("consumed exactly");
    }

    #[test]
    fn short_reads_name_the_field() {
        let mut r = reader(&[0, 0, 0]);
        match r.u32("count") {
            Err(ProtocolError::Truncated { frame, field }) => {
                assert_eq!((frame, field), ("Test", "count"));
            }
            other => panic!("{other:?}"),
        }
        // A failed read consumes nothing.
        assert_eq!(r.remaining(), 3);
    }

    #[test]
    fn blob_checks_limit_then_presence() {
        let mut r = reader(&[0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(r.blob("data", 3).expect("fits"), Bytes::from_static(b"abc"));
        r.finish().expect("consumed");

        let mut r = reader(&[0, 0, 0, 4, b'a', b'b', b'c', b'd']);
        assert!(matches!(
            r.blob("data", 3),
            Err(ProtocolError::FieldTooLong { len: 4, max: 3, .. })
        ));

        // Claims 4 GiB; only the limit is consulted, nothing is allocated.
        let mut r = reader(&[0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            r.blob("data", 1 << 20),
            Err(ProtocolError::FieldTooLong { .. })
        ));

        let mut r = reader(&[0, 0, 0, 4, b'a']);
        assert!(matches!(
            r.blob("data", 8),
            Err(ProtocolError::Truncated { field: "data", .. })
        ));
    }

    #[test]
    fn blob_is_a_slice_of_the_payload() {
        let payload = Bytes::from(vec![0, 0, 0, 2, 7, 8]);
        let base = payload.as_ptr();
        let mut r = PayloadReader::new("Test", payload);
        let blob = r.blob("data", 2).expect("fits");
        assert_eq!(blob.as_ptr(), base.wrapping_add(4));
    }

    #[test]
    fn strings_must_be_utf8_and_bounded() {
        let mut r = reader(&[0, 2, b'h', b'i']);
        assert_eq!(r.string("s", 2).expect("fits"), "hi");
        let mut r = reader(&[0, 2, 0xc3, 0x28]);
        assert!(matches!(
            r.string("s", 8),
            Err(ProtocolError::InvalidUtf8 { field: "s", .. })
        ));
        let mut r = reader(&[0, 3, b'a', b'b', b'c']);
        assert!(matches!(
            r.string("s", 2),
            Err(ProtocolError::FieldTooLong { len: 3, max: 2, .. })
        ));
    }

    #[test]
    fn bools_are_zero_or_one() {
        let mut r = reader(&[0, 1, 2]);
        assert!(!r.bool("b").expect("0"));
        assert!(r.bool("b").expect("1"));
        assert!(matches!(
            r.bool("b"),
            Err(ProtocolError::InvalidValue { value: 2, .. })
        ));
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut r = reader(&[1, 2]);
        r.u8("a").expect("u8");
        assert!(matches!(
            r.finish(),
            Err(ProtocolError::TrailingBytes {
                frame: "Test",
                extra: 1
            })
        ));
    }
}
