//! One SSH connection's rules ([`SshConnection`], russh's server `Handler`): public-key
//! authentication against the authorized keys, then exactly one session channel with the
//! `crashdrop` subsystem, whose stream goes to the same [`session::run`] as a TLS stream.
//! Everything else (shells, `exec`, other subsystems, PTYs, X11, agent and port forwarding, a
//! second channel) is refused, with a line on the channel's stderr where there is a channel.

use std::net::SocketAddr;
use std::sync::Arc;

use crashdrop_proto::{ErrorCode, HostName};
use russh::keys::PublicKey;
use russh::server::{
    Auth, ChannelOpenHandle, Handler, Msg, PublicKeyOffer, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, ChannelOpenFailure};
use tokio::sync::{oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

use super::authorized_keys::{fingerprint, AuthorizedKeys};
use super::server::SSH_SUBSYSTEM;
use crate::acceptor::HostSessions;
use crate::log_limit::LogLimiter;
use crate::refusal::{self, Refusals};
use crate::session::{self, Outcome, SessionLimits};
use crate::store::DumpStore;

/// What every SSH session needs from the daemon (the same things a TLS session gets).
pub struct SessionServices {
    pub store: DumpStore,
    pub sessions: Arc<Semaphore>,
    pub host_sessions: HostSessions,
    pub limits: SessionLimits,
    pub refusals: Refusals,
    pub log: Arc<LogLimiter>,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
}

/// The state of one connection.
pub struct SshConnection {
    peer: SocketAddr,
    /// The authorized keys in force when the connection arrived.
    keys: Arc<AuthorizedKeys>,
    services: Arc<SessionServices>,
    /// Set once a key has proven itself: the only source of the host identity.
    host: Option<HostName>,
    /// The one session channel, until its subsystem starts.
    channel: Option<Channel<Msg>>,
    /// Whether a session channel was ever opened (a second one is refused).
    opened: bool,
    /// Told when the subsystem starts, so the connection leaves the handshake table.
    started: Option<oneshot::Sender<()>>,
}

impl SshConnection {
    pub fn new(
        peer: SocketAddr,
        keys: Arc<AuthorizedKeys>,
        services: Arc<SessionServices>,
        started: oneshot::Sender<()>,
    ) -> SshConnection {
        SshConnection {
            peer,
            keys,
            services,
            host: None,
            channel: None,
            opened: false,
            started: Some(started),
        }
    }

    fn host_of(&self, key: &PublicKey) -> Option<HostName> {
        self.keys.host_of(key).map(|k| k.host.clone())
    }

    /// Refuses a request on `channel`: a failure reply, the reason on its stderr, then close.
    fn refuse_on_channel(
        &mut self,
        channel: ChannelId,
        why: &str,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        if self.services.log.allow("SSH request refused") {
            warn!(peer = %self.peer, host = ?self.host.as_ref().map(HostName::as_str), why, "SSH request refused; nothing stored");
        }
        session.channel_failure(channel)?;
        let line = format!("crashdropd: {why}\n");
        session.extended_data(channel, 1, line.into_bytes())?;
        session.eof(channel)?;
        session.close(channel)?;
        self.channel = None;
        Ok(())
    }
}

const ONLY_SUBSYSTEM: &str = "this server only runs the `crashdrop` subsystem (use crashdrop-send, or `ssh -s HOST crashdrop`)";

impl Handler for SshConnection {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.host_of(offer.public_key).is_some() {
            return Ok(Auth::Accept);
        }
        if self.services.log.allow("unknown SSH key") {
            warn!(peer = %self.peer, key = %fingerprint(offer.public_key), "SSH key not in the authorized-keys file; refused");
        }
        Ok(Auth::reject())
    }

    async fn auth_publickey(
        &mut self,
        _user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        // The user name is ignored: the key alone says which host this is.
        match self.host_of(key.public_key) {
            Some(host) => {
                tracing::Span::current().record("host", host.as_str());
                info!(%host, key = %fingerprint(key.public_key), "SSH host authenticated");
                self.host = Some(host);
                Ok(Auth::Accept)
            }
            None => Ok(Auth::reject()),
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.opened || self.host.is_none() {
            if self.services.log.allow("SSH second channel refused") {
                warn!(peer = %self.peer, "a second SSH channel on one connection refused");
            }
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        self.opened = true;
        self.channel = Some(channel);
        reply.accept().await;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name != SSH_SUBSYSTEM {
            return self.refuse_on_channel(
                channel,
                &format!("subsystem `{name}` refused: {ONLY_SUBSYSTEM}"),
                session,
            );
        }
        let (Some(host), Some(open)) = (self.host.clone(), self.channel.take()) else {
            return self.refuse_on_channel(
                channel,
                "the crashdrop subsystem runs once per connection",
                session,
            );
        };
        if open.id() != channel {
            return self.refuse_on_channel(
                channel,
                "the crashdrop subsystem runs once per connection",
                session,
            );
        }
        session.channel_success(channel)?;
        if let Some(started) = self.started.take() {
            let _ = started.send(());
        }
        let services = self.services.clone();
        let span = tracing::Span::current();
        services
            .tracker
            .clone()
            .spawn(run_session(services, host, open).instrument(span));
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse_on_channel(
            channel,
            &format!("shell refused: {ONLY_SUBSYSTEM}"),
            session,
        )
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse_on_channel(channel, &format!("exec refused: {ONLY_SUBSYSTEM}"), session)
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }
}

/// One `crashdrop` subsystem: the host's session limits, then the shared session.
async fn run_session(services: Arc<SessionServices>, host: HostName, channel: Channel<Msg>) {
    let stream = channel.into_stream();
    let Some(_slot) = services.host_sessions.try_enter(host.as_str()) else {
        if services.log.allow("busy: host at its session cap") {
            warn!(%host, "this host already has its maximum of sessions; refusing another (it will retry)");
        }
        refuse(
            &services,
            stream,
            ErrorCode::Busy,
            "this host already has the maximum number of sessions; retry shortly",
        )
        .await;
        return;
    };
    let Ok(_permit) = services.sessions.clone().try_acquire_owned() else {
        if services.log.allow("busy: receiver at its session limit") {
            warn!(%host, "too many sessions; refusing this one (the sender will retry)");
        }
        refuse(
            &services,
            stream,
            ErrorCode::Busy,
            "receiver is at its session limit; retry shortly",
        )
        .await;
        return;
    };
    match session::run(
        stream,
        host,
        services.store.clone(),
        services.limits.clone(),
        services.shutdown.clone(),
    )
    .await
    {
        Ok(Outcome::Completed { location }) => info!(%location, "session done: dump complete"),
        Ok(outcome) => info!(?outcome, "session done"),
        Err(e) => warn!(error = %e, "session failed"),
    }
}

async fn refuse<S>(services: &SessionServices, stream: S, code: ErrorCode, message: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Some(_slot) = services.refusals.try_slot() {
        refusal::refuse(stream, code, message).await;
    }
}
