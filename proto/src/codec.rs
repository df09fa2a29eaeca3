//! `FrameCodec`: frames on a byte stream, as a `tokio_util::codec` decoder and encoder.
//!
//! Decoding is mini-redis's two steps with bore's cap: the 4-byte length is checked (0 and anything
//! over `MAX_FRAME_LEN` are refused before a byte is buffered for it), `Ok(None)` is returned until
//! the whole frame is in the buffer, and only then is the buffer advanced and the payload parsed.

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::ProtocolError;
use crate::frame::Frame;
use crate::limits::MAX_FRAME_LEN;
use crate::writer::PayloadWriter;

/// Bytes of the length prefix.
const LEN_PREFIX: usize = 4;

/// Encodes and decodes [`Frame`]s: `u32` big-endian length (type byte + payload), type byte,
/// payload. Use it with `tokio_util::codec::Framed` over any `AsyncRead + AsyncWrite`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameCodec;

impl FrameCodec {
    /// A codec. It has no state: a frame is parsed only once it is whole.
    pub fn new() -> FrameCodec {
        FrameCodec
    }

    /// Appends `frame` to `dst`, or appends nothing and returns the error if a field is over its
    /// limit or the frame over `MAX_FRAME_LEN`: we never send what the peer must reject.
    ///
    /// The `Encoder<Frame>` impl calls this; it is here for encoding a borrowed frame. (There is
    /// deliberately no `Encoder<&Frame>`: two impls would make `SinkExt::flush` and `close` on a
    /// `Framed` ambiguous.)
    pub fn encode_frame(frame: &Frame, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        let start = dst.len();
        let result = encode_at(frame, dst, start);
        if result.is_err() {
            dst.truncate(start);
        }
        result
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        let Some(prefix) = src.first_chunk::<LEN_PREFIX>() else {
            return Ok(None);
        };
        let len = usize::try_from(u32::from_be_bytes(*prefix)).unwrap_or(usize::MAX);
        if len == 0 {
            return Err(ProtocolError::EmptyFrame);
        }
        if len > MAX_FRAME_LEN {
            return Err(ProtocolError::FrameTooLong {
                len,
                max: MAX_FRAME_LEN,
            });
        }
        let whole = LEN_PREFIX.saturating_add(len);
        if src.len() < whole {
            // Room for the rest of this frame only: `len` is already bounded.
            src.reserve(whole.saturating_sub(src.len()));
            return Ok(None);
        }
        src.advance(LEN_PREFIX);
        let mut body = src.split_to(len).freeze();
        let Some(&frame_type) = body.first() else {
            return Err(ProtocolError::EmptyFrame);
        };
        body.advance(1);
        Frame::decode(frame_type, body).map(Some)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(ProtocolError::UnexpectedEof {
                buffered: src.len(),
            }),
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = ProtocolError;

    /// See [`FrameCodec::encode_frame`].
    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        FrameCodec::encode_frame(&frame, dst)
    }
}

fn encode_at(frame: &Frame, dst: &mut BytesMut, start: usize) -> Result<(), ProtocolError> {
    dst.reserve(
        LEN_PREFIX
            .saturating_add(1)
            .saturating_add(frame.payload_size_hint()),
    );
    dst.put_u32(0); // patched below, once the length is known
    dst.put_u8(frame.frame_type());
    frame.encode_payload(&mut PayloadWriter::new(frame.name(), dst))?;
    let len = dst.len().saturating_sub(start).saturating_sub(LEN_PREFIX);
    let declared = u32::try_from(len)
        .ok()
        .filter(|_| len <= MAX_FRAME_LEN)
        .ok_or(ProtocolError::FrameTooLong {
            len,
            max: MAX_FRAME_LEN,
        })?;
    let slot = dst
        .get_mut(start..)
        .and_then(|frame| frame.first_chunk_mut::<LEN_PREFIX>())
        .ok_or_else(|| std::io::Error::other("frame length prefix missing from the buffer"))?;
    *slot = declared.to_be_bytes();
    Ok(())
}

