//! Protocol version 2 in the receiver's session, over an in-memory stream: negotiation (and
//! ALPN's say), chunks in any order acknowledged as sets, an exact resume from the indexed
//! journal, the protocol errors a chunk can earn, and a dump begun in version 1 started over.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use crashdrop_formats::digest::{sha256, ChunkHasher, DigestVersion, DumpDigest};
use crashdrop_formats::synth::{write_synthetic_vmcore, SynthSpec};
use crashdrop_formats::ElfVmcore;
use crashdrop_proto::{
    BitmapKind, BitmapPiece, ChunkRanges, DumpId, DumpManifest, ErrorCode, Finish, Frame,
    FrameCodec, Hello, HostName, PageChunk, PageData, ResumeSet, ResumeState, SparseChunk,
    WINDOW_V2,
};
use crashdrop_receiver::cli::verify::{verify_dir, Verdict};
use crashdrop_receiver::session::{self, SessionLimits};
use crashdrop_receiver::store::{DumpStore, StoreCompression};
use futures_util::{SinkExt, StreamExt};
use tokio::io::DuplexStream;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

const PAGES_PER_CHUNK: u16 = 64;

/// A synthetic vmcore cut into chunks of both versions.
struct Dump {
    manifest: DumpManifest,
    ram: Vec<u8>,
    dumpable: Vec<u8>,
    v1: Vec<PageChunk>,
    v2: Vec<SparseChunk>,
    digest_v2: [u8; 32],
}

fn make_dump(path: &Path) -> Dump {
    write_synthetic_vmcore(
        path,
        &SynthSpec {
            memory_bytes: 16 << 20,
            seed: 9,
            osrelease: "6.1.0-session-v2".into(),
            crash_time: 1_700_000_000,
        },
    )
    .expect("synthetic vmcore");
    let vmcore = ElfVmcore::open(path).expect("open vmcore");
    let ram = vmcore.ram_bitmap();
    let dumpable = vmcore.file_backed_bitmap();
    let dump_id = DumpId(vmcore.dump_id(1));
    let pfns: Vec<u64> = dumpable.iter_ones().collect();
    let (b1, b2) = (sha256(ram.as_bytes()), sha256(dumpable.as_bytes()));
    let mut digest = DumpDigest::with_version(DigestVersion::V2, &dump_id.0, &b1, &b2);
    let (mut v1, mut v2) = (Vec::new(), Vec::new());
    for (c, group) in pfns.chunks(usize::from(PAGES_PER_CHUNK)).enumerate() {
        let (mut h1, mut h2) = (
            ChunkHasher::new(),
            ChunkHasher::with_version(DigestVersion::V2),
        );
        let mut pages = Vec::new();
        for (i, pfn) in group.iter().enumerate() {
            let mut page = vec![0u8; 4096];
            vmcore
                .read_physical(pfn * 4096, &mut page)
                .expect("read page");
            h1.update(&page);
            h2.update(&page);
            // Every 7th zero page crosses the wire raw: the v2 digest is defined by content.
            if page.iter().all(|&b| b == 0) && i % 7 != 0 {
                pages.push(PageData::Zero);
            } else {
                pages.push(PageData::Raw(Bytes::from(page)));
            }
        }
        let first_page = (c * usize::from(PAGES_PER_CHUNK)) as u64;
        let d2 = h2.finish();
        digest.push_chunk(&d2);
        v1.push(PageChunk {
            first_page,
            chunk_digest: h1.finish(),
            pages: pages.clone(),
        });
        v2.push(SparseChunk {
            first_page,
            chunk_digest: d2,
            pages,
        });
    }
    let manifest = DumpManifest {
        dump_id,
        dump_level: 1,
        page_size: 4096,
        max_mapnr: vmcore.max_mapnr(),
        phys_base: vmcore.phys_base(),
        crash_time: vmcore.crash_time().unwrap_or(0),
        nr_cpus: vmcore.nr_cpus(),
        utsname: Box::new(vmcore.utsname().expect("utsname")),
        num_dumpable: pfns.len() as u64,
        pages_per_chunk: PAGES_PER_CHUNK,
        notes: Bytes::copy_from_slice(vmcore.notes()),
    };
    Dump {
        manifest,
        ram: ram.as_bytes().to_vec(),
        dumpable: dumpable.as_bytes().to_vec(),
        v1,
        v2,
        digest_v2: digest.finish(),
    }
}

