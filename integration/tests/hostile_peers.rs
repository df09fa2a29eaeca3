//! Hostile peers: an authenticated host that sends zero-length, oversized, truncated, unknown,
//! out-of-order and random frames gets an `Error` frame or a closed connection, never crashes
//! `crashdropd`, and cannot touch another host's stored dump; honest senders are still served.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crashdrop_formats::elf::encode_utsname;
use crashdrop_formats::synth::{write_synthetic_vmcore, SynthSpec};
use crashdrop_formats::{sha256, ChunkHasher};
use crashdrop_integration::{
    assert_sent, exchange_plain, run, sender, stored_dumps, RawPeer, Receiver, Reply, TestCerts,
    REPLY_TIMEOUT,
};
use crashdrop_proto::{
    BitmapKind, BitmapPiece, DumpId, DumpManifest, ErrorCode, ErrorFrame, Finish, Frame,
    FrameCodec, Hello, PageChunk, PageData, ResumeFrom, ResumeState, Welcome, MAX_FRAME_LEN,
    MAX_MAPNR, MAX_NOTES_LEN,
};
use futures_util::StreamExt;
use tokio_util::bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::Decoder;

/// Random blobs sent, each on its own connection, and how many are in flight at once.
const RANDOM_BLOBS: u64 = 200;
const CONCURRENT: usize = 16;

/// The fake dump the hostile host offers: 64 pfns, pfns 0 and 1 dumpable, one chunk of 2 pages.
const FAKE_MAPNR: u64 = 64;
const FAKE_PAGES: u64 = 2;
const PAGE: usize = 4096;

/// What the receiver must answer before its `Error` (ChunkAcks aside: their timing is its
/// choice), and the `Error`'s code if one must come.
type Before = &'static [&'static str];
const FIRST: Before = &[];
const WELCOMED: Before = &["Welcome"];
const OFFERED: Before = &["Welcome", "ResumeFrom"];
const PROTO: Option<ErrorCode> = Some(ErrorCode::Protocol);
const INVALID: Option<ErrorCode> = Some(ErrorCode::InvalidManifest);
const CORRUPT: Option<ErrorCode> = Some(ErrorCode::ChunkCorrupt);

/// One hostile connection: the bytes, and what the receiver must answer before it closes.
struct Attack {
    name: String,
    bytes: Vec<u8>,
    want: Want,
}

