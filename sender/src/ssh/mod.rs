//! The sender's SSH transport (cargo feature `ssh`): a russh client that pins the receiver's host
//! key ([`ServerKeyPin`]), authenticates with this host's key (`--identity`), and opens the
//! `crashdrop` subsystem of crashdropd's built-in server, or, with `--ssh-command`, runs the
//! forced command of a site's own OpenSSH. The channel becomes a plain byte stream
//! ([`SshStream`]) that the same [`Uploader`](crate::upload::Uploader) as TLS drives.

mod pin;

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use russh::client::{self, Handle, Msg};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, ChannelStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::error::SendError;
pub use pin::ServerKeyPin;

/// The subsystem crashdropd's SSH server runs (and the only one).
pub const SUBSYSTEM: &str = "crashdrop";

/// User name sent when the URL names none; crashdropd ignores it (the key is the identity), an
/// OpenSSH server runs the forced command of that user's `authorized_keys`.
pub const DEFAULT_USER: &str = "crashdrop";

/// How long a refused request's explanation (the server's stderr line) is waited for.
const REFUSAL_TEXT_WAIT: Duration = Duration::from_secs(2);

/// What the channel asks the server to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// The `crashdrop` subsystem (crashdropd's built-in server, or `Subsystem crashdrop ...` in an
    /// sshd_config).
    Subsystem,
    /// An `exec` request, for an OpenSSH `authorized_keys` line with
    /// `command="crashdropd stdio ..."` (the forced command replaces whatever we ask for).
    Command,
}

/// Everything one attempt needs, prepared once.
pub struct SshTarget {
    /// `HOST:PORT`, to connect to and for messages.
    pub address: String,
    pub user: String,
    pub identity: Arc<PrivateKey>,
    pub pin: Arc<ServerKeyPin>,
    pub request: Request,
    config: Arc<client::Config>,
}

impl SshTarget {
    pub fn new(
        address: String,
        user: String,
        identity: PrivateKey,
        pin: ServerKeyPin,
        request: Request,
    ) -> SshTarget {
        let config = client::Config {
            client_id: russh::SshId::Standard(
                concat!("SSH-2.0-crashdrop-send_", env!("CARGO_PKG_VERSION")).into(),
            ),
            // The sender's own --io-timeout bounds every wait; russh's timers stay off.
            inactivity_timeout: None,
            nodelay: true,
            window_size: 8 * 1024 * 1024,
            maximum_packet_size: 65535,
            ..client::Config::default()
        };
        SshTarget {
            address,
            user,
            identity: Arc::new(identity),
            pin: Arc::new(pin),
            request,
            config: Arc::new(config),
        }
    }
}

/// `--identity FILE`: an OpenSSH (or PKCS#8 / PEM) private key without a passphrase (nobody is
/// there to type one in a capture kernel).
pub fn load_identity(path: &Path) -> Result<PrivateKey, SendError> {
    let bad = |why: &dyn std::fmt::Display| {
        SendError::Credentials(format!("--identity {}: {why}", path.display()))
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(&e))?;
    russh::keys::decode_secret_key(&text, None).map_err(|e| match e {
        russh::keys::Error::KeyIsEncrypted => bad(&"the key has a passphrase; crashdrop-send needs an unencrypted key (crashdrop-certs ssh-client-key makes one)"),
        other => bad(&format_args!("not a usable SSH private key: {other}")),
    })
}

/// The russh handler: checks the host key against the pin, nothing else.
struct PinnedServer {
    pin: Arc<ServerKeyPin>,
    address: String,
}

#[derive(Debug)]
enum ClientError {
    Ssh(russh::Error),
    /// The host key check failed; the message says why (fatal).
    HostKey(SendError),
}

impl From<russh::Error> for ClientError {
    fn from(e: russh::Error) -> ClientError {
        ClientError::Ssh(e)
    }
}

impl client::Handler for PinnedServer {
    type Error = ClientError;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, ClientError> {
        match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => self
                .pin
                .check(key, &self.address)
                .map(|()| true)
                .map_err(ClientError::HostKey),
            PublicKeyOrCertificate::Certificate(_) => Err(ClientError::HostKey(SendError::Refused(format!(
                "the receiver at {} presented an SSH host certificate; crashdrop pins plain host keys (--server-key or --known-hosts)",
                self.address
            )))),
        }
    }
}

