//! The SSH transport: crashdropd's built-in SSH server ([`SshAcceptor`]), where a client key in
//! the authorized-keys file is a host's identity and the `crashdrop` subsystem carries the same
//! protocol, to the same [`Session`](crate::session), as TLS.

pub mod authorized_keys;
mod connection;
mod server;

pub use authorized_keys::{fingerprint, AuthorizedKey, AuthorizedKeys, AuthorizedKeysError};
pub use server::{load_host_key, server_config, HostKeyError, SshAcceptor, SSH_SUBSYSTEM};