enum Want {
    /// Exactly `before`, then an `Error` with `code` whose message contains `says` (no `Error`
    /// when `code` is `None`).
    Exactly(Before, Option<ErrorCode>, &'static str),
    /// Welcome, ResumeFrom, ChunkAck in protocol order, ending in an `Error`.
    AnyError,
    /// Welcome, ResumeFrom, ChunkAck in protocol order, with or without a final `Error`.
    Legal,
}

type Case = (
    &'static str,
    Vec<u8>,
    Before,
    Option<ErrorCode>,
    &'static str,
);

fn exactly(cases: Vec<Case>) -> Vec<Attack> {
    cases
        .into_iter()
        .map(|(name, bytes, before, code, says)| Attack {
            name: name.into(),
            bytes,
            want: Want::Exactly(before, code, says),
        })
        .collect()
}

/// What the attacks got back, for the summary.
#[derive(Default)]
struct Tally {
    by_code: BTreeMap<String, u32>,
    plain_close: u32,
    endings: BTreeMap<String, u32>,
}

/// Checks one reply against what the attack must get, and counts it.
fn judge(attack: &Attack, reply: &Reply, tally: &mut Tally, verbose: bool) {
    let name = &attack.name;
    assert!(
        reply.ending.is_closed(),
        "{name}: neither answered nor closed within {REPLY_TIMEOUT:?} ({reply:?})"
    );
    let frames = reply
        .frames()
        .unwrap_or_else(|e| panic!("{name}: the reply does not decode: {e} ({reply:?})"));
    let names: Vec<&str> = frames
        .iter()
        .map(Frame::name)
        .filter(|n| *n != "ChunkAck")
        .collect();
    let last_error = match frames.last() {
        Some(Frame::Error(e)) => Some(e),
        _ => None,
    };
    let order = ["Welcome", "ResumeFrom", "Error"];
    let at: Vec<Option<usize>> = names
        .iter()
        .map(|n| order.iter().position(|o| o == n))
        .collect();
    let legal = at.iter().all(Option::is_some) && at.windows(2).all(|w| w[0] < w[1]);
    let ok = match &attack.want {
        Want::Exactly(before, code, says) => {
            let mut expected = before.to_vec();
            expected.extend(code.map(|_| "Error"));
            names == expected
                && last_error.is_none_or(|e| Some(e.code) == *code && e.message.contains(says))
        }
        Want::AnyError => legal && last_error.is_some(),
        Want::Legal => legal,
    };
    assert!(ok, "{name}: got {frames:?}, then {:?}", reply.ending);
    match last_error {
        Some(e) => *tally.by_code.entry(e.code.to_string()).or_default() += 1,
        None => tally.plain_close += 1,
    }
    let ending = format!("{:?}", reply.ending);
    *tally.endings.entry(ending.clone()).or_default() += 1;
    if verbose {
        let error = last_error.map_or("no Error".to_string(), |e| e.to_string());
        eprintln!("{name}: {names:?}, then {ending}; {error}");
    }
}

fn encode(frames: &[Frame]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    for frame in frames {
        FrameCodec::encode_frame(frame, &mut buf).expect("encodes");
    }
    buf.to_vec()
}

/// A frame built by hand: `u32` length, type byte, payload.
fn raw_frame(ty: u8, payload: &[u8]) -> Vec<u8> {
    cat(&[&(payload.len() as u32 + 1).to_be_bytes(), &[ty], payload])
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn hello() -> Frame {
    Frame::Hello(Hello::new("hostile-peer 0.0.0"))
}

/// A note segment holding one VMCOREINFO note (little-endian ELF note, 4-byte aligned).
fn vmcoreinfo_notes(text: &str) -> Bytes {
    let mut notes = BytesMut::new();
    notes.put_u32_le(11);
    notes.put_u32_le(text.len() as u32);
    notes.put_u32_le(0);
    notes.put_slice(b"VMCOREINFO\0\0");
    notes.put_slice(text.as_bytes());
    notes.resize(notes.len().next_multiple_of(4), 0);
    notes.freeze()
}

/// A small, valid offer; `tag` makes its DumpId (and so its directory) unique.
fn fake_manifest(tag: u8) -> DumpManifest {
    let mut id = [0x5e; 32];
    id[0] = tag;
    let uts = ["Linux", "evil-host", "6.6.6-evil", "#1", "x86_64", "(none)"];
    DumpManifest {
        dump_id: DumpId(id),
        dump_level: 1,
        page_size: PAGE as u32,
        max_mapnr: FAKE_MAPNR,
        phys_base: 0,
        crash_time: 1_600_000_000,
        nr_cpus: 1,
        utsname: Box::new(encode_utsname(uts)),
        num_dumpable: FAKE_PAGES,
        pages_per_chunk: FAKE_PAGES as u16,
        notes: vmcoreinfo_notes("OSRELEASE=6.6.6-evil\nPAGESIZE=4096\n"),
    }
}

fn bitmap_piece(bitmap: BitmapKind, bytes: &[u8]) -> Frame {
    let bytes = Bytes::copy_from_slice(bytes);
    Frame::BitmapPiece(BitmapPiece {
        bitmap,
        offset: 0,
        bytes,
    })
}

/// Both bitmaps of the fake dump (pfns 0 and 1 are RAM and dumpable), then `BitmapsDone`.
fn fake_bitmaps() -> Vec<Frame> {
    let bits = [0b11, 0, 0, 0, 0, 0, 0, 0];
    vec![
        bitmap_piece(BitmapKind::First, &bits),
        bitmap_piece(BitmapKind::Second, &bits),
        Frame::BitmapsDone,
    ]
}

/// The fake dump's bitmaps and then its only chunk, changed by `change` (true digest before).
fn fake_chunk(change: fn(&mut PageChunk)) -> Vec<Frame> {
    let page = vec![0x41u8; PAGE];
    let mut hasher = ChunkHasher::new();
    hasher.update(&page);
    hasher.update_zero_page(PAGE);
    let mut chunk = PageChunk {
        first_page: 0,
        chunk_digest: hasher.finish(),
        pages: vec![PageData::Raw(Bytes::from(page)), PageData::Zero],
    };
    change(&mut chunk);
    let mut frames = fake_bitmaps();
    frames.push(Frame::PageChunk(chunk));
    frames
}

/// Attacks on framing and on the handshake: each is refused from its bytes alone.
#[rustfmt::skip] // a table: one attack a line
fn framing_attacks() -> Vec<Attack> {
    let hi = encode(&[hello()]);
    let huge = |len: u32| cat(&[&len.to_be_bytes(), &[0x07], &[0xa5; 16]]);
    let max1 = MAX_FRAME_LEN as u32 + 1;
    let mut bad_magic = hi.clone();
    bad_magic[5] ^= 0xff;
    let mut trailing = hi.clone();
    trailing[3] += 1;
    trailing.push(0);
    let cut = hi[..hi.len() - 3].to_vec();
    let promise = cat(&[&1000u32.to_be_bytes(), &[0x03; 10]]);
    let v3_9 = Hello { min_version: 3, max_version: 9, software: "x".into() };
    let versions = encode(&[Frame::Hello(v3_9)]);
    let unsupported = Some(ErrorCode::UnsupportedVersion);
    let welcome = encode(&[Frame::Welcome(Welcome { version: 1, software: "me".into() })]);
    let boom = Frame::Error(ErrorFrame::new(ErrorCode::Internal, "boom"));
    let offer = encode(&[Frame::Offer(fake_manifest(0x01))]);
    let eof = "stream ended inside a frame";
    exactly(vec![
        ("length 0", vec![0, 0, 0, 0, 1], FIRST, PROTO, "length is 0"),
        ("length 0 after Hello", cat(&[&hi, &[0; 5]]), WELCOMED, PROTO, "length is 0"),
        ("length u32::MAX", huge(u32::MAX), FIRST, PROTO, "exceeds the limit"),
        ("length MAX_FRAME_LEN+1", huge(max1), FIRST, PROTO, "exceeds the limit"),
        ("length u32::MAX after Hello", cat(&[&hi, &huge(u32::MAX)]), WELCOMED, PROTO, "exceeds"),
        ("Hello cut 3 bytes short", cut, FIRST, PROTO, eof),
        ("2 bytes of a length prefix", vec![0, 0], FIRST, PROTO, eof),
        ("1000 bytes promised, 10 sent", promise, FIRST, PROTO, eof),
        ("unknown type 0x0b", raw_frame(0x0b, &[]), FIRST, PROTO, "type 0x0b"),
        ("unknown type after Hello", cat(&[&hi, &raw_frame(0xee, b"x")]), WELCOMED, PROTO, "0xee"),
        ("Hello with a bad magic", bad_magic, FIRST, PROTO, "magic"),
        ("Hello with a trailing byte", trailing, FIRST, PROTO, "trailing"),
        ("empty Hello", raw_frame(0x01, &[]), FIRST, PROTO, "truncated"),
        ("Hello for versions 3..=9", versions, FIRST, unsupported, "3..=9"),
        ("Offer before Hello", offer, FIRST, PROTO, "got Offer"),
        ("Welcome from the sender", welcome, FIRST, PROTO, "got Welcome"),
        ("Hello twice", encode(&[hello(), hello()]), WELCOMED, PROTO, "got Hello"),
        ("Error instead of Offer", encode(&[hello(), boom]), WELCOMED, PROTO, "got Error"),
        ("Hello, then a clean close", hi, WELCOMED, None, ""),
        ("TLS and nothing else", Vec::new(), FIRST, None, ""),
    ])
}

/// Offers out of range: refused with `InvalidManifest` (or `Protocol` when they do not decode).
#[rustfmt::skip] // a table: one attack a line
fn manifest_attacks() -> Vec<Attack> {
    type Break = fn(&mut DumpManifest);
    let cases: [(&str, Break, &str); 14] = [
        ("garbage notes", |m| m.notes = Bytes::from(vec![0xa5; 77]), "notes"),
        ("notes without VMCOREINFO", |m| m.notes = Bytes::from(vec![0; 64]), "VMCOREINFO"),
        ("empty notes", |m| m.notes = Bytes::new(), "notes"),
        ("dump_level 32", |m| m.dump_level = 32, "dump_level"),
        ("page_size 4097", |m| m.page_size = 4097, "page_size"),
        ("page_size 1 GiB", |m| m.page_size = 1 << 30, "page_size"),
        ("max_mapnr 0", |m| (m.max_mapnr, m.num_dumpable) = (0, 0), "max_mapnr"),
        ("max_mapnr u64::MAX", |m| m.max_mapnr = u64::MAX, "max_mapnr"),
        ("max_mapnr MAX_MAPNR+1", |m| m.max_mapnr = MAX_MAPNR + 1, "max_mapnr"),
        ("num_dumpable > max_mapnr", |m| m.num_dumpable = FAKE_MAPNR + 1, "num_dumpable"),
        ("pages_per_chunk 0", |m| m.pages_per_chunk = 0, "pages_per_chunk"),
        ("pages_per_chunk 65535", |m| m.pages_per_chunk = u16::MAX, "pages_per_chunk"),
        ("256 pages of 64 KiB", |m| (m.page_size, m.pages_per_chunk) = (65536, 256), "_per_chunk"),
        ("release not printable", |m| m.utsname[130] = b'\n', "utsname"),
    ];
    let mut attacks = exactly(cases.into_iter().zip(0x20..).map(|((name, brk, says), tag)| {
        let mut manifest = fake_manifest(tag);
        brk(&mut manifest);
        (name, encode(&[hello(), Frame::Offer(manifest)]), WELCOMED, INVALID, says)
    }).collect());
    // The notes blob's length (the 4 bytes before the notes) claims one byte over the limit.
    let mut too_long = encode(&[hello(), Frame::Offer(fake_manifest(0x2e))]);
    let at = too_long.len() - fake_manifest(0x2e).notes.len() - 4;
    too_long[at..at + 4].copy_from_slice(&(MAX_NOTES_LEN as u32 + 1).to_be_bytes());
    attacks.extend(exactly(vec![("notes over MAX_NOTES_LEN", too_long, WELCOMED, PROTO, "notes")]));
    // In range, but a 24 TiB file: refused or accepted, the receiver must leave no debris.
    let mut extreme = fake_manifest(0x2f);
    (extreme.max_mapnr, extreme.num_dumpable) = (MAX_MAPNR, MAX_MAPNR);
    let bytes = encode(&[hello(), Frame::Offer(extreme)]);
    let name = "max_mapnr = num_dumpable = MAX_MAPNR".into();
    attacks.push(Attack { name, bytes, want: Want::Legal });
    attacks
}

/// A valid offer of a fake dump (each its own DumpId), then a broken transfer.
#[rustfmt::skip] // a table: one attack a line
fn transfer_attacks() -> Vec<Attack> {
    let finish = Frame::Finish(Finish { dump_digest: [0; 32] });
    let with = |mut frames: Vec<Frame>, last: Frame| {
        frames.push(last);
        encode(&frames)
    };
    let bits = |b: u8| [b, 0, 0, 0, 0, 0, 0, 0];
    let not_subset = encode(&[
        bitmap_piece(BitmapKind::First, &bits(0b11)),
        bitmap_piece(BitmapKind::Second, &bits(0b1100)),
        Frame::BitmapsDone,
    ]);
    let too_long = encode(&[bitmap_piece(BitmapKind::First, &[1; 9])]);
    let mut cut = encode(&fake_chunk(|_| ()));
    cut.truncate(cut.len() - 1000);
    let mid_huge = cat(&[&encode(&fake_bitmaps()), &[0xff; 8]]);
    let zstd = |c: &mut PageChunk| c.pages[0] = PageData::Zstd(Bytes::from_static(&[1, 2, 3]));
    let short = |c: &mut PageChunk| c.pages[0] = PageData::Raw(Bytes::from(vec![0x41; 100]));
    let wrong_digest = |c: &mut PageChunk| c.chunk_digest = [7; 32];
    let mismatch = Some(ErrorCode::DigestMismatch);
    let cases: Vec<(&str, Vec<u8>, Option<ErrorCode>, &str)> = vec![
        ("PageChunk before the bitmaps", encode(&fake_chunk(|_| ())[3..]), PROTO, "before"),
        ("BitmapsDone alone", encode(&[Frame::BitmapsDone]), PROTO, "before both"),
        ("2nd bitmap first", encode(&fake_bitmaps()[1..]), PROTO, "out of order"),
        ("bitmap piece too long", too_long, INVALID, "runs past"),
        ("2nd bitmap not in the 1st", not_subset, INVALID, "2nd bitmap"),
        ("chunk of a wrong digest", encode(&fake_chunk(wrong_digest)), CORRUPT, "digest"),
        ("chunk of bad zstd", encode(&fake_chunk(zstd)), CORRUPT, "page 0"),
        ("chunk with a short raw page", encode(&fake_chunk(short)), CORRUPT, "100 bytes"),
        ("chunk at the wrong index", encode(&fake_chunk(|c| c.first_page = 2)), PROTO, "expected"),
        ("chunk short of pages", encode(&fake_chunk(|c| c.pages.truncate(1))), PROTO, "expected 2"),
        ("Finish before any page", with(fake_bitmaps(), finish.clone()), PROTO, "after 0 of 2"),
        ("Finish with a wrong digest", with(fake_chunk(|_| ()), finish), mismatch, "digest"),
        ("Offer twice", encode(&[Frame::Offer(fake_manifest(0x4c))]), PROTO, "got Offer"),
        ("Hello after the Offer", encode(&[hello()]), PROTO, "got Hello"),
        ("unknown type mid-transfer", raw_frame(0x7f, &[1, 2, 3]), PROTO, "type 0x7f"),
        ("length u32::MAX mid-transfer", mid_huge, PROTO, "exceeds"),
        ("chunk cut short mid-transfer", cut, PROTO, "stream ended"),
    ];
    exactly(cases.into_iter().zip(0x40..).map(|((name, rest, code, says), tag)| {
        let offer = encode(&[hello(), Frame::Offer(fake_manifest(tag))]);
        (name, cat(&[&offer, &rest]), OFFERED, code, says)
    }).collect())
}

/// A small xorshift64* generator: the random attacks are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// One well-framed frame of a random (mostly known) type with a random payload.
    fn frame(&mut self) -> Vec<u8> {
        let types = [
            0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0f, 0xff,
        ];
        let ty = types[self.below(types.len())];
        let len = self.below(300);
        raw_frame(ty, &self.bytes(len))
    }
}

/// Random blobs of four kinds: noise; a random frame; a valid Hello and a random frame; a valid
/// Hello and an offer with 1 to 4 bits flipped, then a frame of an unknown type.
fn random_attacks(seed: u64) -> Vec<Attack> {
    let mut rng = Rng(seed);
    let hi = encode(&[hello()]);
    (0..RANDOM_BLOBS)
        .map(|i| {
            let bytes = match i % 4 {
                0 => {
                    let len = 1 + rng.below(300);
                    rng.bytes(len)
                }
                1 => rng.frame(),
                2 => cat(&[&hi, &rng.frame()]),
                _ => {
                    let mut offer = encode(&[Frame::Offer(fake_manifest(0x80 + (i / 4) as u8))]);
                    for _ in 0..1 + rng.below(4) {
                        let at = rng.below(offer.len());
                        offer[at] ^= 1 << rng.below(8);
                    }
                    cat(&[&hi, &offer, &raw_frame(0xee, &[])])
                }
            };
            let name = format!("random blob {i}");
            Attack {
                name,
                bytes,
                want: Want::AnyError,
            }
        })
        .collect()
}

/// The DumpIds of the offers among the frames that decode from the start of `bytes`.
fn offered_ids(bytes: &[u8]) -> Vec<String> {
    let mut buf = BytesMut::from(bytes);
    let mut ids = Vec::new();
    while let Ok(Some(frame)) = FrameCodec.decode(&mut buf) {
        if let Frame::Offer(m) = frame {
            ids.push(m.dump_id.to_hex());
        }
    }
    ids
}

/// Every file under `dir` with the SHA-256 of its bytes, by path relative to `dir`.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, [u8; 32]> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read");
                let rel = path.strip_prefix(dir).expect("inside").to_path_buf();
                files.insert(rel, sha256(&bytes));
            }
        }
    }
    files
}

