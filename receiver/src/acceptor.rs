//! The TLS listener: accepts connections, authenticates hosts, and runs one session each.
//!
//! Unauthenticated connections are admitted through a [`HandshakeTable`] (per-source caps,
//! eviction of the oldest), get [`CLIENT_HELLO_TIMEOUT`] to send a ClientHello and
//! [`HANDSHAKE_TIMEOUT`] in all, and whatever they cause is logged through a [`LogLimiter`].
//! After every handshake, resumed or not, the host is checked against the policy in force.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crashdrop_proto::ErrorCode;
use rustls::HandshakeKind;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

use crate::handshakes::{Admission, HandshakeTable, HandshakeTicket, Source};
use crate::host_policy::HostRefusal;
use crate::log_limit::{LogLimiter, LOG_INTERVAL};
use crate::refusal::{self, Refusals};
use crate::reload::Reloadable;
use crate::session::{self, Outcome, SessionLimits};
use crate::store::DumpStore;
use crate::tls::{TlsSetupError, TlsState};

/// Time a peer gets to send its whole ClientHello after connecting. Honest senders send it at
/// once; this is what a silent connection can cost.
pub const CLIENT_HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Time a peer gets to complete the whole TLS handshake after connecting.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// The TLS configuration and host policy, replaced on SIGHUP.
    pub tls: Arc<Reloadable<TlsState, TlsSetupError>>,
    pub store: DumpStore,
    pub sessions: Arc<Semaphore>,
    pub host_sessions: HostSessions,
    pub limits: SessionLimits,
    /// Connections still in their handshake (shared by every listener).
    pub handshakes: HandshakeTable,
    /// Slots for answering Busy or revoked senders.
    pub refusals: Refusals,
    pub log: Arc<LogLimiter>,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
}

impl Acceptor {
    /// Accepts until shutdown; each connection runs on its own task, tracked for draining.
    pub async fn run(self) {
        let mut summary = tokio::time::interval(LOG_INTERVAL);
        summary.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let accepted = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = summary.tick() => {
                    log_suppressed(&self.log);
                    continue;
                }
                accepted = self.listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    if self.log.allow("accept failed") {
                        warn!(error = %e, "accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let ticket = match self.handshakes.admit(Source::of(peer.ip())) {
                Admission::SourceFull => {
                    if self.log.allow("source at its handshake cap") {
                        warn!(%peer, "too many TLS handshakes in progress from this address; new connection closed");
                    }
                    continue;
                }
                Admission::Admitted { ticket, evicted } => {
                    if let Some(evicted) = evicted {
                        if self.log.allow("handshake evicted") {
                            warn!(%peer, ?evicted, "handshake limit reached: closed an older unauthenticated connection to make room");
                        }
                    }
                    ticket
                }
            };
            let connection = Connection {
                tls: self.tls.clone(),
                store: self.store.clone(),
                sessions: self.sessions.clone(),
                host_sessions: self.host_sessions.clone(),
                limits: self.limits.clone(),
                refusals: self.refusals.clone(),
                log: self.log.clone(),
                shutdown: self.shutdown.clone(),
            };
            let span = tracing::info_span!("session", %peer, host = tracing::field::Empty);
            self.tracker
                .spawn(connection.serve(stream, peer, ticket).instrument(span));
        }
    }
}

/// One line per kind of event that [`LogLimiter`] kept out of the log since the last call.
fn log_suppressed(log: &LogLimiter) {
    for (kind, count) in log.take_suppressed() {
        warn!(
            kind,
            count,
            "{count} more events \"{kind}\" in the last {}s (not logged one by one)",
            LOG_INTERVAL.as_secs()
        );
    }
}

struct Connection {
    tls: Arc<Reloadable<TlsState, TlsSetupError>>,
    store: DumpStore,
    sessions: Arc<Semaphore>,
    host_sessions: HostSessions,
    limits: SessionLimits,
    refusals: Refusals,
    log: Arc<LogLimiter>,
    shutdown: CancellationToken,
}

