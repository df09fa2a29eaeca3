//! A revoked host is refused at its next connection — a TLS session it resumes included, which no
//! certificate verifier sees (issue 8's acceptance). The revocation is made the operator's way:
//! `crashdrop-certs revoke`, then SIGHUP to the running `crashdropd`.
//!
//! A test TLS client stands in for the host so that it can remember TLS sessions and tell a
//! resumed handshake from a full one (`crashdrop-send` starts afresh in every capture kernel).
//! The client first proves that the receiver lets it resume, then is revoked and resumes again.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crashdrop_formats::synth::{write_synthetic_vmcore, SynthSpec};
use crashdrop_integration::{
    assert_sent, bin_path, run, sender, stored_dumps, Receiver, TestCerts,
};
use crashdrop_proto::{ErrorCode, Frame, FrameCodec, Hello};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::codec::Framed;

const STEP: Duration = Duration::from_secs(10);

/// A host's TLS client, remembering sessions (rustls's default in-memory resumption store).
fn client(certs: &TestCerts, host: &str) -> Arc<ClientConfig> {
    let files = certs.host(host);
    let load = |path: &Path| -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_file_iter(path)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let mut roots = RootCertStore::empty();
    for ca in load(&certs.ca.cert) {
        roots.add(ca).expect("CA certificate");
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).expect("host key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .and_then(|b| {
            b.with_root_certificates(roots)
                .with_client_auth_cert(load(&files.cert), key)
        })
        .expect("client config");
    Arc::new(config)
}

/// What one connection saw: how the handshake went and the frames the receiver sent after our
/// `Hello`, until it closed (or we did, after its `Welcome`).
#[derive(Debug)]
struct Seen {
    handshake: Result<HandshakeKind, String>,
    frames: Vec<Frame>,
    /// How the conversation failed, if it did (a TLS 1.3 client learns that its certificate
    /// was refused only when it reads the receiver's alert, after its side of the handshake).
    error: Option<String>,
}

async fn connect(config: &Arc<ClientConfig>, addr: SocketAddr) -> Seen {
    let connect = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let name = ServerName::try_from("localhost").expect("DNS name");
        TlsConnector::from(config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())
    };
    let tls = match tokio::time::timeout(STEP, connect).await {
        Err(_) => {
            return Seen {
                handshake: Err("handshake timed out".into()),
                frames: vec![],
                error: None,
            }
        }
        Ok(Err(e)) => {
            return Seen {
                handshake: Err(e),
                frames: vec![],
                error: None,
            }
        }
        Ok(Ok(tls)) => tls,
    };
    let kind = tls.get_ref().1.handshake_kind().expect("handshake done");
    let mut framed = Framed::new(tls, FrameCodec);
    let mut frames = Vec::new();
    let talk = async {
        framed
            .send(Frame::Hello(Hello::new("revocation-test 0")))
            .await
            .map_err(|e| e.to_string())?;
        // Reading the answer also takes in the session tickets the receiver sent.
        while let Some(frame) = framed.next().await {
            let frame = frame.map_err(|e| e.to_string())?;
            let welcomed = matches!(frame, Frame::Welcome(_));
            frames.push(frame);
            if welcomed {
                break;
            }
        }
        Ok::<(), String>(())
    };
    let ended = tokio::time::timeout(STEP, talk).await;
    let _ = tokio::time::timeout(STEP, framed.close()).await;
    let Ok(ended) = ended else {
        panic!("the receiver neither answered nor closed: {frames:?}");
    };
    Seen {
        handshake: Ok(kind),
        frames,
        error: ended.err(),
    }
}

fn welcomed(seen: &Seen) -> bool {
    matches!(seen.frames.as_slice(), [Frame::Welcome(_)])
}

fn refused_as_revoked(seen: &Seen) -> bool {
    matches!(
        seen.frames.as_slice(),
        [Frame::Error(e)] if e.code == ErrorCode::Protocol && e.message.contains("revoked")
    )
}

