//! A proptest state-machine test of the receiver's session logic (issue 8's acceptance): arbitrary
//! sequences of frames — in order, out of order, repeated, from two dumps mixed, with flipped
//! bytes, garbage, cut frames and changed offers — over one to four sessions against a real store
//! in a temp dir. After every case:
//!
//! - no session panicked, and every session ended within its timeout;
//! - nothing was written outside the dumps' directories (`STORE/<host>/<dump>/`), and only the
//!   files a dump has;
//! - every dump recorded `complete` passes `verify` and holds exactly the sender's pages;
//! - and an honest sender can still store both dumps afterwards (nothing the peer did leaves a
//!   dump stuck).
//!
//! Bounded: [`CASES`] cases (`PROPTEST_CASES` overrides), each on a small dump. The committed
//! corpus is [`corpus`]: hand-written sequences run every time before the random ones; proptest
//! adds any failing case to `session_state_machine.proptest-regressions` beside this file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use crashdrop_formats::digest::{sha256, ChunkHasher, DumpDigest};
use crashdrop_formats::elf::encode_utsname;
use crashdrop_proto::{
    BitmapKind, BitmapPiece, DumpId, DumpManifest, Finish, Frame, FrameCodec, Hello, HostName,
    PageChunk, PageData, ResumeState,
};
use crashdrop_receiver::cli::verify::{verify_dir, Verdict};
use crashdrop_receiver::session::{self, SessionLimits};
use crashdrop_receiver::store::{DumpStore, StoreCompression};
use futures_util::StreamExt;
use proptest::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{Encoder, FramedRead};
use tokio_util::sync::CancellationToken;

const CASES: u32 = 48;
const PAGE: usize = 4096;
const MAPNR: u64 = 64;
const PAGES_PER_CHUNK: u16 = 4;
const HOST: &str = "fuzz-host";
/// Files a dump directory may hold (the two temp files exist only during an atomic rewrite).
const DUMP_FILES: &[&str] = &[
    "vmcore",
    "dump.json",
    "progress",
    "dmesg.txt",
    "dmesg.txt.tmp",
    "dump.json.tmp",
    "progress.tmp",
];

/// One small dump as a sender would send it: its frames in protocol order.
struct Dump {
    manifest: DumpManifest,
    frames: Vec<Frame>,
    /// The page contents by stored index, for checking a complete dump.
    pages: Vec<Vec<u8>>,
}

fn notes(release: &str) -> Bytes {
    let text = format!("OSRELEASE={release}\nPAGESIZE=4096\n");
    let mut notes = BytesMut::new();
    notes.put_u32_le(11);
    notes.put_u32_le(text.len() as u32);
    notes.put_u32_le(0);
    notes.put_slice(b"VMCOREINFO\0\0");
    notes.put_slice(text.as_bytes());
    notes.resize(notes.len().next_multiple_of(4), 0);
    notes.freeze()
}

