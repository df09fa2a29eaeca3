//! The sender's TLS: TLS 1.3, the receiver verified against our CA, our host certificate
//! presented as identity; and turning TLS failures into messages that say what to fix.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::SendError;
use crate::tls_explain;

pub struct TlsFiles<'a> {
    pub ca: &'a Path,
    pub cert: &'a Path,
    pub key: &'a Path,
}

pub fn client_config(files: &TlsFiles<'_>) -> Result<Arc<ClientConfig>, SendError> {
    let creds = |path: &Path, what: &str, e: &dyn std::fmt::Display| {
        SendError::Credentials(format!("{what} {}: {e}", path.display()))
    };
    let load = |path: &Path, what: &str| -> Result<Vec<CertificateDer<'static>>, SendError> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| creds(path, what, &e))?;
        if certs.is_empty() {
            return Err(creds(path, what, &"no PEM certificate in the file"));
        }
        Ok(certs)
    };
    let mut roots = RootCertStore::empty();
    for ca in load(files.ca, "--ca")? {
        roots.add(ca).map_err(|e| creds(files.ca, "--ca", &e))?;
    }
    let chain = load(files.cert, "--cert")?;
    let key = PrivateKeyDer::from_pem_file(files.key).map_err(|e| creds(files.key, "--key", &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| SendError::Other(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => SendError::Credentials(format!(
                "--key {} is not the private key of --cert {}: give the .key file written \
                 with that certificate by `crashdrop-certs host`",
                files.key.display(),
                files.cert.display()
            )),
            other => creds(files.key, "--cert/--key", &other),
        })?;
    Ok(Arc::new(config))
}

/// Connects and completes the TLS handshake with `server_name` as the name to verify.
pub async fn connect(
    config: Arc<ClientConfig>,
    address: &str,
    server_name: &str,
) -> Result<TlsStream<TcpStream>, SendError> {
    let name = ServerName::try_from(server_name.to_owned()).map_err(|_| {
        SendError::Credentials(format!(
            "--server-name {server_name}: not a valid DNS name or IP address"
        ))
    })?;
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|e| SendError::Retryable(format!("cannot connect to {address}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| explain_tls_error(&e, address, server_name))
}

/// Maps a TLS-level I/O error to an actionable message and a retry decision.
pub fn explain_tls_error(e: &std::io::Error, address: &str, server_name: &str) -> SendError {
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return SendError::Retryable(format!("connection to {address} failed: {e}"));
    };
    match tls {
        rustls::Error::InvalidCertificate(why) => {
            SendError::Identity(tls_explain::receiver_certificate(why, address, server_name))
        }
        rustls::Error::AlertReceived(alert) => match tls_explain::receiver_alert(*alert) {
            Some(meaning) => SendError::Identity(format!(
                "the receiver at {address} refused this host's certificate: {meaning}; check \
                 that --cert/--key were issued by the receiver's CA (crashdrop-certs host) and \
                 have not expired or been revoked"
            )),
            None => SendError::Retryable(format!("TLS with {address} failed: {tls}")),
        },
        other => SendError::Retryable(format!("TLS with {address} failed: {other}")),
    }
}
