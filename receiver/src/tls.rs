//! TLS 1.3 with a mandatory client certificate, and the host identity it proves.

use std::path::Path;
use std::sync::Arc;

use crashdrop_proto::HostName;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use x509_parser::extensions::GeneralName;

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

/// The receiver's TLS configuration: TLS 1.3 only, client certificate required and verified
/// against `client_ca` (validity period included).
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in load_certs(client_ca)? {
        roots.add(ca).map_err(|source| TlsSetupError::Ca {
            path: client_ca.to_owned(),
            source,
        })?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|source| TlsSetupError::Verifier {
            path: client_ca.to_owned(),
            source,
        })?;
    let config_err = |source| TlsSetupError::Config {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    };
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(cert)?, load_key(key)?)
        .map_err(config_err)?;
    Ok(Arc::new(config))
}

/// The host a verified client certificate names: its single DNS subjectAltName.
pub fn host_identity(peer_certs: Option<&[CertificateDer<'_>]>) -> Result<HostName, IdentityError> {
    let leaf = peer_certs
        .and_then(|c| c.first())
        .ok_or(IdentityError::NoCertificate)?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| IdentityError::Parse(e.to_string()))?;
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
