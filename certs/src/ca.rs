//! The certificate authority: its parameters, and loading it back from `ca.pem` + `ca.key` to
//! issue host certificates.

use std::fs;
use std::io;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData,
};
use time::OffsetDateTime;
use x509_parser::pem::parse_x509_pem;

use crate::{CertError, CertPaths, CA_STEM};

/// The CA's subject common name.
pub(crate) const CA_COMMON_NAME: &str = "crashdrop CA";

/// Parameters of a CA valid from `not_before` to `not_after` that signs end-entity certificates
/// only (path length 0: no intermediate CAs).
pub(crate) fn ca_params(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "crashdrop");
    name.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = not_before;
    params.not_after = not_after;
    params
}

/// Loads the CA in `dir` (`ca.pem`, `ca.key`), checking that the certificate is a CA and that the
/// key is its key, so that nothing is ever signed by a key no host would trust.
pub(crate) fn load(dir: &Path) -> Result<Issuer<'static, KeyPair>, CertError> {
    let paths = CertPaths::in_dir(dir, CA_STEM);
    let cert_pem = read_ca_file(&paths.cert)?;
    let key_pem = read_ca_file(&paths.key)?;

    let invalid_cert = |reason: &str| CertError::InvalidCaCert {
        path: paths.cert.clone(),
        reason: reason.to_owned(),
    };
    let (_, pem) =
        parse_x509_pem(cert_pem.as_bytes()).map_err(|_| invalid_cert("no PEM certificate"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| invalid_cert(&format!("cannot parse it: {e}")))?;
    if !cert.is_ca() {
        return Err(invalid_cert("basicConstraints does not say CA=true"));
    }

    let key = KeyPair::from_pem(&key_pem).map_err(|source| CertError::InvalidKey {
        path: paths.key.clone(),
        source,
    })?;
    if cert.public_key().subject_public_key.data.as_ref() != key.der_bytes() {
        return Err(CertError::KeyMismatch {
            key: paths.key,
            cert: paths.cert,
        });
    }

    Issuer::from_ca_cert_pem(&cert_pem, key)
        .map_err(|e| invalid_cert(&format!("cannot use it as an issuer: {e}")))
}

fn read_ca_file(path: &Path) -> Result<String, CertError> {
    fs::read_to_string(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => CertError::CaNotFound {
            path: path.to_path_buf(),
        },
        _ => CertError::Read {
            path: path.to_path_buf(),
            source,
        },
    })
}
