//! A hand-driven SSH client for refusal tests ([`SshProbe`], russh's client): it does what
//! crashdrop-send never does (offers a password, opens a second channel) and reports what the
//! server answered. The receiver's host key is pinned like the sender pins it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle, Msg};
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{Channel, ChannelMsg};
use tokio::net::TcpStream;

/// Bound on every step of a probe.
const STEP: Duration = Duration::from_secs(10);

/// Accepts exactly the pinned host key.
struct Pinned(PublicKey);

impl client::Handler for Pinned {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(
            matches!(key, PublicKeyOrCertificate::PublicKey { key, .. } if key.key_data() == self.0.key_data()),
        )
    }
}

/// What the server said to a request on a channel.
#[derive(Debug)]
pub struct ChannelAnswer {
    /// `SSH_MSG_CHANNEL_SUCCESS` (true) or `_FAILURE` (false); `None` if neither came.
    pub success: Option<bool>,
    /// What arrived on the channel's stderr (and stdout) until it closed.
    pub text: String,
}

/// One SSH connection to `crashdropd`, after the key exchange.
pub struct SshProbe {
    handle: Handle<Pinned>,
}

impl SshProbe {
    /// Connects to `addr`, accepting only `host_key_line` (`ssh-ed25519 AAAA...`).
    pub async fn connect(addr: SocketAddr, host_key_line: &str) -> SshProbe {
        let key = PublicKey::from_openssh(host_key_line.trim()).expect("host key line");
        let tcp = tokio::time::timeout(STEP, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        let config = Arc::new(client::Config::default());
        let handle = tokio::time::timeout(STEP, client::connect_stream(config, tcp, Pinned(key)))
            .await
            .expect("SSH handshake in time")
            .expect("SSH handshake");
        SshProbe { handle }
    }

    /// Tries password authentication; true if the server accepted it.
    pub async fn password(&mut self, user: &str, password: &str) -> bool {
        match tokio::time::timeout(STEP, self.handle.authenticate_password(user, password)).await {
            Ok(Ok(result)) => result.success(),
            Ok(Err(_)) | Err(_) => false,
        }
    }

    /// Authenticates with the private key in `identity`; true if accepted.
    pub async fn key(&mut self, user: &str, identity: &Path) -> bool {
        let text = std::fs::read_to_string(identity).expect("read identity");
        let key = russh::keys::decode_secret_key(&text, None).expect("identity");
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), None);
        match tokio::time::timeout(STEP, self.handle.authenticate_publickey(user, key)).await {
            Ok(Ok(result)) => result.success(),
            Ok(Err(_)) | Err(_) => false,
        }
    }

    /// Opens a session channel; `None` if the server refused it.
    pub async fn open_session(&self) -> Option<Channel<Msg>> {
        tokio::time::timeout(STEP, self.handle.channel_open_session())
            .await
            .ok()?
            .ok()
    }
}

/// Waits for the answer to a request just sent on `channel`, and the text that follows it.
pub async fn answer(channel: &mut Channel<Msg>) -> ChannelAnswer {
    let mut success = None;
    let mut text = Vec::new();
    let _ = tokio::time::timeout(STEP, async {
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Success => success = Some(true),
                ChannelMsg::Failure => success = Some(false),
                ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => {
                    text.extend_from_slice(&data)
                }
                ChannelMsg::Close => break,
                _ => {}
            }
        }
    })
    .await;
    ChannelAnswer {
        success,
        text: String::from_utf8_lossy(&text).into_owned(),
    }
}
