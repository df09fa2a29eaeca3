//! The receiver's session over an in-memory stream (the same code TLS and SSH run): a corrupted
//! chunk is refused and nothing of it is stored, the next connection resumes at the last durable
//! chunk, and two connections for one dump never write at once.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use crashdrop_formats::digest::{sha256, ChunkHasher, DumpDigest};
use crashdrop_formats::synth::{write_synthetic_vmcore, SynthSpec};
use crashdrop_formats::ElfVmcore;
use crashdrop_proto::{
    BitmapKind, BitmapPiece, DumpId, DumpManifest, ErrorCode, Finish, Frame, FrameCodec, Hello,
    HostName, PageChunk, PageData, ResumeFrom, ResumeState,
};
use crashdrop_receiver::cli::verify::{verify_dir, Verdict};
use crashdrop_receiver::session::{self, SessionLimits};
use crashdrop_receiver::store::{DumpStore, StoreCompression};
use futures_util::{SinkExt, StreamExt};
use tokio::io::DuplexStream;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

const PAGES_PER_CHUNK: u16 = 64;

/// A vmcore cut into wire chunks, like crashdrop-send would send it.
struct Dump {
    manifest: DumpManifest,
    ram: Vec<u8>,
    dumpable: Vec<u8>,
    chunks: Vec<PageChunk>,
    digest: [u8; 32],
}