/// One connection: TCP, SSH handshake with the pinned key, public-key authentication, and the
/// subsystem or command started on one session channel.
pub async fn connect(target: &SshTarget) -> Result<SshStream, SendError> {
    let address = &target.address;
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|e| SendError::Retryable(format!("cannot connect to {address}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let handler = PinnedServer {
        pin: target.pin.clone(),
        address: address.clone(),
    };
    let mut handle = client::connect_stream(target.config.clone(), tcp, handler)
        .await
        .map_err(|e| match e {
            ClientError::HostKey(e) => e,
            ClientError::Ssh(e) => handshake_error(e, address),
        })?;
    let hash = match handle.best_supported_rsa_hash().await {
        Ok(Some(hash)) => hash,
        _ => Some(HashAlg::Sha256),
    };
    let key = PrivateKeyWithHashAlg::new(target.identity.clone(), hash);
    let auth = handle
        .authenticate_publickey(&target.user, key)
        .await
        .map_err(|e| handshake_error(e, address))?;
    if !auth.success() {
        return Err(SendError::Refused(format!(
            "the receiver at {address} refused this host's SSH key {} (user {}): add the crashdrop-host=\"NAME\" line that `crashdrop-certs ssh-client-key` printed to the receiver's authorized-keys file and reload it (SIGHUP), or check --identity",
            pin::describe(target.identity.public_key()),
            target.user
        )));
    }
    let mut channel = handle
        .channel_open_session()
        .await
        .map_err(|e| handshake_error(e, address))?;
    let asked = match target.request {
        Request::Subsystem => channel
            .request_subsystem(true, SUBSYSTEM)
            .await
            .map(|()| format!("the `{SUBSYSTEM}` subsystem")),
        Request::Command => channel
            .exec(true, "crashdropd stdio")
            .await
            .map(|()| "a command (--ssh-command)".to_owned()),
    }
    .map_err(|e| handshake_error(e, address))?;
    loop {
        match channel.wait().await {
            Some(ChannelMsg::Success) => break,
            Some(ChannelMsg::Failure) => {
                let said = refusal_text(&mut channel).await;
                return Err(SendError::Refused(format!(
                    "the SSH server at {address} refused {asked}{}{}",
                    if said.is_empty() { "" } else { ": " },
                    said
                )));
            }
            Some(ChannelMsg::Eof | ChannelMsg::Close) | None => {
                return Err(SendError::Retryable(format!(
                    "the SSH server at {address} closed the channel before starting {asked}"
                )))
            }
            Some(_) => {}
        }
    }
    Ok(SshStream::new(channel.into_stream(), handle))
}

/// Bytes of the receiver's answers buffered ahead of the upload reading them. Its answers are
/// small (a window of acknowledgements is a few KiB), so this never fills in practice.
const ANSWER_BUFFER: usize = 1 << 20;

/// What the server wrote on the refused channel's stderr, briefly waited for.
async fn refusal_text(channel: &mut russh::Channel<Msg>) -> String {
    let mut text = Vec::new();
    let _ = tokio::time::timeout(REFUSAL_TEXT_WAIT, async {
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::ExtendedData { data, .. } | ChannelMsg::Data { data } => {
                    text.extend_from_slice(&data);
                    if text.len() > 4096 {
                        break;
                    }
                }
                ChannelMsg::Eof | ChannelMsg::Close => break,
                _ => {}
            }
        }
    })
    .await;
    String::from_utf8_lossy(&text).trim().to_owned()
}

/// A russh error before the stream exists: negotiation failures cannot be fixed by retrying;
/// anything else (resets, a receiver restarting) can.
fn handshake_error(e: russh::Error, address: &str) -> SendError {
    match e {
        russh::Error::NoCommonAlgo { .. } | russh::Error::Version => SendError::Refused(format!(
            "SSH with {address} failed: {e} (is it an SSH server of crashdropd or OpenSSH?)"
        )),
        other => SendError::Retryable(format!("SSH with {address} failed: {other}")),
    }
}

/// The `crashdrop` channel as a byte stream, holding its connection open.
///
/// What the receiver sends is read off the channel all the time by a task of its own, into a
/// buffer the upload reads from. Without it the upload, blocked writing a chunk until the
/// server opens the SSH window, reads no acknowledgements; russh's connection task then blocks
/// handing them to the full channel queue, stops reading the socket, and never sees the window
/// adjustment the write is waiting for (seen through OpenSSH's sshd and `crashdropd stdio`,
/// which answers in many small SSH packets).
pub struct SshStream {
    answers: tokio::io::DuplexStream,
    stream: tokio::io::WriteHalf<ChannelStream<Msg>>,
    pump: tokio::task::JoinHandle<()>,
    _handle: Handle<PinnedServer>,
}

impl SshStream {
    fn new(channel: ChannelStream<Msg>, handle: Handle<PinnedServer>) -> SshStream {
        let (mut from_receiver, stream) = tokio::io::split(channel);
        let (mut buffered, answers) = tokio::io::duplex(ANSWER_BUFFER);
        let pump = tokio::spawn(async move {
            // An error or the end of the channel closes `buffered`: the upload then reads the
            // end of the stream and retries as after any cut.
            let _ = tokio::io::copy(&mut from_receiver, &mut buffered).await;
        });
        SshStream {
            answers,
            stream,
            pump,
            _handle: handle,
        }
    }
}

impl Drop for SshStream {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

impl AsyncRead for SshStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.answers).poll_read(cx, buf)
    }
}

impl AsyncWrite for SshStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
