//! `crashdropd export`: a real fixture dump, stored with zstd pages at the default level 31, is
//! exported in every format and judged by the real tools: Debian's `crash` opens the ELF output
//! (`sys`, `log`, `bt`), Debian's makedumpfile 1.7.2 (no zstd) reads the kdump-zlib and kdump-none
//! outputs and the flattened stream after `makedumpfile -R`, with the fixture's kernel log.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crashdrop_integration::{
    assert_sent, bin_path, fixture_dumps, makedumpfile_dump_dmesg, normalize_log, require_tools,
    run, run_crash, sender, stored_dumps, FixtureDump, Receiver, TestCerts,
};

const PANIC_LINE: &str = "Kernel panic - not syncing: sysrq triggered crash";

/// A store holding `fixture` sent at level 31, and the dump's HOST/DUMP name.
fn stored(fixture: &FixtureDump, work: &Path) -> (PathBuf, String) {
    let certs = TestCerts::new(&["kdump-guest"]);
    let store = work.join("store");
    let receiver = Receiver::start(&store, &certs, &[]);
    let vmcore = fixture.vmcore();
    assert_sent(
        &run(&mut sender(&receiver, &certs, "kdump-guest", &vmcore, 31)),
        &receiver,
    );
    let dump = stored_dumps(&store).pop().expect("one dump");
    let name = dump
        .strip_prefix(&store)
        .expect("dump inside store")
        .to_string_lossy()
        .into_owned();
    (store, name)
}

fn export(store: &Path, dump: &str, format: &str, output: &Path) -> Output {
    run(Command::new(bin_path("crashdropd"))
        .args(["export", "--store"])
        .arg(store)
        .arg(dump)
        .args(["--format", format, "-o"])
        .arg(output))
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// makedumpfile's log of `dump` must be the fixture's.
fn assert_makedumpfile_log(dump: &Path, fixture: &FixtureDump, what: &str) {
    let (status, log, messages) = makedumpfile_dump_dmesg(dump).expect("makedumpfile runs");
    assert!(status.success(), "{what}: --dump-dmesg failed:\n{messages}");
    assert!(log.contains(PANIC_LINE), "{what}: log:\n{log}");
    assert_eq!(
        normalize_log(&log),
        normalize_log(&fixture.dmesg()),
        "{what}: makedumpfile's log differs from dmesg.txt"
    );
}

#[test]
fn makedumpfile_reads_kdump_and_flattened_exports() {
    if !require_tools(&["makedumpfile"]) {
        return;
    }
    let Some(fixtures) = fixture_dumps() else {
        return;
    };
    for fixture in &fixtures {
        let work = tempfile::tempdir().expect("tempdir");
        let (store, dump) = stored(fixture, work.path());
        // The stored file has zstd pages, which Debian 12's makedumpfile cannot read.
        for format in ["kdump-zlib", "kdump-none"] {
            let out_path = work.path().join(format!("out.{format}"));
            let out = export(&store, &dump, format, &out_path);
            assert_ok(&out, format);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let record: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(store.join(&dump).join("dump.json")).expect("dump.json"),
            )
            .expect("dump.json parses");
            let pages = record["pages"].as_u64().expect("dump.json pages");
            assert!(
                stderr.contains(&format!("{pages} pages")),
                "{format}: the export must hold the dump's {pages} pages: {stderr}"
            );
            assert_makedumpfile_log(&out_path, fixture, format);
        }

        // flattened to a pipe, rebuilt by makedumpfile -R reading it on stdin.
        let mut exporter = Command::new(bin_path("crashdropd"))
            .args(["export", "--store"])
            .arg(&store)
            .arg(&dump)
            .args(["--format", "flattened", "-o", "-"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn export");
        let rebuilt = work.path().join("rebuilt");
        let rearrange = Command::new("makedumpfile")
            .arg("-R")
            .arg(&rebuilt)
            .stdin(exporter.stdout.take().expect("piped"))
            .output()
            .expect("makedumpfile -R runs");
        let exported = exporter.wait_with_output().expect("export finishes");
        assert_ok(&exported, "flattened export to a pipe");
        assert!(
            rearrange.status.success(),
            "makedumpfile -R failed:\n{}{}",
            String::from_utf8_lossy(&rearrange.stdout),
            String::from_utf8_lossy(&rearrange.stderr)
        );
        let zlib = std::fs::read(work.path().join("out.kdump-zlib")).expect("kdump-zlib");
        let rebuilt_bytes = std::fs::read(&rebuilt).expect("rebuilt");
        assert!(
            zlib == rebuilt_bytes,
            "the rebuilt flattened stream ({} bytes) is not the kdump-zlib file ({} bytes)",
            rebuilt_bytes.len(),
            zlib.len()
        );
        assert_makedumpfile_log(&rebuilt, fixture, "flattened after -R");
    }
}

#[test]
fn crash_opens_the_elf_export() {
    if !require_tools(&["crash"]) {
        return;
    }
    let Some(fixtures) = fixture_dumps() else {
        return;
    };
    for fixture in &fixtures {
        let Some(vmlinux) = fixture.vmlinux() else {
            continue;
        };
        let work = tempfile::tempdir().expect("tempdir");
        let (store, dump) = stored(fixture, work.path());
        let elf = work.path().join("vmcore.elf");
        let out = export(&store, &dump, "elf", &elf);
        assert_ok(&out, "elf");
        let head = std::fs::read(&elf).expect("elf");
        assert_eq!(&head[..4], b"\x7fELF");

        let session = run_crash(&vmlinux, &elf, &["sys", "log", "bt"]).expect("crash runs");
        let text = session.text();
        assert!(session.success(), "crash failed:\n{text}");
        let release = fixture.release().expect("release");
        let sys = session.output_of("sys").expect("sys output");
        assert!(sys.contains(&format!("RELEASE: {release}")), "sys:\n{sys}");
        assert!(
            sys.contains(&format!("PANIC: \"{PANIC_LINE}\"")),
            "sys:\n{sys}"
        );
        let log = session.output_of("log").expect("log output");
        assert_eq!(
            normalize_log(log),
            normalize_log(&fixture.dmesg()),
            "crash's log of the ELF export differs from dmesg.txt"
        );
        let bt = session.output_of("bt").expect("bt output");
        assert!(bt.contains(" panic at "), "bt:\n{bt}");
    }
}

#[test]
fn seekable_formats_refuse_a_pipe_and_existing_files_are_kept() {
    let Some(fixtures) = fixture_dumps() else {
        return;
    };
    let Some(fixture) = fixtures.first() else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let (store, dump) = stored(fixture, work.path());
    let piped = Command::new(bin_path("crashdropd"))
        .args(["export", "--store"])
        .arg(&store)
        .arg(&dump)
        .args(["--format", "kdump-zlib", "-o", "-"])
        .stdout(Stdio::piped())
        .output()
        .expect("run export");
    assert!(!piped.status.success(), "kdump-zlib into a pipe must fail");
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(stderr.contains("needs a seekable output"), "{stderr}");
    assert!(stderr.contains("--format flattened"), "{stderr}");
    assert!(piped.stdout.is_empty(), "nothing written to the pipe");

    let existing = work.path().join("taken");
    std::fs::write(&existing, b"keep me").expect("write");
    let out = export(&store, &dump, "elf", &existing);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(std::fs::read(&existing).expect("read"), b"keep me");
}
