//! Runs the built `crashdrop-certs` binary: help, the enrolment flow, and its error messages.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn certs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crashdrop-certs"))
        .args(args)
        .output()
        .expect("run crashdrop-certs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

#[test]
fn help_explains_enrolment() {
    for args in [&["--help"][..], &["init", "--help"], &["host", "--help"]] {
        let out = certs(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).contains("crashdrop-certs"), "{args:?}");
    }
    let host_help = stdout(&certs(&["host", "--help"]));
    for flag in ["--cert", "--key", "--ca"] {
        assert!(host_help.contains(flag), "host --help must mention {flag}");
    }
}

#[test]
fn host_before_init_names_the_missing_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = certs(&["host", "--dir", path_str(tmp.path()), "web-7"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(path_str(&tmp.path().join("ca.pem"))), "{err}");
    assert!(err.contains("crashdrop-certs init"), "{err}");
}

#[test]
fn init_then_host() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("pki");
    let dir_s = path_str(&dir);

    let out = certs(&[
        "init",
        "--dir",
        dir_s,
        "--receiver-name",
        "dumps.example.com",
        "--receiver-name",
        "127.0.0.1",
        "--validity-days",
        "30",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for file in ["ca.pem", "ca.key", "receiver.pem", "receiver.key"] {
        assert!(
            text.contains(path_str(&dir.join(file))),
            "{file} not in {text}"
        );
    }
    assert!(text.contains("crashdrop-certs host"), "next steps: {text}");

    let out = certs(&["host", "--dir", dir_s, "Web-7"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let key = dir.join("web-7.key");
    for needle in [
        format!("--cert {}", path_str(&dir.join("web-7.pem"))),
        format!("--key {}", path_str(&key)),
        format!("--ca {}", path_str(&dir.join("ca.pem"))),
    ] {
        assert!(text.contains(&needle), "{needle} not in {text}");
    }
    let mode = std::fs::metadata(&key).expect("key").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // Neither the CA nor an enrolled host is replaced by accident.
    let out = certs(&["init", "--dir", dir_s, "--receiver-name", "x"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(path_str(&dir.join("ca.key"))),
        "{}",
        stderr(&out)
    );
    let out = certs(&["host", "--dir", dir_s, "web-7"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    let out = certs(&["host", "--dir", dir_s, "--force", "web-7"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn bad_names_are_refused_with_the_name() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir_s = path_str(tmp.path());
    let out = certs(&["init", "--dir", dir_s, "--receiver-name", "127.0.0.1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for bad in ["../x", "a/b", ".x", ""] {
        let out = certs(&["host", "--dir", dir_s, bad]);
        assert!(!out.status.success(), "{bad:?} accepted");
        let err = stderr(&out);
        assert!(err.contains(&format!("invalid host name {bad:?}")), "{err}");
    }
    let out = certs(&["init", "--dir", dir_s]);
    assert!(!out.status.success(), "--receiver-name is required");
}

#[test]
fn revoke_appends_the_host_to_revoked_hosts_and_signs_a_crl() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = path_str(tmp.path());
    let out = certs(&["init", "--dir", dir, "--receiver-name", "r.example"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = certs(&["host", "--dir", dir, "web-7"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = certs(&["revoke", "--dir", dir, "web-7"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = std::fs::read_to_string(tmp.path().join("revoked_hosts")).expect("list");
    assert!(list.lines().any(|l| l.starts_with("web-7 ")), "{list}");
    assert!(tmp.path().join("crl.pem").exists(), "{}", stdout(&out));
    let out = certs(&["revoke", "--dir", dir, "--serial", "zz"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("invalid serial"), "{}", stderr(&out));
}
