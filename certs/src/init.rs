//! `init`: creates the CA and the receiver's server certificate in a certificate directory.

use std::fs::DirBuilder;
use std::net::IpAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use crashdrop_proto::HostName;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::pem_file::{self, Existing, Mode};
use crate::{ca, validity, CertError, CertPaths, CA_STEM, DEFAULT_VALIDITY_DAYS, RECEIVER_STEM};

/// Why `init` never replaces `ca.key` or `ca.pem`.
const CA_WHY: &str =
    "replacing the CA would orphan every enrolled host; remove it yourself if that is what you want";

/// Options for [`init_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOptions {
    /// The names senders use to reach the receiver, each a DNS name or an IP address (v4 or v6).
    /// Each becomes a subject alternative name of the receiver certificate; the first is also its
    /// common name. At least one is required.
    pub receiver_names: Vec<String>,
    /// How many days the CA and the receiver certificate are valid.
    pub validity_days: u32,
}

impl InitOptions {
    /// Options for these receiver names, valid for [`DEFAULT_VALIDITY_DAYS`].
    pub fn new(receiver_names: Vec<String>) -> Self {
        InitOptions {
            receiver_names,
            validity_days: DEFAULT_VALIDITY_DAYS,
        }
    }
}

/// What [`init`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOutput {
    /// `ca.pem` and `ca.key`.
    pub ca: CertPaths,
    /// `receiver.pem` and `receiver.key`.
    pub receiver: CertPaths,
}

/// Creates a CA and a receiver certificate for `receiver_names` in `dir`, valid for
/// [`DEFAULT_VALIDITY_DAYS`]. See [`init_with`].
pub fn init(dir: &Path, receiver_names: &[String]) -> Result<InitOutput, CertError> {
    init_with(dir, &InitOptions::new(receiver_names.to_vec()))
}

/// Creates `dir` if needed (mode 0700) and writes `ca.pem`, `ca.key`, `receiver.pem` and
/// `receiver.key` into it.
///
/// Refuses with [`CertError::AlreadyExists`] if `ca.key` (or `ca.pem`: the key may be kept
/// offline) exists: replacing a CA would orphan every host enrolled with it. `ca.key` is written
/// first and claimed without overwriting, so of two concurrent runs only one creates a CA; the
/// receiver files, which belong to that CA, are replaced if present.
pub fn init_with(dir: &Path, opts: &InitOptions) -> Result<InitOutput, CertError> {
    let common_name = opts
        .receiver_names
        .first()
        .ok_or(CertError::NoReceiverNames)?;
    let sans = receiver_sans(&opts.receiver_names)?;
    let (not_before, not_after) = validity::days_from_now(opts.validity_days)?;
    let ca_paths = CertPaths::in_dir(dir, CA_STEM);
    let receiver_paths = CertPaths::in_dir(dir, RECEIVER_STEM);

    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| CertError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    // ca.pem too: it may be there without ca.key when the key is kept offline.
    pem_file::refuse_existing(&ca_paths.key, CA_WHY)?;
    pem_file::refuse_existing(&ca_paths.cert, CA_WHY)?;

    let generate = |what| move |source| CertError::Generate { what, source };
    let ca_key = KeyPair::generate().map_err(generate("CA key"))?;
    let ca_params = ca::ca_params(not_before, not_after);
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(generate("CA certificate"))?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca_params, ca_key);

    let receiver_key = KeyPair::generate().map_err(generate("receiver key"))?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name.as_str());
    params.distinguished_name = name;
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    let receiver_cert = params
        .signed_by(&receiver_key, &issuer)
        .map_err(generate("receiver certificate"))?;

    pem_file::write(
        &ca_paths.key,
        ca_key_pem.as_bytes(),
        Mode::Secret,
        Existing::Refuse(CA_WHY),
    )?;
    pem_file::write(
        &ca_paths.cert,
        ca_cert.pem().as_bytes(),
        Mode::Public,
        Existing::Refuse(CA_WHY),
    )?;
    pem_file::write(
        &receiver_paths.key,
        receiver_key.serialize_pem().as_bytes(),
        Mode::Secret,
        Existing::Replace,
    )?;
    pem_file::write(
        &receiver_paths.cert,
        receiver_cert.pem().as_bytes(),
        Mode::Public,
        Existing::Replace,
    )?;
    Ok(InitOutput {
        ca: ca_paths,
        receiver: receiver_paths,
    })
}

