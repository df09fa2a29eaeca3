//! Frames shared by the integration tests: one of every variant, and proptest strategies.
#![allow(dead_code)] // each test binary uses a different part

use bytes::Bytes;
use crashdrop_proto::*;
use proptest::prelude::*;

/// One frame of every variant, each with realistic contents.
pub fn samples() -> Vec<Frame> {
    let mut utsname = Box::new([0u8; UTSNAME_LEN]);
    for (i, field) in ["Linux", "web-7", "6.1.0-13-amd64"].iter().enumerate() {
        let at = i * UTSNAME_FIELD_LEN;
        utsname[at..at + field.len()].copy_from_slice(field.as_bytes());
    }
    vec![
        Frame::Hello(Hello::new("crashdrop-send 0.1.0")),
        Frame::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            software: "crashdropd 0.1.0".into(),
        }),
        Frame::Offer(DumpManifest {
            dump_id: DumpId([0xa5; 32]),
            dump_level: 31,
            page_size: 4096,
            max_mapnr: 1 << 22,
            phys_base: (-0x2000_0000i64) as u64,
            crash_time: 1_764_165_791,
            nr_cpus: 8,
            utsname,
            num_dumpable: 100_000,
            pages_per_chunk: 256,
            notes: Bytes::from(vec![0x11; 8 * 356]),
        }),
        Frame::ResumeFrom(ResumeFrom {
            state: ResumeState::Send,
            bitmaps_stored: false,
            next_page: 0,
        }),
        Frame::BitmapPiece(BitmapPiece {
            bitmap: BitmapKind::First,
            offset: 0,
            bytes: Bytes::from(vec![0xff; 1 << 16]),
        }),
        Frame::BitmapsDone,
        Frame::PageChunk(PageChunk {
            first_page: 0,
            chunk_digest: [0x42; 32],
            pages: (0..256u32)
                .map(|i| match i % 3 {
                    0 => PageData::Zero,
                    1 => PageData::Raw(Bytes::from(vec![i as u8; 4096])),
                    _ => PageData::Zstd(Bytes::from(vec![i as u8; 100])),
                })
                .collect(),
        }),
        Frame::ChunkAck(ChunkAck { durable_pages: 256 }),
        Frame::Finish(Finish {
            dump_digest: [0x99; 32],
        }),
        Frame::Complete(Complete {
            stored_bytes: 123_456_789,
            location: "web-7/2026-11-26T14-03-11Z-0a1b2c3d4e5f".into(),
        }),
        Frame::Error(ErrorFrame::new(ErrorCode::ChunkCorrupt, "chunk 3: digest")),
    ]
}

fn small_bytes(min: usize, max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), min..max).prop_map(Bytes::from)
}

fn text() -> impl Strategy<Value = String> {
    // Up to 64 chars of up to 4 bytes: always within MAX_STRING.
    "\\PC{0,64}"
}

fn page() -> impl Strategy<Value = PageData> {
    prop_oneof![
        Just(PageData::Zero),
        small_bytes(0, 64).prop_map(PageData::Raw),
        small_bytes(1, 64).prop_map(PageData::Zstd),
    ]
}

fn manifest() -> impl Strategy<Value = DumpManifest> {
    (
        (any::<[u8; 32]>(), any::<u8>(), any::<u32>(), any::<u64>()),
        (any::<u64>(), any::<i64>(), any::<u32>()),
        prop::collection::vec(any::<u8>(), UTSNAME_LEN),
        (any::<u64>(), any::<u16>(), small_bytes(0, 128)),
    )
        .prop_map(
            |(
                (id, dump_level, page_size, max_mapnr),
                (phys_base, crash_time, nr_cpus),
                uts,
                (num_dumpable, pages_per_chunk, notes),
            )| DumpManifest {
                dump_id: DumpId(id),
                dump_level,
                page_size,
                max_mapnr,
                phys_base,
                crash_time,
                nr_cpus,
                utsname: Box::new(<[u8; UTSNAME_LEN]>::try_from(uts).expect("390 bytes")),
                num_dumpable,
                pages_per_chunk,
                notes,
            },
        )
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    // Known codes and unknown ones (a newer peer's): both must round-trip.
    (1u16..=12).prop_map(ErrorCode::from_wire)
}

