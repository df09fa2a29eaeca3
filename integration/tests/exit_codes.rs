//! Every row of the README's exit-code table of `crashdrop-send` that needs a receiver (or the
//! lack of one), run with the real binaries: 0 sent, 3 bad vmcore, 4 refused (either side's
//! certificate), 5 unreachable for all of `--retry-for`. Rows 1, 2 and 6 need no network and are
//! in sender/tests/cli.rs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crashdrop_formats::synth::{write_synthetic_vmcore, SynthSpec};
use crashdrop_integration::{bin_path, run, sender, sender_to, stored_dumps, Receiver, TestCerts};

fn small_vmcore(dir: &Path) -> PathBuf {
    let path = dir.join("vmcore");
    write_synthetic_vmcore(
        &path,
        &SynthSpec {
            memory_bytes: 16 << 20,
            seed: 5,
            osrelease: "6.1.0-test".into(),
            crash_time: 1_700_000_000,
        },
    )
    .expect("synthetic vmcore");
    path
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A 127.0.0.1 port nothing listens on (bound, then released: connections are refused).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

#[test]
fn exit_0_when_the_receiver_holds_the_dump() {
    let work = tempfile::tempdir().expect("tempdir");
    let vmcore = small_vmcore(work.path());
    let certs = TestCerts::new(&["web-1"]);
    let receiver = Receiver::start(&work.path().join("store"), &certs, &[]);
    let out = run(&mut sender(&receiver, &certs, "web-1", &vmcore, 31));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}\n{}", receiver.log());
    assert!(err.contains("dump complete on the receiver"), "{err}");
    assert_eq!(stored_dumps(&receiver.store).len(), 1);
}

#[test]
fn exit_3_for_a_missing_vmcore_named_in_the_message() {
    let work = tempfile::tempdir().expect("tempdir");
    let certs = TestCerts::new(&["web-1"]);
    let missing = work.path().join("no-such-vmcore");
    // No receiver is needed: the vmcore is read before connecting.
    let url = format!("tls://127.0.0.1:{}", closed_port());
    let out = run(&mut sender_to(
        &url,
        &certs.ca.cert,
        &certs.host("web-1"),
        &missing,
        31,
    ));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("no-such-vmcore"), "{err}");
    assert!(
        !err.contains("attempt"),
        "it must not have tried to send: {err}"
    );
}

#[test]
fn exit_4_when_the_receiver_refuses_this_hosts_certificate() {
    let work = tempfile::tempdir().expect("tempdir");
    let vmcore = small_vmcore(work.path());
    let certs = TestCerts::new(&[]);
    let foreign = TestCerts::new(&["intruder"]);
    let receiver = Receiver::start(&work.path().join("store"), &certs, &[]);
    let out = run(&mut sender_to(
        &receiver.url(),
        &certs.ca.cert,
        &foreign.host("intruder"),
        &vmcore,
        1,
    ));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("the receiver at") && err.contains("refused this host's certificate"),
        "{err}"
    );
    // Another CA with the same subject name is a bad signature to rustls (alert
    // BadCertificate), a differently named one an unknown issuer (UnknownCA).
    assert!(
        err.contains("not signed by its --client-ca")
            || err.contains("does not trust the CA that issued --cert"),
        "{err}"
    );
    assert_eq!(err.matches("refused").count(), 1, "said once: {err}");
}

#[test]
fn exit_4_when_this_sender_refuses_the_receivers_certificate_saying_so() {
    let work = tempfile::tempdir().expect("tempdir");
    let vmcore = small_vmcore(work.path());
    let certs = TestCerts::new(&["web-1"]);
    let other_ca = TestCerts::new(&[]);
    let receiver = Receiver::start(&work.path().join("store"), &certs, &[]);

    // --ca of another PKI: the receiver's certificate has an unknown issuer.
    let out = run(&mut sender_to(
        &receiver.url(),
        &other_ca.ca.cert,
        &certs.host("web-1"),
        &vmcore,
        1,
    ));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("this sender refused the certificate of the receiver"),
        "{err}"
    );
    assert!(err.contains("not issued by the CA in --ca"), "{err}");
    assert!(
        !err.contains("receiver refused"),
        "wrong side blamed: {err}"
    );
    assert!(!err.contains("UnknownIssuer"), "debug text: {err}");
    // And the receiver's log says which side refused whom, not "not a crashdrop sender".
    let log = receiver.wait_for_log("refused this receiver's certificate", 1);
    assert!(!log.contains("not a TLS 1.3 crashdrop sender"), "{log}");

    // A name the receiver's certificate does not hold.
    let identity = certs.host("web-1");
    let out = run(Command::new(bin_path("crashdrop-send"))
        .arg("--receiver")
        .arg(receiver.url())
        .args(["--server-name", "dumps.example.com"])
        .arg("--ca")
        .arg(&certs.ca.cert)
        .arg("--cert")
        .arg(&identity.cert)
        .arg("--key")
        .arg(&identity.key)
        .arg("--vmcore")
        .arg(&vmcore));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("does not name dumps.example.com"), "{err}");
    assert!(err.contains("--server-name"), "{err}");
    assert!(!err.contains("NotValidForNameContext"), "debug text: {err}");
    assert!(stored_dumps(&receiver.store).is_empty());
}

#[test]
fn exit_5_after_trying_for_all_of_retry_for() {
    let work = tempfile::tempdir().expect("tempdir");
    let vmcore = small_vmcore(work.path());
    let certs = TestCerts::new(&["web-1"]);
    let url = format!("tls://127.0.0.1:{}", closed_port());
    let identity = certs.host("web-1");

    // One attempt.
    let out =
        run(sender_to(&url, &certs.ca.cert, &identity, &vmcore, 1).args(["--retry-for", "0"]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("gave up after 1 attempt,"), "{err}");

    // Until the deadline has really passed: at least 3 s, and not much more (the last wait is
    // cut to end at the deadline, then one last attempt). The upper bound is generous for a
    // loaded machine; what it catches is waiting a whole extra backoff (up to 15 s).
    let started = Instant::now();
    let out =
        run(sender_to(&url, &certs.ca.cert, &identity, &vmcore, 1).args(["--retry-for", "3s"]));
    let elapsed = started.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        elapsed >= Duration::from_secs(3),
        "gave up after {elapsed:?}: {err}"
    );
    assert!(elapsed < Duration::from_secs(9), "took {elapsed:?}: {err}");
    assert!(err.contains("attempts, --retry-for 3s)"), "{err}");
    assert!(err.contains("cannot connect to 127.0.0.1"), "{err}");
}
