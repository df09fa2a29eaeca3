//! The receiver extracts the crashed kernel's log: a real fixture dump sent through the real
//! binaries at the default dump level (31, so the log must survive page filtering) yields a
//! `dmesg.txt` byte-identical to kexec-tools' `vmcore-dmesg` output on the original vmcore,
//! named in `dump.json`, and `crashdropd dmesg` prints the same bytes.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crashdrop_integration::{
    assert_sent, bin_path, fixture_dumps, run, sender, stored_dumps, Receiver, TestCerts,
};

/// How long the receiver may take to extract the log after it reported the dump complete.
const EXTRACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// `dump.json` once it records the extraction's outcome (it runs after the dump completes).
fn record_with_kernel_log(dump: &Path, receiver: &Receiver) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(dump.join("dump.json")).expect("dump.json");
        let record: serde_json::Value = serde_json::from_str(&text).expect("dump.json parses");
        if !record["kernel_log"].is_null() || !record["kernel_log_error"].is_null() {
            return record;
        }
        assert!(
            started.elapsed() < EXTRACTION_TIMEOUT,
            "no kernel log recorded after {EXTRACTION_TIMEOUT:?}:\n{text}\n--- crashdropd log:\n{}",
            receiver.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn stored_fixture_dumps_carry_their_kernel_log() {
    let Some(fixtures) = fixture_dumps() else {
        return; // fixture_dumps printed why
    };
    for fixture in fixtures {
        let certs = TestCerts::new(&["kdump-guest"]);
        let work = tempfile::tempdir().expect("tempdir");
        let store = work.path().join("store");
        let receiver = Receiver::start(&store, &certs, &[]);
        let vmcore = fixture.vmcore();
        assert_sent(
            &run(&mut sender(&receiver, &certs, "kdump-guest", &vmcore, 31)),
            &receiver,
        );
        let dump = stored_dumps(&store).pop().expect("one dump");
        let record = record_with_kernel_log(&dump, &receiver);
        assert_eq!(record["dump_level"], 31);
        assert_eq!(record["kernel_log"], "dmesg.txt", "{record:#}");
        assert!(record["kernel_log_error"].is_null(), "{record:#}");
        // What crashed, from the log: the fixture's guest crashed by `echo c > /proc/sysrq-trigger`.
        let crash = &record["crash"];
        assert_eq!(crash["kind"], "panic", "{record:#}");
        assert_eq!(
            crash["title"], "Kernel panic - not syncing: sysrq triggered crash",
            "{record:#}"
        );
        assert_eq!(
            crash["signature"].as_str().map(str::len),
            Some(16),
            "{record:#}"
        );
        assert_eq!(crash["frames"][0], "sysrq_handle_crash", "{record:#}");
        assert_eq!(
            crash["kernel_release"], record["kernel_release"],
            "{record:#}"
        );
        // The crashing task and CPU as the reference log's own "CPU: N PID: P Comm: TASK" line
        // says (they differ from one capture to the next).
        let (cpu, task) = crashing_task(&fixture.dmesg_txt);
        assert_eq!(crash["task"], task.as_str(), "{record:#}");
        assert_eq!(crash["cpu"], cpu, "{record:#}");
        assert!(crash["seconds_after_boot"].as_f64().is_some(), "{record:#}");

        // Byte for byte: same prefix, escaping and unindented continuation lines.
        let reference = std::fs::read(&fixture.dmesg_txt).expect("fixture dmesg.txt");
        let stored = std::fs::read(dump.join("dmesg.txt")).expect("stored dmesg.txt");
        assert!(
            stored == reference,
            "{}: stored dmesg.txt ({} bytes) differs from the fixture's ({} bytes)",
            fixture.name,
            stored.len(),
            reference.len()
        );

        let relative = dump.strip_prefix(&store).expect("dump inside store");
        let out = run(Command::new(bin_path("crashdropd"))
            .arg("dmesg")
            .arg("--store")
            .arg(&store)
            .arg(relative));
        assert!(
            out.status.success(),
            "crashdropd dmesg failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout == reference,
            "crashdropd dmesg printed another log"
        );
    }
}

/// The CPU and task of the first `CPU: N PID: P Comm: TASK` line of a reference log.
fn crashing_task(dmesg: &std::path::Path) -> (u64, String) {
    let text = std::fs::read_to_string(dmesg).expect("fixture dmesg.txt");
    text.lines()
        .find_map(|line| {
            let rest = &line[line.find("CPU: ")? + "CPU: ".len()..];
            let (cpu, rest) = rest.split_once(' ')?;
            let task = rest.split_once("Comm: ")?.1.split_whitespace().next()?;
            Some((cpu.parse().ok()?, task.to_string()))
        })
        .expect("the reference log names the crashing task (CPU: N PID: P Comm: TASK)")
}