/// The receiver certificate's subject alternative names: an IP SAN for each IP address, a DNS
/// SAN for each DNS name.
fn receiver_sans(names: &[String]) -> Result<Vec<SanType>, CertError> {
    names
        .iter()
        .map(|name| {
            if let Ok(ip) = name.parse::<IpAddr>() {
                return Ok(SanType::IpAddress(ip));
            }
            // Host names and DNS names follow the same label rules; one parser checks both.
            let dns = HostName::parse(name).map_err(|e| CertError::InvalidReceiverName {
                name: name.clone(),
                rule: e.rule,
            })?;
            let ia5 = dns
                .as_str()
                .try_into()
                .map_err(|source| CertError::Generate {
                    what: "receiver certificate",
                    source,
                })?;
            Ok(SanType::DnsName(ia5))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki::{mode_of, read_pem};
    use std::fs;
    use std::net::Ipv4Addr;
    use x509_parser::extensions::GeneralName;

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn writes_four_files_with_private_keys_0600() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("pki");
        let out = init(&dir, &names(&["dumps.example.com"])).expect("init");
        assert_eq!(out.ca, CertPaths::in_dir(&dir, "ca"));
        assert_eq!(out.receiver, CertPaths::in_dir(&dir, "receiver"));
        for key in [&out.ca.key, &out.receiver.key] {
            assert_eq!(mode_of(key), 0o600, "{}", key.display());
            let pem = fs::read_to_string(key).expect("read key");
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
        }
        for cert in [&out.ca.cert, &out.receiver.cert] {
            assert_eq!(mode_of(cert) & 0o600, 0o600, "{}", cert.display());
        }
        assert_eq!(mode_of(&dir), 0o700);
        assert_eq!(fs::read_dir(&dir).expect("read_dir").count(), 4);
    }

    #[test]
    fn refuses_to_replace_an_existing_ca_key() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = init(tmp.path(), &names(&["a"])).expect("first init");
        let before: Vec<_> = [
            &out.ca.cert,
            &out.ca.key,
            &out.receiver.cert,
            &out.receiver.key,
        ]
        .iter()
        .map(|p| fs::read(p).expect("read"))
        .collect();
        let err = init(tmp.path(), &names(&["b"])).expect_err("second init must fail");
        match &err {
            CertError::AlreadyExists { path, .. } => assert_eq!(path, &out.ca.key),
            other => panic!("unexpected error: {other}"),
        }
        assert!(err.to_string().contains("ca.key"), "{err}");
        let after: Vec<_> = [
            &out.ca.cert,
            &out.ca.key,
            &out.receiver.cert,
            &out.receiver.key,
        ]
        .iter()
        .map(|p| fs::read(p).expect("read"))
        .collect();
        assert_eq!(before, after, "nothing may change");
    }

    #[test]
    fn refuses_to_replace_a_ca_certificate_whose_key_is_elsewhere() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = init(tmp.path(), &names(&["a"])).expect("first init");
        fs::remove_file(&out.ca.key).expect("move the key offline");
        let err = init(tmp.path(), &names(&["a"])).expect_err("second init must fail");
        assert!(
            matches!(&err, CertError::AlreadyExists { path, .. } if path == &out.ca.cert),
            "{err}"
        );
        assert!(!out.ca.key.exists());
    }

    #[test]
    fn ca_is_a_ca_and_receiver_is_a_server_with_ip_and_dns_sans() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = init(
            tmp.path(),
            &names(&["127.0.0.1", "Dumps.Example.com", "::1"]),
        )
        .expect("init");

        let ca_pem = read_pem(&out.ca.cert);
        let ca = ca_pem.parse_x509().expect("parse CA");
        let bc = ca.basic_constraints().expect("bc").expect("bc present");
        assert!(bc.value.ca);
        assert_eq!(bc.value.path_len_constraint, Some(0));
        assert_eq!(ca.subject(), ca.issuer(), "self-signed");
        let ku = ca.key_usage().expect("ku").expect("ku present");
        assert!(ku.value.key_cert_sign());

        let pem = read_pem(&out.receiver.cert);
        let cert = pem.parse_x509().expect("parse receiver");
        assert_eq!(cert.issuer(), ca.subject());
        cert.verify_signature(Some(ca.public_key()))
            .expect("signed by the CA");
        assert!(!cert.is_ca());
        let eku = cert
            .extended_key_usage()
            .expect("eku")
            .expect("eku present");
        assert!(eku.value.server_auth);
        assert!(!eku.value.client_auth);
        let san = cert
            .subject_alternative_name()
            .expect("san")
            .expect("san present");
        assert_eq!(
            san.value.general_names,
            vec![
                GeneralName::IPAddress(&Ipv4Addr::LOCALHOST.octets()),
                GeneralName::DNSName("dumps.example.com"),
                GeneralName::IPAddress(&std::net::Ipv6Addr::LOCALHOST.octets()),
            ]
        );
        let cn = cert.subject().iter_common_name().next().expect("CN");
        assert_eq!(cn.as_str().expect("utf8"), "127.0.0.1");
    }

    #[test]
    fn validity_is_configurable() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let opts = InitOptions {
            receiver_names: names(&["a"]),
            validity_days: 2,
        };
        let out = init_with(tmp.path(), &opts).expect("init");
        for path in [&out.ca.cert, &out.receiver.cert] {
            let pem = read_pem(path);
            let cert = pem.parse_x509().expect("parse");
            let days = cert.validity().time_to_expiration().expect("not expired");
            assert!(days <= time::Duration::days(2) && days > time::Duration::days(1));
        }
    }

    #[test]
    fn bad_receiver_names_are_refused_before_anything_is_written() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("pki");
        assert!(matches!(init(&dir, &[]), Err(CertError::NoReceiverNames)));
        for bad in ["a/b", "", "-x", "x..y", "1.2.3.4/24"] {
            let err = init(&dir, &names(&["ok", bad])).expect_err(bad);
            assert!(
                matches!(&err, CertError::InvalidReceiverName { name, .. } if name == bad),
                "{bad}: {err}"
            );
        }
        assert!(!dir.exists());
    }
}
