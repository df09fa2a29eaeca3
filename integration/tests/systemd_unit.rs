//! The shipped service files in `dist/`: the systemd unit passes `systemd-analyze verify`, and
//! the shipped config starts a real receiver that stops cleanly on SIGTERM, as the unit expects.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crashdrop_integration::{
    bin_path, listen_addr, require_tools, spawn_until_line, workspace_root, TestCerts,
};

fn dist(name: &str) -> PathBuf {
    workspace_root().join("dist").join(name)
}

/// `text` with `from` replaced by `to`; fails the test if `from` is not there, so a change to the
/// shipped file's shape cannot turn this test into one that checks nothing.
fn replace_required(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the shipped file no longer contains {from:?}; update this test with it"
    );
    text.replace(from, to)
}

#[test]
fn the_shipped_unit_passes_systemd_analyze_verify() {
    if !require_tools(&["systemd-analyze"]) {
        return;
    }
    let unit =
        std::fs::read_to_string(dist("crashdropd.service")).expect("dist/crashdropd.service");
    for needed in [
        "User=crashdrop",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/crashdrop",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
    // verify checks that ExecStart's binary exists: point it at the one this test run built.
    let crashdropd = bin_path("crashdropd");
    let unit = replace_required(
        &unit,
        "/usr/local/bin/crashdropd",
        crashdropd.to_str().expect("utf-8 path"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("crashdropd.service");
    std::fs::write(&path, unit).expect("write unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed: {stderr}"
    );
    // verify reports unknown keys and bad values as warnings while still exiting 0.
    let about_our_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("crashdropd.service"))
        .collect();
    assert!(
        about_our_unit.is_empty(),
        "systemd-analyze verify warned about the unit: {about_our_unit:?}"
    );
}

#[test]
fn the_shipped_config_starts_a_receiver_that_exits_0_on_sigterm() {
    let certs = TestCerts::new(&[]);
    let store = tempfile::tempdir().expect("tempdir");
    let config = std::fs::read_to_string(dist("crashdropd.toml")).expect("dist/crashdropd.toml");
    let path_str = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    let mut config = replace_required(
        &config,
        "\"/var/lib/crashdrop\"",
        &format!("{:?}", path_str(store.path())),
    );
    for (shipped, test) in [
        ("/etc/crashdrop/pki/receiver.pem", &certs.receiver.cert),
        ("/etc/crashdrop/pki/receiver.key", &certs.receiver.key),
        ("/etc/crashdrop/pki/ca.pem", &certs.ca.cert),
    ] {
        config = replace_required(&config, shipped, &path_str(test));
    }
    let config = replace_required(
        &config,
        "[\"0.0.0.0:7420\", \"[::]:7420\"]",
        "[\"127.0.0.1:0\"]",
    );
    let config_path = store.path().join("crashdropd.toml");
    std::fs::write(&config_path, config).expect("write config");

    let mut cmd = Command::new(bin_path("crashdropd"));
    cmd.arg("serve").arg("--config").arg(&config_path);
    let (mut receiver, line) = spawn_until_line("crashdropd", &mut cmd, "listening tls ")
        .unwrap_or_else(|e| panic!("crashdropd did not start from dist/crashdropd.toml: {e}"));
    assert!(
        listen_addr(&line, "listening tls ").is_some(),
        "unexpected first line {line:?}"
    );
    let status = receiver
        .terminate(Duration::from_secs(40))
        .expect("crashdropd exits on SIGTERM");
    assert!(
        status.success(),
        "crashdropd exited {status} on SIGTERM (systemd would count that a failure): {}",
        receiver.stderr_text()
    );
}
