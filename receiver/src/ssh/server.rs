//! The SSH listener: accepts TCP connections, bounds the unauthenticated ones exactly as the TLS
//! listener does (the same [`HandshakeTable`]), and runs each through a [`SshConnection`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::server::Config;
use russh::{MethodKind, MethodSet};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{warn, Instrument};

use super::authorized_keys::{AuthorizedKeys, AuthorizedKeysError};
use super::connection::{SessionServices, SshConnection};
use crate::acceptor::{HostSessions, CLIENT_HELLO_TIMEOUT, HANDSHAKE_TIMEOUT};
use crate::handshakes::{Admission, HandshakeTable, HandshakeTicket, Source};
use crate::log_limit::LogLimiter;
use crate::refusal::Refusals;
use crate::reload::Reloadable;
use crate::session::SessionLimits;
use crate::store::DumpStore;

/// The only subsystem a client may open.
pub const SSH_SUBSYSTEM: &str = "crashdrop";

/// Authentication attempts (keys offered, methods tried) one connection gets.
pub const MAX_AUTH_ATTEMPTS: usize = 6;

/// Why the SSH host key does not load.
#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    #[error("cannot read the SSH host key {}: {source} (make one with `crashdrop-certs ssh-host-key --dir DIR`)", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not an OpenSSH private key: {why}", path.display())]
    Parse { path: PathBuf, why: String },
    #[error("{}: the key is encrypted; crashdropd needs an unencrypted host key (mode 0600)", path.display())]
    Encrypted { path: PathBuf },
}

/// Reads an OpenSSH private key file (`-----BEGIN OPENSSH PRIVATE KEY-----`).
pub fn load_host_key(path: &Path) -> Result<PrivateKey, HostKeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| HostKeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    let key = PrivateKey::from_openssh(text.as_bytes()).map_err(|e| HostKeyError::Parse {
        path: path.to_owned(),
        why: e.to_string(),
    })?;
    if key.is_encrypted() {
        return Err(HostKeyError::Encrypted {
            path: path.to_owned(),
        });
    }
    Ok(key)
}

/// The russh server settings: public-key authentication only, a bounded number of attempts,
/// the session idle timeout as the connection's inactivity timeout.
pub fn server_config(host_key: PrivateKey, limits: &SessionLimits) -> Config {
    Config {
        server_id: russh::SshId::Standard(
            concat!("SSH-2.0-crashdropd_", env!("CARGO_PKG_VERSION")).into(),
        ),
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        max_auth_attempts: MAX_AUTH_ATTEMPTS,
        auth_rejection_time: Duration::from_millis(500),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        inactivity_timeout: Some(limits.idle_timeout),
        // Larger windows and packets than the defaults: a dump is one long bulk transfer.
        window_size: 8 * 1024 * 1024,
        maximum_packet_size: 65535,
        nodelay: true,
        ..Config::default()
    }
}

/// A bound SSH listener and what its sessions share.
pub struct SshAcceptor {
    pub listener: TcpListener,
    pub config: Arc<Config>,
    /// The authorized keys, replaced on SIGHUP.
    pub keys: Arc<Reloadable<AuthorizedKeys, AuthorizedKeysError>>,
    pub store: DumpStore,
    pub sessions: Arc<Semaphore>,
    pub host_sessions: HostSessions,
    pub limits: SessionLimits,
    pub handshakes: HandshakeTable,
    pub refusals: Refusals,
    pub log: Arc<LogLimiter>,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
}

impl SshAcceptor {
    /// Accepts until shutdown; each connection runs on its own task, tracked for draining.
    pub async fn run(self) {
        let services = Arc::new(SessionServices {
            store: self.store.clone(),
            sessions: self.sessions.clone(),
            host_sessions: self.host_sessions.clone(),
            limits: self.limits.clone(),
            refusals: self.refusals.clone(),
            log: self.log.clone(),
            shutdown: self.shutdown.clone(),
            tracker: self.tracker.clone(),
        });
        loop {
            let accepted = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                accepted = self.listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
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
                        warn!(%peer, "too many unauthenticated connections from this address; new SSH connection closed");
                    }
                    continue;
                }
                Admission::Admitted { ticket, evicted } => {
                    if evicted.is_some() && self.log.allow("handshake evicted") {
                        warn!(%peer, ?evicted, "handshake limit reached: closed an older unauthenticated connection to make room");
                    }
                    ticket
                }
            };
            let span = tracing::info_span!(
                "ssh",
                %peer,
                host = tracing::field::Empty
            );
            let task = serve_connection(
                self.config.clone(),
                self.keys.get(),
                services.clone(),
                stream,
                peer,
                ticket,
            );
            self.tracker.spawn(task.instrument(span));
        }
    }
}

/// One connection: the SSH handshake and authentication under the same deadlines as a TLS
/// handshake, holding its place in the handshake table until the `crashdrop` subsystem starts.
async fn serve_connection(
    config: Arc<Config>,
    keys: Arc<AuthorizedKeys>,
    services: Arc<SessionServices>,
    stream: TcpStream,
    peer: SocketAddr,
    ticket: HandshakeTicket,
) {
    let started = Instant::now();
    let log = services.log.clone();
    let (started_tx, started_rx) = oneshot::channel();
    let handler = SshConnection::new(peer, keys, services, started_tx);
    let running = tokio::select! {
        _ = ticket.evicted() => return,
        r = tokio::time::timeout_at(started + CLIENT_HELLO_TIMEOUT, russh::server::run_stream(config, stream, handler)) => match r {
            Ok(Ok(running)) => running,
            Err(_) => {
                if log.allow("no SSH version line in time") {
                    warn!(%peer, "no SSH version line within {}s; connection closed", CLIENT_HELLO_TIMEOUT.as_secs());
                }
                return;
            }
            Ok(Err(e)) => {
                if log.allow("not SSH") {
                    warn!(%peer, error = %e, "SSH connection failed before authentication; nothing stored");
                }
                return;
            }
        },
    };
    ticket.hello_received();
    let handle = running.handle();
    let mut running = std::pin::pin!(running);
    let authenticated = tokio::select! {
        _ = ticket.evicted() => false,
        _ = tokio::time::sleep_until(started + HANDSHAKE_TIMEOUT) => {
            if log.allow("SSH authentication timed out") {
                warn!(%peer, "no crashdrop subsystem within {}s of connecting (authentication too slow or refused); connection closed", HANDSHAKE_TIMEOUT.as_secs());
            }
            false
        }
        started = started_rx => started.is_ok(),
        ended = &mut running => {
            if let Err(e) = ended {
                if log.allow("SSH connection failed") {
                    warn!(%peer, error = %e, "SSH connection ended before a session; nothing stored");
                }
            }
            return;
        }
    };
    drop(ticket);
    if !authenticated {
        let _ = handle
            .disconnect(
                russh::Disconnect::ByApplication,
                "crashdropd: authentication or subsystem request took too long".into(),
                "en".into(),
            )
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut running).await;
        return;
    }
    if let Err(e) = running.await {
        if log.allow("SSH connection failed") {
            warn!(%peer, error = %e, "SSH connection ended with an error");
        }
    }
}
