//! A store on a real, small filesystem that fills up (issue 8's disk acceptance): a tmpfs the test
//! mounts (it must run as root, as `.ci/run` does; without the mount it skips, saying why).
//!
//! On a 56 MiB tmpfs with two complete 16 MiB dumps of host `old`:
//!
//! 1. a dump whose estimate does not fit is refused at admission (`NoSpace`), nothing created;
//! 2. a dump that fits its estimate but not the disk (incompressible memory: it stores at twice
//!    the estimate) hits ENOSPC mid-transfer: the sender is told the receiver's disk is full, the
//!    dump stays `receiving` with its durable pages, and the complete dumps are untouched and
//!    still verify;
//! 3. `crashdropd prune --keep-per-host 1` removes `old`'s older dump, and the same transfer
//!    resumes (from its durable pages, not from 0) and completes, page for page the source's.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crashdrop_formats::synth::{write_synthetic_vmcore, SynthSpec};
use crashdrop_formats::ElfVmcore;
use crashdrop_integration::{
    assert_sent, bin_path, compare_with_source, record_after_kernel_log, run, sender, stored_dumps,
    Receiver, TestCerts,
};

/// The store's filesystem.
const FS_BYTES: u64 = 56 << 20;

/// A tmpfs mounted on a directory for the test's life; unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, bytes: u64) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            dir: dir.to_owned(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a receiver killed a moment ago may still hold a file open.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// A synthetic vmcore; with `incompressible`, every byte of its memory replaced by pseudo-random
/// ones (as a machine full of encrypted or compressed data), so it stores at its full size.
fn vmcore(path: &Path, memory_bytes: u64, crash_time: i64, incompressible: bool) {
    write_synthetic_vmcore(
        path,
        &SynthSpec {
            memory_bytes,
            seed: crash_time as u64,
            osrelease: "6.1.0-diskfull".into(),
            crash_time,
        },
    )
    .expect("synthetic vmcore");
    if !incompressible {
        return;
    }
    let loads = ElfVmcore::open(path)
        .expect("vmcore opens")
        .loads()
        .to_vec();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("vmcore");
    let mut state = crash_time as u64 | 1;
    let mut buf = vec![0u8; 1 << 20];
    for load in loads {
        let mut at = 0;
        while at < load.filesz {
            let n = (load.filesz - at).min(buf.len() as u64) as usize;
            for word in buf[..n].chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
            }
            file.write_all_at(&buf[..n], load.offset + at)
                .expect("write random memory");
            at += n as u64;
        }
    }
}

fn crashdropd(args: &[&str], store: &Path) -> Output {
    let mut cmd = Command::new(bin_path("crashdropd"));
    cmd.args(args).arg("--store").arg(store);
    run(&mut cmd)
}

fn verify(store: &Path, dump: &Path) {
    let relative = dump.strip_prefix(store).expect("in the store");
    let mut cmd = Command::new(bin_path("crashdropd"));
    cmd.arg("verify").arg("--store").arg(store).arg(relative);
    let out = run(&mut cmd);
    assert!(
        out.status.success(),
        "{} does not verify: {}{}",
        dump.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file of a dump directory and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("dump dir").flatten() {
        let path = entry.path();
        files.insert(path.clone(), std::fs::read(&path).expect("read"));
    }
    files
}

fn record(dump: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dump.join("dump.json")).expect("dump.json"))
        .expect("dump.json parses")
}

fn host_dumps(store: &Path, host: &str) -> Vec<PathBuf> {
    stored_dumps(store)
        .into_iter()
        .filter(|d| d.parent().and_then(Path::file_name) == Some(host.as_ref()))
        .collect()
}

