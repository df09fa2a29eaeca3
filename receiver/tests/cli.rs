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
