//! `issue_host`: issues a host's client certificate, whose DNS name is the host's identity.

use std::path::Path;

use crashdrop_proto::HostName;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

use crate::pem_file::{self, Existing, Mode};
use crate::{
    ca, validity, CertError, CertPaths, CA_STEM, DEFAULT_HOST_VALIDITY_DAYS, RECEIVER_STEM,
};

/// Why an existing host key is not replaced unless asked to.
const HOST_KEY_WHY: &str = "the host is already enrolled; to reissue its certificate, use --force";

/// Options for [`issue_host_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostOptions {
    /// Start of the validity period.
    pub not_before: OffsetDateTime,
    /// End of the validity period (must be after `not_before`; may be in the past, for tests).
    pub not_after: OffsetDateTime,
    /// Replace an existing `<host>.key` and `<host>.pem` (reissue) instead of refusing.
    pub force: bool,
}

impl HostOptions {
    /// Valid from now (backdated an hour for clocks that run behind) for `days` days, no force.
    pub fn valid_for_days(days: u32) -> Result<Self, CertError> {
        let (not_before, not_after) = validity::days_from_now(days)?;
        Ok(HostOptions {
            not_before,
            not_after,
            force: false,
        })
    }
}

/// Issues a certificate for `host` from the CA in `dir`, valid for
/// [`DEFAULT_HOST_VALIDITY_DAYS`]. See [`issue_host_with`].
pub fn issue_host(dir: &Path, host: &str) -> Result<CertPaths, CertError> {
    issue_host_with(
        dir,
        host,
        &HostOptions::valid_for_days(DEFAULT_HOST_VALIDITY_DAYS)?,
    )
}

