//! The command line of `crashdropd`, run as a real process. (Having a test here also makes
//! `cargo test --workspace` build the binary that `integration/` drives.)

use std::process::Command;

fn crashdropd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crashdropd"))
}

#[test]
fn help_lists_the_subcommands() {
    let out = crashdropd().arg("--help").output().expect("run crashdropd");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["serve", "list", "verify", "dmesg"] {
        assert!(text.contains(sub), "{text}");
    }
}

#[test]
fn serve_without_a_store_names_the_missing_flag() {
    let out = crashdropd()
        .args(["serve", "--tls-listen", "127.0.0.1:0"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--store"), "{err}");
}

#[test]
fn verify_and_dmesg_refuse_paths_that_leave_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    for sub in ["verify", "dmesg"] {
        let out = crashdropd()
            .arg(sub)
            .arg("--store")
            .arg(dir.path())
            .arg("../etc")
            .output()
            .expect("run");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("HOST/DUMP"), "{sub}: {err}");
    }
}

#[test]
fn list_of_an_empty_store_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = crashdropd()
        .arg("list")
        .arg("--store")
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no dumps"));
}

#[test]
fn version_names_the_binary() {
    let out = crashdropd().arg("--version").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("crashdropd "), "{text}");
}

#[test]
fn serve_help_says_what_is_required_and_mentions_rust_log() {
    let out = crashdropd()
        .args(["serve", "--help"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Required, as flags or in the --config file: --store"),
        "{text}"
    );
    assert!(
        text.contains("--tls-cert, --tls-key and --client-ca"),
        "{text}"
    );
    assert!(text.contains("RUST_LOG"), "{text}");
}

/// `serve` with these certificate files and store; its exit status and stderr (it must refuse
/// before listening, so it never runs long).
fn serve_with(
    cert: &std::path::Path,
    key: &std::path::Path,
    ca: &std::path::Path,
    store: &std::path::Path,
) -> (bool, String) {
    let out = crashdropd()
        .arg("serve")
        .arg("--store")
        .arg(store)
        .args(["--tls-listen", "127.0.0.1:0", "--tls-cert"])
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .arg("--client-ca")
        .arg(ca)
        .output()
        .expect("run");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn serve_refuses_a_host_certificate_a_foreign_key_and_a_store_that_is_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = crashdrop_certs::init(dir.path(), &["127.0.0.1".to_string()]).expect("init");
    let host = crashdrop_certs::issue_host(dir.path(), "web-7").expect("host");
    let store = dir.path().join("store");

    let (ok, err) = serve_with(&host.cert, &host.key, &pki.ca.cert, &store);
    assert!(!ok && err.contains("lacks the serverAuth"), "{err}");
    assert!(err.contains("web-7.pem"), "{err}");

    let (ok, err) = serve_with(&pki.receiver.cert, &host.key, &pki.ca.cert, &store);
    assert!(
        !ok && err.contains("does not belong to the receiver certificate"),
        "{err}"
    );
    assert!(!err.contains("KeyMismatch"), "no debug names: {err}");

    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "").expect("file");
    let (ok, err) = serve_with(&pki.receiver.cert, &pki.receiver.key, &pki.ca.cert, &file);
    assert!(!ok && err.contains("is not a directory"), "{err}");
    assert!(!err.contains("File exists"), "{err}");
}
