//! The one error type of the crate: every variant names the file or name at fault.
//!
//! Messages do not repeat their source error; print the chain (anyhow's `{:#}`) to see it.

use std::io;
use std::path::PathBuf;

use crashdrop_proto::{HostNameError, HostNameRule};

/// Why a certificate could not be created, loaded or written.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A key (and so the certificate that goes with it) would be overwritten.
    #[error("refusing to overwrite {}: it already exists ({why})", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
        /// Why overwriting it is refused, or how to do it deliberately.
        why: &'static str,
    },

    /// The CA certificate or key to issue from does not exist.
    #[error("{} not found: create the CA first with `crashdrop-certs init`, or use the directory that holds it", path.display())]
    CaNotFound {
        /// The missing `ca.pem` or `ca.key`.
        path: PathBuf,
    },

    /// `ca.pem` is not a CA certificate this crate can issue from.
    #[error("{} is not a usable CA certificate: {reason}", path.display())]
    InvalidCaCert {
        /// The CA certificate file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A private key file could not be parsed.
    #[error("{} is not a usable private key", path.display())]
    InvalidKey {
        /// The key file.
        path: PathBuf,
        /// rcgen's reason.
        #[source]
        source: rcgen::Error,
    },

    /// `ca.key` is not the key of the certificate in `ca.pem`.
    #[error("{} is not the private key of {}", key.display(), cert.display())]
    KeyMismatch {
        /// The CA key file.
        key: PathBuf,
        /// The CA certificate file.
        cert: PathBuf,
    },

    /// A host name that could not be a host's identity (it names a directory on the receiver).
    #[error(transparent)]
    InvalidHostName(#[from] HostNameError),

    /// A host name whose files would clobber the CA's or the receiver's.
    #[error("host name {name:?} is reserved: {name}.pem and {name}.key would clobber the CA's or the receiver's files")]
    ReservedHostName {
        /// The name, lowercased.
        name: String,
    },

    /// `init` was given no receiver name.
    #[error("no receiver name: give the DNS name or IP address senders connect to")]
    NoReceiverNames,

    /// A receiver name that is neither an IP address nor a valid DNS name.
    #[error("invalid receiver name {name:?}: it is not an IP address, nor a DNS name: {rule}")]
    InvalidReceiverName {
        /// The name as given.
        name: String,
        /// The DNS name rule it breaks.
        rule: HostNameRule,
    },

    /// A validity period that is empty or cannot be represented.
    #[error("invalid validity period: {0}")]
    InvalidValidity(String),

    /// A certificate serial number that is not 1 to 20 bytes of hex.
    #[error("invalid serial {0:?}: give the certificate's serial in hex, e.g. 5a:0f:3c (as `openssl x509 -serial -noout` prints it)")]
    InvalidSerial(String),

    /// A certificate file that does not parse.
    #[error("{} is not a usable certificate: {reason}", path.display())]
    InvalidCert {
        /// The certificate file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An existing `crl.pem` that does not parse (fix or remove it; `revoked_hosts` still lists
    /// every revocation).
    #[error("{} is not a usable CRL: {reason}; move it away and run `crashdrop-certs revoke` again", path.display())]
    InvalidCrl {
        /// The CRL file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// rcgen could not generate a key or sign a certificate.
    #[error("cannot create the {what}")]
    Generate {
        /// What was being created, e.g. "CA certificate".
        what: &'static str,
        /// rcgen's reason.
        #[source]
        source: rcgen::Error,
    },

    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// A file or directory could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}
