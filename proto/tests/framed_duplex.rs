//! `FrameCodec` under `Framed` over `tokio::io::duplex(8)`: every read and write is partial.

mod common;

use bytes::Bytes;
use crashdrop_proto::*;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio_util::codec::{Framed, FramedRead, FramedWrite};

fn pair() -> (
    Framed<DuplexStream, FrameCodec>,
    Framed<DuplexStream, FrameCodec>,
) {
    let (a, b) = tokio::io::duplex(8);
    (Framed::new(a, FrameCodec), Framed::new(b, FrameCodec))
}

async fn recv(framed: &mut Framed<DuplexStream, FrameCodec>) -> Frame {
    framed
        .next()
        .await
        .expect("a frame, not end of stream")
        .expect("a valid frame")
}

fn chunk(first_page: u64) -> Frame {
    Frame::PageChunk(PageChunk {
        first_page,
        chunk_digest: [first_page as u8; 32],
        pages: vec![
            PageData::Raw(Bytes::from(vec![first_page as u8; 4096])),
            PageData::Zero,
        ],
    })
}

#[tokio::test]
async fn a_conversation_in_lock_step() {
    let (mut sender, mut receiver) = pair();
    let samples = common::samples();
    let offer = samples[2].clone();

    let send_side = async {
        sender
            .send(Frame::Hello(Hello::new("send")))
            .await
            .expect("send");
        let Frame::Welcome(welcome) = recv(&mut sender).await else {
            panic!("expected Welcome");
        };
        assert_eq!(welcome.version, PROTOCOL_VERSION);
        sender.send(offer.clone()).await.expect("send");
        assert!(matches!(recv(&mut sender).await, Frame::ResumeFrom(_)));
        for first_page in [0, 2, 4] {
            sender.send(chunk(first_page)).await.expect("send");
            let Frame::ChunkAck(ack) = recv(&mut sender).await else {
                panic!("expected ChunkAck");
            };
            assert_eq!(ack.durable_pages, first_page + 2);
        }
        sender
            .send(Frame::Finish(Finish {
                dump_digest: [1; 32],
            }))
            .await
            .expect("send");
        recv(&mut sender).await
    };

    let receive_side = async {
        let Frame::Hello(hello) = recv(&mut receiver).await else {
            panic!("expected Hello");
        };
        let version = hello.negotiate().expect("common version");
        receiver
            .send(Frame::Welcome(Welcome {
                version,
                software: "recv".into(),
            }))
            .await
            .expect("send");
        assert_eq!(recv(&mut receiver).await, offer);
        receiver
            .send(Frame::ResumeFrom(ResumeFrom {
                state: ResumeState::Send,
                bitmaps_stored: true,
                next_page: 0,
            }))
            .await
            .expect("send");
        for first_page in [0, 2, 4] {
            assert_eq!(recv(&mut receiver).await, chunk(first_page));
            receiver
                .send(Frame::ChunkAck(ChunkAck {
                    durable_pages: first_page + 2,
                }))
                .await
                .expect("send");
        }
        assert!(matches!(recv(&mut receiver).await, Frame::Finish(_)));
        let done = Frame::Complete(Complete {
            stored_bytes: 3 * 4096,
            location: "web-7/x".into(),
        });
        receiver.send(done.clone()).await.expect("send");
        done
    };

    let (last_received, last_sent) = tokio::join!(send_side, receive_side);
    assert_eq!(last_received, last_sent);
}

#[tokio::test]
async fn both_directions_at_once() {
    let (a, b) = tokio::io::duplex(8);
    let (a_read, a_write) = tokio::io::split(a);
    let (b_read, b_write) = tokio::io::split(b);
    let samples = common::samples();
    let reversed: Vec<Frame> = samples.iter().rev().cloned().collect();

    let send = |write, frames: Vec<Frame>| async move {
        let mut sink = FramedWrite::new(write, FrameCodec);
        for frame in frames {
            sink.send(frame).await.expect("send");
        }
        sink.close().await.expect("close");
    };
    let receive = |read| async move {
        FramedRead::new(read, FrameCodec)
            .map(|frame| frame.expect("valid frame"))
            .collect::<Vec<Frame>>()
            .await
    };

    let ((), (), from_a, from_b) = tokio::join!(
        send(a_write, samples.clone()),
        send(b_write, reversed.clone()),
        receive(b_read),
        receive(a_read),
    );
    assert_eq!(from_a, samples);
    assert_eq!(from_b, reversed);
}

#[tokio::test]
async fn an_oversize_frame_is_refused() {
    let (mut raw, b) = tokio::io::duplex(8);
    let mut framed = Framed::new(b, FrameCodec);
    let claimed = u32::try_from(MAX_FRAME_LEN + 1).expect("fits");
    let writer = async {
        raw.write_all(&claimed.to_be_bytes()).await.expect("write");
        raw.write_all(&[0x07, 0, 0, 0]).await.expect("write");
        raw
    };
    let (_raw, result) = tokio::join!(writer, framed.next());
    assert!(matches!(
        result,
        Some(Err(ProtocolError::FrameTooLong { len, max: MAX_FRAME_LEN })) if len == MAX_FRAME_LEN + 1
    ));
    assert!(framed.read_buffer().capacity() < MAX_FRAME_LEN);
}

#[tokio::test]
async fn end_of_stream_between_frames_is_clean_and_inside_one_is_an_error() {
    let (mut raw, b) = tokio::io::duplex(8);
    let mut framed = Framed::new(b, FrameCodec);
    // ChunkAck: length 9, type 8, then only 3 of its 8 payload bytes.
    let writer = async move {
        raw.write_all(&[0, 0, 0, 1, 0x06]).await.expect("write");
        raw.write_all(&[0, 0, 0, 9, 0x08, 0, 0, 0])
            .await
            .expect("write");
        // `raw` is dropped here: end of stream mid-frame.
    };
    let reader = async {
        let first = framed.next().await;
        let second = framed.next().await;
        (first, second)
    };
    let ((), (first, second)) = tokio::join!(writer, reader);
    assert!(matches!(first, Some(Ok(Frame::BitmapsDone))));
    assert!(matches!(
        second,
        Some(Err(ProtocolError::UnexpectedEof { buffered: 8 }))
    ));

    let (raw, b) = tokio::io::duplex(8);
    drop(raw);
    let mut framed = Framed::new(b, FrameCodec);
    assert!(framed.next().await.is_none(), "clean close");
}