fn record(dump_dir: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(dump_dir.join("dump.json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn synthetic_vmcore(path: &Path, seed: u64) {
    let spec = SynthSpec {
        memory_bytes: 16 << 20,
        seed,
        osrelease: "6.1.0-test".into(),
        crash_time: 1_700_000_000,
    };
    write_synthetic_vmcore(path, &spec).expect("synthetic vmcore");
}

/// The daemon's peak virtual memory (`VmPeak`, KiB): reserving a claimed 4 GiB frame would show
/// here even if the memory were never touched.
fn vm_peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmPeak:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmPeak in /proc/PID/status")
}

fn assert_running(receiver: &mut Receiver) {
    if let Ok(status) = receiver.guard.wait_timeout(Duration::ZERO) {
        panic!(
            "crashdropd exited ({status}) under attack:\n{}",
            receiver.log()
        );
    }
}

#[test]
fn hostile_frames_get_an_error_or_a_close_and_leave_other_dumps_alone() {
    let started = Instant::now();
    let work = tempfile::tempdir().expect("tempdir");
    let (vmcore_a, vmcore_b) = (work.path().join("vmcore-a"), work.path().join("vmcore-b"));
    synthetic_vmcore(&vmcore_a, 21);
    synthetic_vmcore(&vmcore_b, 22);
    let certs = TestCerts::new(&["good-host", "evil-host"]);
    let store = work.path().join("store");
    // Random blobs go 16 at a time from one host: lift the per-host session cap (default 4) so
    // that each blob reaches the session code instead of being turned away as Busy.
    let mut receiver = Receiver::start(&store, &certs, &["--max-sessions-per-host", "64"]);

    // An honest host's dump, stored before the attacks.
    assert_sent(
        &run(&mut sender(&receiver, &certs, "good-host", &vmcore_a, 1)),
        &receiver,
    );
    let good_host = store.join("good-host");
    let good_dump = stored_dumps(&store).pop().expect("one dump");
    assert_eq!(good_dump.parent(), Some(good_host.as_path()));
    // The kernel log is extracted in the background after Complete and then rewrites
    // dump.json: wait for it, or the snapshot races with it on a loaded machine.
    let settled = std::time::Instant::now();
    while record(&good_dump)
        .is_some_and(|r| r["kernel_log"].is_null() && r["kernel_log_error"].is_null())
        && settled.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let good_before = snapshot(&good_host);
    let good_record = record(&good_dump).expect("good-host's dump.json");
    assert_eq!(good_record["state"], "complete");

    let peer = RawPeer::new(&certs, "evil-host", receiver.addr);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut tally = Tally::default();
    let (oversize, framing): (Vec<_>, Vec<_>) = framing_attacks()
        .into_iter()
        .partition(|a| a.name.starts_with("length"));

    // Bad lengths first, alone, with the daemon's peak virtual memory watched around them.
    let peak_before = vm_peak_kib(receiver.guard.id());
    for a in &oversize {
        judge(
            a,
            &runtime.block_on(peer.exchange(&a.bytes)),
            &mut tally,
            true,
        );
    }
    let peak_after = vm_peak_kib(receiver.guard.id());
    eprintln!("crashdropd VmPeak: {peak_before} KiB before the bad lengths, {peak_after} after");
    assert!(
        peak_after < peak_before + (1 << 20),
        "crashdropd's VmPeak grew by {} KiB on frames that claim up to 4 GiB",
        peak_after - peak_before
    );

    let scripted: Vec<Attack> = framing
        .into_iter()
        .chain(manifest_attacks())
        .chain(transfer_attacks())
        .collect();
    for a in &scripted {
        judge(
            a,
            &runtime.block_on(peer.exchange(&a.bytes)),
            &mut tally,
            true,
        );
    }

    // The hostile host offers the honest host's DumpId and crash time: it must get a new dump
    // under its own name, not the honest host's complete one.
    let mut impostor = fake_manifest(0x60);
    let good_id = good_record["dump_id"].as_str().expect("dump_id");
    impostor.dump_id = DumpId::from_hex(good_id).expect("hex");
    impostor.crash_time = good_record["crash_time"].as_i64().expect("crash_time");
    let impostor = encode(&[hello(), Frame::Offer(impostor)]);
    let reply = runtime.block_on(peer.exchange(&impostor));
    let frames = reply.frames().expect("decodes");
    eprintln!(
        "offer of good-host's DumpId: {frames:?}, then {:?}",
        reply.ending
    );
    let fresh = ResumeFrom {
        state: ResumeState::Send,
        bitmaps_stored: false,
        next_page: 0,
    };
    let started_fresh =
        matches!(frames.as_slice(), [Frame::Welcome(_), Frame::ResumeFrom(r)] if *r == fresh);
    assert!(
        reply.ending.is_closed() && started_fresh,
        "good-host's DumpId offered by evil-host must start a new dump: {frames:?}"
    );

    // Random blobs, several connections at once.
    let random = random_attacks(0x00c0_ffee_d00d_f00d);
    let replies: Vec<(usize, Reply)> = runtime.block_on(
        futures_util::stream::iter(random.iter().enumerate())
            .map(|(i, a)| {
                let peer = &peer;
                async move { (i, peer.exchange(&a.bytes).await) }
            })
            .buffer_unordered(CONCURRENT)
            .collect(),
    );
    let mut random_tally = Tally::default();
    for (i, reply) in &replies {
        judge(&random[*i], reply, &mut random_tally, false);
    }

    // Not TLS at all.
    for (name, bytes) in [
        (
            "plain TCP: an HTTP request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        ("plain TCP: a crashdrop Hello", encode(&[hello()])),
        ("plain TCP: 4 KiB of noise", Rng(7).bytes(4096)),
    ] {
        let reply = runtime.block_on(exchange_plain(receiver.addr, &bytes));
        assert!(
            reply.ending.is_closed(),
            "{name}: still open after {REPLY_TIMEOUT:?}"
        );
        eprintln!(
            "{name}: {} bytes back, then {:?}",
            reply.bytes.len(),
            reply.ending
        );
    }

    assert_running(&mut receiver);
    assert_eq!(
        snapshot(&good_host),
        good_before,
        "good-host's files changed under attack"
    );

    // The daemon still serves: another dump from the honest host completes, beside the first.
    assert_sent(
        &run(&mut sender(&receiver, &certs, "good-host", &vmcore_b, 1)),
        &receiver,
    );
    let good_dumps: Vec<PathBuf> = stored_dumps(&store)
        .into_iter()
        .filter(|d| d.starts_with(&good_host))
        .collect();
    assert_eq!(good_dumps.len(), 2, "{good_dumps:?}");
    for dump in &good_dumps {
        assert_eq!(record(dump).expect("dump.json")["state"], "complete");
    }
    let first = good_dump.strip_prefix(&good_host).expect("inside");
    let mut first_after = snapshot(&good_host);
    first_after.retain(|path, _| path.starts_with(first));
    assert_eq!(first_after, good_before, "good-host's first dump changed");
    assert_running(&mut receiver);

    // The log recorded the refusals (the honest transfer above takes far longer than the log
    // line of the last hostile session, which follows its close).
    let log = receiver.log();
    assert!(!log.contains("panicked"), "a session task panicked:\n{log}");
    let failed = log.matches("session failed").count() as u32;
    let refused: u32 = tally
        .by_code
        .values()
        .chain(random_tally.by_code.values())
        .sum();
    assert!(
        failed >= refused,
        "{failed} 'session failed' lines for {refused} refusals:\n{log}"
    );

    eprintln!(
        "{} scripted attacks: Error frames by code {:?}, {} closed without an Error",
        oversize.len() + scripted.len(),
        tally.by_code,
        tally.plain_close
    );
    eprintln!(
        "{RANDOM_BLOBS} random blobs: Error frames by code {:?}, {} closed without an Error",
        random_tally.by_code, random_tally.plain_close
    );
    eprintln!(
        "endings: scripted {:?}; random {:?}",
        tally.endings, random_tally.endings
    );
    eprintln!(
        "{failed} 'session failed' log lines; {:?} so far",
        started.elapsed()
    );

    // Only the two hosts have directories, and the hostile one holds only records of dumps it
    // offered (those a valid offer started: receiving or failed).
    let mut hosts: Vec<String> = std::fs::read_dir(&store)
        .expect("store")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["evil-host", "good-host"]);
    let mut offered_by: BTreeMap<String, &str> = BTreeMap::new();
    let named = oversize.iter().chain(&scripted).chain(&random);
    for (id, name) in named.flat_map(|a| offered_ids(&a.bytes).into_iter().map(|id| (id, &a.name)))
    {
        offered_by.entry(id).or_insert(name);
    }
    offered_by.insert(good_id.to_owned(), "the offer of good-host's DumpId");
    let mut debris = Vec::new();
    let mut evil_dirs: Vec<PathBuf> = std::fs::read_dir(store.join("evil-host"))
        .expect("evil-host's directory")
        .flatten()
        .map(|e| e.path())
        .collect();
    evil_dirs.sort();
    for dir in &evil_dirs {
        let short = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let by = offered_by
            .iter()
            .find(|(id, _)| short.ends_with(&id[..12]))
            .map_or("no attack", |(_, name)| *name);
        let Some(r) = record(dir) else {
            let files: Vec<_> = std::fs::read_dir(dir)
                .map(|d| d.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            debris.push(format!(
                "{short} (from {by:?}): no dump.json, holds {files:?}"
            ));
            continue;
        };
        let state_ok = r["state"] == "receiving" || r["state"] == "failed";
        let id_ok = r["dump_id"]
            .as_str()
            .is_some_and(|id| offered_by.contains_key(id));
        if r["host"] != "evil-host" || !state_ok || !id_ok {
            debris.push(format!("{short} (from {by:?}): unexpected record {r}"));
        }
    }
    eprintln!(
        "evil-host's directories: {}, of which not a dump record: {}; {:?} in all",
        evil_dirs.len(),
        debris.len(),
        started.elapsed()
    );
    assert!(
        debris.is_empty(),
        "refused offers left {} directories under evil-host:\n{}",
        debris.len(),
        debris.join("\n")
    );
}
