//! The synthetic machine of `--synthesize` is a model kernel the whole product works on: sent at
//! the default dump level 31, the receiver stores exactly the pages the generator did not mark
//! free, cache or user, extracts the kernel log without a warning, and `crashdropd dmesg` prints
//! the log the generator wrote, panic included.

use std::process::Command;

use crashdrop_formats::{DumpLevel, ElfVmcore, SynthMachine, SynthSpec};
use crashdrop_integration::{
    assert_sent, bin_path, compare_stored, record_after_kernel_log, run, sender, stored_dumps,
    Receiver, TestCerts,
};

/// The log as `vmcore-dmesg` prints it, formatted here from the generator's records.
fn expected_dmesg(machine: &SynthMachine) -> String {
    machine
        .kernel_log()
        .iter()
        .map(|l| {
            let (s, ns) = (l.ts_nsec / 1_000_000_000, l.ts_nsec % 1_000_000_000);
            format!("[{s:5}.{:06}] {}\n", ns / 1000, l.text)
        })
        .collect()
}

#[test]
fn a_synthetic_crash_at_level_31_stores_the_generated_classes_and_its_panic_log() {
    let work = tempfile::tempdir().expect("tempdir");
    let vmcore = work.path().join("vmcore");
    let machine = SynthMachine::new(&SynthSpec {
        memory_bytes: 160 << 20,
        seed: 11,
        osrelease: "6.1.0-synth-test".into(),
        crash_time: 1_700_000_000,
    })
    .expect("machine");
    let summary = machine.write(&vmcore).expect("synthetic vmcore");
    let certs = TestCerts::new(&["synth-host"]);
    let store = work.path().join("store");
    let receiver = Receiver::start(&store, &certs, &[]);

    let out = run(&mut sender(&receiver, &certs, "synth-host", &vmcore, 31));
    assert_sent(&out, &receiver);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let pages = summary.dumpable_at(DumpLevel::ALL);
    assert!(
        stderr.contains(&format!("level 31, {pages} pages")),
        "the sender should send the {pages} pages the generator counted:\n{stderr}"
    );
    assert!(!stderr.contains("warning"), "{stderr}");

    // Stored: the file-backed pfns minus the classes level 31 excludes, page for page.
    let dump = stored_dumps(&store).pop().expect("one stored dump");
    let mut expected = ElfVmcore::open(&vmcore).expect("open").file_backed_bitmap();
    machine.for_each_chunk(|first, classes| {
        for (i, class) in classes.iter().enumerate() {
            if class.excluded_at(DumpLevel::ALL) {
                expected.clear(first + i as u64);
            }
        }
    });
    let seen = compare_stored(&dump.join("vmcore"), &vmcore, 31, &expected);
    assert_eq!(seen.pages, pages);

    let record = record_after_kernel_log(&dump, &receiver);
    assert_eq!(record["kernel_log"], "dmesg.txt", "{record:#}");
    assert!(record["kernel_log_error"].is_null(), "{record:#}");
    let log = receiver.log();
    assert!(!log.contains("WARN"), "the receiver warned:\n{log}");

    let want = expected_dmesg(&machine);
    assert!(want.contains("] Kernel panic - not syncing: sysrq triggered crash\n"));
    let relative = dump.strip_prefix(&store).expect("inside the store");
    let printed = run(Command::new(bin_path("crashdropd"))
        .args(["dmesg", "--store"])
        .arg(&store)
        .arg(relative));
    assert!(
        printed.status.success(),
        "crashdropd dmesg failed: {}",
        String::from_utf8_lossy(&printed.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&printed.stdout), want);
    assert_eq!(
        std::fs::read_to_string(dump.join("dmesg.txt")).expect("dmesg.txt"),
        want
    );
}
