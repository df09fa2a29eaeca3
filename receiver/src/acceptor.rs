//! The TLS listener: accepts connections, authenticates hosts, and runs one session each.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

use crate::session::{self, Outcome, SessionLimits};
use crate::store::DumpStore;
use crate::tls::host_identity;

/// Time a peer gets to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// A bound TLS listener and what its sessions share.
pub struct Acceptor {
    pub listener: TcpListener,
    pub tls: TlsAcceptor,
    pub store: DumpStore,
    pub sessions: Arc<Semaphore>,
    pub limits: SessionLimits,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
}

impl Acceptor {
    /// Accepts until shutdown; each connection runs on its own task, tracked for draining.
    pub async fn run(self) {
        loop {
            let accepted = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                accepted = self.listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let connection = Connection {
                tls: self.tls.clone(),
                store: self.store.clone(),
                sessions: self.sessions.clone(),
                limits: self.limits.clone(),
                shutdown: self.shutdown.clone(),
            };
            let span = tracing::info_span!("session", %peer, host = tracing::field::Empty);
            self.tracker
                .spawn(connection.serve(stream, peer).instrument(span));
        }
    }
}

struct Connection {
    tls: TlsAcceptor,
    store: DumpStore,
    sessions: Arc<Semaphore>,
    limits: SessionLimits,
    shutdown: CancellationToken,
}

impl Connection {
    async fn serve(self, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.tls.accept(stream)).await {
            Err(_) => {
                warn!(%peer, "TLS handshake timed out; connection dropped");
                return;
            }
            Ok(Err(e)) => {
                if is_certificate_error(&e) {
                    warn!(%peer, error = %e, "TLS handshake refused: client certificate missing, expired or not from our CA; nothing stored");
                } else {
                    warn!(%peer, error = %e, "TLS handshake failed (not a TLS 1.3 crashdrop sender?); nothing stored");
                }
                return;
            }
            Ok(Ok(tls)) => tls,
        };
        let host = match host_identity(tls.get_ref().1.peer_certificates()) {
            Ok(host) => host,
            Err(e) => {
                warn!(%peer, error = %e, "client certificate refused; nothing stored");
                return;
            }
        };
        tracing::Span::current().record("host", host.as_str());
        let Ok(_permit) = self.sessions.clone().try_acquire_owned() else {
            warn!(%host, "too many sessions; refusing this one (the sender will retry)");
            let _ =
                session::refuse_busy(tls, "receiver is at its session limit; retry shortly").await;
            return;
        };
        info!(%host, "host authenticated");
        match session::run(tls, host, self.store, self.limits, self.shutdown).await {
            Ok(Outcome::Completed { location }) => info!(%location, "session done: dump complete"),
            Ok(outcome) => info!(?outcome, "session done"),
            Err(e) => warn!(error = %e, "session failed"),
        }
    }
}

/// Whether a failed handshake was about the client's certificate (as opposed to garbage, a
/// protocol version or a dropped connection).
fn is_certificate_error(e: &std::io::Error) -> bool {
    matches!(
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        Some(
            rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::InvalidCertRevocationList(_)
        )
    )
}
