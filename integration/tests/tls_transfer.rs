//! A crash dump travels from the real `crashdrop-send` to the real `crashdropd` over mutual TLS,
//! and what is stored is checked page by page, with `crashdropd verify`, and with the real `crash`
//! and `makedumpfile` for the real fixture dumps.

use std::path::Path;
use std::process::Command;

use crashdrop_formats::synth::{write_synthetic_vmcore, SynthSpec};
use crashdrop_integration::{
    assert_sent, bin_path, compare_with_source, fixture_dumps, kdump_bitmaps,
    makedumpfile_compress, makedumpfile_dump_dmesg, require_tools, run, run_crash, sender, skip,
    stored_dumps, Receiver, TestCerts,
};

fn verify(store: &Path, dump_dir: &Path) -> std::process::Output {
    let relative = dump_dir.strip_prefix(store).expect("dump inside store");
    run(Command::new(bin_path("crashdropd"))
        .arg("verify")
        .arg("--store")
        .arg(store)
        .arg(relative))
}

fn dump_record(dump_dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dump_dir.join("dump.json")).expect("dump.json");
    serde_json::from_str(&text).expect("dump.json parses")
}

#[test]
fn synthetic_dump_is_stored_page_for_page_at_levels_0_and_1() {
    let work = tempfile::tempdir().expect("tempdir");
    let vmcore = work.path().join("vmcore");
    let summary = write_synthetic_vmcore(
        &vmcore,
        &SynthSpec {
            memory_bytes: 48 << 20,
            seed: 7,
            osrelease: "6.1.0-test".into(),
            crash_time: 1_700_000_000,
        },
    )
    .expect("synthetic vmcore");
    let certs = TestCerts::new(&["web-7"]);
    let store = work.path().join("store");
    let receiver = Receiver::start(&store, &certs, &[]);

    for level in [1u8, 0] {
        let out = run(&mut sender(&receiver, &certs, "web-7", &vmcore, level));
        assert_sent(&out, &receiver);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("dump complete on the receiver"), "{stderr}");
    }
    // The same crash at two levels is two dumps, stored side by side under the host's name.
    let dumps = stored_dumps(&store);
    assert_eq!(dumps.len(), 2, "{dumps:?}");
    for dump in &dumps {
        assert_eq!(dump.parent().expect("host dir"), store.join("web-7"));
        let name = dump
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(name.starts_with("2023-11-14T22-13-20Z-"), "{name}");
        let record = dump_record(dump);
        assert_eq!(record["state"], "complete");
        assert_eq!(record["host"], "web-7");
        assert_eq!(record["kernel_release"], "6.1.0-test");
        let level = record["dump_level"].as_u64().expect("level") as u8;
        let seen = compare_with_source(&dump.join("vmcore"), &vmcore, level);
        eprintln!("level {level}: {seen:?} (generator: {summary:?})");
        assert!(seen.zero_pages > 0, "the synthetic mix has zero pages");
        let out = verify(&store, dump);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    // Sending a stored dump again sends no pages: the receiver answers "complete" at once.
    let out = run(&mut sender(&receiver, &certs, "web-7", &vmcore, 1));
    assert_sent(&out, &receiver);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds this dump"));

    let list = run(Command::new(bin_path("crashdropd"))
        .arg("list")
        .arg("--store")
        .arg(&store));
    let table = String::from_utf8_lossy(&list.stdout);
    assert_eq!(
        table.lines().filter(|l| l.starts_with("web-7 ")).count(),
        2,
        "{table}"
    );
    assert!(table.contains("complete"), "{table}");
}

#[test]
fn verify_catches_a_page_changed_on_disk() {
    let work = tempfile::tempdir().expect("tempdir");
    let vmcore = work.path().join("vmcore");
    write_synthetic_vmcore(
        &vmcore,
        &SynthSpec {
            memory_bytes: 16 << 20,
            seed: 3,
            osrelease: "6.1.0-test".into(),
            crash_time: 1_700_000_000,
        },
    )
    .expect("synthetic vmcore");
    let certs = TestCerts::new(&["db-1"]);
    let store = work.path().join("store");
    let receiver = Receiver::start(&store, &certs, &["--store-compression", "zlib"]);
    assert_sent(
        &run(&mut sender(&receiver, &certs, "db-1", &vmcore, 1)),
        &receiver,
    );
    let dump = stored_dumps(&store).pop().expect("one dump");
    assert!(verify(&store, &dump).status.success());

    // Flip one byte in the last page's data: verify must now fail.
    let stored = dump.join("vmcore");
    let mut bytes = std::fs::read(&stored).expect("read");
    let at = bytes.len() - 100;
    bytes[at] ^= 0x40;
    std::fs::write(&stored, bytes).expect("write");
    let out = verify(&store, &dump);
    assert!(!out.status.success(), "verify passed a corrupted dump");
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAILED"));
}