fn free_bytes(store: &Path) -> u64 {
    let out = run(Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(store));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_full_disk_refuses_new_dumps_fails_a_transfer_resumably_and_prune_lets_it_complete() {
    let work = tempfile::tempdir().expect("tempdir");
    let store = work.path().join("store");
    let _fs = match Tmpfs::mount(&store, FS_BYTES) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!(
                "skipping: the disk-full test needs a tmpfs it can mount (run as root): {why}"
            );
            return;
        }
    };
    let certs = TestCerts::new(&["old", "huge", "filler"]);
    let mut receiver = Receiver::start(&store, &certs, &["--min-free", "1MiB"]);

    // Host `old`: two complete dumps of incompressible 16 MiB machines (about 16 MiB each).
    let mut old = Vec::new();
    for (i, crash_time) in [1_700_000_000i64, 1_700_003_600].into_iter().enumerate() {
        let path = work.path().join(format!("old-{i}"));
        vmcore(&path, 16 << 20, crash_time, true);
        assert_sent(
            &run(sender(&receiver, &certs, "old", &path, 0).args(["--retry-for", "0"])),
            &receiver,
        );
        old.push(path);
    }
    let old_dumps = host_dumps(&store, "old");
    assert_eq!(old_dumps.len(), 2, "{old_dumps:?}");
    // The log extraction (it fails on random memory) rewrites dump.json once; let it.
    for dump in &old_dumps {
        record_after_kernel_log(dump, &receiver);
    }
    let before: Vec<_> = old_dumps.iter().map(|d| snapshot(d)).collect();
    let free_before = free_bytes(&store);
    eprintln!("{free_before} bytes free with two complete dumps");

    // 1. A 64 MiB machine at level 0 is estimated at about 32 MiB: more than is free.
    let huge = work.path().join("huge");
    vmcore(&huge, 64 << 20, 1_700_007_200, false);
    let out = run(sender(&receiver, &certs, "huge", &huge, 0).args(["--retry-for", "0"]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "refused as retryable:\n{said}");
    assert!(
        said.contains("NoSpace") && said.contains("disk has"),
        "the sender reports why:\n{said}"
    );
    assert!(
        host_dumps(&store, "huge").is_empty(),
        "nothing stored for a refused dump"
    );

    // 2. A 32 MiB incompressible machine: estimated at about 16 MiB (fits), stores 32 (does not).
    let filler = work.path().join("filler");
    vmcore(&filler, 32 << 20, 1_700_010_800, true);
    let out = run(sender(&receiver, &certs, "filler", &filler, 0).args(["--retry-for", "3s"]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(5),
        "a full disk is retryable:\n{said}\n--- crashdropd log:\n{}",
        receiver.log()
    );
    assert!(
        said.contains("Storage") && said.contains("disk is full"),
        "the sender reports that the receiver's disk is full:\n{said}"
    );
    assert!(
        receiver.log().contains("No space left on device"),
        "the receiver logs the ENOSPC:\n{}",
        receiver.log()
    );
    let filling = host_dumps(&store, "filler");
    assert_eq!(filling.len(), 1, "{filling:?}");
    let stuck = record(&filling[0]);
    assert_eq!(stuck["state"], "receiving", "kept resumable: {stuck:#}");
    // The journal (receiver/src/store/progress.rs: a 128-byte header, 40 bytes per durable
    // chunk) is the truth; dump.json may be older, its last rewrite having met the full disk.
    let journal = std::fs::metadata(filling[0].join("progress"))
        .map(|m| m.len())
        .unwrap_or(0);
    let durable_chunks = journal.saturating_sub(128) / 40;
    assert!(
        durable_chunks > 0,
        "chunks before the disk filled stay durable ({journal}-byte journal): {stuck:#}"
    );
    assert!(free_bytes(&store) < 1 << 20, "the disk really filled");
    for (dump, files) in old_dumps.iter().zip(&before) {
        assert!(snapshot(dump) == *files, "{} changed", dump.display());
        verify(&store, dump);
    }

    // 3. Retention frees space; the same transfer resumes and completes.
    let out = crashdropd(&["prune", "--keep-per-host", "1"], &store);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "prune: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("removed old/"),
        "prune removes old's older dump:\n{said}"
    );
    assert_eq!(
        host_dumps(&store, "old"),
        vec![old_dumps[1].clone()],
        "{said}"
    );
    let out = run(sender(&receiver, &certs, "filler", &filler, 0).args(["--retry-for", "60s"]));
    assert_sent(&out, &receiver);
    let said = String::from_utf8_lossy(&out.stderr);
    let done = record(&filling[0]);
    assert_eq!(done["state"], "complete", "{done:#}");
    assert!(
        done["sessions"].as_u64().unwrap_or(0) >= 2,
        "resumed, not started over: {done:#}"
    );
    let resumed_at = said
        .lines()
        .find_map(|l| l.strip_prefix("resuming at page "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok());
    assert!(
        resumed_at.is_some_and(|at| at > 0),
        "the sender resumed after the durable pages ({durable_chunks} chunks):\n{said}"
    );
    verify(&store, &filling[0]);
    compare_with_source(&filling[0].join("vmcore"), &filler, 0);
    verify(&store, &old_dumps[1]);
    assert!(
        !filling[0].join("dump.json.tmp").exists(),
        "no temp file left from the failed record writes"
    );
    receiver
        .guard
        .terminate(Duration::from_secs(30))
        .expect("crashdropd stops");
}
