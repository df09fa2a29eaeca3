//! The judges judged: Debian's own `makedumpfile -c -d 31` output of each real fixture must pass
//! the same `crash` and `makedumpfile --dump-dmesg` checks our receiver's files are held to.
//! If this fails, the harness or the machine is broken, not crashdrop.

use std::path::PathBuf;

use crashdrop_integration::{
    fixture_dumps, makedumpfile_compress, makedumpfile_dump_dmesg, normalize_log, require_tools,
    run_crash, FixtureDump,
};
use tempfile::TempDir;

const PANIC_LINE: &str = "Kernel panic - not syncing: sysrq triggered crash";

/// A reference kdump-compressed file made by Debian's makedumpfile from `dump`.
fn reference_kdump(dump: &FixtureDump) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join(format!("{}-d31.kdump", dump.name));
    makedumpfile_compress(&dump.vmcore(), &out, 31).expect("makedumpfile -c -d 31");
    (dir, out)
}

#[test]
fn crash_opens_makedumpfile_output() {
    if !require_tools(&["crash", "makedumpfile"]) {
        return;
    }
    let Some(dumps) = fixture_dumps() else { return };
    for dump in &dumps {
        let Some(vmlinux) = dump.vmlinux() else {
            continue;
        };
        let release = dump.release().expect("release in dmesg.txt");
        let (_dir, kdump) = reference_kdump(dump);

        let out = run_crash(&vmlinux, &kdump, &["sys", "log", "bt"]).expect("crash runs");
        let text = out.text();
        assert!(out.success(), "{}: crash failed:\n{text}", dump.name);
        eprintln!("{}: crash session took {:?}", dump.name, out.elapsed);

        let sys = out
            .output_of("sys")
            .unwrap_or_else(|| panic!("no sys output:\n{text}"));
        assert!(sys.contains(&format!("RELEASE: {release}")), "sys:\n{sys}");
        assert!(
            sys.contains(&format!("PANIC: \"{PANIC_LINE}\"")),
            "sys:\n{sys}"
        );

        let log = out
            .output_of("log")
            .unwrap_or_else(|| panic!("no log output:\n{text}"));
        assert!(log.contains(PANIC_LINE), "log:\n{log}");
        assert_eq!(
            normalize_log(log),
            normalize_log(&dump.dmesg()),
            "{}: crash's log differs from dmesg.txt",
            dump.name
        );

        let bt = out
            .output_of("bt")
            .unwrap_or_else(|| panic!("no bt output:\n{text}"));
        assert!(bt.contains("PID:"), "bt:\n{bt}");
        assert!(
            bt.lines().any(|l| l.trim_start().starts_with("#0 [")),
            "bt:\n{bt}"
        );
        assert!(bt.contains(" panic at "), "bt:\n{bt}");
    }
}

#[test]
fn makedumpfile_reads_its_own_output() {
    if !require_tools(&["makedumpfile"]) {
        return;
    }
    let Some(dumps) = fixture_dumps() else { return };
    for dump in &dumps {
        let (_dir, kdump) = reference_kdump(dump);
        let (status, log, messages) = makedumpfile_dump_dmesg(&kdump).expect("makedumpfile runs");
        assert!(
            status.success(),
            "{}: --dump-dmesg failed:\n{messages}",
            dump.name
        );
        assert!(log.contains(PANIC_LINE), "{}: log:\n{log}", dump.name);
        assert_eq!(
            normalize_log(&log),
            normalize_log(&dump.dmesg()),
            "{}: makedumpfile's log differs from dmesg.txt",
            dump.name
        );
    }
}
