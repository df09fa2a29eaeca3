//! `crashdropd show HOST/DUMP` on a dump the real binaries stored: the record, what crashed (from
//! the kernel log the receiver extracted), the call trace and the log's last lines.

use std::process::Command;

use crashdrop_formats::{SynthMachine, SynthSpec};
use crashdrop_integration::{
    assert_sent, bin_path, record_after_kernel_log, run, sender, sender_to, stored_dumps, Fault,
    FaultProxy, Receiver, TestCerts,
};

#[test]
fn show_prints_the_record_the_crash_its_call_trace_and_the_log_tail() {
    let work = tempfile::tempdir().expect("tempdir");
    let certs = TestCerts::new(&["web-9"]);
    let store = work.path().join("store");
    let receiver = Receiver::start(&store, &certs, &[]);
    let vmcore = work.path().join("vmcore");
    SynthMachine::new(&SynthSpec {
        memory_bytes: 16 << 20,
        seed: 9,
        osrelease: "6.1.0-show-test".into(),
        crash_time: 1_700_000_000,
    })
    .and_then(|m| m.write(&vmcore))
    .expect("synthetic vmcore");
    assert_sent(
        &run(&mut sender(&receiver, &certs, "web-9", &vmcore, 31)),
        &receiver,
    );
    let dump = stored_dumps(&store).pop().expect("one dump");
    let record = record_after_kernel_log(&dump, &receiver);
    let name = dump
        .strip_prefix(&store)
        .expect("inside the store")
        .to_str()
        .expect("utf-8")
        .to_string();

    let out = run(Command::new(bin_path("crashdropd"))
        .args(["show", "--lines", "3", "--store"])
        .arg(&store)
        .arg(&name));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        format!("dump        {name}"),
        "state       complete".to_string(),
        "kernel      6.1.0-show-test".to_string(),
        format!(
            "signature   {}",
            record["crash"]["signature"].as_str().expect("signature")
        ),
        "crash       panic: Kernel panic - not syncing: sysrq triggered crash".to_string(),
        "call trace:".to_string(),
        "sysrq_handle_crash".to_string(),
        "last 3 lines of the kernel log".to_string(),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
    let log = std::fs::read_to_string(dump.join("dmesg.txt")).expect("dmesg.txt");
    let last = log.lines().last().expect("a log line");
    assert!(
        text.trim_end().ends_with(last),
        "the log's last line ends the report:\n{text}"
    );

    // --json is the record, with the dump's location.
    let out = run(Command::new(bin_path("crashdropd"))
        .args(["show", "--json", "--store"])
        .arg(&store)
        .arg(dump.to_str().expect("utf-8")));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("show --json is JSON");
    assert_eq!(json["location"], name.as_str());
    assert_eq!(json["digest"], record["digest"]);
}

#[test]
fn list_and_show_say_why_a_dump_is_stuck() {
    let work = tempfile::tempdir().expect("tempdir");
    let certs = TestCerts::new(&["web-3"]);
    let store = work.path().join("store");
    let receiver = Receiver::start(&store, &certs, &[]);
    let vmcore = work.path().join("vmcore");
    SynthMachine::new(&SynthSpec {
        memory_bytes: 64 << 20,
        seed: 3,
        osrelease: "6.1.0-stuck".into(),
        crash_time: 1_700_000_000,
    })
    .and_then(|m| m.write(&vmcore))
    .expect("synthetic vmcore");
    // Cut the connection half-way, with a sender that does not retry: the dump stays receiving.
    let proxy = FaultProxy::start(receiver.addr, vec![Fault::CutAt(2 << 20)]);
    let out = run(sender_to(
        &proxy.url(),
        &certs.ca.cert,
        &certs.host("web-3"),
        &vmcore,
        1,
    )
    .args(["--retry-for", "0"]));
    assert!(!out.status.success(), "the cut must stop the sender");
    receiver.wait_for_log("session ended before the dump was complete", 1);

    let out = run(Command::new(bin_path("crashdropd"))
        .args(["list", "--store"])
        .arg(&store));
    let table = String::from_utf8_lossy(&out.stdout);
    let row = table
        .lines()
        .find(|l| l.starts_with("web-3"))
        .unwrap_or_else(|| panic!("no row for web-3:\n{table}"));
    assert!(row.contains("receiving"), "{table}");
    assert!(
        row.contains("stuck: "),
        "list must say why the dump is stuck:\n{table}"
    );

    let dump = stored_dumps(&store).pop().expect("one dump");
    let out = run(Command::new(bin_path("crashdropd"))
        .args(["show", "--store"])
        .arg(&store)
        .arg(&dump));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("interrupted "), "{text}");
}