/// Dump `tag`: pfns 0..48 are RAM, every third of them is not dumpable; a mix of zero, raw and
/// zstd pages.
fn dump(tag: u8) -> Dump {
    let mut ram = vec![0u8; (MAPNR / 8) as usize];
    let mut dumpable = ram.clone();
    let mut pfns = Vec::new();
    for pfn in 0..48u64 {
        ram[(pfn / 8) as usize] |= 1 << (pfn % 8);
        if pfn % 3 != 2 {
            dumpable[(pfn / 8) as usize] |= 1 << (pfn % 8);
            pfns.push(pfn);
        }
    }
    let mut id = [0xd7; 32];
    id[0] = tag;
    let release = format!("6.1.0-fuzz{tag}");
    let manifest = DumpManifest {
        dump_id: DumpId(id),
        dump_level: 1,
        page_size: PAGE as u32,
        max_mapnr: MAPNR,
        phys_base: 0,
        crash_time: 1_700_000_000 + i64::from(tag),
        nr_cpus: 1,
        utsname: Box::new(encode_utsname([
            "Linux", HOST, &release, "#1", "x86_64", "(none)",
        ])),
        num_dumpable: pfns.len() as u64,
        pages_per_chunk: PAGES_PER_CHUNK,
        notes: notes(&release),
    };
    let mut digest = DumpDigest::new(&id, &sha256(&ram), &sha256(&dumpable));
    let mut frames = vec![
        Frame::Hello(Hello::new("state-machine-test")),
        Frame::Offer(manifest.clone()),
        // The 1st bitmap in two pieces, the 2nd whole.
        Frame::BitmapPiece(BitmapPiece {
            bitmap: BitmapKind::First,
            offset: 0,
            bytes: Bytes::copy_from_slice(&ram[..3]),
        }),
        Frame::BitmapPiece(BitmapPiece {
            bitmap: BitmapKind::First,
            offset: 3,
            bytes: Bytes::copy_from_slice(&ram[3..]),
        }),
        Frame::BitmapPiece(BitmapPiece {
            bitmap: BitmapKind::Second,
            offset: 0,
            bytes: Bytes::copy_from_slice(&dumpable),
        }),
        Frame::BitmapsDone,
    ];
    let mut pages = Vec::new();
    for (c, group) in pfns.chunks(usize::from(PAGES_PER_CHUNK)).enumerate() {
        let mut hasher = ChunkHasher::new();
        let mut data = Vec::new();
        for &pfn in group {
            let mut page = vec![0u8; PAGE];
            match pfn % 4 {
                0 => {}
                1 => page.fill(tag ^ pfn as u8),
                _ => {
                    for (i, b) in page.iter_mut().enumerate() {
                        *b = (i as u64 * 31 + pfn * 7 + u64::from(tag)) as u8;
                    }
                }
            }
            hasher.update(&page);
            data.push(match pfn % 4 {
                0 => PageData::Zero,
                3 => PageData::Zstd(Bytes::from(zstd::bulk::compress(&page, 1).expect("zstd"))),
                _ => PageData::Raw(Bytes::from(page.clone())),
            });
            pages.push(page);
        }
        let chunk_digest = hasher.finish();
        digest.push_chunk(&chunk_digest);
        frames.push(Frame::PageChunk(PageChunk {
            first_page: (c * usize::from(PAGES_PER_CHUNK)) as u64,
            chunk_digest,
            pages: data,
        }));
    }
    frames.push(Frame::Finish(Finish {
        dump_digest: digest.finish(),
    }));
    Dump {
        manifest,
        frames,
        pages,
    }
}

/// How an `Offer` may differ from the dump's own.
#[derive(Clone, Copy, Debug)]
enum OfferChange {
    /// One more note byte: same DumpId, a moved layout (the changed-offer case).
    LongerNotes,
    /// A different chunk size.
    ChunkSize,
    /// A page count the bitmaps will not match.
    PageCount,
    /// Another crash time: same DumpId, another directory.
    CrashTime,
}

/// One step of a session.
#[derive(Clone, Debug)]
enum Op {
    /// Frames `from..to` of dump `dump`, in order (mod the frame count).
    Run { dump: usize, from: usize, to: usize },
    /// Frame `index` of dump `dump` with byte `at` (mod its length) xored with `xor`.
    Flip {
        dump: usize,
        index: usize,
        at: usize,
        xor: u8,
    },
    /// The first `keep` bytes of a frame only.
    Cut {
        dump: usize,
        index: usize,
        keep: usize,
    },
    /// Bytes that need not be a frame at all.
    Garbage(Vec<u8>),
    /// A changed `Offer` for dump `dump`.
    Offer { dump: usize, change: OfferChange },
}

/// Frame indices: a dump has 15 frames; a few more wrap around.
fn index() -> std::ops::Range<usize> {
    0..18
}

fn op() -> impl Strategy<Value = Op> {
    let dump = 0usize..2;
    let index = index();
    prop_oneof![
        4 => (dump.clone(), index.clone(), 0usize..16).prop_map(|(dump, from, len)| Op::Run {
            dump,
            from,
            to: from + len
        }),
        2 => (dump.clone(), index.clone(), any::<usize>(), 1u8..=255)
            .prop_map(|(dump, index, at, xor)| Op::Flip { dump, index, at, xor }),
        1 => (dump.clone(), index.clone(), 0usize..64)
            .prop_map(|(dump, index, keep)| Op::Cut { dump, index, keep }),
        1 => proptest::collection::vec(any::<u8>(), 0..48).prop_map(Op::Garbage),
        1 => (
            dump,
            prop_oneof![
                Just(OfferChange::LongerNotes),
                Just(OfferChange::ChunkSize),
                Just(OfferChange::PageCount),
                Just(OfferChange::CrashTime),
            ]
        )
            .prop_map(|(dump, change)| Op::Offer { dump, change }),
    ]
}