impl Connection {
    async fn serve(self, stream: TcpStream, peer: SocketAddr, ticket: HandshakeTicket) {
        let Some(tls) = self.handshake(stream, peer, ticket).await else {
            return;
        };
        let resumed = tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
        // The policy in force now, not at the ClientHello: a SIGHUP may have come in between.
        // Resumed sessions were never shown to the certificate verifier: this is their check.
        let host = match self
            .tls
            .get()
            .policy
            .admit_peer(tls.get_ref().1.peer_certificates())
        {
            Ok(host) => host,
            Err(refusal) => {
                if self.log.allow("host refused after the handshake") {
                    warn!(%peer, resumed, error = %refusal, "host refused; nothing stored");
                }
                let message = match &refusal {
                    HostRefusal::Revoked(_) => "this host's certificate is revoked on the receiver; enrol the host again with a new certificate".to_owned(),
                    other => format!("this host's certificate is refused: {other}"),
                };
                self.refuse(tls, ErrorCode::Protocol, &message).await;
                return;
            }
        };
        tracing::Span::current().record("host", host.as_str());
        let Some(_slot) = self.host_sessions.try_enter(host.as_str()) else {
            if self.log.allow("busy: host at its session cap") {
                warn!(%host, "this host already has its maximum of sessions; refusing another (it will retry)");
            }
            self.refuse(
                tls,
                ErrorCode::Busy,
                "this host already has the maximum number of sessions; retry shortly",
            )
            .await;
            return;
        };
        let Ok(_permit) = self.sessions.clone().try_acquire_owned() else {
            if self.log.allow("busy: receiver at its session limit") {
                warn!(%host, "too many sessions; refusing this one (the sender will retry)");
            }
            self.refuse(
                tls,
                ErrorCode::Busy,
                "receiver is at its session limit; retry shortly",
            )
            .await;
            return;
        };
        let alpn = tls
            .get_ref()
            .1
            .alpn_protocol()
            .and_then(crashdrop_proto::alpn_version);
        info!(%host, resumed, ?alpn, "host authenticated");
        match session::run_with_alpn(tls, host, self.store, self.limits, self.shutdown, alpn).await
        {
            Ok(Outcome::Completed { location }) => info!(%location, "session done: dump complete"),
            Ok(outcome) => info!(?outcome, "session done"),
            Err(e) => warn!(error = %e, "session failed"),
        }
    }

    /// The TLS handshake under its deadlines, or `None` (logged, rate-limited) if it did not
    /// finish: no ClientHello in time, not TLS, refused certificate, timeout, or evicted.
    async fn handshake(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        ticket: HandshakeTicket,
    ) -> Option<TlsStream<TcpStream>> {
        let _ = stream.set_nodelay(true);
        let started = Instant::now();
        let lazy = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
        let start = tokio::select! {
            // Logged (rate-limited) where the eviction was decided.
            _ = ticket.evicted() => return None,
            hello = tokio::time::timeout_at(started + CLIENT_HELLO_TIMEOUT, lazy) => match hello {
                Ok(Ok(start)) => start,
                Err(_) => {
                    if self.log.allow("no ClientHello in time") {
                        warn!(%peer, "no TLS ClientHello within {}s; connection closed", CLIENT_HELLO_TIMEOUT.as_secs());
                    }
                    return None;
                }
                Ok(Err(e)) => {
                    if self.log.allow("not TLS") {
                        warn!(%peer, error = %e, "TLS handshake failed (not a TLS 1.3 crashdrop sender?); nothing stored");
                    }
                    return None;
                }
            },
        };
        ticket.hello_received();
        let config = self.tls.get().config.clone();
        let accept = start.into_stream(config);
        let result = tokio::select! {
            _ = ticket.evicted() => return None,
            result = tokio::time::timeout_at(started + HANDSHAKE_TIMEOUT, accept) => result,
        };
        match result {
            Ok(Ok(tls)) => Some(tls),
            Err(_) => {
                if self.log.allow("TLS handshake timed out") {
                    warn!(%peer, "TLS handshake not finished within {}s; connection dropped", HANDSHAKE_TIMEOUT.as_secs());
                }
                None
            }
            Ok(Err(e)) if is_certificate_error(&e) => {
                if self.log.allow("client certificate refused") {
                    let reason = certificate_refusal(&e);
                    warn!(%peer, "TLS handshake refused: {reason}; nothing stored");
                }
                None
            }
            Ok(Err(e)) => {
                let (kind, meaning) = handshake_failure(&e);
                if self.log.allow(kind) {
                    warn!(%peer, error = %e, "TLS handshake failed: {meaning}; nothing stored");
                }
                None
            }
        }
    }

