//! Certificates for crashdrop: a private CA, the receiver's server certificate and one client
//! certificate per host, whose DNS name *is* the host's identity on the receiver.
//!
//! Enrolment in brief:
//!
//! 1. [`init`] once, on a trusted machine: writes `ca.pem`, `ca.key`, `receiver.pem` and
//!    `receiver.key`. `crashdropd` verifies hosts against `ca.pem` and presents `receiver.pem`.
//! 2. [`issue_host`] per host: writes `<host>.pem` and `<host>.key`, a client certificate naming the
//!    host. The host's sender presents them and verifies the receiver against `ca.pem`.
//!
//! Private keys are written with mode 0600, certificates 0644, each atomically (a temporary file in
//! the same directory, then a rename), so an interrupted run never leaves half a key behind. Keys
//! are never silently replaced: an existing `ca.key` is never overwritten, and a host's key only
//! with [`HostOptions::force`].
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let pki = crashdrop_certs::init(dir.path(), &["dumps.example.com".to_owned()])?;
//! let host = crashdrop_certs::issue_host(dir.path(), "web-7")?;
//! assert!(pki.ca.cert.ends_with("ca.pem") && host.key.ends_with("web-7.key"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod ca;
mod error;
mod host;
mod init;
mod pem_file;
mod revoke;
mod ssh_keys;
#[cfg(test)]
mod test_pki;
mod validity;

use std::path::{Path, PathBuf};

pub use error::CertError;
pub use host::{issue_host, issue_host_with, HostOptions};
pub use init::{init, init_with, InitOptions, InitOutput};
pub use revoke::{revoke, serial_hex, Revocation, RevokeTarget, CRL_FILE, REVOKED_HOSTS_FILE};
pub use ssh_keys::{ssh_client_key, ssh_host_key, SshKeyOutput, SSH_HOST_KEY};

/// How long the CA and receiver certificates are valid unless told otherwise: ten years.
///
/// A host certificate stops being accepted when the CA expires, whatever its own validity.
pub const DEFAULT_VALIDITY_DAYS: u32 = 3650;

/// How long host certificates are valid unless told otherwise: two years. A host certificate
/// sits in an initramfs that can be copied; a short life bounds what a copy is worth when nobody
/// notices to revoke it. Rotation (certs/README.md): reissue with `host --force` and rebuild the
/// initramfs well before it expires.
pub const DEFAULT_HOST_VALIDITY_DAYS: u32 = 730;

/// File stem of the CA certificate and key in the certificate directory (`ca.pem`, `ca.key`).
pub const CA_STEM: &str = "ca";

/// File stem of the receiver's certificate and key (`receiver.pem`, `receiver.key`).
pub const RECEIVER_STEM: &str = "receiver";

/// Where a certificate and its private key were written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    /// The PEM certificate (`<stem>.pem`, mode 0644).
    pub cert: PathBuf,
    /// The PEM PKCS#8 private key (`<stem>.key`, mode 0600).
    pub key: PathBuf,
}

impl CertPaths {
    /// `dir/<stem>.pem` and `dir/<stem>.key`.
    pub fn in_dir(dir: &Path, stem: &str) -> Self {
        CertPaths {
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
        }
    }
}