type Served = tokio::task::JoinHandle<Result<session::Outcome, session::SessionError>>;

struct Peer {
    framed: Framed<DuplexStream, FrameCodec>,
    server: Served,
}

fn connect(store: &DumpStore, alpn: Option<u16>) -> Peer {
    let (client, server) = tokio::io::duplex(64 << 10);
    let limits = SessionLimits {
        idle_timeout: Duration::from_secs(5),
    };
    let server = tokio::spawn(session::run_with_alpn(
        server,
        HostName::parse("v2-host").expect("host"),
        store.clone(),
        limits,
        CancellationToken::new(),
        alpn,
    ));
    Peer {
        framed: Framed::new(client, FrameCodec),
        server,
    }
}

fn hello(min_version: u16, max_version: u16) -> Frame {
    Frame::Hello(Hello {
        min_version,
        max_version,
        software: "session-v2-test".into(),
    })
}

impl Peer {
    async fn send(&mut self, frame: Frame) {
        self.framed.send(frame).await.expect("send");
    }

    async fn next(&mut self) -> Frame {
        tokio::time::timeout(Duration::from_secs(10), self.framed.next())
            .await
            .expect("receiver answered in time")
            .expect("receiver did not close")
            .expect("frame decodes")
    }

    /// Hello 1..=2 (expecting Welcome 2) and Offer; returns the ResumeSet.
    async fn offer_v2(&mut self, dump: &Dump) -> ResumeSet {
        self.send(hello(1, 2)).await;
        match self.next().await {
            Frame::Welcome(w) => assert_eq!(w.version, 2, "highest common version"),
            other => panic!("expected Welcome, got {other:?}"),
        }
        self.send(Frame::Offer(dump.manifest.clone())).await;
        match self.next().await {
            Frame::ResumeSet(r) => r,
            other => panic!("expected ResumeSet, got {other:?}"),
        }
    }

    async fn send_bitmaps(&mut self, dump: &Dump) {
        for (bitmap, bytes) in [
            (BitmapKind::First, &dump.ram),
            (BitmapKind::Second, &dump.dumpable),
        ] {
            self.send(Frame::BitmapPiece(BitmapPiece {
                bitmap,
                offset: 0,
                bytes: Bytes::copy_from_slice(bytes),
            }))
            .await;
        }
        self.send(Frame::BitmapsDone).await;
    }

    /// Sends the chunks `order` names, then waits until all of them are acknowledged; returns
    /// the union of the acknowledgements.
    async fn send_chunks(&mut self, dump: &Dump, order: &[usize]) -> ChunkRanges {
        for &c in order {
            self.send(Frame::SparseChunk(dump.v2[c].clone())).await;
        }
        let mut acked = ChunkRanges::new();
        while acked.len() < order.len() as u64 {
            match self.next().await {
                Frame::ChunksAck(a) => {
                    for &(first, count) in a.durable.ranges() {
                        for c in first..first + count {
                            assert!(!acked.contains(c), "chunk {c} acknowledged twice");
                            acked.insert(c);
                        }
                    }
                }
                other => panic!("expected ChunksAck, got {other:?}"),
            }
        }
        acked
    }

    async fn finish(&mut self, digest: [u8; 32]) -> Frame {
        self.send(Frame::Finish(Finish {
            dump_digest: digest,
        }))
        .await;
        loop {
            match self.next().await {
                Frame::ChunksAck(_) => continue,
                other => return other,
            }
        }
    }

    /// Expects an `Error` of `code` and the session's end.
    async fn expect_error(mut self, code: ErrorCode, needle: &str) {
        match self.next().await {
            Frame::Error(e) => {
                assert_eq!(e.code, code, "{}", e.message);
                assert!(e.message.contains(needle), "{}", e.message);
            }
            other => panic!("expected Error {code:?}, got {other:?}"),
        }
        assert!(self.server.await.expect("session task").is_err());
    }
}

