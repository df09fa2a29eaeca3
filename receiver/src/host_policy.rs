//! Which verified client certificates may send: the receiver's own rules on top of "chains to
//! the client CA and is within its validity period" (rustls's verifier, CRLs included).
//!
//! A host certificate must name exactly one host (its DNS subjectAltName), carry the clientAuth
//! extended key usage — even if the CA issued it without any EKU, which webpki would accept for
//! any purpose — and be neither a revoked host nor a revoked serial. [`PolicyVerifier`] applies
//! this during full handshakes (the sender gets a TLS alert); [`HostPolicy::admit`] applies it
//! again after *every* handshake, because a resumed TLS session is never shown to a verifier.

use std::sync::Arc;

use crashdrop_proto::HostName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::revocation::{RevocationList, Revoked};
use crate::tls::{dns_identity, IdentityError};

/// Why an authenticated peer is still not admitted.
#[derive(Debug, thiserror::Error)]
pub enum HostRefusal {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("host certificate lacks the clientAuth extended key usage; issue it with `crashdrop-certs host`")]
    NoClientAuth,
    #[error("revoked: {0}")]
    Revoked(#[from] Revoked),
}

impl HostRefusal {
    /// The TLS alert a full handshake ends with.
    fn to_tls_error(&self) -> rustls::Error {
        rustls::Error::InvalidCertificate(match self {
            HostRefusal::Revoked(_) => CertificateError::Revoked,
            HostRefusal::NoClientAuth => CertificateError::InvalidPurpose,
            HostRefusal::Identity(e) => CertificateError::Other(rustls::OtherError(Arc::new(
                IdentityMessage(e.to_string()),
            ))),
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct IdentityMessage(String);

/// The receiver's rules for host certificates, as in force since the last (re)load.
#[derive(Debug, Default)]
pub struct HostPolicy {
    pub revoked: RevocationList,
}

impl HostPolicy {
    /// The host this leaf certificate (already verified against the CA) may send as.
    pub fn admit(&self, leaf: &CertificateDer<'_>) -> Result<HostName, HostRefusal> {
        let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
            .map_err(|e| IdentityError::Parse(e.to_string()))?;
        let host = dns_identity(&cert)?;
        let client_auth = cert
            .extended_key_usage()
            .map_err(|e| IdentityError::Parse(e.to_string()))?
            .is_some_and(|eku| eku.value.client_auth);
        if !client_auth {
            return Err(HostRefusal::NoClientAuth);
        }
        self.revoked
            .check(host.as_str(), cert.issuer().as_raw(), cert.raw_serial())?;
        Ok(host)
    }

    /// [`admit`](HostPolicy::admit) for the peer of a finished handshake (resumed or not).
    pub fn admit_peer(
        &self,
        peer_certs: Option<&[CertificateDer<'_>]>,
    ) -> Result<HostName, HostRefusal> {
        let leaf = peer_certs
            .and_then(|c| c.first())
            .ok_or(IdentityError::NoCertificate)?;
        self.admit(leaf)
    }
}

/// rustls's verifier (chain, validity, CRLs), then [`HostPolicy::admit`].
#[derive(Debug)]
pub struct PolicyVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    policy: Arc<HostPolicy>,
}

impl PolicyVerifier {
    pub fn new(inner: Arc<dyn ClientCertVerifier>, policy: Arc<HostPolicy>) -> PolicyVerifier {
        PolicyVerifier { inner, policy }
    }
}

impl ClientCertVerifier for PolicyVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        self.policy
            .admit(end_entity)
            .map_err(|refusal| refusal.to_tls_error())?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair};

    fn cert(name: &str, eku: Vec<ExtendedKeyUsagePurpose>) -> CertificateDer<'static> {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec![name.to_owned()]).expect("params");
        params.extended_key_usages = eku;
        params.self_signed(&key).expect("cert").der().clone()
    }

    #[test]
    fn a_certificate_without_the_client_auth_eku_is_refused() {
        let policy = HostPolicy::default();
        let none = cert("web-1", vec![]);
        assert!(matches!(
            policy.admit(&none),
            Err(HostRefusal::NoClientAuth)
        ));
        let server = cert("web-1", vec![ExtendedKeyUsagePurpose::ServerAuth]);
        assert!(matches!(
            policy.admit(&server),
            Err(HostRefusal::NoClientAuth)
        ));
        let client = cert("web-1", vec![ExtendedKeyUsagePurpose::ClientAuth]);
        assert_eq!(policy.admit(&client).expect("admitted").as_str(), "web-1");
    }

    #[test]
    fn a_revoked_host_is_refused_with_the_revoked_alert() {
        let policy = HostPolicy {
            revoked: RevocationList::parse("web-1\n", std::path::Path::new("revoked_hosts"))
                .expect("list"),
        };
        let client = cert("web-1", vec![ExtendedKeyUsagePurpose::ClientAuth]);
        let refusal = policy.admit(&client).expect_err("revoked");
        assert!(matches!(refusal, HostRefusal::Revoked(Revoked::Host(_))));
        assert!(matches!(
            refusal.to_tls_error(),
            rustls::Error::InvalidCertificate(CertificateError::Revoked)
        ));
        let other = cert("web-2", vec![ExtendedKeyUsagePurpose::ClientAuth]);
        assert!(policy.admit(&other).is_ok());
    }
}
