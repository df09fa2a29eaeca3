//! Start-up checks of the receiver's own certificate, so that a wrong file is found when the
//! daemon starts and not when a host crashes: senders would refuse a client certificate, one
//! out of its validity period or one that names nothing they can dial.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

/// Why the receiver's certificate cannot serve senders.
#[derive(Debug, thiserror::Error)]
pub enum ServerCertError {
    #[error("receiver certificate {}: does not parse as X.509: {why}", path.display())]
    Parse { path: PathBuf, why: String },
    #[error(
        "receiver certificate {}: lacks the serverAuth extended key usage (it looks like a host's \
         client certificate); give --tls-cert the receiver.pem that `crashdrop-certs init` wrote",
        path.display()
    )]
    NotForServers { path: PathBuf },
    #[error(
        "receiver certificate {}: valid only from {not_before} to {not_after} and it is now {now}; \
         issue a new one with `crashdrop-certs init` (or check this machine's clock)",
        path.display()
    )]
    NotValidNow {
        path: PathBuf,
        not_before: String,
        not_after: String,
        now: String,
    },
    #[error(
        "receiver certificate {}: names no DNS name or IP address (subjectAltName), so no sender \
         can verify it; issue it with `crashdrop-certs init --receiver-name NAME`",
        path.display()
    )]
    NoNames { path: PathBuf },
}

/// The names (DNS names and IP addresses) that the receiver certificate `leaf`, read from
/// `path`, lets senders dial; an error if senders would refuse it.
pub fn check(path: &Path, leaf: &CertificateDer<'_>) -> Result<Vec<String>, ServerCertError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| ServerCertError::Parse {
            path: path.to_owned(),
            why: e.to_string(),
        })?;
    let parse = |e: x509_parser::error::X509Error| ServerCertError::Parse {
        path: path.to_owned(),
        why: e.to_string(),
    };
    // rustls senders (webpki) require serverAuth when the extension is present; without it any
    // use is allowed, as RFC 5280 says.
    if let Some(eku) = cert.extended_key_usage().map_err(parse)? {
        if !eku.value.server_auth && !eku.value.any {
            return Err(ServerCertError::NotForServers {
                path: path.to_owned(),
            });
        }
    }
    let validity = cert.validity();
    if !validity.is_valid() {
        return Err(ServerCertError::NotValidNow {
            path: path.to_owned(),
            not_before: validity.not_before.to_string(),
            not_after: validity.not_after.to_string(),
            now: x509_parser::time::ASN1Time::now().to_string(),
        });
    }
    let names: Vec<String> = cert
        .subject_alternative_name()
        .map_err(parse)?
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some((*dns).to_string()),
                    GeneralName::IPAddress(bytes) => ip_address(bytes).map(|ip| ip.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        return Err(ServerCertError::NoNames {
            path: path.to_owned(),
        });
    }
    Ok(names)
}

fn ip_address(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{check, ServerCertError};
    use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair, SanType};
    use std::path::Path;

    fn cert(params: CertificateParams) -> rustls::pki_types::CertificateDer<'static> {
        let key = KeyPair::generate().expect("key");
        params.self_signed(&key).expect("self-signed").der().clone()
    }

    fn params(names: &[&str], eku: Vec<ExtendedKeyUsagePurpose>) -> CertificateParams {
        let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
        p.extended_key_usages = eku;
        p
    }

    #[test]
    fn a_server_certificate_passes_and_its_names_are_listed() {
        let mut p = params(
            &["dumps.example.com"],
            vec![ExtendedKeyUsagePurpose::ServerAuth],
        );
        p.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
        let names = check(Path::new("r.pem"), &cert(p)).expect("usable");
        assert_eq!(names, ["dumps.example.com", "127.0.0.1"]);
    }

    #[test]
    fn a_client_certificate_is_refused_as_the_receivers() {
        let p = params(&["web-7"], vec![ExtendedKeyUsagePurpose::ClientAuth]);
        let err = check(Path::new("h.pem"), &cert(p)).expect_err("client cert");
        assert!(
            matches!(err, ServerCertError::NotForServers { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("h.pem"), "{err}");
    }

    #[test]
    fn an_expired_certificate_is_refused_with_its_dates() {
        let mut p = params(&["dumps"], vec![ExtendedKeyUsagePurpose::ServerAuth]);
        p.not_before = rcgen::date_time_ymd(2001, 1, 1);
        p.not_after = rcgen::date_time_ymd(2002, 1, 1);
        let err = check(Path::new("r.pem"), &cert(p)).expect_err("expired");
        assert!(matches!(err, ServerCertError::NotValidNow { .. }), "{err}");
        assert!(err.to_string().contains("2002"), "{err}");
    }

    #[test]
    fn a_certificate_naming_nothing_is_refused() {
        let p = params(&[], vec![]);
        let err = check(Path::new("r.pem"), &cert(p)).expect_err("no names");
        assert!(matches!(err, ServerCertError::NoNames { .. }), "{err}");
    }
}