fn store(dir: &Path) -> DumpStore {
    DumpStore::open(&dir.join("store"), StoreCompression::Zstd).expect("store")
}

fn the_dump_dir(store: &DumpStore) -> std::path::PathBuf {
    let host = store.root().join("v2-host");
    let mut dirs: Vec<_> = std::fs::read_dir(host)
        .expect("host dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.remove(0)
}

fn ranges(set: &[(u64, u64)]) -> ChunkRanges {
    let mut r = ChunkRanges::new();
    for &(first, count) in set {
        r.insert_range(first, count);
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_in_reverse_order_are_acknowledged_as_sets_and_the_dump_verifies() {
    let work = tempfile::tempdir().expect("tempdir");
    let dump = make_dump(&work.path().join("vmcore"));
    let store = store(work.path());
    let n = dump.v2.len();
    assert!(n >= 4, "a dump of several chunks ({n})");
    let mut peer = connect(&store, None);
    let resume = peer.offer_v2(&dump).await;
    assert_eq!(resume.state, ResumeState::Send);
    assert!(!resume.bitmaps_stored && resume.durable.is_empty());
    assert_eq!(resume.window, WINDOW_V2);
    peer.send_bitmaps(&dump).await;
    let order: Vec<usize> = (0..n).rev().collect();
    let acked = peer.send_chunks(&dump, &order).await;
    assert_eq!(acked, ChunkRanges::prefix(n as u64));
    match peer.finish(dump.digest_v2).await {
        Frame::Complete(c) => assert!(c.stored_bytes > 0),
        other => panic!("expected Complete, got {other:?}"),
    }
    let dir = the_dump_dir(&store);
    if let Verdict::Mismatch { why } = verify_dir(&dir).expect("verify") {
        panic!("stored v2 dump does not verify: {why}");
    }
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("dump.json")).expect("record"))
            .expect("json");
    assert_eq!(record["digest_version"], 2);
    assert_eq!(record["pages_stored"], dump.manifest.num_dumpable);

    // Offered again: complete, and the set says every chunk.
    let mut again = connect(&store, None);
    let resume = again.offer_v2(&dump).await;
    assert_eq!(resume.state, ResumeState::Complete);
    assert_eq!(resume.durable, ChunkRanges::prefix(n as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_is_exact_and_a_durable_chunk_is_never_taken_again() {
    let work = tempfile::tempdir().expect("tempdir");
    let dump = make_dump(&work.path().join("vmcore"));
    let store = store(work.path());
    let n = dump.v2.len() as u64;
    let mut first = connect(&store, None);
    first.offer_v2(&dump).await;
    first.send_bitmaps(&dump).await;
    first.send_chunks(&dump, &[3, 0, 1]).await;
    drop(first.framed); // the connection dies
    assert!(first.server.await.expect("session task").is_err());

    let mut second = connect(&store, None);
    let resume = second.offer_v2(&dump).await;
    assert!(resume.bitmaps_stored);
    assert_eq!(
        resume.durable,
        ranges(&[(0, 2), (3, 1)]),
        "exactly the acknowledged chunks"
    );
    // A chunk in the durable set is a protocol error, and nothing is rewritten.
    second.send(Frame::SparseChunk(dump.v2[3].clone())).await;
    second
        .expect_error(ErrorCode::Protocol, "already durable")
        .await;

    let mut third = connect(&store, None);
    let resume = third.offer_v2(&dump).await;
    assert_eq!(resume.durable, ranges(&[(0, 2), (3, 1)]));
    let rest: Vec<usize> = (0..n as usize)
        .filter(|c| !resume.durable.contains(*c as u64))
        .collect();
    third.send_chunks(&dump, &rest).await;
    assert!(matches!(
        third.finish(dump.digest_v2).await,
        Frame::Complete(_)
    ));
    if let Verdict::Mismatch { why } = verify_dir(&the_dump_dir(&store)).expect("verify") {
        panic!("resumed v2 dump does not verify: {why}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_twice_past_the_end_or_off_a_boundary_is_a_protocol_error() {
    let work = tempfile::tempdir().expect("tempdir");
    let dump = make_dump(&work.path().join("vmcore"));
    let store = store(work.path());
    let n = dump.v2.len() as u64;
    let mut bad_chunks = Vec::new();
    let mut past = dump.v2[0].clone();
    past.first_page = n * u64::from(PAGES_PER_CHUNK);
    bad_chunks.push((vec![past], &["past the dump's last chunk"][..]));
    let mut off = dump.v2[0].clone();
    off.first_page = 1;
    bad_chunks.push((vec![off], &["not a multiple"][..]));
    // Whether the first copy was already committed when the second arrives is a race; both
    // answers refuse the second copy.
    let twice = vec![dump.v2[2].clone(), dump.v2[2].clone()];
    bad_chunks.push((twice, &["sent twice", "already durable"][..]));
    for (chunks, needles) in bad_chunks {
        let mut peer = connect(&store, None);
        if !peer.offer_v2(&dump).await.bitmaps_stored {
            peer.send_bitmaps(&dump).await;
        }
        for c in chunks {
            peer.send(Frame::SparseChunk(c)).await;
        }
        // A well-formed first chunk may be acknowledged before the bad one is refused.
        loop {
            match peer.next().await {
                Frame::ChunksAck(_) => continue,
                Frame::Error(e) => {
                    assert_eq!(e.code, ErrorCode::Protocol, "{}", e.message);
                    assert!(
                        needles.iter().any(|n| e.message.contains(n)),
                        "{needles:?}: {}",
                        e.message
                    );
                    break;
                }
                other => panic!("expected Error, got {other:?}"),
            }
        }
    }
    // Version-1 frames have no place in a version-2 session.
    let mut peer = connect(&store, None);
    peer.offer_v2(&dump).await;
    peer.send(Frame::PageChunk(dump.v1[0].clone())).await;
    peer.expect_error(ErrorCode::Protocol, "SparseChunk").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiation_takes_the_highest_common_version_and_alpn_must_agree() {
    let work = tempfile::tempdir().expect("tempdir");
    let store = store(work.path());
    for ((min, max), alpn, want) in [
        ((1, 1), None, Some(1)),
        ((1, 2), None, Some(2)),
        ((1, 9), None, Some(2)),
        ((1, 2), Some(1), Some(1)),
        ((1, 2), Some(2), Some(2)),
        ((2, 2), Some(1), None),
        ((3, 4), None, None),
    ] {
        let mut peer = connect(&store, alpn);
        peer.send(hello(min, max)).await;
        match (peer.next().await, want) {
            (Frame::Welcome(w), Some(v)) => assert_eq!(w.version, v, "{min}..={max} {alpn:?}"),
            (Frame::Error(e), None) => {
                let code = if alpn.is_some() {
                    ErrorCode::Protocol
                } else {
                    ErrorCode::UnsupportedVersion
                };
                assert_eq!(e.code, code, "{}", e.message);
            }
            (other, _) => panic!("{min}..={max} {alpn:?}: unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_begun_in_version_1_is_started_over_in_version_2() {
    let work = tempfile::tempdir().expect("tempdir");
    let dump = make_dump(&work.path().join("vmcore"));
    let store = store(work.path());
    let mut v1 = connect(&store, None);
    v1.send(hello(1, 1)).await;
    assert!(matches!(v1.next().await, Frame::Welcome(w) if w.version == 1));
    v1.send(Frame::Offer(dump.manifest.clone())).await;
    assert!(matches!(v1.next().await, Frame::ResumeFrom(_)));
    v1.send_bitmaps(&dump).await;
    v1.send(Frame::PageChunk(dump.v1[0].clone())).await;
    assert!(matches!(v1.next().await, Frame::ChunkAck(a) if a.durable_pages > 0));
    drop(v1.framed);
    let _ = v1.server.await;

    let mut v2 = connect(&store, None);
    let resume = v2.offer_v2(&dump).await;
    assert!(
        !resume.bitmaps_stored && resume.durable.is_empty(),
        "a version-1 journal is not a version-2 durable set: {resume:?}"
    );
}