impl Frame {
    /// Roughly the payload's encoded size, so the encoder reserves once for a 1 MiB chunk.
    fn payload_size_hint(&self) -> usize {
        match self {
            Frame::PageChunk(chunk) => chunk.pages.iter().fold(42usize, |sum, page| {
                sum.saturating_add(5).saturating_add(page.data().len())
            }),
            Frame::BitmapPiece(piece) => piece.bytes.len().saturating_add(13),
            Frame::Offer(manifest) => manifest.notes.len().saturating_add(469),
            _ => 64,
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::test_frames::samples;
    use crate::*;

    fn encode(frame: &Frame) -> BytesMut {
        let mut buf = BytesMut::new();
        FrameCodec::encode_frame(frame, &mut buf).expect("encodes");
        buf
    }

    fn decode_all(buf: &mut BytesMut) -> Result<Vec<Frame>, ProtocolError> {
        let mut frames = Vec::new();
        while let Some(frame) = FrameCodec.decode(buf)? {
            frames.push(frame);
        }
        Ok(frames)
    }

    /// A frame of type `ty` with payload `payload`, built by hand.
    fn raw_frame(ty: u8, payload: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.put_u32(u32::try_from(payload.len() + 1).expect("small"));
        buf.put_u8(ty);
        buf.put_slice(payload);
        buf
    }

    #[test]
    fn every_variant_round_trips() {
        for frame in samples() {
            let mut buf = encode(&frame);
            let declared = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes"));
            assert_eq!(declared as usize, buf.len() - 4, "{}", frame.name());
            assert_eq!(buf[4], frame.frame_type());
            assert_eq!(FrameCodec.decode(&mut buf).expect("decodes"), Some(frame));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn every_strict_prefix_is_incomplete_and_consumes_nothing() {
        for frame in samples() {
            let whole = encode(&frame);
            for cut in 0..whole.len() {
                let mut buf = BytesMut::from(&whole[..cut]);
                assert!(
                    FrameCodec.decode(&mut buf).expect("no error").is_none(),
                    "{} cut at {cut}",
                    frame.name()
                );
                assert_eq!(&buf[..], &whole[..cut], "nothing consumed");
                if cut > 0 {
                    assert!(matches!(
                        FrameCodec.decode_eof(&mut buf),
                        Err(ProtocolError::UnexpectedEof { buffered }) if buffered == cut
                    ));
                }
            }
        }
    }

    #[test]
    fn one_byte_at_a_time_gives_the_same_frames() {
        let frames = samples();
        let mut stream = BytesMut::new();
        for frame in &frames {
            FrameCodec::encode_frame(frame, &mut stream).expect("encodes");
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &byte in stream.iter() {
            buf.put_u8(byte);
            if let Some(frame) = FrameCodec.decode(&mut buf).expect("valid stream") {
                got.push(frame);
            }
        }
        assert_eq!(got, frames);
        assert!(buf.is_empty());
        assert_eq!(FrameCodec.decode_eof(&mut buf).expect("clean close"), None);
    }

    #[test]
    fn oversize_length_is_refused_before_allocating() {
        for declared in [MAX_FRAME_LEN as u32 + 1, u32::MAX] {
            let mut buf = BytesMut::with_capacity(16);
            buf.put_u32(declared);
            buf.put_u8(0x07);
            let capacity = buf.capacity();
            assert!(matches!(
                FrameCodec.decode(&mut buf),
                Err(ProtocolError::FrameTooLong { len, max: MAX_FRAME_LEN }) if len == declared as usize
            ));
            assert_eq!(
                buf.capacity(),
                capacity,
                "no reservation for a refused frame"
            );
            assert_eq!(buf.len(), 5, "nothing consumed");
        }
    }

    #[test]
    fn an_incomplete_frame_reserves_only_its_own_length() {
        let mut buf = BytesMut::new();
        buf.put_u32(100);
        buf.put_u8(0x08);
        assert_eq!(FrameCodec.decode(&mut buf).expect("incomplete"), None);
        assert!(buf.capacity() >= 104);
        assert!(buf.capacity() < MAX_FRAME_LEN);
    }

    #[test]
    fn zero_length_is_refused() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 0, 1][..]);
        assert!(matches!(
            FrameCodec.decode(&mut buf),
            Err(ProtocolError::EmptyFrame)
        ));
    }

    #[test]
    fn unknown_type_is_refused() {
        for ty in [0x00, 0x0b, 0x0e, 0x16, 0xff] {
            let mut buf = raw_frame(ty, &[]);
            assert!(matches!(
                FrameCodec.decode(&mut buf),
                Err(ProtocolError::UnknownFrameType(t)) if t == ty
            ));
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        for frame in samples() {
            let encoded = encode(&frame);
            let mut padded = raw_frame(encoded[4], &encoded[5..]);
            // Grow the declared length by one and append a stray byte.
            let len = u32::from_be_bytes(padded[..4].try_into().expect("4")) + 1;
            padded[..4].copy_from_slice(&len.to_be_bytes());
            padded.put_u8(0);
            assert!(
                matches!(
                    FrameCodec.decode(&mut padded),
                    Err(ProtocolError::TrailingBytes { extra: 1, .. })
                ),
                "{}",
                frame.name()
            );
        }
    }

    #[test]
    fn truncated_payload_is_refused() {
        for frame in samples() {
            let encoded = encode(&frame);
            if encoded.len() == 5 {
                continue; // BitmapsDone has no payload to truncate
            }
            // A whole frame (by its length) whose payload lost its last byte.
            let mut short = raw_frame(encoded[4], &encoded[5..encoded.len() - 1]);
            assert!(
                matches!(
                    FrameCodec.decode(&mut short),
                    Err(ProtocolError::Truncated { .. })
                ),
                "{}",
                frame.name()
            );
        }
    }

    #[test]
    fn a_bad_frame_is_consumed_whole_so_the_error_is_about_it() {
        let mut buf = raw_frame(0x08, &[0, 0, 0]);
        buf.extend_from_slice(&encode(&Frame::BitmapsDone));
        assert!(matches!(
            FrameCodec.decode(&mut buf),
            Err(ProtocolError::Truncated {
                frame: "ChunkAck",
                field: "durable_pages"
            })
        ));
        assert_eq!(
            decode_all(&mut buf).expect("next frame"),
            vec![Frame::BitmapsDone]
        );
    }

    #[test]
    fn page_data_is_not_copied() {
        let frame = Frame::PageChunk(PageChunk {
            first_page: 0,
            chunk_digest: [0; 32],
            pages: vec![PageData::Raw(Bytes::from(vec![7; 4096]))],
        });
        let mut buf = encode(&frame);
        let base = buf.as_ptr() as usize;
        let end = base + buf.len();
        let Some(Frame::PageChunk(chunk)) = FrameCodec.decode(&mut buf).expect("decodes") else {
            panic!("not a chunk");
        };
        let data = chunk.pages[0].data().as_ptr() as usize;
        assert!(
            (base..end).contains(&data),
            "data points into the read buffer"
        );
    }

    #[test]
    fn encoder_refuses_oversize_frames_and_writes_nothing() {
        let mut buf = encode(&Frame::BitmapsDone);
        let before = buf.clone();
        // 256 raw pages of 64 KiB: every field in range, the frame over 4 MiB.
        let huge = Frame::PageChunk(PageChunk {
            first_page: 0,
            chunk_digest: [0; 32],
            pages: vec![PageData::Raw(Bytes::from(vec![0; MAX_PAGE_SIZE as usize])); 256],
        });
        assert!(matches!(
            FrameCodec::encode_frame(&huge, &mut buf),
            Err(ProtocolError::FrameTooLong {
                max: MAX_FRAME_LEN,
                ..
            })
        ));
        let long = Frame::Error(ErrorFrame {
            code: ErrorCode::Internal,
            message: "m".repeat(MAX_STRING + 1),
        });
        assert!(matches!(
            FrameCodec.encode(long, &mut buf),
            Err(ProtocolError::FieldTooLong {
                frame: "Error",
                field: "message",
                ..
            })
        ));
        assert_eq!(buf, before, "a refused frame leaves the buffer as it was");
    }

    #[test]
    fn a_frame_of_exactly_max_len_is_accepted_and_one_more_byte_is_not() {
        // 43 + 63 * (5 + 65536) + (5 + 65173) = 4 MiB exactly.
        let mut pages = vec![PageData::Raw(Bytes::from(vec![1; MAX_PAGE_SIZE as usize])); 63];
        pages.push(PageData::Raw(Bytes::from(vec![2; 65173])));
        let mut chunk = PageChunk {
            first_page: 0,
            chunk_digest: [0; 32],
            pages,
        };
        let frame = Frame::PageChunk(chunk.clone());
        let mut buf = encode(&frame);
        assert_eq!(buf.len(), 4 + MAX_FRAME_LEN);
        assert_eq!(FrameCodec.decode(&mut buf).expect("decodes"), Some(frame));

        chunk.pages[63] = PageData::Raw(Bytes::from(vec![2; 65174]));
        let mut buf = BytesMut::new();
        assert!(matches!(
            FrameCodec.encode(Frame::PageChunk(chunk), &mut buf),
            Err(ProtocolError::FrameTooLong { len, .. }) if len == MAX_FRAME_LEN + 1
        ));
        assert!(buf.is_empty());
    }
}
