//! Hosts without a valid identity are refused at the TLS handshake: a certificate from another
//! CA, an expired one, or none at all. The receiver logs why, the sender says what to fix, and
//! nothing reaches the store.

use std::sync::Arc;
use std::time::Duration;

use crashdrop_formats::synth::{write_synthetic_vmcore, SynthSpec};
use crashdrop_integration::{run, sender_as, Receiver, TestCerts};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn small_vmcore(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("vmcore");
    write_synthetic_vmcore(
        &path,
        &SynthSpec {
            memory_bytes: 16 << 20,
            seed: 11,
            osrelease: "6.1.0-test".into(),
            crash_time: 1_700_000_000,
        },
    )
    .expect("synthetic vmcore");
    path
}

/// Nothing but empty directories (if any) under the store.
fn store_is_empty(store: &std::path::Path) -> bool {
    walk(store).iter().all(|p| p.is_dir())
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            all.extend(walk(&path));
        }
        all.push(path);
    }
    all
}

fn assert_refused(out: &std::process::Output, receiver: &Receiver, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{what}: sender should exit 4 (refused): {err}\n--- receiver:\n{}",
        receiver.log()
    );
    assert!(
        err.contains("refused this host's certificate"),
        "{what}: {err}"
    );
    assert!(
        store_is_empty(&receiver.store),
        "{what}: something was stored: {:?}",
        walk(&receiver.store)
    );
}

/// Waits (bounded) until the receiver's log mentions `needle` `count` times.
fn wait_for_log(receiver: &Receiver, needle: &str, count: usize) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log = receiver.log();
        if log.matches(needle).count() >= count || std::time::Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn certificates_from_another_ca_expired_or_missing_are_refused() {
    let work = tempfile::tempdir().expect("tempdir");
    let vmcore = small_vmcore(work.path());
    let certs = TestCerts::new(&[]);
    let old = certs.issue_expired_host("old-host");
    let store = work.path().join("store");
    let receiver = Receiver::start(&store, &certs, &[]);

    // Another CA's host certificate (the receiver is still verified against our CA).
    let foreign = TestCerts::new(&["intruder"]);
    let intruder = foreign.host("intruder");
    let out = run(&mut sender_as(
        &receiver,
        &certs.ca.cert,
        &intruder,
        &vmcore,
        1,
    ));
    assert_refused(&out, &receiver, "foreign CA");

    // An expired certificate from our own CA.
    let out = run(&mut sender_as(&receiver, &certs.ca.cert, &old, &vmcore, 1));
    assert_refused(&out, &receiver, "expired");

    // No certificate at all: a TLS client without client authentication.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let outcome = runtime.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(&certs.ca.cert).expect("ca.pem") {
            roots.add(ca.expect("ca cert")).expect("add ca");
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(receiver.addr)
            .await
            .expect("connect");
        let name = ServerName::try_from("localhost").expect("name");
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let mut tls = match connector.connect(name, tcp).await {
            Ok(tls) => tls,
            Err(e) => return format!("handshake failed: {e}"),
        };
        let _ = tls.write_all(b"hello?").await;
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf)).await {
            Ok(Ok(0)) => "closed".to_owned(),
            Ok(Ok(n)) => format!("got {n} bytes"),
            Ok(Err(e)) => format!("refused: {e}"),
            Err(_) => "timed out".to_owned(),
        }
    });
    assert!(
        outcome.contains("refused") || outcome.contains("handshake failed") || outcome == "closed",
        "a client without a certificate got: {outcome}"
    );
    assert!(store_is_empty(&store), "{:?}", walk(&store));

    let log = wait_for_log(&receiver, "TLS handshake refused", 3);
    assert_eq!(
        log.matches("TLS handshake refused").count(),
        3,
        "receiver log:\n{log}"
    );
    assert!(
        log.contains("Expired") || log.contains("expired"),
        "receiver log:\n{log}"
    );
    // Another CA with the same subject name shows as a bad signature, a differently named one
    // as an unknown issuer: either way the log names the certificate problem.
    assert!(
        log.contains("does not verify against the client CA")
            || log.contains("not issued by the client CA"),
        "receiver log:\n{log}"
    );
    assert!(
        log.contains("presented no client certificate"),
        "receiver log:\n{log}"
    );
}
