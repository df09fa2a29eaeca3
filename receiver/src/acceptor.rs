//! The TLS listener: accepts connections, authenticates hosts, and runs one session each.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
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

/// TLS handshakes in progress at once, per listener. Unauthenticated peers must not be able to
/// hold unbounded sockets and memory; past this, new connections are closed at once.
const MAX_HANDSHAKES: usize = 256;

/// Sessions per host, so that one host (say, a compromised one) cannot take every session slot
/// and keep other hosts' capture kernels waiting until their dumps are lost.
#[derive(Clone)]
pub struct HostSessions {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    limit: usize,
}

/// One session of a host; released on drop.
pub struct HostSlot {
    host: String,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl HostSessions {
    pub fn new(limit: usize) -> HostSessions {
        HostSessions {
            counts: Arc::default(),
            limit,
        }
    }

    /// A slot for `host`, unless it already has `limit` sessions.
    pub fn try_enter(&self, host: &str) -> Option<HostSlot> {
        let mut counts = self.counts.lock().ok()?;
        let count = counts.entry(host.to_owned()).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(HostSlot {
            host: host.to_owned(),
            counts: self.counts.clone(),
        })
    }
}

impl Drop for HostSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.counts.lock() {
            if let Some(count) = counts.get_mut(&self.host) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.remove(&self.host);
                }
            }
        }
    }
}

/// A bound TLS listener and what its sessions share.
pub struct Acceptor {
    pub listener: TcpListener,
    pub tls: TlsAcceptor,
    pub store: DumpStore,
    pub sessions: Arc<Semaphore>,
    pub host_sessions: HostSessions,
    pub limits: SessionLimits,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
}

impl Acceptor {
    /// Accepts until shutdown; each connection runs on its own task, tracked for draining.
    pub async fn run(self) {
        let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
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
            let Ok(handshake) = handshakes.clone().try_acquire_owned() else {
                warn!(%peer, "too many TLS handshakes in progress; connection closed");
                continue;
            };
            let connection = Connection {
                tls: self.tls.clone(),
                store: self.store.clone(),
                sessions: self.sessions.clone(),
                host_sessions: self.host_sessions.clone(),
                limits: self.limits.clone(),
                shutdown: self.shutdown.clone(),
            };
            let span = tracing::info_span!("session", %peer, host = tracing::field::Empty);
            self.tracker
                .spawn(connection.serve(stream, peer, handshake).instrument(span));
        }
    }
}

struct Connection {
    tls: TlsAcceptor,
    store: DumpStore,
    sessions: Arc<Semaphore>,
    host_sessions: HostSessions,
    limits: SessionLimits,
    shutdown: CancellationToken,
}

impl Connection {
    async fn serve(
        self,
        stream: TcpStream,
        peer: SocketAddr,
        handshake: tokio::sync::OwnedSemaphorePermit,
    ) {
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
        drop(handshake);
        let host = match host_identity(tls.get_ref().1.peer_certificates()) {
            Ok(host) => host,
            Err(e) => {
                warn!(%peer, error = %e, "client certificate refused; nothing stored");
                return;
            }
        };
        tracing::Span::current().record("host", host.as_str());
        let Some(_slot) = self.host_sessions.try_enter(host.as_str()) else {
            warn!(%host, "this host already has its maximum of sessions; refusing another (it will retry)");
            let _ = session::refuse_busy(
                tls,
                "this host already has the maximum number of sessions; retry shortly",
            )
            .await;
            return;
        };
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

#[cfg(test)]
mod tests {
    use super::HostSessions;

    #[test]
    fn each_host_gets_its_own_quota_and_slots_come_back() {
        let sessions = HostSessions::new(2);
        let a1 = sessions.try_enter("a").expect("first");
        let _a2 = sessions.try_enter("a").expect("second");
        assert!(
            sessions.try_enter("a").is_none(),
            "third session of one host"
        );
        assert!(
            sessions.try_enter("b").is_some(),
            "another host is not affected"
        );
        drop(a1);
        assert!(sessions.try_enter("a").is_some(), "a slot freed on drop");
    }
}
