//! A crash storm against a small receiver: 50 honest senders at once against `max_sessions = 8`.
//! The receiver refuses the surplus with a retryable `Busy`; every sender retries until it gets
//! a slot, and every dump is stored complete and verifies (issue 8's acceptance). Bounded: the
//! senders give up after `--retry-for 150s` and the test after 240 s.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crashdrop_formats::synth::{write_synthetic_vmcore, SynthSpec};
use crashdrop_integration::{bin_path, run, sender, stored_dumps, ChildGuard, Receiver, TestCerts};

const SENDERS: usize = 50;
const MAX_SESSIONS: usize = 8;

#[test]
#[ignore = "load test: 50 concurrent crashdrop-send processes for up to a few minutes; .ci/run runs it"]
fn fifty_senders_against_eight_sessions_all_finish_and_every_dump_verifies() {
    let work = tempfile::tempdir().expect("tempdir");
    let vmcore = work.path().join("vmcore");
    write_synthetic_vmcore(
        &vmcore,
        &SynthSpec {
            memory_bytes: 24 << 20,
            seed: 50,
            osrelease: "6.1.0-storm".into(),
            crash_time: 1_700_000_000,
        },
    )
    .expect("synthetic vmcore");
    let hosts: Vec<String> = (0..SENDERS).map(|i| format!("storm-{i:02}")).collect();
    let host_refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let certs = TestCerts::new(&host_refs);
    let store = work.path().join("store");
    let mut receiver = Receiver::start(
        &store,
        &certs,
        &["--max-sessions", &MAX_SESSIONS.to_string()],
    );

    let started = Instant::now();
    let mut senders: Vec<ChildGuard> = hosts
        .iter()
        .map(|host| {
            let mut cmd = sender(&receiver, &certs, host, &vmcore, 1);
            cmd.args(["--retry-for", "150s"]).stdin(Stdio::null());
            ChildGuard::spawn(host, &mut cmd).expect("spawn crashdrop-send")
        })
        .collect();
    let mut failed = Vec::new();
    for child in &mut senders {
        let left = Duration::from_secs(240).saturating_sub(started.elapsed());
        match child.wait_timeout(left) {
            Ok(status) if status.success() => {}
            Ok(status) => failed.push(format!(
                "{}: {status}\n{}",
                child.name(),
                child.stderr_text()
            )),
            Err(e) => failed.push(format!("{}: did not finish: {e}", child.name())),
        }
    }
    let elapsed = started.elapsed();
    assert!(
        failed.is_empty(),
        "{} of {SENDERS} senders failed:\n{}\n--- crashdropd log:\n{}",
        failed.len(),
        failed.join("\n"),
        receiver.log()
    );
    eprintln!("{SENDERS} senders against max_sessions={MAX_SESSIONS}: all done in {elapsed:?}");

    let dumps = stored_dumps(&store);
    assert_eq!(dumps.len(), SENDERS, "one stored dump per host");
    for dump in &dumps {
        let record: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dump.join("dump.json")).expect("dump.json"),
        )
        .expect("dump.json parses");
        assert_eq!(record["state"], "complete", "{}", dump.display());
        let relative = dump.strip_prefix(&store).expect("inside the store");
        let out = run(Command::new(bin_path("crashdropd"))
            .arg("verify")
            .arg("--store")
            .arg(&store)
            .arg(relative));
        assert!(
            out.status.success(),
            "{} does not verify: {}",
            dump.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let log = receiver.log();
    assert!(
        log.contains("too many sessions; refusing this one"),
        "the test must have driven the receiver into its session limit:\n{log}"
    );
    receiver
        .guard
        .terminate(Duration::from_secs(30))
        .expect("crashdropd stops");
}
