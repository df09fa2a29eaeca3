//! `PayloadWriter`: appends one frame's fields, refusing strings and blobs over their limits.
//!
//! The encoder must never emit what the decoder on the other side would reject, so the limits
//! checked here are the same ones [`PayloadReader`](crate::reader::PayloadReader) enforces.

use bytes::{BufMut, BytesMut};

use crate::error::ProtocolError;

/// Appends fields of the frame named `frame` to `dst`.
pub(crate) struct PayloadWriter<'a> {
    frame: &'static str,
    dst: &'a mut BytesMut,
}

impl<'a> PayloadWriter<'a> {
    pub(crate) fn new(frame: &'static str, dst: &'a mut BytesMut) -> Self {
        PayloadWriter { frame, dst }
    }

    /// An `InvalidValue` error for `field` of this frame.
    pub(crate) fn invalid(&self, field: &'static str, value: u64) -> ProtocolError {
        ProtocolError::InvalidValue {
            frame: self.frame,
            field,
            value,
        }
    }

    /// An `EmptyField` error for `field` of this frame.
    pub(crate) fn empty(&self, field: &'static str) -> ProtocolError {
        ProtocolError::EmptyField {
            frame: self.frame,
            field,
        }
    }

    fn too_long(&self, field: &'static str, len: usize, max: usize) -> ProtocolError {
        ProtocolError::FieldTooLong {
            frame: self.frame,
            field,
            len,
            max,
        }
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.dst.put_slice(bytes);
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.dst.put_u8(v);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.dst.put_u16(v);
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.dst.put_u32(v);
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.dst.put_u64(v);
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.dst.put_i64(v);
    }

    pub(crate) fn bool(&mut self, v: bool) {
        self.dst.put_u8(u8::from(v));
    }

    /// A `blob`: `u32` length + bytes, refused if longer than `max`.
    pub(crate) fn blob(
        &mut self,
        field: &'static str,
        bytes: &[u8],
        max: usize,
    ) -> Result<(), ProtocolError> {
        let len = u32::try_from(bytes.len())
            .ok()
            .filter(|_| bytes.len() <= max)
            .ok_or_else(|| self.too_long(field, bytes.len(), max))?;
        self.dst.put_u32(len);
        self.dst.put_slice(bytes);
        Ok(())
    }

    /// A `string`: `u16` length + UTF-8 bytes, refused if longer than `max` bytes.
    pub(crate) fn string(
        &mut self,
        field: &'static str,
        s: &str,
        max: usize,
    ) -> Result<(), ProtocolError> {
        let len = u16::try_from(s.len())
            .ok()
            .filter(|_| s.len() <= max)
            .ok_or_else(|| self.too_long(field, s.len(), max))?;
        self.dst.put_u16(len);
        self.dst.put_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_big_endian_and_length_prefixes() {
        let mut dst = BytesMut::new();
        let mut w = PayloadWriter::new("Test", &mut dst);
        w.u8(1);
        w.u16(2);
        w.u32(3);
        w.u64(4);
        w.i64(-2);
        w.bool(true);
        w.string("s", "hi", 8).expect("fits");
        w.blob("b", b"xyz", 8).expect("fits");
        assert_eq!(
            &dst[..],
            &[
                1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xfe, 1, 0, 2, b'h', b'i', 0, 0, 0, 3, b'x', b'y', b'z'
            ][..]
        );
    }

    #[test]
    fn refuses_over_limit_and_writes_nothing() {
        let mut dst = BytesMut::new();
        let mut w = PayloadWriter::new("Test", &mut dst);
        assert!(matches!(
            w.string("s", "abc", 2),
            Err(ProtocolError::FieldTooLong {
                frame: "Test",
                field: "s",
                len: 3,
                max: 2
            })
        ));
        assert!(matches!(
            w.blob("b", &[0; 5], 4),
            Err(ProtocolError::FieldTooLong { len: 5, max: 4, .. })
        ));
        let big = "x".repeat(70_000);
        assert!(w.string("s", &big, usize::MAX).is_err(), "u16 bound");
        assert!(dst.is_empty());
    }
}