/// Loads the CA from `dir/ca.pem` + `dir/ca.key` and writes `dir/<host>.key` and `dir/<host>.pem`:
/// a client certificate (ClientAuth) whose DNS subject alternative name and common name are the
/// host name, lowercased.
///
/// The name is checked first with [`HostName::parse`], the rule the receiver applies, so a
/// certificate never names a host the receiver would refuse; `ca` and `receiver` are refused
/// because their files would clobber the CA's and the receiver's. An existing `<host>.key` is
/// replaced only with [`HostOptions::force`].
pub fn issue_host_with(dir: &Path, host: &str, opts: &HostOptions) -> Result<CertPaths, CertError> {
    let name = HostName::parse(host)?;
    let name = name.as_str();
    if name == CA_STEM || name == RECEIVER_STEM {
        return Err(CertError::ReservedHostName {
            name: name.to_owned(),
        });
    }
    validity::check(opts.not_before, opts.not_after)?;

    let issuer = ca::load(dir)?;
    let paths = CertPaths::in_dir(dir, name);
    let existing_key = if opts.force {
        Existing::Replace
    } else {
        pem_file::refuse_existing(&paths.key, HOST_KEY_WHY)?;
        Existing::Refuse(HOST_KEY_WHY)
    };

    let generate = |what| move |source| CertError::Generate { what, source };
    let key = KeyPair::generate().map_err(generate("host key"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.subject_alt_names = vec![SanType::DnsName(
        name.try_into().map_err(generate("host certificate"))?,
    )];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = opts.not_before;
    params.not_after = opts.not_after;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(generate("host certificate"))?;

    // The key first: claiming its name is what makes a concurrent run for the same host fail
    // before it can replace this certificate.
    pem_file::write(
        &paths.key,
        key.serialize_pem().as_bytes(),
        Mode::Secret,
        existing_key,
    )?;
    pem_file::write(
        &paths.cert,
        cert.pem().as_bytes(),
        Mode::Public,
        Existing::Replace,
    )?;
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki::{mode_of, read_pem};
    use crate::{init, InitOutput};
    use std::fs;
    use time::Duration;
    use x509_parser::extensions::GeneralName;

    fn pki() -> (tempfile::TempDir, InitOutput) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = init(tmp.path(), &["receiver.example".to_owned()]).expect("init");
        (tmp, out)
    }

    #[test]
    fn host_cert_chains_to_the_ca_and_names_the_host() {
        let (tmp, out) = pki();
        let paths = issue_host(tmp.path(), "Web-7.example.com").expect("issue");
        assert_eq!(paths, CertPaths::in_dir(tmp.path(), "web-7.example.com"));
        assert_eq!(mode_of(&paths.key), 0o600);

        let ca_pem = read_pem(&out.ca.cert);
        let ca = ca_pem.parse_x509().expect("parse CA");
        assert!(
            ca.basic_constraints()
                .expect("bc")
                .expect("bc present")
                .value
                .ca
        );

        let pem = read_pem(&paths.cert);
        let cert = pem.parse_x509().expect("parse host");
        assert_eq!(cert.issuer(), ca.subject());
        cert.verify_signature(Some(ca.public_key()))
            .expect("signed by the CA");
        assert!(!cert.is_ca());
        let san = cert
            .subject_alternative_name()
            .expect("san")
            .expect("san present");
        assert_eq!(
            san.value.general_names,
            vec![GeneralName::DNSName("web-7.example.com")]
        );
        let eku = cert
            .extended_key_usage()
            .expect("eku")
            .expect("eku present");
        assert!(eku.value.client_auth);
        assert!(!eku.value.server_auth);
        let cn = cert.subject().iter_common_name().next().expect("CN");
        assert_eq!(cn.as_str().expect("utf8"), "web-7.example.com");
    }

    #[test]
    fn bad_host_names_are_refused_and_nothing_is_written() {
        let (tmp, _) = pki();
        for bad in [
            "../x", "a/b", ".x", "", "x.", "a..b", "-x", "nul\0", "sp ace",
        ] {
            let err = issue_host(tmp.path(), bad).expect_err(bad);
            assert!(
                matches!(&err, CertError::InvalidHostName(e) if e.name == bad),
                "{bad:?}: {err}"
            );
            assert!(err.to_string().contains("invalid host name"), "{err}");
        }
        for reserved in ["ca", "CA", "receiver"] {
            let err = issue_host(tmp.path(), reserved).expect_err(reserved);
            assert!(matches!(err, CertError::ReservedHostName { .. }), "{err}");
        }
        assert_eq!(fs::read_dir(tmp.path()).expect("read_dir").count(), 4);
    }

    #[test]
    fn expired_certificate_on_request() {
        let (tmp, _) = pki();
        let now = OffsetDateTime::now_utc();
        let opts = HostOptions {
            not_before: now - Duration::days(30),
            not_after: now - Duration::days(1),
            force: false,
        };
        let paths = issue_host_with(tmp.path(), "old", &opts).expect("issue");
        let pem = read_pem(&paths.cert);
        let cert = pem.parse_x509().expect("parse");
        assert!(cert.validity().not_after.to_datetime() < now);
        assert!(!cert.validity().is_valid());
    }

    #[test]
    fn empty_validity_is_refused() {
        let (tmp, _) = pki();
        let now = OffsetDateTime::now_utc();
        let opts = HostOptions {
            not_before: now,
            not_after: now - Duration::days(1),
            force: false,
        };
        assert!(matches!(
            issue_host_with(tmp.path(), "h", &opts),
            Err(CertError::InvalidValidity(_))
        ));
    }

    #[test]
    fn refuses_to_reissue_without_force() {
        let (tmp, _) = pki();
        let paths = issue_host(tmp.path(), "h").expect("first");
        let key = fs::read(&paths.key).expect("read key");
        let cert = fs::read(&paths.cert).expect("read cert");
        let err = issue_host(tmp.path(), "H").expect_err("second");
        assert!(
            matches!(&err, CertError::AlreadyExists { path, .. } if path == &paths.key),
            "{err}"
        );
        assert_eq!(fs::read(&paths.key).expect("read key"), key);
        assert_eq!(fs::read(&paths.cert).expect("read cert"), cert);

        let opts = HostOptions {
            force: true,
            ..HostOptions::valid_for_days(1).expect("opts")
        };
        issue_host_with(tmp.path(), "h", &opts).expect("forced");
        assert_ne!(fs::read(&paths.key).expect("read key"), key);
        assert_ne!(fs::read(&paths.cert).expect("read cert"), cert);
        assert_eq!(mode_of(&paths.key), 0o600);
    }

    #[test]
    fn missing_ca_is_named() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let err = issue_host(tmp.path(), "h").expect_err("no CA");
        assert!(
            matches!(&err, CertError::CaNotFound { path } if path == &tmp.path().join("ca.pem")),
            "{err}"
        );
        assert!(err.to_string().contains("ca.pem"), "{err}");
    }

    #[test]
    fn a_key_that_is_not_the_cas_is_refused() {
        let (tmp, out) = pki();
        fs::copy(&out.receiver.key, &out.ca.key).expect("swap key");
        let err = issue_host(tmp.path(), "h").expect_err("mismatch");
        assert!(matches!(err, CertError::KeyMismatch { .. }), "{err}");
    }

    #[test]
    fn a_non_ca_certificate_is_refused() {
        let (tmp, out) = pki();
        fs::copy(&out.receiver.key, &out.ca.key).expect("copy key");
        fs::copy(&out.receiver.cert, &out.ca.cert).expect("copy cert");
        let err = issue_host(tmp.path(), "h").expect_err("not a CA");
        assert!(
            matches!(&err, CertError::InvalidCaCert { path, .. } if path == &out.ca.cert),
            "{err}"
        );
    }

    #[test]
    fn garbage_ca_files_are_named() {
        let (tmp, out) = pki();
        fs::write(&out.ca.key, "not a key").expect("write");
        let err = issue_host(tmp.path(), "h").expect_err("bad key");
        assert!(
            matches!(&err, CertError::InvalidKey { path, .. } if path == &out.ca.key),
            "{err}"
        );
        fs::write(&out.ca.cert, "not a cert").expect("write");
        let err = issue_host(tmp.path(), "h").expect_err("bad cert");
        assert!(
            matches!(&err, CertError::InvalidCaCert { path, .. } if path == &out.ca.cert),
            "{err}"
        );
    }
}
