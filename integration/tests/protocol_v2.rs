//! Protocol version 2 end to end: the real `crashdrop-send` and `crashdropd` negotiate it (ALPN
//! `crashdrop/2` and `Welcome {2}`), the stored dump verifies and holds exactly the pages a
//! version-1 transfer of the same vmcore stores, and a sender limited to version 1 is still
//! served by the new receiver. On the first fixture dump when present, else a synthetic one.
//! (Cuts and kill -9 under version 2: `resume.rs`.)

use std::path::{Path, PathBuf};
use std::process::Command;

use crashdrop_formats::kdump::{KdumpReader, PageRead};
use crashdrop_formats::synth::{write_synthetic_vmcore, SynthSpec};
use crashdrop_integration::{
    assert_sent, bin_path, compare_with_source, fixture_dumps, run, sender_to, stored_dumps,
    FaultProxy, Receiver, TestCerts,
};

const HOST: &str = "both-versions";
const LEVEL: u8 = 1;

fn vmcore(work: &Path) -> PathBuf {
    if let Some(f) = fixture_dumps().and_then(|mut f| (!f.is_empty()).then(|| f.remove(0))) {
        return f.vmcore();
    }
    eprintln!("no fixture dump: using a synthetic vmcore");
    let path = work.join("vmcore");
    write_synthetic_vmcore(
        &path,
        &SynthSpec {
            memory_bytes: 64 << 20,
            seed: 31,
            osrelease: "6.1.0-v2".into(),
            crash_time: 1_700_000_000,
        },
    )
    .expect("synthetic vmcore");
    path
}

/// Sends `vmcore` through a proxy (to count the bytes) with at most `protocol`; returns the
/// stored dump's directory, its dump.json and the bytes the sender put on the wire.
fn send(
    work: &Path,
    certs: &TestCerts,
    vmcore: &Path,
    protocol: u16,
) -> (PathBuf, serde_json::Value, u64) {
    let store = work.join(format!("store-v{protocol}"));
    let receiver = Receiver::start(&store, certs, &[]);
    let proxy = FaultProxy::start(receiver.addr, vec![]);
    let mut cmd = sender_to(
        &proxy.url(),
        &certs.ca.cert,
        &certs.host(HOST),
        vmcore,
        LEVEL,
    );
    cmd.args(["--protocol-version", &protocol.to_string()]);
    let out = run(&mut cmd);
    assert_sent(&out, &receiver);
    let log = receiver.log();
    assert!(
        log.contains(&format!("version={protocol}")),
        "the receiver logged the session's version {protocol}:\n{log}"
    );
    let dumps = stored_dumps(&store);
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    let dump = dumps[0].clone();
    let verify = run(Command::new(bin_path("crashdropd"))
        .arg("verify")
        .arg("--store")
        .arg(&store)
        .arg(dump.strip_prefix(&store).expect("inside store")));
    assert!(
        verify.status.success(),
        "verify of a version-{protocol} dump: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let record =
        serde_json::from_str(&std::fs::read_to_string(dump.join("dump.json")).expect("dump.json"))
            .expect("json");
    (dump, record, proxy.stats().upstream_bytes)
}

#[test]
fn a_dump_sent_in_version_2_verifies_and_is_page_identical_to_version_1() {
    let work = tempfile::tempdir().expect("tempdir");
    let vmcore = vmcore(work.path());
    let certs = TestCerts::new(&[HOST]);
    let (v2, record2, wire2) = send(work.path(), &certs, &vmcore, 2);
    // The hidden flag makes a version-1 sender (Hello 1..=1, ALPN crashdrop/1 only): the new
    // receiver serves it as before.
    let (v1, record1, wire1) = send(work.path(), &certs, &vmcore, 1);
    assert_eq!(record2["digest_version"], 2);
    assert_eq!(record1["digest_version"], 1);
    assert_ne!(
        record1["digest"], record2["digest"],
        "the digests' versions differ"
    );
    for dump in [&v1, &v2] {
        let seen = compare_with_source(&dump.join("vmcore"), &vmcore, LEVEL);
        assert!(seen.pages > 0);
    }
    // Page for page the same stored content (data may lie in a different order on disk).
    let (r1, r2) = (
        KdumpReader::open(&v1.join("vmcore")).expect("v1 dump"),
        KdumpReader::open(&v2.join("vmcore")).expect("v2 dump"),
    );
    assert!(r1.bitmap2() == r2.bitmap2(), "same dumpable pages");
    let mut pages = 0u64;
    for entry in r1.pages() {
        let (pfn, _) = entry.expect("v1 descriptor");
        match (r1.read_page(pfn), r2.read_page(pfn)) {
            (Ok(PageRead::Data(a)), Ok(PageRead::Data(b))) => {
                assert!(a == b, "pfn {pfn:#x} differs between the versions")
            }
            other => panic!("pfn {pfn:#x}: {:?}", other.0.is_ok()),
        }
        pages += 1;
    }
    eprintln!(
        "{pages} pages identical; page data and frames on the wire: version 2 {wire2} bytes, \
         version 1 {wire1} bytes"
    );
    assert!(
        wire2 <= wire1,
        "zero pages as bits never cost more: v2 {wire2} > v1 {wire1}"
    );
}
