//! One frame of every variant, for the unit tests.

use bytes::Bytes;

use crate::*;

/// One frame of every variant, in type-byte order.
pub(crate) fn samples() -> Vec<Frame> {
    let mut utsname = Box::new([0u8; UTSNAME_LEN]);
    utsname[130..136].copy_from_slice(b"6.1.0\0");
    vec![
        Frame::Hello(Hello::new("crashdrop-send 0.1.0")),
        Frame::Welcome(Welcome {
            version: 1,
            software: "crashdropd 0.1.0".into(),
        }),
        Frame::Offer(DumpManifest {
            dump_id: DumpId([3; 32]),
            dump_level: 31,
            page_size: 4096,
            max_mapnr: 1 << 20,
            phys_base: u64::MAX - 0xfff,
            crash_time: -5,
            nr_cpus: 2,
            utsname,
            num_dumpable: 700,
            pages_per_chunk: 64,
            notes: Bytes::from_static(b"\x05\0\0\0VMCOREINFO"),
        }),
        Frame::ResumeFrom(ResumeFrom {
            state: ResumeState::Send,
            bitmaps_stored: true,
            next_page: 128,
        }),
        Frame::BitmapPiece(BitmapPiece {
            bitmap: BitmapKind::Second,
            offset: 4096,
            bytes: Bytes::from(vec![0xff; 300]),
        }),
        Frame::BitmapsDone,
        Frame::PageChunk(PageChunk {
            first_page: 128,
            chunk_digest: [0x5a; 32],
            pages: vec![
                PageData::Zero,
                PageData::Raw(Bytes::from(vec![1; 4096])),
                PageData::Zstd(Bytes::from_static(&[0x28, 0xb5, 0x2f, 0xfd])),
            ],
        }),
        Frame::ChunkAck(ChunkAck { durable_pages: 192 }),
        Frame::Finish(Finish {
            dump_digest: [0xee; 32],
        }),
        Frame::Complete(Complete {
            stored_bytes: 1 << 33,
            location: "web-7/2026-11-26T14-03-11Z-0a1b2c3d4e5f".into(),
        }),
        Frame::Error(ErrorFrame::new(ErrorCode::Busy, "at capacity")),
        Frame::Busy(Busy::new(
            std::time::Duration::from_millis(1500),
            "at max_sessions",
        )),
        Frame::Probe(Probe {
            dump_level: 31,
            page_size: 4096,
            num_dumpable: 1 << 20,
        }),
        Frame::ProbeVerdict(ProbeVerdict {
            verdict: Verdict::NoSpace,
            retry_after_ms: 0,
            estimated_bytes: 1 << 31,
            available_bytes: 1 << 30,
            message: "needs 2 GiB, 1 GiB free above min_free".into(),
        }),
        Frame::ResumeSet(ResumeSet {
            state: ResumeState::Send,
            bitmaps_stored: true,
            window: WINDOW_V2,
            durable: {
                let mut set = ChunkRanges::prefix(3);
                set.insert(7);
                set
            },
        }),
        Frame::ChunksAck(ChunksAck {
            durable: ChunkRanges::prefix(1),
        }),
        Frame::SparseChunk(SparseChunk {
            first_page: 640,
            chunk_digest: [0x5b; 32],
            pages: vec![
                PageData::Zero,
                PageData::Raw(Bytes::from(vec![1; 4096])),
                PageData::Zero,
                PageData::Zero,
                PageData::Zero,
                PageData::Zero,
                PageData::Zero,
                PageData::Zero,
                PageData::Zero,
                PageData::Zstd(Bytes::from_static(&[0x28, 0xb5, 0x2f, 0xfd])),
            ],
        }),
    ]
}
