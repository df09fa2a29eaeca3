//! A crash dump travels from the real `crashdrop-send` to the real `crashdropd` over SSH
//! (crashdropd's built-in russh server, the sender's russh client, keys made at test time), and
//! is stored page for page as the same dump sent over TLS; a host's key only writes that host's
//! dumps; `--known-hosts` (hashed entries too) pins the key like `--server-key`. Over SSH (no
//! ALPN) the two negotiate protocol version 2 by Hello/Welcome alone.

use std::path::{Path, PathBuf};
use std::process::Command;

use crashdrop_formats::synth::{write_synthetic_vmcore, SynthSpec};
use crashdrop_formats::ElfVmcore;
use crashdrop_integration::{
    assert_sent, bin_path, compare_stored, fixture_dumps, run, selection, sender, stored_dumps,
    Receiver, TestCerts, TestSshKeys,
};

fn verify(store: &Path, dump_dir: &Path) {
    let relative = dump_dir.strip_prefix(store).expect("dump inside store");
    let out = run(Command::new(bin_path("crashdropd"))
        .arg("verify")
        .arg("--store")
        .arg(store)
        .arg(relative));
    assert!(
        out.status.success(),
        "verify {}: {}",
        dump_dir.display(),
        String::from_utf8_lossy(&out.stdout)
    );
}

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
            seed: 31,
            osrelease: "6.1.0-ssh".into(),
            crash_time: 1_700_000_000,
        },
    )
    .expect("synthetic vmcore");
    path
}

#[test]
fn a_dump_sent_over_ssh_is_page_identical_to_the_same_dump_over_tls() {
    const HOST: &str = "kdump-guest";
    let work = tempfile::tempdir().expect("tempdir");
    let vmcore = some_vmcore(work.path());
    let certs = TestCerts::new(&[HOST]);
    let keys = TestSshKeys::new(&[HOST]);

    let ssh_store = work.path().join("ssh");
    let receiver = Receiver::start_with_ssh(&ssh_store, &certs, &keys, &[]);
    let out = run(&mut receiver.ssh_sender(&keys, HOST, &vmcore, 31));
    assert_sent(&out, &receiver);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dump complete on the receiver"), "{stderr}");
    assert!(
        receiver.log().contains("SSH host authenticated"),
        "{}",
        receiver.log()
    );
    // SSH has no ALPN: Hello/Welcome alone negotiate, and both programs speak version 2.
    assert!(
        receiver.log().contains("version=2"),
        "the SSH session spoke protocol version 2:\n{}",
        receiver.log()
    );

    let tls_store = work.path().join("tls");
    let tls_receiver = Receiver::start(&tls_store, &certs, &[]);
    assert_sent(
        &run(&mut sender(&tls_receiver, &certs, HOST, &vmcore, 31)),
        &tls_receiver,
    );

    let expected = selection(&ElfVmcore::open(&vmcore).expect("vmcore"), 31).dumpable;
    let [ssh_dump, tls_dump] = [&ssh_store, &tls_store].map(|store| {
        let dumps = stored_dumps(store);
        assert_eq!(dumps.len(), 1, "{dumps:?}");
        dumps[0].clone()
    });
    // The host identity came from the key: the dump sits under the key's host name.
    assert_eq!(ssh_dump.parent().expect("host dir"), ssh_store.join(HOST));
    for (store, dump) in [(&ssh_store, &ssh_dump), (&tls_store, &tls_dump)] {
        let seen = compare_stored(&dump.join("vmcore"), &vmcore, 31, &expected);
        eprintln!("{}: {seen:?}", dump.display());
        verify(store, dump);
    }
    let (a, b) = (
        std::fs::read(ssh_dump.join("vmcore")).expect("ssh vmcore"),
        std::fs::read(tls_dump.join("vmcore")).expect("tls vmcore"),
    );
    assert!(a == b, "the kdump files stored over SSH and TLS differ");
    for dump in [&ssh_dump, &tls_dump] {
        let record: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dump.join("dump.json")).expect("dump.json"),
        )
        .expect("json");
        assert_eq!(record["digest_version"], 2, "{}", dump.display());
    }
}

#[test]
fn a_host_key_only_writes_its_own_hosts_dumps_and_known_hosts_pins_too() {
    let work = tempfile::tempdir().expect("tempdir");
    let vmcore = work.path().join("vmcore");
    write_synthetic_vmcore(
        &vmcore,
        &SynthSpec {
            memory_bytes: 16 << 20,
            seed: 4,
            osrelease: "6.1.0-ssh".into(),
            crash_time: 1_700_000_000,
        },
    )
    .expect("synthetic vmcore");
    let certs = TestCerts::new(&[]);
    let keys = TestSshKeys::new(&["web-1", "db-2"]);
    let store = work.path().join("store");
    let receiver = Receiver::start_with_ssh(&store, &certs, &keys, &[]);

    // web-1's key, with a user name that claims to be db-2: the key decides.
    let url = receiver.ssh_url().replace("ssh://", "ssh://db-2@");
    let known_hosts = keys.path().join("known_hosts");
    let port = receiver.ssh_addr.expect("ssh").port();
    std::fs::write(
        &known_hosts,
        format!(
            "# hashed, as ssh-keygen -H writes\n{} {}\n",
            hashed(&format!("[127.0.0.1]:{port}"), &keys.host_key.line),
            keys.host_key.line
        ),
    )
    .expect("known_hosts");
    let mut cmd = Command::new(bin_path("crashdrop-send"));
    cmd.arg("--receiver")
        .arg(&url)
        .arg("--identity")
        .arg(keys.identity("web-1"))
        .arg("--known-hosts")
        .arg(&known_hosts)
        .arg("--vmcore")
        .arg(&vmcore)
        .args(["--dump-level", "1"]);
    assert_sent(&run(&mut cmd), &receiver);
    let dumps = stored_dumps(&store);
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    assert_eq!(dumps[0].parent().expect("host dir"), store.join("web-1"));
    assert!(!store.join("db-2").exists(), "a dump was stored as db-2");

    // A known_hosts file without this receiver: fatal, exit 4, nothing sent.
    std::fs::write(
        &known_hosts,
        format!("[elsewhere]:7422 {}\n", keys.host_key.line),
    )
    .expect("known_hosts");
    let out = run(&mut cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(&format!("has no key for [127.0.0.1]:{port}")),
        "{stderr}"
    );
    assert!(stderr.contains(&keys.host_key.fingerprint), "{stderr}");
    assert_eq!(stored_dumps(&store).len(), 1);
}

/// `|1|salt|HMAC-SHA1(salt, name)` for `name`, written by OpenSSH's own `ssh-keygen -H` (so the
/// test proves we read what OpenSSH writes); the plain name, with the skip printed, without it.
fn hashed(name: &str, key_line: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("kh");
    std::fs::write(&file, format!("{name} {key_line}\n")).expect("kh");
    match Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&file)
        .output()
    {
        Ok(out) if out.status.success() => {
            let text = std::fs::read_to_string(&file).expect("hashed kh");
            let entry = text
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            assert!(entry.starts_with("|1|"), "ssh-keygen -H wrote {text}");
            entry
        }
        _ => {
            crashdrop_integration::skip("ssh-keygen not installed: known_hosts entry not hashed");
            name.to_owned()
        }
    }
}