fn make_dump(path: &Path) -> Dump {
    write_synthetic_vmcore(
        path,
        &SynthSpec {
            memory_bytes: 16 << 20,
            seed: 5,
            osrelease: "6.1.0-session".into(),
            crash_time: 1_700_000_000,
        },
    )
    .expect("synthetic vmcore");
    let vmcore = ElfVmcore::open(path).expect("open vmcore");
    let ram = vmcore.ram_bitmap();
    let dumpable = vmcore.file_backed_bitmap();
    let dump_id = DumpId(vmcore.dump_id(1));
    let pfns: Vec<u64> = dumpable.iter_ones().collect();
    let mut digest = DumpDigest::new(
        &dump_id.0,
        &sha256(ram.as_bytes()),
        &sha256(dumpable.as_bytes()),
    );
    let mut chunks = Vec::new();
    for (c, group) in pfns.chunks(usize::from(PAGES_PER_CHUNK)).enumerate() {
        let mut hasher = ChunkHasher::new();
        let mut pages = Vec::new();
        for pfn in group {
            let mut page = vec![0u8; 4096];
            vmcore
                .read_physical(pfn * 4096, &mut page)
                .expect("read page");
            hasher.update(&page);
            if page.iter().all(|&b| b == 0) {
                pages.push(PageData::Zero);
            } else {
                // Raw pages keep the test simple and make a flipped bit land in page content.
                pages.push(PageData::Raw(Bytes::from(page)));
            }
        }
        let chunk_digest = hasher.finish();
        digest.push_chunk(&chunk_digest);
        chunks.push(PageChunk {
            first_page: (c * usize::from(PAGES_PER_CHUNK)) as u64,
            chunk_digest,
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
        chunks,
        digest: digest.finish(),
    }
}

struct Peer {
    framed: Framed<DuplexStream, FrameCodec>,
    server: tokio::task::JoinHandle<Result<session::Outcome, session::SessionError>>,
}

fn connect(store: &DumpStore, host: &str) -> Peer {
    let (client, server) = tokio::io::duplex(64 << 10);
    let host = HostName::parse(host).expect("host");
    let limits = SessionLimits {
        idle_timeout: Duration::from_secs(5),
    };
    let server = tokio::spawn(session::run(
        server,
        host,
        store.clone(),
        limits,
        CancellationToken::new(),
    ));
    Peer {
        framed: Framed::new(client, FrameCodec),
        server,
    }
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

    /// Hello + Offer; returns the receiver's answer to the offer.
    async fn offer(&mut self, dump: &Dump) -> Frame {
        self.send(Frame::Hello(Hello::new("session-test"))).await;
        assert!(matches!(self.next().await, Frame::Welcome(_)));
        self.send(Frame::Offer(dump.manifest.clone())).await;
        self.next().await
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

    /// Sends chunks from `first` on and finishes; returns the final frame (Complete or Error).
    async fn send_rest(&mut self, dump: &Dump, first: usize) -> Frame {
        for chunk in &dump.chunks[first..] {
            self.send(Frame::PageChunk(chunk.clone())).await;
        }
        self.send(Frame::Finish(Finish {
            dump_digest: dump.digest,
        }))
        .await;
        loop {
            match self.next().await {
                Frame::ChunkAck(_) => continue,
                other => return other,
            }
        }
    }
}

fn assert_verifies(dump_dir: &Path) {
    if let Verdict::Mismatch { why } = verify_dir(dump_dir).expect("verify") {
        panic!("stored dump does not verify: {why}");
    }
}

fn resume_point(frame: Frame) -> ResumeFrom {
    match frame {
        Frame::ResumeFrom(r) => r,
        other => panic!("expected ResumeFrom, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_chunk_is_refused_and_the_next_connection_resumes_after_the_last_good_one() {
    let work = tempfile::tempdir().expect("tempdir");
    let dump = make_dump(&work.path().join("vmcore"));
    assert!(dump.chunks.len() > 4, "need several chunks");
    let store = DumpStore::open(&work.path().join("store"), StoreCompression::Zstd).expect("store");

    let mut first = connect(&store, "web-1");
    let resume = resume_point(first.offer(&dump).await);
    assert_eq!(
        (resume.state, resume.bitmaps_stored, resume.next_page),
        (ResumeState::Send, false, 0)
    );
    first.send_bitmaps(&dump).await;
    first.send(Frame::PageChunk(dump.chunks[0].clone())).await;
    first.send(Frame::PageChunk(dump.chunks[1].clone())).await;
    // Chunk 2 with one bit flipped in a page that is not zero.
    let mut bad = dump.chunks[2].clone();
    let raw = bad
        .pages
        .iter_mut()
        .find_map(|p| match p {
            PageData::Raw(bytes) => Some(bytes),
            _ => None,
        })
        .expect("chunk 2 has a non-zero page");
    let mut flipped = raw.to_vec();
    flipped[1234] ^= 0x10;
    *raw = Bytes::from(flipped);
    first.send(Frame::PageChunk(bad)).await;
    let refusal = loop {
        match first.next().await {
            Frame::ChunkAck(_) => continue,
            other => break other,
        }
    };
    match refusal {
        Frame::Error(e) => {
            assert_eq!(e.code, ErrorCode::ChunkCorrupt, "{e:?}");
            assert!(e.message.contains("digest"), "{}", e.message);
        }
        other => panic!("expected ChunkCorrupt, got {other:?}"),
    }
    let ended = first.server.await.expect("session task");
    assert!(ended.is_err(), "the session must end with the refusal");

    // A new connection resumes after chunk 1, the last good one; the bitmaps are kept.
    let mut second = connect(&store, "web-1");
    let resume = resume_point(second.offer(&dump).await);
    assert!(resume.bitmaps_stored);
    assert_eq!(resume.next_page, 2 * u64::from(PAGES_PER_CHUNK));
    match second.send_rest(&dump, 2).await {
        Frame::Complete(c) => assert!(c.location.starts_with("web-1/"), "{}", c.location),
        other => panic!("expected Complete, got {other:?}"),
    }
    let dump_dir = store
        .root()
        .join("web-1")
        .join(DumpStore::dump_dir_name(&dump.manifest));
    match verify_dir(&dump_dir).expect("verify") {
        Verdict::Match { pages, .. } => assert_eq!(pages, dump.manifest.num_dumpable),
        Verdict::Mismatch { why } => panic!("stored dump does not verify: {why}"),
    }
    // Dumps hold kernel memory: only the receiver's user may read them.
    use std::os::unix::fs::PermissionsExt;
    for path in [
        dump_dir.clone(),
        dump_dir.join("vmcore"),
        dump_dir.join("dump.json"),
    ] {
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        let private = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, private, "{} is mode {mode:o}", path.display());
    }

    // And once complete, the same offer is answered "complete" without taking any pages.
    let mut third = connect(&store, "web-1");
    let resume = resume_point(third.offer(&dump).await);
    assert_eq!(resume.state, ResumeState::Complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_connections_never_write_one_dump_at_once() {
    let work = tempfile::tempdir().expect("tempdir");
    let dump = make_dump(&work.path().join("vmcore"));
    let store = DumpStore::open(&work.path().join("store"), StoreCompression::Zstd).expect("store");

    let mut older = connect(&store, "web-2");
    resume_point(older.offer(&dump).await);
    let mut newer = connect(&store, "web-2");
    match newer.offer(&dump).await {
        Frame::Error(e) => {
            assert_eq!(e.code, ErrorCode::Busy);
            assert!(e.code.is_retryable());
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    // The same dump id from another host is another host's dump: not blocked, not shared.
    let mut other_host = connect(&store, "web-3");
    let resume = resume_point(other_host.offer(&dump).await);
    assert_eq!(resume.next_page, 0);

    // Once the older connection is gone, a retry takes over.
    drop(older.framed);
    let _ = older.server.await;
    let mut retry = connect(&store, "web-2");
    let resume = resume_point(retry.offer(&dump).await);
    assert_eq!(resume.state, ResumeState::Send);
}

/// Two `DumpStore`s on one root stand for two processes (the daemon and `crashdropd stdio`, or
/// two stdio logins): they share no memory, only the directory lock (flock), which is per open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_store_never_write_one_dump_at_once() {
    let work = tempfile::tempdir().expect("tempdir");
    let dump = make_dump(&work.path().join("vmcore"));
    let root = work.path().join("store");
    let daemon = DumpStore::open(&root, StoreCompression::Zstd).expect("store");
    let stdio = DumpStore::open(&root, StoreCompression::Zstd).expect("store");

    let mut first = connect(&daemon, "web-2");
    resume_point(first.offer(&dump).await);
    let mut second = connect(&stdio, "web-2");
    match second.offer(&dump).await {
        Frame::Error(e) => assert_eq!(e.code, ErrorCode::Busy),
        other => panic!("expected Busy from the other process's store, got {other:?}"),
    }
    // Nor may the other process's retention remove it meanwhile.
    let held = crashdrop_receiver::store::retention::scan(
        &root,
        Some("web-2"),
        std::time::SystemTime::now(),
    )
    .expect("scan");
    assert_eq!(held.len(), 1);
    assert!(
        !stdio.remove(&held[0]).expect("remove"),
        "removed a dump being written"
    );

    drop(first.framed);
    let _ = first.server.await;
    let mut retry = connect(&stdio, "web-2");
    let resume = resume_point(retry.offer(&dump).await);
    assert_eq!(resume.state, ResumeState::Send);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_out_of_order_is_a_protocol_error_and_stores_nothing() {
    let work = tempfile::tempdir().expect("tempdir");
    let dump = make_dump(&work.path().join("vmcore"));
    let store = DumpStore::open(&work.path().join("store"), StoreCompression::Zstd).expect("store");
    let mut peer = connect(&store, "web-4");
    resume_point(peer.offer(&dump).await);
    peer.send_bitmaps(&dump).await;
    peer.send(Frame::PageChunk(dump.chunks[1].clone())).await;
    match peer.next().await {
        Frame::Error(e) => {
            assert_eq!(e.code, ErrorCode::Protocol);
            assert!(e.message.contains("expected page 0"), "{}", e.message);
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
    let mut again = connect(&store, "web-4");
    let resume = resume_point(again.offer(&dump).await);
    assert_eq!(
        resume.next_page, 0,
        "nothing of the out-of-order chunk was kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_whose_headers_never_reached_the_disk_is_rewritten_on_resume() {
    let work = tempfile::tempdir().expect("tempdir");
    let dump = make_dump(&work.path().join("vmcore"));
    let store = DumpStore::open(&work.path().join("store"), StoreCompression::Zstd).expect("store");
    let dump_dir = store
        .root()
        .join("web-5")
        .join(DumpStore::dump_dir_name(&dump.manifest));

    let mut first = connect(&store, "web-5");
    resume_point(first.offer(&dump).await);
    drop(first.framed);
    let _ = first.server.await;
    // A power loss before the headers were written back: the file is empty.
    std::fs::File::create(dump_dir.join("vmcore")).expect("truncate vmcore");

    let mut second = connect(&store, "web-5");
    let resume = resume_point(second.offer(&dump).await);
    assert_eq!((resume.bitmaps_stored, resume.next_page), (false, 0));
    second.send_bitmaps(&dump).await;
    assert!(matches!(
        second.send_rest(&dump, 0).await,
        Frame::Complete(_)
    ));
    assert_verifies(&dump_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_claims_more_than_the_file_holds_restarts_the_transfer() {
    let work = tempfile::tempdir().expect("tempdir");
    let dump = make_dump(&work.path().join("vmcore"));
    let store = DumpStore::open(&work.path().join("store"), StoreCompression::Zstd).expect("store");
    let dump_dir = store
        .root()
        .join("web-6")
        .join(DumpStore::dump_dir_name(&dump.manifest));

    let mut first = connect(&store, "web-6");
    resume_point(first.offer(&dump).await);
    first.send_bitmaps(&dump).await;
    for chunk in &dump.chunks[..3] {
        first.send(Frame::PageChunk(chunk.clone())).await;
    }
    drop(first.framed);
    let _ = first.server.await;
    // The file lost its tail (say, a filesystem that did not keep it), the journal did not.
    let vmcore = std::fs::OpenOptions::new()
        .write(true)
        .open(dump_dir.join("vmcore"))
        .expect("open");
    vmcore.set_len(8192).expect("cut");

    let mut second = connect(&store, "web-6");
    let resume = resume_point(second.offer(&dump).await);
    assert_eq!(
        (resume.bitmaps_stored, resume.next_page),
        (false, 0),
        "must start over"
    );
    second.send_bitmaps(&dump).await;
    assert!(matches!(
        second.send_rest(&dump, 0).await,
        Frame::Complete(_)
    ));
    assert_verifies(&dump_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_dump_that_does_not_fit_is_refused_with_no_space_but_a_resume_proceeds() {
    use crashdrop_receiver::store::space::MinFree;
    use crashdrop_receiver::store::StoreLimits;
    let work = tempfile::tempdir().expect("tempdir");
    let dump = make_dump(&work.path().join("vmcore"));
    let root = work.path().join("store");
    let store = DumpStore::open(&root, StoreCompression::Zstd).expect("store");
    let mut peer = connect(&store, "web-1");
    assert_eq!(resume_point(peer.offer(&dump).await).next_page, 0);
    peer.send_bitmaps(&dump).await;
    peer.send(Frame::PageChunk(dump.chunks[0].clone())).await;
    assert!(matches!(peer.next().await, Frame::ChunkAck(_)));
    // The second `DumpStore` below does not share this one's leases (a daemon has one store), so
    // the first session must have released the dump before it is resumed there.
    let Peer { framed, server } = peer;
    drop(framed);
    let _ = server.await;
    // Keep the whole filesystem free: nothing new fits any more.
    let full = DumpStore::open(&root, StoreCompression::Zstd)
        .expect("store")
        .with_limits(StoreLimits {
            min_free: MinFree::Percent(100),
            ..StoreLimits::default()
        });
    let mut other = connect(&full, "web-2");
    match other.offer(&dump).await {
        Frame::Error(e) => {
            assert_eq!(e.code, ErrorCode::NoSpace, "{e}");
            assert!(e.message.contains("min_free"), "{e}");
        }
        f => panic!("expected NoSpace, got {f:?}"),
    }
    assert!(
        !root.join("web-2").exists(),
        "a refused offer creates nothing"
    );
    // The dump already in transfer has priority: it resumes.
    let mut again = None;
    for _ in 0..50 {
        let mut peer = connect(&full, "web-1");
        match peer.offer(&dump).await {
            Frame::Error(e) if e.code == ErrorCode::Busy => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            f => {
                again = Some((peer, resume_point(f)));
                break;
            }
        }
    }
    let (mut peer, at) = again.expect("resumed");
    assert!(at.next_page > 0 && at.bitmaps_stored, "{at:?}");
    assert!(matches!(peer.send_rest(&dump, 1).await, Frame::Complete(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_removes_a_stale_transfer_only_without_dry_run_and_keeps_complete_dumps() {
    let work = tempfile::tempdir().expect("tempdir");
    let dump = make_dump(&work.path().join("vmcore"));
    let root = work.path().join("store");
    let store = DumpStore::open(&root, StoreCompression::Zstd).expect("store");
    let mut peer = connect(&store, "web-1");
    resume_point(peer.offer(&dump).await);
    peer.send_bitmaps(&dump).await;
    assert!(matches!(peer.send_rest(&dump, 0).await, Frame::Complete(_)));
    let mut peer = connect(&store, "web-2");
    resume_point(peer.offer(&dump).await);
    peer.send_bitmaps(&dump).await;
    drop(peer);
    let stale_dir = std::fs::read_dir(root.join("web-2"))
        .expect("web-2")
        .next()
        .expect("a dump")
        .expect("entry")
        .path();
    // Wait for the interrupted session to record its progress, then age the transfer 8 days.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let old = std::time::SystemTime::now() - Duration::from_secs(8 * 86_400);
    for entry in std::fs::read_dir(&stale_dir).expect("dir") {
        let path = entry.expect("entry").path();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .expect("open")
            .set_modified(old)
            .expect("set mtime");
    }
    let prune = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_crashdropd"))
            .arg("prune")
            .arg("--store")
            .arg(&root)
            .args(extra)
            .output()
            .expect("run crashdropd prune");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dry = prune(&["--dry-run"]);
    assert!(
        dry.contains("would remove web-2/") && dry.contains("stale"),
        "{dry}"
    );
    assert!(!dry.contains("web-1/"), "{dry}");
    assert!(stale_dir.exists(), "--dry-run removed nothing");
    let real = prune(&[]);
    assert!(real.contains("removed web-2/"), "{real}");
    assert!(!stale_dir.exists());
    let complete = std::fs::read_dir(root.join("web-1"))
        .expect("web-1")
        .next()
        .expect("a dump")
        .expect("entry")
        .path();
    assert_verifies(&complete);
    // With max_age 0s the only complete dump of web-1 is still kept unless told otherwise.
    let kept = prune(&["--max-age", "0s"]);
    assert!(!kept.contains("web-1/"), "{kept}");
    let gone = prune(&["--max-age", "0s", "--delete-last"]);
    assert!(
        gone.contains("removed web-1/") && gone.contains("max_age"),
        "{gone}"
    );
}

/// Sends the bitmaps and the first `n` chunks and waits until the receiver acknowledged them.
async fn store_first_chunks(peer: &mut Peer, dump: &Dump, n: usize) {
    peer.send_bitmaps(dump).await;
    for chunk in &dump.chunks[..n] {
        peer.send(Frame::PageChunk(chunk.clone())).await;
    }
    let want = n as u64 * u64::from(PAGES_PER_CHUNK);
    loop {
        match peer.next().await {
            Frame::ChunkAck(ack) if ack.durable_pages >= want => return,
            Frame::ChunkAck(_) => continue,
            other => panic!("expected ChunkAck, got {other:?}"),
        }
    }
}

/// The same notes with one more (harmless) ELF note: a longer note segment moves the file layout.
fn with_extra_note(notes: &[u8]) -> Bytes {
    let mut longer = notes.to_vec();
    longer.extend_from_slice(&5u32.to_le_bytes()); // namesz, "TEST\0"
    longer.extend_from_slice(&4u32.to_le_bytes()); // descsz
    longer.extend_from_slice(&0x7777u32.to_le_bytes()); // type
    longer.extend_from_slice(b"TEST\0\0\0\0");
    longer.extend_from_slice(&[1, 2, 3, 4]);
    Bytes::from(longer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_offer_with_the_same_dump_id_starts_over_instead_of_resuming() {
    let work = tempfile::tempdir().expect("tempdir");
    let dump = make_dump(&work.path().join("vmcore"));
    let store = DumpStore::open(&work.path().join("store"), StoreCompression::Zstd).expect("store");
    let dump_dir = store
        .root()
        .join("web-8")
        .join(DumpStore::dump_dir_name(&dump.manifest));

    let mut first = connect(&store, "web-8");
    resume_point(first.offer(&dump).await);
    store_first_chunks(&mut first, &dump, 3).await;
    drop(first.framed);
    let _ = first.server.await;

    // Same DumpId, same sizes and chunking, but different notes: every other field matches, so
    // comparing a few settings would resume into a file whose layout no longer fits.
    let mut changed = Dump {
        manifest: dump.manifest.clone(),
        ram: dump.ram.clone(),
        dumpable: dump.dumpable.clone(),
        chunks: dump.chunks.clone(),
        digest: dump.digest,
    };
    changed.manifest.notes = with_extra_note(&dump.manifest.notes);
    let mut second = connect(&store, "web-8");
    let resume = resume_point(second.offer(&changed).await);
    assert_eq!(
        (resume.bitmaps_stored, resume.next_page),
        (false, 0),
        "a changed offer must not resume the old transfer"
    );
    second.send_bitmaps(&changed).await;
    assert!(matches!(
        second.send_rest(&changed, 0).await,
        Frame::Complete(_)
    ));
    assert_verifies(&dump_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identical_offer_resumes_after_the_durable_chunks() {
    let work = tempfile::tempdir().expect("tempdir");
    let dump = make_dump(&work.path().join("vmcore"));
    let store = DumpStore::open(&work.path().join("store"), StoreCompression::Zstd).expect("store");
    let dump_dir = store
        .root()
        .join("web-9")
        .join(DumpStore::dump_dir_name(&dump.manifest));

    let mut first = connect(&store, "web-9");
    resume_point(first.offer(&dump).await);
    store_first_chunks(&mut first, &dump, 3).await;
    drop(first.framed);
    let _ = first.server.await;

    let mut second = connect(&store, "web-9");
    let resume = resume_point(second.offer(&dump).await);
    assert_eq!(
        (resume.bitmaps_stored, resume.next_page),
        (true, 3 * u64::from(PAGES_PER_CHUNK))
    );
    assert!(matches!(
        second.send_rest(&dump, 3).await,
        Frame::Complete(_)
    ));
    assert_verifies(&dump_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_journal_header_means_nothing_durable_and_the_transfer_starts_over() {
    let work = tempfile::tempdir().expect("tempdir");
    let dump = make_dump(&work.path().join("vmcore"));
    let store = DumpStore::open(&work.path().join("store"), StoreCompression::Zstd).expect("store");
    let dump_dir = store
        .root()
        .join("web-10")
        .join(DumpStore::dump_dir_name(&dump.manifest));

    for torn in [&b""[..], &b"crashdrop-prog"[..], &[0xffu8; 200][..]] {
        let mut first = connect(&store, "web-10");
        resume_point(first.offer(&dump).await);
        store_first_chunks(&mut first, &dump, 2).await;
        drop(first.framed);
        let _ = first.server.await;
        // A power cut while the journal was created in place left this header.
        std::fs::write(dump_dir.join("progress"), torn).expect("tear journal");

        let mut second = connect(&store, "web-10");
        let resume = resume_point(second.offer(&dump).await);
        assert_eq!(
            (resume.bitmaps_stored, resume.next_page),
            (false, 0),
            "{} torn bytes: nothing durable",
            torn.len()
        );
        second.send_bitmaps(&dump).await;
        assert!(matches!(
            second.send_rest(&dump, 0).await,
            Frame::Complete(_)
        ));
        assert_verifies(&dump_dir);
        // The kernel-log worker writes into the directory after Complete.
        crashdrop_receiver::store::wait_for_kernel_logs();
        std::fs::remove_dir_all(&dump_dir).expect("clean for the next case");
    }
}