#[test]
fn fixture_dumps_are_stored_so_that_crash_and_makedumpfile_open_them() {
    let Some(fixtures) = fixture_dumps() else {
        return; // fixture_dumps printed why
    };
    if !require_tools(&["crash", "makedumpfile"]) {
        return;
    }
    for fixture in fixtures {
        let vmcore = fixture.vmcore();
        let Some(vmlinux) = fixture.vmlinux() else {
            skip(format!("no vmlinux for {}", fixture.name));
            continue;
        };
        let certs = TestCerts::new(&["kdump-guest"]);
        let work = tempfile::tempdir().expect("tempdir");

        // zstd store (the default): crash opens it.
        let store = work.path().join("store-zstd");
        let receiver = Receiver::start(&store, &certs, &[]);
        let started = std::time::Instant::now();
        assert_sent(
            &run(&mut sender(&receiver, &certs, "kdump-guest", &vmcore, 1)),
            &receiver,
        );
        eprintln!("{}: sent in {:?}", fixture.name, started.elapsed());
        let dump = stored_dumps(&store).pop().expect("one dump");
        let seen = compare_with_source(&dump.join("vmcore"), &vmcore, 1);
        eprintln!("{}: {seen:?}", fixture.name);
        assert!(verify(&store, &dump).status.success());

        let crash =
            run_crash(&vmlinux, &dump.join("vmcore"), &["sys", "log", "bt"]).expect("run crash");
        let sys = crash.output_of("sys").unwrap_or_default();
        let release = fixture.release().expect("fixture release");
        assert!(
            sys.contains(&format!("RELEASE: {release}")),
            "sys:\n{}",
            crash.text()
        );
        assert!(
            sys.contains("PANIC: \"Kernel panic - not syncing: sysrq triggered crash\""),
            "sys:\n{}",
            crash.text()
        );
        let log = crash.output_of("log").unwrap_or_default();
        assert!(
            log.contains("Kernel panic - not syncing: sysrq triggered crash"),
            "log:\n{}",
            crash.text()
        );
        let bt = crash.output_of("bt").unwrap_or_default();
        assert!(
            bt.contains(" #0 [") && bt.contains(" panic at "),
            "bt:\n{}",
            crash.text()
        );

        // zlib store: Debian 12's makedumpfile (no zstd) reads it.
        let store = work.path().join("store-zlib");
        let receiver = Receiver::start(&store, &certs, &["--store-compression", "zlib"]);
        assert_sent(
            &run(&mut sender(&receiver, &certs, "kdump-guest", &vmcore, 1)),
            &receiver,
        );
        let dump = stored_dumps(&store).pop().expect("one dump");
        let (status, log, messages) =
            makedumpfile_dump_dmesg(&dump.join("vmcore")).expect("run makedumpfile");
        assert!(
            status.success(),
            "makedumpfile --dump-dmesg failed: {messages}"
        );
        assert!(
            log.contains("Kernel panic - not syncing: sysrq triggered crash"),
            "{log}"
        );
        assert!(verify(&store, &dump).status.success());

        // makedumpfile takes the stored dump as input again (how sites shrink old dumps): at
        // -d 31 it selects the same pages from it as from the source vmcore.
        let refiltered = work.path().join("refiltered-d31.kdump");
        makedumpfile_compress(&dump.join("vmcore"), &refiltered, 31)
            .unwrap_or_else(|e| panic!("makedumpfile -c -d 31 on the stored dump: {e}"));
        let from_source = work.path().join("source-d31.kdump");
        makedumpfile_compress(&vmcore, &from_source, 31).unwrap_or_else(|e| panic!("{e}"));
        let (refiltered, from_source) = (kdump_bitmaps(&refiltered), kdump_bitmaps(&from_source));
        assert_eq!(refiltered.0, from_source.0, "re-filtered max_mapnr");
        assert!(
            refiltered.2 == from_source.2,
            "{}: the stored dump re-filtered at -d 31 keeps {} pages, the source {}",
            fixture.name,
            refiltered.2.count_ones(),
            from_source.2.count_ones()
        );
    }
}