/// A session: most start the way a sender does (Hello, Offer and maybe more, in order), so that
/// the random steps after it reach every state of the transfer; the rest start anywhere.
fn session_ops() -> impl Strategy<Value = Vec<Op>> {
    (
        proptest::option::weighted(0.85, (0usize..2, 2usize..16)),
        proptest::collection::vec(op(), 0..10),
    )
        .prop_map(|(start, mut ops)| {
            if let Some((dump, to)) = start {
                ops.insert(0, Op::Run { dump, from: 0, to });
            }
            ops
        })
}

fn encode(frame: &Frame) -> Vec<u8> {
    let mut buf = BytesMut::new();
    FrameCodec.encode(frame.clone(), &mut buf).expect("encode");
    buf.to_vec()
}

fn changed_offer(manifest: &DumpManifest, change: OfferChange) -> Frame {
    let mut m = manifest.clone();
    match change {
        OfferChange::LongerNotes => {
            let mut notes = m.notes.to_vec();
            notes.extend_from_slice(&[0; 4]);
            m.notes = Bytes::from(notes);
        }
        OfferChange::ChunkSize => m.pages_per_chunk = PAGES_PER_CHUNK * 2,
        OfferChange::PageCount => m.num_dumpable -= 1,
        OfferChange::CrashTime => m.crash_time += 3600,
    }
    Frame::Offer(m)
}

fn bytes_of(op: &Op, dumps: &[Dump]) -> Vec<u8> {
    let frames = |d: usize| &dumps[d % dumps.len()].frames;
    match op {
        Op::Run { dump, from, to } => {
            let f = frames(*dump);
            (*from..*to).flat_map(|i| encode(&f[i % f.len()])).collect()
        }
        Op::Flip {
            dump,
            index,
            at,
            xor,
        } => {
            let f = frames(*dump);
            let mut bytes = encode(&f[index % f.len()]);
            let at = at % bytes.len();
            bytes[at] ^= xor;
            bytes
        }
        Op::Cut { dump, index, keep } => {
            let f = frames(*dump);
            let bytes = encode(&f[index % f.len()]);
            bytes[..(*keep).min(bytes.len())].to_vec()
        }
        Op::Garbage(bytes) => bytes.clone(),
        Op::Offer { dump, change } => {
            encode(&changed_offer(&dumps[dump % dumps.len()].manifest, *change))
        }
    }
}

/// Runs one session: writes the ops' bytes, ends our side, and waits for the receiver's session
/// to end. Returns the frames it sent back. Panics if the session panicked or hung.
async fn session(store: &DumpStore, ops: &[Op], dumps: &[Dump]) -> Vec<Frame> {
    let (client, server) = tokio::io::duplex(64 << 10);
    let task = tokio::spawn(session::run(
        server,
        HostName::parse(HOST).expect("host"),
        store.clone(),
        SessionLimits {
            idle_timeout: Duration::from_secs(3),
        },
        CancellationToken::new(),
    ));
    let (read, mut write) = tokio::io::split(client);
    let reader = tokio::spawn(async move {
        let mut frames = Vec::new();
        let mut stream = FramedRead::new(read, FrameCodec);
        while let Some(Ok(frame)) = stream.next().await {
            frames.push(frame);
        }
        frames
    });
    for op in ops {
        // The receiver may have closed already: later writes fail, which is its right.
        if write.write_all(&bytes_of(op, dumps)).await.is_err() {
            break;
        }
    }
    let _ = write.shutdown().await;
    drop(write);
    let ended = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the session ends once the peer has closed");
    if let Err(e) = ended {
        panic!("the session panicked: {e}");
    }
    reader.await.expect("reader")
}

/// Every path under `dir`, relative to it.
fn walk(dir: &Path, base: &Path, out: &mut Vec<(PathBuf, bool)>) {
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        let is_dir = path.is_dir();
        out.push((
            path.strip_prefix(base).expect("under base").to_owned(),
            is_dir,
        ));
        if is_dir {
            walk(&path, base, out);
        }
    }
}

