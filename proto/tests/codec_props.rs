//! Property tests for `FrameCodec`: garbage never panics, and valid frames round-trip exactly.

mod common;

use bytes::{BufMut, BytesMut};
use crashdrop_proto::{Frame, FrameCodec, ProtocolError};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

/// Decodes frames until the codec wants more bytes or fails; checks each decoded frame
/// re-encodes to exactly the bytes it was decoded from (the encoding is canonical).
fn decode_stream(input: &[u8]) -> Result<Vec<Frame>, ProtocolError> {
    let mut buf = BytesMut::from(input);
    let mut frames = Vec::new();
    loop {
        let before = buf.clone();
        let Some(frame) = FrameCodec.decode(&mut buf)? else {
            return Ok(frames);
        };
        let consumed = before.len() - buf.len();
        let mut again = BytesMut::new();
        FrameCodec::encode_frame(&frame, &mut again).expect("a decoded frame re-encodes");
        assert_eq!(&again[..], &before[..consumed]);
        frames.push(frame);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_stream(&input);
        let mut buf = BytesMut::from(&input[..]);
        while let Ok(Some(_)) = FrameCodec.decode_eof(&mut buf) {}
    }

    #[test]
    fn arbitrary_payloads_behind_a_valid_header_never_panic(
        ty in prop_oneof![1u8..=10, Just(15u8), any::<u8>()],
        payload in prop::collection::vec(any::<u8>(), 0..1024),
    ) {
        let mut buf = BytesMut::new();
        buf.put_u32(u32::try_from(payload.len() + 1).expect("small"));
        buf.put_u8(ty);
        buf.put_slice(&payload);
        // A whole frame is here, so the answer is a frame or an error, never "need more".
        let result = decode_stream(&buf);
        if let Ok(frames) = result {
            prop_assert_eq!(frames.len(), 1);
        }
    }

    #[test]
    fn valid_frames_round_trip(frames in prop::collection::vec(common::frame(), 1..6)) {
        let mut stream = BytesMut::new();
        for frame in &frames {
            FrameCodec::encode_frame(frame, &mut stream).expect("encodes");
        }
        prop_assert_eq!(decode_stream(&stream).expect("decodes"), frames);
    }

    #[test]
    fn corrupted_frames_never_panic(
        frame in common::frame(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut buf = BytesMut::new();
        FrameCodec::encode_frame(&frame, &mut buf).expect("encodes");
        let len = buf.len();
        for (at, byte) in flips {
            buf[at.index(len)] = byte;
        }
        let _ = decode_stream(&buf);
    }

    #[test]
    fn any_split_point_gives_the_same_frames(
        frames in prop::collection::vec(common::frame(), 1..4),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut stream = BytesMut::new();
        for frame in &frames {
            FrameCodec::encode_frame(frame, &mut stream).expect("encodes");
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(stream.len())).collect();
        cuts.push(stream.len());
        cuts.sort_unstable();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut from = 0;
        for to in cuts {
            buf.extend_from_slice(&stream[from..to]);
            from = to;
            while let Some(frame) = FrameCodec.decode(&mut buf).expect("valid") {
                got.push(frame);
            }
        }
        prop_assert_eq!(got, frames);
    }
}

#[test]
fn samples_round_trip() {
    for frame in common::samples() {
        let mut buf = BytesMut::new();
        FrameCodec::encode_frame(&frame, &mut buf).expect("encodes");
        assert_eq!(decode_stream(&buf).expect("decodes"), vec![frame]);
    }
}