    /// Answers `Error(code, message)` from one of the few refusal slots, or just closes.
    async fn refuse(&self, tls: TlsStream<TcpStream>, code: ErrorCode, message: &str) {
        match self.refusals.try_slot() {
            Some(_slot) => refusal::refuse(tls, code, message).await,
            None => {
                if self.log.allow("refusal slots full") {
                    warn!(
                        "every refusal slot is busy: closing without an answer (the sender retries)"
                    );
                }
            }
        }
    }
}

/// Whether a failed handshake was about the client's certificate (as opposed to garbage, a
/// protocol version or a dropped connection).
/// What a failed handshake that was not about the client's certificate means, for the log: a
/// rate-limit key and a sentence. The alert a sender sends when it refuses *our* certificate is
/// the case operators meet most (a wrong `--ca` or a name missing from receiver.pem).
fn handshake_failure(e: &std::io::Error) -> (&'static str, String) {
    use rustls::AlertDescription as Alert;
    let inner = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::AlertReceived(
            alert @ (Alert::UnknownCA
            | Alert::BadCertificate
            | Alert::CertificateUnknown
            | Alert::CertificateExpired
            | Alert::CertificateRevoked
            | Alert::UnsupportedCertificate
            // What rustls sends for a bad signature: a CA of the same name but another key.
            | Alert::DecryptError
            | Alert::AccessDenied),
        )) => (
            "sender refused our certificate",
            format!(
                "the sender refused this receiver's certificate (alert {alert:?}): it does not \
                 trust the CA that issued it, or the name it dialled is not among the names \
                 logged at start-up; check the sender's --ca and --server-name"
            ),
        ),
        Some(rustls::Error::AlertReceived(alert)) => (
            "sender aborted the handshake",
            format!("the sender aborted the handshake (alert {alert:?})"),
        ),
        Some(rustls::Error::PeerIncompatible(_)) => (
            "peer incompatible",
            "the peer speaks no TLS 1.3 this receiver accepts (an old or non-crashdrop client)"
                .to_string(),
        ),
        _ => (
            "not TLS",
            "the peer does not speak TLS as a crashdrop sender does (a scanner, or plain TCP?)"
                .to_string(),
        ),
    }
}

/// Why a client certificate was refused, in words an operator can act on (rustls's own text
/// names its enum variants).
fn certificate_refusal(e: &std::io::Error) -> String {
    use rustls::CertificateError as Cert;
    let inner = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::NoCertificatesPresented) => {
            "the sender presented no client certificate (give crashdrop-send --cert and --key)"
                .into()
        }
        Some(rustls::Error::InvalidCertificate(cert)) => match cert {
            Cert::Expired | Cert::ExpiredContext { .. } => {
                "the host certificate has expired: issue a new one with `crashdrop-certs host`"
                    .into()
            }
            Cert::NotValidYet | Cert::NotValidYetContext { .. } => {
                "the host certificate is not valid yet: check the clocks of sender and receiver"
                    .into()
            }
            Cert::UnknownIssuer => {
                "the host certificate was not issued by the client CA (--client-ca)".into()
            }
            Cert::BadSignature => "the host certificate's signature does not verify against the \
                                   client CA (--client-ca; another CA of the same name?)"
                .into(),
            Cert::Revoked => "the host certificate is revoked (client_crl)".into(),
            Cert::InvalidPurpose | Cert::InvalidPurposeContext { .. } => {
                "the certificate lacks the clientAuth usage: it is not a host certificate from \
                 `crashdrop-certs host`"
                    .into()
            }
            // Our own policy checks (revoked_hosts, the host name) say what they mean.
            Cert::Other(other) => other.to_string(),
            other => format!("the host certificate is unusable ({other})"),
        },
        _ => format!("client certificate refused: {e}"),
    }
}

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
    use super::{handshake_failure, HostSessions};

    #[test]
    fn a_sender_refusing_our_certificate_is_named_as_such() {
        let alert = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA),
        );
        let (_, meaning) = handshake_failure(&alert);
        assert!(
            meaning.contains("refused this receiver's certificate"),
            "{meaning}"
        );
        assert!(meaning.contains("--ca"), "{meaning}");
        let garbage = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        );
        let (_, meaning) = handshake_failure(&garbage);
        assert!(meaning.contains("does not speak TLS"), "{meaning}");
    }

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
