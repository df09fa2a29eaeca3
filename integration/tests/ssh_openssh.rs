//! A site that keeps its own OpenSSH server: the real `sshd` (started by the test on a loopback
//! port with its own sshd_config, host key and authorized_keys) runs `crashdropd stdio` as the
//! forced command of a host's key, and `crashdrop-send --ssh-command` stores a dump through it
//! that `crashdropd verify` accepts, under the host the authorized_keys line names.

use std::path::{Path, PathBuf};
use std::process::Command;

use crashdrop_formats::synth::{write_synthetic_vmcore, SynthSpec};
use crashdrop_integration::{bin_path, fixture_dumps, run, stored_dumps, Sshd, TestSshKeys};

/// The first fixture vmcore, or (with the skip printed by `fixture_dumps`) a synthetic one.
fn some_vmcore(dir: &Path) -> PathBuf {
    if let Some(f) = fixture_dumps().and_then(|mut f| (!f.is_empty()).then(|| f.remove(0))) {
        return f.vmcore();
    }
    let path = dir.join("vmcore");
    write_synthetic_vmcore(
        &path,
        &SynthSpec {
            memory_bytes: 64 << 20,
            seed: 32,
            osrelease: "6.1.0-sshd".into(),
            crash_time: 1_700_000_000,
        },
    )
    .expect("synthetic vmcore");
    path
}

#[test]
fn crashdrop_send_ssh_command_stores_a_dump_through_openssh_sshd_and_crashdropd_stdio() {
    let work = tempfile::tempdir().expect("tempdir");
    let vmcore = some_vmcore(work.path());
    let keys = TestSshKeys::new(&["web-1"]);
    let store = work.path().join("store");
    let public = std::fs::read_to_string(&keys.client("web-1").public).expect("public key");
    let line = format!(
        "restrict,command=\"{} stdio --store {} --host web-1 --min-free 0\" {}\n",
        bin_path("crashdropd").display(),
        store.display(),
        public.trim()
    );
    let Some(sshd) = Sshd::start(&keys, &line) else {
        return;
    };

    let out = run(Command::new(bin_path("crashdrop-send"))
        .arg("--receiver")
        .arg(sshd.url())
        .arg("--ssh-command")
        .arg("--identity")
        .arg(keys.identity("web-1"))
        .arg("--server-key")
        .arg(&keys.host_key.line)
        .arg("--vmcore")
        .arg(&vmcore)
        .args(["--dump-level", "31", "--retry-for", "0"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "crashdrop-send: {stderr}\n--- sshd:\n{}",
        sshd.guard.stderr_text()
    );
    assert!(stderr.contains("dump complete on the receiver"), "{stderr}");

    let dumps = stored_dumps(&store);
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    assert_eq!(dumps[0].parent().expect("host dir"), store.join("web-1"));
    let relative = dumps[0].strip_prefix(&store).expect("inside store");
    let verified = run(Command::new(bin_path("crashdropd"))
        .arg("verify")
        .arg("--store")
        .arg(&store)
        .arg(relative));
    assert!(
        verified.status.success(),
        "verify: {}",
        String::from_utf8_lossy(&verified.stdout)
    );
    // stdio waited for the kernel log before exiting.
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dumps[0].join("dump.json")).expect("dump.json"))
            .expect("json");
    assert!(
        record.get("kernel_log").is_some() || record.get("kernel_log_error").is_some(),
        "{record}"
    );

    // The same dump again: the receiver already holds it (a second stdio process, same store).
    let again = run(Command::new(bin_path("crashdrop-send"))
        .arg("--receiver")
        .arg(sshd.url())
        .arg("--ssh-command")
        .arg("--identity")
        .arg(keys.identity("web-1"))
        .arg("--server-key")
        .arg(&keys.host_key.line)
        .arg("--vmcore")
        .arg(&vmcore)
        .args(["--dump-level", "31", "--retry-for", "0"]));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(stderr.contains("already holds this dump"), "{stderr}");
}