/// Nothing outside `STORE/HOST/<dump>/`, and only a dump's own files in there.
fn check_layout(root: &Path) {
    let mut paths = Vec::new();
    walk(root, root, &mut paths);
    for (path, is_dir) in &paths {
        let parts: Vec<_> = path
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let ok = match (parts.as_slice(), is_dir) {
            ([s], false) if s == "outside" => true,
            ([s], true) if s == "store" => true,
            ([s, h], true) if s == "store" && h == HOST => true,
            ([s, h, _dump], true) if s == "store" && h == HOST => true,
            ([s, h, _dump, file], false) if s == "store" && h == HOST => {
                DUMP_FILES.contains(&file.as_str())
            }
            _ => false,
        };
        assert!(
            ok,
            "unexpected {} in the test root: {paths:?}",
            path.display()
        );
    }
    assert_eq!(
        std::fs::read(root.join("outside")).expect("outside"),
        b"untouched",
        "a file beside the store changed"
    );
}

/// Every complete dump verifies and holds exactly its sender's pages; returns how many there are.
fn check_complete(store: &Path, dumps: &[Dump]) -> usize {
    let mut complete = 0;
    let host = store.join(HOST);
    let Ok(entries) = std::fs::read_dir(&host) else {
        return 0;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let Ok(text) = std::fs::read_to_string(dir.join("dump.json")) else {
            continue;
        };
        let record: serde_json::Value = serde_json::from_str(&text).expect("dump.json parses");
        if record["state"] != "complete" {
            continue;
        }
        match verify_dir(&dir).expect("verify runs") {
            Verdict::Match { .. } => {}
            Verdict::Mismatch { why } => {
                panic!("{} is complete but does not verify: {why}", dir.display())
            }
        }
        let id = record["dump_id"].as_str().unwrap_or_default().to_owned();
        let dump = dumps
            .iter()
            .find(|d| d.manifest.dump_id.to_hex() == id)
            .unwrap_or_else(|| panic!("complete dump of an unknown id {id}"));
        let reader = crashdrop_formats::kdump::KdumpReader::open(&dir.join("vmcore"))
            .expect("stored vmcore opens");
        let mut stored = 0;
        for (index, entry) in reader.pages().enumerate() {
            let (pfn, desc) = entry.expect("descriptor");
            match reader.page_data(pfn, index as u64, &desc) {
                Ok(crashdrop_formats::kdump::PageRead::Data(page)) => {
                    assert!(
                        page == dump.pages[index],
                        "{}: pfn {pfn:#x} is not the sender's page",
                        dir.display()
                    );
                }
                other => panic!("{}: pfn {pfn:#x}: {other:?}", dir.display()),
            }
            stored += 1;
        }
        assert_eq!(stored, dump.pages.len(), "{}: pages stored", dir.display());
        complete += 1;
    }
    complete
}

/// The property: any sessions, then the checks, then an honest sender stores both dumps.
fn run_case(sessions: &[Vec<Op>]) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::write(root.path().join("outside"), b"untouched").expect("outside");
    let store_dir = root.path().join("store");
    let store = DumpStore::open(&store_dir, StoreCompression::Zstd).expect("store");
    let dumps = [dump(1), dump(2)];
    runtime.block_on(async {
        for ops in sessions {
            session(&store, ops, &dumps).await;
        }
    });
    crashdrop_receiver::store::wait_for_kernel_logs();
    check_layout(root.path());
    check_complete(&store_dir, &dumps);
    // Liveness: an honest sender of each dump gets it stored, resuming where the receiver says.
    for n in 0..dumps.len() {
        assert!(
            runtime.block_on(honest_sender(&store, &dumps, n)),
            "dump {n} cannot be completed after the sessions {sessions:?}"
        );
    }
    crashdrop_receiver::store::wait_for_kernel_logs();
    check_layout(root.path());
    let complete = check_complete(&store_dir, &dumps);
    assert!(complete >= 2, "both dumps end up complete");
}

/// What `crashdrop-send` does: offer, then send what the receiver's `ResumeFrom` asks for; after
/// a `DigestMismatch` (the peer before it stored chunks of another dump: each chunk matched its
/// own digest, only the whole-dump digest can tell), once more from the start — the receiver
/// marked the dump failed and starts it over. True once the receiver has the dump complete.
async fn honest_sender(store: &DumpStore, dumps: &[Dump], n: usize) -> bool {
    for _attempt in 0..2 {
        let hello_offer = Op::Run {
            dump: n,
            from: 0,
            to: 2,
        };
        let probe = session(store, std::slice::from_ref(&hello_offer), dumps).await;
        let Some(resume) = probe.iter().find_map(|f| match f {
            Frame::ResumeFrom(r) => Some(r.clone()),
            _ => None,
        }) else {
            return false;
        };
        if resume.state == ResumeState::Complete {
            return true;
        }
        let mut ops = vec![hello_offer];
        if !resume.bitmaps_stored {
            ops.push(Op::Run {
                dump: n,
                from: 2,
                to: 6,
            });
        }
        let first_chunk = 6 + (resume.next_page / u64::from(PAGES_PER_CHUNK)) as usize;
        ops.push(Op::Run {
            dump: n,
            from: first_chunk,
            to: dumps[n].frames.len(),
        });
        let answers = session(store, &ops, dumps).await;
        if answers.iter().any(|f| matches!(f, Frame::Complete(_))) {
            return true;
        }
        let mismatch = answers.iter().any(
            |f| matches!(f, Frame::Error(e) if e.code == crashdrop_proto::ErrorCode::DigestMismatch),
        );
        if !mismatch {
            return false;
        }
    }
    false
}

