//! TLS 1.3 with a mandatory client certificate, and the host identity it proves: the rustls
//! configuration built (and rebuilt on SIGHUP) from the receiver's files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crashdrop_proto::HostName;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};
use x509_parser::extensions::GeneralName;

use crate::host_policy::{HostPolicy, PolicyVerifier};
use crate::revocation::{RevocationError, RevocationList};

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("{}: cannot read certificates: {source}", path.display())]
    Certs {
        path: std::path::PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{}: contains no certificate", path.display())]
    NoCerts { path: std::path::PathBuf },
    #[error("{}: cannot read the private key: {source}", path.display())]
    Key {
        path: std::path::PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{}: not a usable CA certificate: {source}", path.display())]
    Ca {
        path: std::path::PathBuf,
        source: rustls::Error,
    },
    #[error("client CA {}: {source}", path.display())]
    Verifier {
        path: std::path::PathBuf,
        source: rustls::server::VerifierBuilderError,
    },
    #[error("client_crl {}: cannot read CRLs: {source}", path.display())]
    Crl {
        path: std::path::PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("client_crl {}: contains no CRL (-----BEGIN X509 CRL-----)", path.display())]
    NoCrls { path: std::path::PathBuf },
    #[error(transparent)]
    Revocation(#[from] RevocationError),
    #[error(transparent)]
    ServerCert(#[from] crate::server_cert::ServerCertError),
    #[error(
        "receiver key {} does not belong to the receiver certificate {}: give --tls-key the key \
         written beside that certificate",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
    },
    #[error("receiver certificate {} / key {}: {source}", cert.display(), key.display())]
    Config {
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
        source: rustls::Error,
    },
}

/// Why a verified peer certificate still does not name a usable host.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("no client certificate")]
    NoCertificate,
    #[error("client certificate does not parse: {0}")]
    Parse(String),
    #[error(
        "client certificate has no DNS name (subjectAltName); issue it with `crashdrop-certs host`"
    )]
    NoDnsName,
    #[error("client certificate names {0} hosts ({1}); a host certificate must name exactly one")]
    Ambiguous(usize, String),
    #[error("client certificate names an unusable host: {0}")]
    BadName(#[from] crashdrop_proto::HostNameError),
}

pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsSetupError::Certs {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCerts {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsSetupError::Key {
        path: path.to_owned(),
        source,
    })
}

/// The files the receiver's TLS policy is built from, re-read on SIGHUP.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
    /// PEM CRLs from the client CA (`client_crl`), checked in every full handshake.
    pub client_crl: Option<PathBuf>,
    /// The deny-list of hosts and serials (`revoked_hosts`), see [`crate::revocation`].
    pub revoked_hosts: Option<PathBuf>,
}

/// What one (re)load of [`TlsFiles`] gives: the rustls configuration and the same rules for the
/// post-handshake check of resumed sessions.
pub struct TlsState {
    pub config: Arc<ServerConfig>,
    pub policy: Arc<HostPolicy>,
}

impl TlsFiles {
    /// Builds the configuration: TLS 1.3 only, a client certificate required, verified against
    /// `client_ca` (validity period and CRLs included) and then against [`HostPolicy`].
    /// `sessions` is shared by every reload, so hosts keep resuming TLS sessions across one.
    pub fn load(
        &self,
        sessions: Arc<dyn StoresServerSessions + Send + Sync>,
    ) -> Result<TlsState, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for ca in load_certs(&self.client_ca)? {
            roots.add(ca).map_err(|source| TlsSetupError::Ca {
                path: self.client_ca.clone(),
                source,
            })?;
        }
        let mut revoked = match &self.revoked_hosts {
            Some(path) => RevocationList::load(path)?,
            None => RevocationList::default(),
        };
        let mut builder =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
        if let Some(path) = &self.client_crl {
            let crls = load_crls(path)?;
            revoked.add_crls(&crls, path)?;
            // Host certificates come straight from the CA; a CA listed in client_ca without a
            // CRL in the file keeps working.
            builder = builder
                .with_crls(crls)
                .only_check_end_entity_revocation()
                .allow_unknown_revocation_status();
        }
        let webpki = builder.build().map_err(|source| TlsSetupError::Verifier {
            path: self.client_ca.clone(),
            source,
        })?;
        let policy = Arc::new(HostPolicy { revoked });
        let verifier = Arc::new(PolicyVerifier::new(webpki, policy.clone()));
        let config_err = |source| match source {
            rustls::Error::InconsistentKeys(_) => TlsSetupError::KeyMismatch {
                cert: self.cert.clone(),
                key: self.key.clone(),
            },
            source => TlsSetupError::Config {
                cert: self.cert.clone(),
                key: self.key.clone(),
                source,
            },
        };
        let chain = load_certs(&self.cert)?;
        let names = crate::server_cert::check(&self.cert, &chain[0])?;
        tracing::info!(
            certificate = %self.cert.display(),
            names = %names.join(", "),
            "receiver certificate: senders may dial these names"
        );
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(config_err)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, load_key(&self.key)?)
            .map_err(config_err)?;
        config.session_storage = sessions;
        Ok(TlsState {
            config: Arc::new(config),
            policy,
        })
    }
}

/// TLS sessions remembered for resumption (shared by every reload of the configuration).
pub fn session_cache() -> Arc<dyn StoresServerSessions + Send + Sync> {
    ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES)
}

/// Sessions remembered for resumption; the oldest are forgotten first.
const SESSION_CACHE_ENTRIES: usize = 4096;

fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsSetupError> {
    let crls = CertificateRevocationListDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsSetupError::Crl {
            path: path.to_owned(),
            source,
        })?;
    if crls.is_empty() {
        return Err(TlsSetupError::NoCrls {
            path: path.to_owned(),
        });
    }
    Ok(crls)
}

/// The receiver's TLS configuration from these files, with no CRL and no deny-list, and its own
/// session cache.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let files = TlsFiles {
        cert: cert.to_owned(),
        key: key.to_owned(),
        client_ca: client_ca.to_owned(),
        client_crl: None,
        revoked_hosts: None,
    };
    Ok(files.load(session_cache())?.config)
}

/// The host a verified client certificate names: its single DNS subjectAltName.
pub fn host_identity(peer_certs: Option<&[CertificateDer<'_>]>) -> Result<HostName, IdentityError> {
    let leaf = peer_certs
        .and_then(|c| c.first())
        .ok_or(IdentityError::NoCertificate)?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| IdentityError::Parse(e.to_string()))?;
    dns_identity(&cert)
}

/// [`host_identity`] of a parsed certificate.
pub(crate) fn dns_identity(
    cert: &x509_parser::certificate::X509Certificate<'_>,
) -> Result<HostName, IdentityError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| IdentityError::Parse(e.to_string()))?;
    let names: Vec<&str> = san
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(*d),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    match names.as_slice() {
        [] => Err(IdentityError::NoDnsName),
        [one] => Ok(HostName::parse(one)?),
        many => Err(IdentityError::Ambiguous(many.len(), many.join(", "))),
    }
}
