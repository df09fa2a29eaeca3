//! Feeds arbitrary bytes to `FrameCodec`: it must never panic, and every frame it accepts must
//! re-encode to exactly the bytes it came from and decode again to an equal frame.
#![no_main]

use bytes::BytesMut;
use crashdrop_proto::FrameCodec;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let mut offset = 0;
    loop {
        let before = buf.len();
        let frame = match FrameCodec.decode(&mut buf) {
            Ok(Some(frame)) => frame,
            Ok(None) | Err(_) => break,
        };
        let consumed = before - buf.len();
        let original = &data[offset..offset + consumed];
        offset += consumed;

        let mut again = BytesMut::new();
        FrameCodec::encode_frame(&frame, &mut again).expect("a decoded frame re-encodes");
        assert_eq!(
            &again[..],
            original,
            "{} re-encodes differently",
            frame.name()
        );
        let redecoded = FrameCodec
            .decode(&mut again)
            .expect("re-encoded frame decodes");
        assert_eq!(redecoded.as_ref(), Some(&frame));
        assert!(again.is_empty());
    }
    // What is left (a partial frame, or the frame that failed) must not panic at end of stream.
    let _ = FrameCodec.decode_eof(&mut buf);
});
