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
fn empty_pem_files_are_unusable_tls_files_named_and_exit_6() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-vmcore");
    // TLS files are checked before the vmcore (a missing vmcore is tested in
    // integration/tests/first_hour.rs, with real certificates).
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
    assert!(err.contains("x.pem") && err.contains("--ca"), "{err}");
    assert!(!err.contains("no-such-vmcore"), "{err}");
}

/// Runs the sender with otherwise complete flags and `extra` appended; returns (exit code, stderr).
fn send_with(receiver: &str, extra: &[&str]) -> (Option<i32>, String) {
    let out = send()
        .args(["--receiver", receiver])
        .args(["--ca", "a", "--cert", "b", "--key", "c"])
        .args(extra)
        .output()
        .expect("run");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn dump_levels_above_31_are_a_bad_command_line_exit_2() {
    for level in ["32", "99"] {
        let (code, err) = send_with("tls://127.0.0.1:9", &["--dump-level", level]);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("--dump-level") && err.contains(level), "{err}");
        assert!(err.contains("0..=31") || err.contains("0..32"), "{err}");
    }
}

#[test]
fn malformed_receiver_urls_are_a_bad_command_line_exit_2() {
    for (url, why) in [
        ("192.0.2.10:7420", "only the tls:// and ssh:// schemes"),
        ("ssh://192.0.2.10:ssh", "bad port"),
        ("ssh://@192.0.2.10", "empty user name"),
        ("tls://192.0.2.10", "no port"),
        ("tls://192.0.2.10:http", "bad port"),
        ("tls://:7420", "no host"),
    ] {
        let (code, err) = send_with(url, &[]);
        assert_eq!(code, Some(2), "{url}: {err}");
        assert!(err.contains(url) && err.contains(why), "{url}: {err}");
        assert!(err.contains("expected tls://HOST:PORT"), "{url}: {err}");
        // Said once: clap names the flag, our message names the URL.
        assert_eq!(err.matches(why).count(), 1, "{url}: {err}");
    }
}

#[test]
fn a_missing_required_flag_is_a_bad_command_line_exit_2() {
    let out = send()
        .args([
            "--receiver",
            "tls://127.0.0.1:9",
            "--cert",
            "b",
            "--key",
            "c",
        ])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--ca"), "{err}");
}

#[test]
fn an_unexpected_local_failure_exits_1() {
    // Writing a synthetic vmcore into a directory that does not exist: no other row fits.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no-such-dir").join("vmcore");
    let out = send()
        .arg("--synthesize")
        .arg(&path)
        .args(["--size", "16MiB"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
}

#[test]
fn version_names_the_binary() {
    let out = send().arg("--version").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("crashdrop-send "), "{text}");
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

#[test]
fn ssh_flags_missing_or_mixed_with_tls_ones_are_a_bad_command_line_exit_2() {
    let cases: [(&[&str], &str); 4] = [
        (&["--receiver", "ssh://127.0.0.1:9"], "--identity"),
        (
            &["--receiver", "ssh://127.0.0.1:9", "--identity", "id"],
            "--server-key",
        ),
        (
            &[
                "--receiver",
                "ssh://127.0.0.1:9",
                "--identity",
                "id",
                "--known-hosts",
                "kh",
                "--ca",
                "ca.pem",
            ],
            "--ca does not apply to a ssh:// receiver",
        ),
        (
            &[
                "--receiver",
                "tls://127.0.0.1:9",
                "--ca",
                "a",
                "--cert",
                "b",
                "--key",
                "c",
                "--identity",
                "id",
            ],
            "--identity does not apply to a tls:// receiver",
        ),
    ];
    for (args, needle) in cases {
        let out = send().args(args).output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn an_unusable_ssh_identity_or_server_key_exits_6() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = dir.path().join("id_ed25519");
    std::fs::write(&id, "not a key\n").expect("write");
    let out = send()
        .args(["--receiver", "ssh://127.0.0.1:9", "--identity"])
        .arg(&id)
        .args(["--server-key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        err.contains("--identity") && err.contains("id_ed25519"),
        "{err}"
    );
}

/// Runs the sender with `args` and returns (exit code, stderr).
fn run_send(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let out = send().args(args).output().expect("run");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_config_file_gives_the_settings_and_flags_win_over_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("sender.toml");
    // Empty PEM files: the sender gets as far as loading the file's credentials (exit 6,
    // naming the file's CA), which shows it took the receiver and paths from the file.
    std::fs::write(dir.path().join("ca.pem"), "").expect("write");
    std::fs::write(
        &config,
        "receivers = [\"tls://127.0.0.1:9\", \"tls://127.0.0.1:10\"]\n\
         ca = \"ca.pem\"\ncert = \"ca.pem\"\nkey = \"ca.pem\"\ndump_level = 31\n\
         retry_for = \"0\"\nwait_network = \"0\"\n",
    )
    .expect("write");
    let (code, err) = run_send(&["--config".as_ref(), config.as_os_str()]);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("ca.pem") && err.contains("--ca"), "{err}");

    // A flag wins over the file: --dump-level 40 is still a bad command line.
    let (code, err) = run_send(&[
        "--config".as_ref(),
        config.as_os_str(),
        "--dump-level".as_ref(),
        "40".as_ref(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    // And --ca on the command line replaces the file's (a missing file, named).
    let (code, err) = run_send(&[
        "--config".as_ref(),
        config.as_os_str(),
        "--ca".as_ref(),
        "/no/such/ca.pem".as_ref(),
    ]);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("/no/such/ca.pem"), "{err}");
}

#[test]
fn a_config_file_with_an_unknown_key_is_a_bad_command_line_naming_key_and_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("sender.toml");
    std::fs::write(
        &config,
        "receivers = [\"tls://127.0.0.1:9\"]\nretry_four = \"1h\"\n",
    )
    .expect("write");
    let (code, err) = run_send(&["--config".as_ref(), config.as_os_str()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("retry_four") && err.contains(&*config.to_string_lossy()),
        "{err}"
    );
    // A missing file, and one without any receiver, are bad command lines too.
    let missing = dir.path().join("none.toml");
    let (code, err) = run_send(&["--config".as_ref(), missing.as_os_str()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("none.toml"), "{err}");
    std::fs::write(&config, "dump_level = 1\n").expect("write");
    let (code, err) = run_send(&["--config".as_ref(), config.as_os_str()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no receiver"), "{err}");
}

#[test]
fn help_documents_the_config_file_and_wait_network() {
    let out = send().arg("--help").output().expect("run crashdrop-send");
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--config",
        "/etc/crashdrop/sender.toml",
        "receivers = [",
        "--wait-network",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}