fn revoke(certs: &TestCerts, host: &str) {
    let out = run(Command::new(bin_path("crashdrop-certs"))
        .arg("revoke")
        .arg("--dir")
        .arg(certs.path())
        .arg(host));
    assert!(
        out.status.success(),
        "crashdrop-certs revoke {host}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends SIGHUP and waits for the receiver to log that it reloaded its TLS policy.
fn reload(receiver: &Receiver) {
    let before = receiver.log().matches("on SIGHUP").count();
    let sent = Command::new("sh")
        .args(["-c", "kill -HUP \"$0\"", &receiver.guard.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill -HUP");
    let started = Instant::now();
    while receiver.log().matches("on SIGHUP").count() == before {
        assert!(
            started.elapsed() < STEP,
            "no reload logged after SIGHUP:\n{}",
            receiver.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !receiver.log().contains("kept the previous"),
        "the reload failed:\n{}",
        receiver.log()
    );
}

fn small_vmcore(dir: &Path, crash_time: i64) -> PathBuf {
    let path = dir.join(format!("vmcore-{crash_time}"));
    write_synthetic_vmcore(
        &path,
        &SynthSpec {
            memory_bytes: 16 << 20,
            seed: crash_time as u64,
            osrelease: "6.1.0-revoked".into(),
            crash_time,
        },
    )
    .expect("synthetic vmcore");
    path
}

fn dumps_of(store: &Path, host: &str) -> usize {
    stored_dumps(store)
        .iter()
        .filter(|d| d.parent().and_then(Path::file_name) == Some(host.as_ref()))
        .count()
}

/// The whole scenario for `victim`, with the receiver enforcing revocation through `flags`.
fn revoked_at_next_connection(certs: &TestCerts, victim: &str, flags: &[&str]) {
    let work = tempfile::tempdir().expect("tempdir");
    let store = work.path().join("store");
    let mut receiver = Receiver::start(&store, certs, flags);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let addr = receiver.addr;

    // Enrolled: a dump goes through, and the host's client can resume its TLS session.
    let first = small_vmcore(work.path(), 1_700_000_000);
    assert_sent(
        &run(&mut sender(&receiver, certs, victim, &first, 31)),
        &receiver,
    );
    let remembered = client(certs, victim);
    let full = runtime.block_on(connect(&remembered, addr));
    assert_eq!(full.handshake, Ok(HandshakeKind::Full), "{full:?}");
    assert!(welcomed(&full), "{full:?}");
    let resumed = runtime.block_on(connect(&remembered, addr));
    assert_eq!(
        resumed.handshake,
        Ok(HandshakeKind::Resumed),
        "the receiver must let a host resume, or this test proves nothing: {resumed:?}"
    );
    assert!(welcomed(&resumed), "{resumed:?}");

    revoke(certs, victim);
    reload(&receiver);

    // Its next connection resumes the TLS session, and is refused all the same.
    let after = runtime.block_on(connect(&remembered, addr));
    assert_eq!(after.handshake, Ok(HandshakeKind::Resumed), "{after:?}");
    assert!(
        refused_as_revoked(&after),
        "a revoked host resuming its TLS session is refused: {after:?}\n--- crashdropd log:\n{}",
        receiver.log()
    );
    assert!(
        receiver.log().contains("resumed=true") && receiver.log().contains("host refused"),
        "the receiver logs the refusal of a resumed session:\n{}",
        receiver.log()
    );
    // A full handshake (a fresh client, or crashdrop-send) is refused too, and stores nothing.
    let fresh = runtime.block_on(connect(&client(certs, victim), addr));
    let alert = fresh.handshake.as_ref().err().or(fresh.error.as_ref());
    assert!(
        fresh.frames.is_empty() && alert.is_some_and(|e| e.contains("CertificateRevoked")),
        "a revoked host's full handshake is refused with the certificate-revoked alert: {fresh:?}"
    );
    let second = small_vmcore(work.path(), 1_700_086_400);
    let out = run(sender(&receiver, certs, victim, &second, 31).args(["--retry-for", "3s"]));
    assert!(
        !out.status.success(),
        "crashdrop-send of a revoked host must fail:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        dumps_of(&store, victim),
        1,
        "nothing new stored for {victim}"
    );

    // Other hosts are not affected.
    assert_sent(
        &run(&mut sender(&receiver, certs, "honest", &second, 31)),
        &receiver,
    );
    assert_eq!(dumps_of(&store, "honest"), 1);
    receiver
        .guard
        .terminate(Duration::from_secs(30))
        .expect("crashdropd stops");
}

#[test]
fn a_host_revoked_in_revoked_hosts_is_refused_even_when_it_resumes_a_tls_session() {
    let certs = TestCerts::new(&["stolen", "honest"]);
    let list = certs.path().join("revoked_hosts");
    std::fs::write(&list, "# revoked hosts\n").expect("revoked_hosts");
    let list = list.to_str().expect("UTF-8 path");
    revoked_at_next_connection(&certs, "stolen", &["--revoked-hosts", list]);
}

#[test]
fn a_certificate_revoked_by_the_client_crl_is_refused_even_when_it_resumes_a_tls_session() {
    let certs = TestCerts::new(&["lost", "honest", "decoy"]);
    // The CRL must exist when the receiver starts: one revoking another host's certificate.
    revoke(&certs, "decoy");
    let crl = certs.path().join("crl.pem");
    assert!(
        crl.is_file(),
        "crashdrop-certs revoke signs crl.pem with ca.key"
    );
    let crl = crl.to_str().expect("UTF-8 path");
    // No --revoked-hosts: only the CRL can refuse `lost`.
    revoked_at_next_connection(&certs, "lost", &["--client-crl", crl]);
}
