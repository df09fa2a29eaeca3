//! The command line of `crashdrop-send`, run as a real process. (Having a test here also makes
//! `cargo test --workspace` build the binary that `integration/` drives.)

use std::process::Command;

fn send() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crashdrop-send"))
}

#[test]
fn help_explains_the_exit_codes() {
    let out = send().arg("--help").output().expect("run crashdrop-send");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--receiver"), "{text}");
    assert!(text.contains("Exit codes"), "{text}");
}

#[test]
fn a_missing_vmcore_is_named_and_exits_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-vmcore");
    // TLS files are checked first, so give real (if useless) files.
    let pem = dir.path().join("x.pem");
    std::fs::write(&pem, "").expect("write");
    let out = send()
        .args(["--receiver", "tls://127.0.0.1:9", "--dump-level", "1"])
        .arg("--ca")
        .arg(&pem)
        .arg("--cert")
        .arg(&pem)
        .arg("--key")
        .arg(&pem)
        .arg("--vmcore")
        .arg(&missing)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    // Empty PEM files are unusable credentials: exit 6, naming the --ca file.
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("x.pem"), "{err}");
}

#[test]
fn dump_levels_above_31_are_refused_clearly() {
    let out = send()
        .args([
            "--receiver",
            "tls://127.0.0.1:9",
            "--ca",
            "a",
            "--cert",
            "b",
            "--key",
            "c",
        ])
        .args(["--dump-level", "32"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("--dump-level") && err.contains("32"), "{err}");
}

#[test]
fn synthesize_writes_a_sample_vmcore() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vmcore = dir.path().join("vmcore");
    let out = send()
        .arg("--synthesize")
        .arg(&vmcore)
        .args(["--size", "16MiB"])
        .output()
        .expect("synthesize");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(vmcore.metadata().expect("vmcore written").len() > 0);
    // The page counts it announces are the ones a dump of the file holds (the sender's count).
    let err = String::from_utf8_lossy(&out.stderr);
    let v = crashdrop_formats::ElfVmcore::open(&vmcore).expect("open");
    let mut level_31 = v.file_backed_bitmap();
    crashdrop_formats::PageFilter::for_vmcore(&v)
        .apply(crashdrop_formats::DumpLevel::ALL, &mut level_31)
        .expect("level 31 on a synthetic vmcore");
    let level_0 = v.file_backed_bitmap().count_ones();
    let claim = format!(
        "a dump holds {level_0} of them at --dump-level 0 (1 only partly RAM, left out as \
         makedumpfile does) and {} at the default level 31",
        level_31.count_ones()
    );
    assert!(err.contains(&claim), "{err}\nwanted: {claim}");
}
