//! TLS failures in words an operator can act on: which side refused which certificate, why, and
//! what to change. rustls' own Debug output (`InvalidPurposeContext { .. }`) names its types, not
//! the fix.

use rustls::{AlertDescription, CertificateError};

/// Why this sender refused the receiver's certificate, and what to do about it.
pub fn receiver_certificate(why: &CertificateError, address: &str, server_name: &str) -> String {
    use CertificateError as E;
    let (reason, fix) = match why {
        E::NotValidForName | E::NotValidForNameContext { .. } => (
            format!("it does not name {server_name} ({why})"),
            format!(
                "pass --server-name with a name the certificate holds, or reissue it with \
                 `crashdrop-certs init --receiver-name {server_name}`"
            ),
        ),
        E::InvalidPurpose | E::InvalidPurposeContext { .. } => (
            "it is not a server certificate (no serverAuth extended key usage; crashdropd was \
             probably given a host certificate as --tls-cert)"
                .to_owned(),
            "give crashdropd the receiver.pem and receiver.key that `crashdrop-certs init` wrote"
                .to_owned(),
        ),
        E::UnknownIssuer | E::BadSignature => (
            "it was not issued by the CA in --ca".to_owned(),
            "give --ca the ca.pem of the PKI that issued the receiver's certificate".to_owned(),
        ),
        E::Expired | E::ExpiredContext { .. } => (
            format!("it has expired ({why})"),
            "renew the receiver's certificate (crashdrop-certs init in a new directory)".to_owned(),
        ),
        E::NotValidYet | E::NotValidYetContext { .. } => (
            format!("it is not valid yet ({why})"),
            "check this machine's clock (capture kernels often start with a wrong one)".to_owned(),
        ),
        E::Revoked => (
            "it has been revoked".to_owned(),
            "give crashdropd a new certificate".to_owned(),
        ),
        other => (
            other.to_string(),
            "check --ca and the receiver's --tls-cert".to_owned(),
        ),
    };
    format!("this sender refused the certificate of the receiver at {address}: {reason}; {fix}")
}

/// What a TLS alert from the receiver says about this host's certificate, or `None` when the
/// alert is not about it.
pub fn receiver_alert(alert: AlertDescription) -> Option<&'static str> {
    use AlertDescription as A;
    Some(match alert {
        A::UnknownCA => "it does not trust the CA that issued --cert",
        A::CertificateExpired => "--cert has expired or is not valid yet",
        A::CertificateRevoked => "--cert has been revoked",
        A::CertificateRequired => "no certificate was presented",
        A::BadCertificate
        | A::UnsupportedCertificate
        | A::CertificateUnknown
        | A::AccessDenied
        | A::HandshakeFailure
        | A::DecryptError => {
            "it rejected --cert (not signed by its --client-ca, or otherwise invalid; the \
             receiver's log says which)"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::ExtendedKeyPurpose;

    #[test]
    fn a_client_certificate_as_server_certificate_is_named_without_debug_structs() {
        let why = CertificateError::InvalidPurposeContext {
            required: ExtendedKeyPurpose::ServerAuth,
            presented: vec![ExtendedKeyPurpose::ClientAuth],
        };
        let text = receiver_certificate(&why, "127.0.0.1:7420", "localhost");
        assert!(text.contains("this sender refused"), "{text}");
        assert!(text.contains("not a server certificate"), "{text}");
        assert!(!text.contains("Context"), "{text}");
    }

    #[test]
    fn alerts_about_our_certificate_are_told_apart() {
        assert!(receiver_alert(AlertDescription::UnknownCA).is_some());
        assert!(receiver_alert(AlertDescription::DecodeError).is_none());
    }
}