/// A set of chunk indices built by inserting arbitrary small ranges.
fn chunk_ranges() -> impl Strategy<Value = ChunkRanges> {
    prop::collection::vec((0u64..10_000, 1u64..50), 0..20).prop_map(|ranges| {
        let mut set = ChunkRanges::new();
        for (first, count) in ranges {
            set.insert_range(first, count);
        }
        set
    })
}

/// The version-2 frames.
fn v2_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (0..=MAX_RETRY_AFTER_MS, text()).prop_map(|(retry_after_ms, message)| Frame::Busy(Busy {
            retry_after_ms,
            message
        })),
        (0..=MAX_DUMP_LEVEL, 12u32..=16, 0..=MAX_MAPNR).prop_map(
            |(dump_level, shift, num_dumpable)| Frame::Probe(Probe {
                dump_level,
                page_size: 1 << shift,
                num_dumpable,
            })
        ),
        (
            0u8..=3,
            0..=MAX_RETRY_AFTER_MS,
            any::<u64>(),
            any::<u64>(),
            text()
        )
            .prop_map(
                |(v, retry_after_ms, estimated_bytes, available_bytes, message)| {
                    Frame::ProbeVerdict(ProbeVerdict {
                        verdict: Verdict::from_u8(v).expect("0..=3"),
                        retry_after_ms,
                        estimated_bytes,
                        available_bytes,
                        message,
                    })
                }
            ),
        (any::<bool>(), any::<bool>(), 1..=MAX_WINDOW, chunk_ranges()).prop_map(
            |(done, bitmaps_stored, window, durable)| Frame::ResumeSet(ResumeSet {
                state: if done {
                    ResumeState::Complete
                } else {
                    ResumeState::Send
                },
                bitmaps_stored,
                window,
                durable,
            })
        ),
        chunk_ranges()
            .prop_filter("non-empty", |set| !set.is_empty())
            .prop_map(|durable| Frame::ChunksAck(ChunksAck { durable })),
        (
            any::<u64>(),
            any::<[u8; 32]>(),
            prop::collection::vec(page(), 1..40)
        )
            .prop_map(|(first_page, chunk_digest, pages)| Frame::SparseChunk(
                SparseChunk {
                    first_page,
                    chunk_digest,
                    pages,
                }
            )),
    ]
}

/// Any frame the encoder accepts (small blobs, so cases stay fast).
pub fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (any::<u16>(), any::<u16>(), text()).prop_map(|(min_version, max_version, software)| {
            Frame::Hello(Hello {
                min_version,
                max_version,
                software,
            })
        }),
        (any::<u16>(), text())
            .prop_map(|(version, software)| Frame::Welcome(Welcome { version, software })),
        manifest().prop_map(Frame::Offer),
        (any::<bool>(), any::<bool>(), any::<u64>()).prop_map(
            |(done, bitmaps_stored, next_page)| {
                Frame::ResumeFrom(ResumeFrom {
                    state: if done {
                        ResumeState::Complete
                    } else {
                        ResumeState::Send
                    },
                    bitmaps_stored,
                    next_page,
                })
            }
        ),
        (any::<bool>(), any::<u64>(), small_bytes(0, 256)).prop_map(|(second, offset, bytes)| {
            Frame::BitmapPiece(BitmapPiece {
                bitmap: if second {
                    BitmapKind::Second
                } else {
                    BitmapKind::First
                },
                offset,
                bytes,
            })
        }),
        Just(Frame::BitmapsDone),
        (
            any::<u64>(),
            any::<[u8; 32]>(),
            prop::collection::vec(page(), 1..24)
        )
            .prop_map(
                |(first_page, chunk_digest, pages)| Frame::PageChunk(PageChunk {
                    first_page,
                    chunk_digest,
                    pages,
                })
            ),
        any::<u64>().prop_map(|durable_pages| Frame::ChunkAck(ChunkAck { durable_pages })),
        any::<[u8; 32]>().prop_map(|dump_digest| Frame::Finish(Finish { dump_digest })),
        (any::<u64>(), text()).prop_map(|(stored_bytes, location)| {
            Frame::Complete(Complete {
                stored_bytes,
                location,
            })
        }),
        (error_code(), text())
            .prop_map(|(code, message)| Frame::Error(ErrorFrame::new(code, message))),
        v2_frame(),
    ]
}