/// The committed corpus: sequences worth running every time.
fn corpus() -> Vec<Vec<Vec<Op>>> {
    let all = |dump| Op::Run {
        dump,
        from: 0,
        to: 7 + 8,
    };
    vec![
        // Nothing at all; garbage first.
        vec![vec![]],
        vec![vec![Op::Garbage(vec![0xff; 12])]],
        // A whole dump, then the same again (already complete).
        vec![vec![all(0)], vec![all(0)]],
        // Cut after the bitmaps and three chunks, then resumed by the honest sender.
        vec![vec![Op::Run {
            dump: 0,
            from: 0,
            to: 9,
        }]],
        // A changed offer of a dump in progress (the layout moves): starts over, never completes
        // wrong.
        vec![
            vec![Op::Run {
                dump: 0,
                from: 0,
                to: 10,
            }],
            vec![
                Op::Run {
                    dump: 0,
                    from: 0,
                    to: 1,
                },
                Op::Offer {
                    dump: 0,
                    change: OfferChange::LongerNotes,
                },
            ],
        ],
        // A flipped page byte mid-transfer, then the other dump in the same session.
        vec![vec![
            Op::Run {
                dump: 0,
                from: 0,
                to: 8,
            },
            Op::Flip {
                dump: 0,
                index: 8,
                at: 200,
                xor: 1,
            },
            Op::Run {
                dump: 1,
                from: 0,
                to: 15,
            },
        ]],
        // Finish with another dump's digest.
        vec![vec![
            Op::Run {
                dump: 0,
                from: 0,
                to: 14,
            },
            Op::Run {
                dump: 1,
                from: 14,
                to: 15,
            },
        ]],
        // Another dump's chunk under this dump's offer (same bitmaps, a self-consistent chunk):
        // stored as durable, caught by the whole-dump digest, and the dump starts over (found
        // by the random search; kept in its regressions file too).
        vec![vec![
            Op::Run {
                dump: 1,
                from: 0,
                to: 2,
            },
            Op::Run {
                dump: 0,
                from: 2,
                to: 7,
            },
        ]],
        // A cut frame, then the rest as if nothing happened.
        vec![vec![
            Op::Run {
                dump: 1,
                from: 0,
                to: 7,
            },
            Op::Cut {
                dump: 1,
                index: 7,
                keep: 30,
            },
            Op::Run {
                dump: 1,
                from: 7,
                to: 15,
            },
        ]],
        // Another crash time for the same DumpId: a second directory.
        vec![
            vec![
                Op::Run {
                    dump: 0,
                    from: 0,
                    to: 1,
                },
                Op::Offer {
                    dump: 0,
                    change: OfferChange::CrashTime,
                },
            ],
            vec![
                Op::Run {
                    dump: 0,
                    from: 0,
                    to: 1,
                },
                Op::Offer {
                    dump: 0,
                    change: OfferChange::ChunkSize,
                },
            ],
            vec![
                Op::Run {
                    dump: 0,
                    from: 0,
                    to: 1,
                },
                Op::Offer {
                    dump: 0,
                    change: OfferChange::PageCount,
                },
            ],
        ],
    ]
}

#[test]
fn the_corpus_keeps_every_invariant() {
    assert_eq!(
        dump(0).frames.len(),
        15,
        "the corpus assumes 15 frames a dump"
    );
    for case in corpus() {
        run_case(&case);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(CASES),
        max_shrink_iters: 200,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_frame_sequences_keep_every_invariant(
        sessions in proptest::collection::vec(session_ops(), 1..4)
    ) {
        run_case(&sessions);
    }
}
