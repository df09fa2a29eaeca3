//! A hostile sender for tests: a TLS client with a real host certificate (or plain TCP) that
//! writes arbitrary bytes to `crashdropd`, ends its side of the stream, and reports what came
//! back and how the connection ended.
//!
//! Nothing here follows the protocol on purpose: the bytes to send are the test's. Every wait is
//! bounded by [`REPLY_TIMEOUT`], so a receiver that hangs shows up as [`Ending::TimedOut`].

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crashdrop_proto::{Frame, FrameCodec, ProtocolError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tokio_rustls::TlsConnector;
use tokio_util::bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::test_certs::TestCerts;

/// Upper bound for connecting, writing, and reading the receiver's answer until it closes.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// How a connection ended, seen from the hostile peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// End of stream: TLS `close_notify` (or a TCP FIN on a plain connection).
    Closed,
    /// The TCP stream ended without a TLS `close_notify`.
    ClosedWithoutNotify,
    /// The receiver reset or aborted the connection.
    Reset,
    /// Another error (a TLS alert, a failed handshake): the receiver ended the connection.
    Failed(String),
    /// Still open after [`REPLY_TIMEOUT`]: the receiver neither answered nor closed.
    TimedOut,
}

impl Ending {
    fn from_error(e: &io::Error) -> Ending {
        match e.kind() {
            io::ErrorKind::UnexpectedEof => Ending::ClosedWithoutNotify,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Ending::Reset,
            _ => Ending::Failed(e.to_string()),
        }
    }

    /// Whether the receiver ended the connection (in any way) within the timeout.
    pub fn is_closed(&self) -> bool {
        *self != Ending::TimedOut
    }
}

/// What one hostile connection got back.
#[derive(Debug)]
pub struct Reply {
    /// Every byte the receiver sent (decrypted, for TLS).
    pub bytes: Vec<u8>,
    /// How the connection ended.
    pub ending: Ending,
    /// Writing our bytes or ending our side failed (the receiver may have closed first).
    pub write_error: Option<String>,
}

impl Reply {
    fn failed(ending: Ending) -> Reply {
        Reply {
            bytes: Vec::new(),
            ending,
            write_error: None,
        }
    }

    /// The receiver's bytes as frames; an error if they do not decode or end inside a frame.
    pub fn frames(&self) -> Result<Vec<Frame>, ProtocolError> {
        let mut buf = BytesMut::from(&self.bytes[..]);
        let mut frames = Vec::new();
        while let Some(frame) = FrameCodec.decode(&mut buf)? {
            frames.push(frame);
        }
        if let Some(frame) = FrameCodec.decode_eof(&mut buf)? {
            frames.push(frame);
        }
        Ok(frames)
    }
}

/// A TLS client that authenticates as one host of a [`TestCerts`] PKI and then misbehaves.
#[derive(Clone)]
pub struct RawPeer {
    config: Arc<ClientConfig>,
    addr: SocketAddr,
}

impl RawPeer {
    /// A peer presenting `host`'s certificate to the receiver at `addr`, trusting `certs.ca`
    /// and verifying the receiver's certificate for `localhost`, as `crashdrop-send` does.
    ///
    /// # Panics
    ///
    /// If the PKI files do not load.
    pub fn new(certs: &TestCerts, host: &str, addr: SocketAddr) -> RawPeer {
        let files = certs.host(host);
        let load = |path: &std::path::Path| -> Vec<CertificateDer<'static>> {
            CertificateDer::pem_file_iter(path)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        let mut roots = RootCertStore::empty();
        for ca in load(&certs.ca.cert) {
            roots
                .add(ca)
                .unwrap_or_else(|e| panic!("{}: {e}", certs.ca.cert.display()));
        }
        let key = PrivateKeyDer::from_pem_file(&files.key)
            .unwrap_or_else(|e| panic!("{}: {e}", files.key.display()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .and_then(|b| {
                b.with_root_certificates(roots)
                    .with_client_auth_cert(load(&files.cert), key)
            })
            .unwrap_or_else(|e| panic!("TLS client config for {host}: {e}"));
        RawPeer {
            config: Arc::new(config),
            addr,
        }
    }

    /// Connects over TLS, writes `bytes`, ends our side (`close_notify` and a TCP half-close),
    /// and reads until the receiver closes, all within [`REPLY_TIMEOUT`].
    pub async fn exchange(&self, bytes: &[u8]) -> Reply {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let tcp = match timeout_at(deadline, TcpStream::connect(self.addr)).await {
            Err(_) => return Reply::failed(Ending::TimedOut),
            Ok(Err(e)) => return Reply::failed(Ending::Failed(format!("connect: {e}"))),
            Ok(Ok(tcp)) => tcp,
        };
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from("localhost").expect("a valid DNS name");
        let connector = TlsConnector::from(self.config.clone());
        let tls = match timeout_at(deadline, connector.connect(name, tcp)).await {
            Err(_) => return Reply::failed(Ending::TimedOut),
            Ok(Err(e)) => return Reply::failed(Ending::Failed(format!("handshake: {e}"))),
            Ok(Ok(tls)) => tls,
        };
        converse(tls, bytes, deadline).await
    }
}

/// [`RawPeer::exchange`] without TLS: raw bytes on a plain TCP connection.
pub async fn exchange_plain(addr: SocketAddr, bytes: &[u8]) -> Reply {
    let deadline = Instant::now() + REPLY_TIMEOUT;
    match timeout_at(deadline, TcpStream::connect(addr)).await {
        Err(_) => Reply::failed(Ending::TimedOut),
        Ok(Err(e)) => Reply::failed(Ending::Failed(format!("connect: {e}"))),
        Ok(Ok(tcp)) => converse(tcp, bytes, deadline).await,
    }
}

async fn converse<S>(mut stream: S, bytes: &[u8], deadline: Instant) -> Reply
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let write = async {
        stream.write_all(bytes).await?;
        stream.shutdown().await
    };
    let write_error = match timeout_at(deadline, write).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("timed out".to_string()),
    };
    let mut reply = Reply {
        bytes: Vec::new(),
        ending: Ending::TimedOut,
        write_error,
    };
    let mut buf = vec![0u8; 16 << 10];
    loop {
        match timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => break,
            Ok(Ok(0)) => {
                reply.ending = Ending::Closed;
                break;
            }
            Ok(Ok(n)) => reply
                .bytes
                .extend_from_slice(buf.get(..n).unwrap_or_default()),
            Ok(Err(e)) => {
                reply.ending = Ending::from_error(&e);
                break;
            }
        }
    }
    reply
}
