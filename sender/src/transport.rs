//! How the sender reaches the receiver: `tls://HOST:PORT` (mutual TLS) or
//! `ssh://[USER@]HOST[:PORT]` (SSH, feature `ssh`). Either way one attempt yields a byte stream
//! ([`Stream`]) for the one [`Uploader`](crate::upload::Uploader).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::SendError;
use crate::tls;

/// Port of an `ssh://` receiver without one: crashdropd's SSH listener (22 belongs to the site's
/// own sshd; give `ssh://HOST:22` for OpenSSH).
pub const DEFAULT_SSH_PORT: u16 = 7422;

/// A connected transport, whatever it is.
pub trait Stream: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Stream for T {}

/// A parsed `--receiver`.
#[derive(Debug, PartialEq, Eq)]
pub enum ReceiverUrl {
    /// `address` is `HOST:PORT` to connect to, `host` the name to verify.
    Tls { address: String, host: String },
    /// `host` without brackets; `port` defaults to 7422.
    Ssh {
        user: Option<String>,
        host: String,
        port: u16,
    },
}

impl ReceiverUrl {
    pub fn parse(url: &str) -> Result<ReceiverUrl, SendError> {
        let bad = |why: &str| {
            SendError::Other(format!(
                "{url}: {why} (expected tls://HOST:PORT or ssh://[USER@]HOST[:PORT], e.g. tls://dumps.example:7420, ssh://dumps.example (port 7422) or tls://[::1]:7420)"
            ))
        };
        if let Some(rest) = url.strip_prefix("tls://") {
            let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad("no port"))?;
            port.parse::<u16>().map_err(|_| bad("bad port"))?;
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            if bare.is_empty() {
                return Err(bad("no host"));
            }
            return Ok(ReceiverUrl::Tls {
                address: rest.to_owned(),
                host: bare.to_owned(),
            });
        }
        let rest = url
            .strip_prefix("ssh://")
            .ok_or_else(|| bad("only the tls:// and ssh:// schemes are supported"))?;
        let (user, rest) = match rest.split_once('@') {
            Some((user, rest)) if !user.is_empty() => (Some(user.to_owned()), rest),
            Some(_) => return Err(bad("empty user name before @")),
            None => (None, rest),
        };
        // [v6]:port, [v6], host:port or host.
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("no closing ]"))?;
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
                ),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() || host.contains(['/', ':']) && !rest.starts_with('[') {
            return Err(bad("no host"));
        }
        let port = match port {
            None => DEFAULT_SSH_PORT,
            Some(p) => p.parse::<u16>().map_err(|_| bad("bad port"))?,
        };
        Ok(ReceiverUrl::Ssh {
            user,
            host: host.to_owned(),
            port,
        })
    }
}

/// One way to the receiver, prepared once (credentials loaded) and dialled per attempt.
pub enum Transport {
    Tls {
        config: Arc<rustls::ClientConfig>,
        address: String,
        server_name: String,
    },
    #[cfg(feature = "ssh")]
    Ssh(crate::ssh::SshTarget),
}

impl Transport {
    /// `HOST:PORT`, for messages.
    pub fn address(&self) -> &str {
        match self {
            Transport::Tls { address, .. } => address,
            #[cfg(feature = "ssh")]
            Transport::Ssh(target) => &target.address,
        }
    }

    /// Connects and authenticates within `timeout`. Also returns the protocol version TLS ALPN
    /// selected (`crashdrop/N`), which the receiver's `Welcome` must then name; `None` when
    /// the receiver selected none, and always over SSH, which has no ALPN: there the
    /// `Hello`/`Welcome` negotiation alone decides (docs/protocol.md "Negotiation").
    pub async fn connect(
        &self,
        timeout: Duration,
    ) -> Result<(Box<dyn Stream>, Option<u16>), SendError> {
        let connecting = async {
            match self {
                Transport::Tls {
                    config,
                    address,
                    server_name,
                } => {
                    let stream = tls::connect(config.clone(), address, server_name).await?;
                    let alpn = stream
                        .get_ref()
                        .1
                        .alpn_protocol()
                        .and_then(crashdrop_proto::alpn_version);
                    Ok((Box::new(stream) as Box<dyn Stream>, alpn))
                }
                #[cfg(feature = "ssh")]
                Transport::Ssh(target) => {
                    let stream = crate::ssh::connect(target).await?;
                    Ok((Box::new(stream) as Box<dyn Stream>, None))
                }
            }
        };
        let what = match self {
            Transport::Tls { .. } => "TLS",
            #[cfg(feature = "ssh")]
            Transport::Ssh(_) => "SSH",
        };
        tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| {
                SendError::Retryable(format!(
                    "no {what} session with {} within {}s",
                    self.address(),
                    timeout.as_secs()
                ))
            })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh(user: Option<&str>, host: &str, port: u16) -> ReceiverUrl {
        ReceiverUrl::Ssh {
            user: user.map(str::to_owned),
            host: host.into(),
            port,
        }
    }

    #[test]
    fn tls_urls_split_into_address_and_name() {
        let tls = |a: &str, h: &str| ReceiverUrl::Tls {
            address: a.into(),
            host: h.into(),
        };
        assert_eq!(
            ReceiverUrl::parse("tls://dumps.example:7420").expect("dns"),
            tls("dumps.example:7420", "dumps.example")
        );
        assert_eq!(
            ReceiverUrl::parse("tls://[::1]:7420").expect("v6"),
            tls("[::1]:7420", "::1")
        );
        assert!(ReceiverUrl::parse("http://x:1").is_err());
        assert!(ReceiverUrl::parse("tls://x").is_err());
        assert!(ReceiverUrl::parse("tls://:7420").is_err());
    }

    #[test]
    fn ssh_urls_default_to_port_7422_and_take_a_user() {
        let p = |u: &str| ReceiverUrl::parse(u).expect(u);
        assert_eq!(p("ssh://dumps.example"), ssh(None, "dumps.example", 7422));
        assert_eq!(p("ssh://dumps:2222"), ssh(None, "dumps", 2222));
        assert_eq!(
            p("ssh://root@10.0.0.1:22"),
            ssh(Some("root"), "10.0.0.1", 22)
        );
        assert_eq!(p("ssh://[::1]"), ssh(None, "::1", 7422));
        assert_eq!(p("ssh://k@[fe80::1]:7000"), ssh(Some("k"), "fe80::1", 7000));
        for bad in [
            "ssh://",
            "ssh://:22",
            "ssh://@h",
            "ssh://h:x",
            "ssh://[::1",
            "ssh://a/b",
        ] {
            assert!(ReceiverUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
