//! `revoke`: refuses a host (or one certificate) from now on, by appending it to the
//! `revoked_hosts` file `crashdropd` reads (`--revoked-hosts`) and, when `ca.key` is in the
//! directory, adding its serial to the CA's CRL `crl.pem` (`--client-crl`).
//!
//! `revoked_hosts` has one entry a line — a host name, or `serial HEX` — the format the receiver
//! parses; `#` starts a comment. Both files are rewritten whole and atomically, so a receiver
//! reloading on SIGHUP never reads half of one. Revoking twice adds nothing.

use std::path::{Path, PathBuf};

use crashdrop_proto::HostName;
use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use time::{Duration, OffsetDateTime};
use x509_parser::pem::parse_x509_pem;

use crate::pem_file::{self, Existing, Mode};
use crate::{ca, CertError, CertPaths, CA_STEM};

/// The deny-list file in the certificate directory.
pub const REVOKED_HOSTS_FILE: &str = "revoked_hosts";
/// The CA's certificate revocation list in the certificate directory.
pub const CRL_FILE: &str = "crl.pem";

/// How long a CRL says it is current. `crashdropd` (rustls's default) does not refuse a CRL past
/// its nextUpdate, so this only matters to other tools; every `revoke` signs a fresh one.
const CRL_LIFETIME: Duration = Duration::days(365);

/// What to revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeTarget {
    /// Every certificate naming this host, whenever issued. If `<host>.pem` is in the directory,
    /// its serial also goes into the CRL.
    Host(String),
    /// One certificate, by serial number (hex, colons optional): the host may be enrolled again
    /// with a new certificate.
    Serial(String),
}

/// What [`revoke`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The `revoked_hosts` file.
    pub revoked_hosts: PathBuf,
    /// The line added to it, or `None` if it was already listed.
    pub added: Option<String>,
    /// `crl.pem`, if `ca.key` was there to sign it.
    pub crl: Option<PathBuf>,
    /// Serials (colon hex) the CRL revokes now, all of them.
    pub crl_serials: Vec<String>,
}

/// Revokes `target` in the certificate directory `dir`; see the module documentation.
pub fn revoke(dir: &Path, target: &RevokeTarget) -> Result<Revocation, CertError> {
    let (entry, serial) = match target {
        RevokeTarget::Host(name) => {
            let name = HostName::parse(name)?;
            let cert = CertPaths::in_dir(dir, name.as_str()).cert;
            let serial = if cert.exists() {
                Some(cert_serial(&cert)?)
            } else {
                None
            };
            (name.as_str().to_owned(), serial)
        }
        RevokeTarget::Serial(hex) => {
            let serial = parse_serial(hex).ok_or_else(|| CertError::InvalidSerial(hex.clone()))?;
            (format!("serial {}", serial_hex(&serial)), Some(serial))
        }
    };

    let revoked_hosts = dir.join(REVOKED_HOSTS_FILE);
    let added = append_entry(&revoked_hosts, &entry)?;

    let ca_key = CertPaths::in_dir(dir, CA_STEM).key;
    let (crl, crl_serials) = if ca_key.exists() {
        let (path, serials) = update_crl(dir, serial)?;
        (Some(path), serials)
    } else {
        (None, Vec::new())
    };
    Ok(Revocation {
        revoked_hosts,
        added: added.then_some(entry),
        crl,
        crl_serials,
    })
}

/// Adds `entry` to the `revoked_hosts` file unless it is listed; `true` if it was added.
fn append_entry(path: &Path, entry: &str) -> Result<bool, CertError> {
    let mut text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "# Hosts (or `serial HEX` certificates) crashdropd refuses; written by `crashdrop-certs revoke`.\n".to_owned()
        }
        Err(source) => {
            return Err(CertError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    let listed = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .any(|line| line.split_whitespace().eq(entry.split_whitespace()));
    if listed {
        return Ok(false);
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let today = OffsetDateTime::now_utc().date();
    text.push_str(&format!("{entry}    # revoked {today}\n"));
    pem_file::write(path, text.as_bytes(), Mode::Public, Existing::Replace)?;
    Ok(true)
}

/// Re-signs `crl.pem` with every serial it already revokes plus `serial`.
fn update_crl(dir: &Path, serial: Option<Vec<u8>>) -> Result<(PathBuf, Vec<String>), CertError> {
    let issuer = ca::load(dir)?;
    let path = dir.join(CRL_FILE);
    let now = OffsetDateTime::now_utc();
    let (mut revoked, last_number) = read_crl(&path)?;
    if let Some(serial) = serial {
        if !revoked.iter().any(|(s, _)| *s == serial) {
            revoked.push((serial, now));
        }
    }
    // Monotonic, as RFC 5280 asks: the time of issue, or one more than the last if that is later.
    let seconds = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    let number = seconds.max(last_number.saturating_add(1));
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: now + CRL_LIFETIME,
        crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|(serial, when)| RevokedCertParams {
                serial_number: SerialNumber::from_slice(serial),
                revocation_time: *when,
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let generate = |source| CertError::Generate {
        what: "CRL",
        source,
    };
    let crl = params.signed_by(&issuer).map_err(generate)?;
    let pem = crl.pem().map_err(generate)?;
    pem_file::write(&path, pem.as_bytes(), Mode::Public, Existing::Replace)?;
    Ok((path, revoked.iter().map(|(s, _)| serial_hex(s)).collect()))
}

/// Serials revoked by a CRL, each with its revocation time.
type RevokedSerials = Vec<(Vec<u8>, OffsetDateTime)>;

/// The serials (with revocation times) and CRL number of an existing `crl.pem`; none if absent.
fn read_crl(path: &Path) -> Result<(RevokedSerials, u64), CertError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(source) => {
            return Err(CertError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    let invalid = |reason: String| CertError::InvalidCrl {
        path: path.to_owned(),
        reason,
    };
    let (_, pem) = parse_x509_pem(&text).map_err(|e| invalid(format!("not PEM: {e}")))?;
    let (_, crl) = x509_parser::parse_x509_crl(&pem.contents)
        .map_err(|e| invalid(format!("not a CRL: {e}")))?;
    let revoked = crl
        .iter_revoked_certificates()
        .map(|r| (canonical(r.raw_serial()), r.revocation_date.to_datetime()))
        .collect();
    let number = crl
        .crl_number()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0);
    Ok((revoked, number))
}

/// The serial number of the certificate in `path`.
fn cert_serial(path: &Path) -> Result<Vec<u8>, CertError> {
    let text = std::fs::read(path).map_err(|source| CertError::Read {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |reason: String| CertError::InvalidCert {
        path: path.to_owned(),
        reason,
    };
    let (_, pem) = parse_x509_pem(&text).map_err(|e| invalid(format!("not PEM: {e}")))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| invalid(format!("cannot parse it: {e}")))?;
    Ok(canonical(cert.raw_serial()))
}

/// A serial's magnitude: big-endian bytes without leading zeros.
fn canonical(serial: &[u8]) -> Vec<u8> {
    let start = serial.iter().position(|&b| b != 0).unwrap_or(serial.len());
    serial.get(start..).unwrap_or_default().to_vec()
}

/// `"5a:0f"`, `"5A0F"` or `"0x5a0f"` → canonical bytes; `None` if not hex or not 1-20 bytes.
pub(crate) fn parse_serial(text: &str) -> Option<Vec<u8>> {
    let text = text.strip_prefix("0x").unwrap_or(text);
    let digits: String = text.chars().filter(|&c| c != ':').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let padded = if digits.len() % 2 == 1 {
        format!("0{digits}")
    } else {
        digits
    };
    let bytes = padded
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()?;
    let serial = canonical(&bytes);
    (!serial.is_empty() && serial.len() <= 20).then_some(serial)
}

/// Colon-separated lowercase hex, as `openssl x509 -serial` prints it (without the colons) and
/// `revoked_hosts` holds it.
pub fn serial_hex(serial: &[u8]) -> String {
    let canonical = canonical(serial);
    if canonical.is_empty() {
        return "00".to_owned();
    }
    canonical
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{init, issue_host};

    fn pki() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().expect("tempdir");
        init(tmp.path(), &["receiver.example".to_owned()]).expect("init");
        tmp
    }

    fn crl_serials(path: &Path) -> Vec<Vec<u8>> {
        read_crl(path)
            .expect("crl")
            .0
            .into_iter()
            .map(|(s, _)| s)
            .collect()
    }

    #[test]
    fn revoking_a_host_lists_its_name_and_puts_its_serial_in_a_signed_crl() {
        let tmp = pki();
        let host = issue_host(tmp.path(), "web-7").expect("host");
        let serial = cert_serial(&host.cert).expect("serial");
        let out = revoke(tmp.path(), &RevokeTarget::Host("Web-7".into())).expect("revoke");
        assert_eq!(out.added.as_deref(), Some("web-7"));
        let text = std::fs::read_to_string(&out.revoked_hosts).expect("read");
        assert!(text.lines().any(|l| l.starts_with("web-7 ")), "{text}");
        let crl = out.crl.expect("ca.key is here: a CRL");
        assert_eq!(crl_serials(&crl), vec![serial.clone()]);
        assert_eq!(out.crl_serials, vec![serial_hex(&serial)]);

        // Signed by the CA.
        let ca_pem = std::fs::read(tmp.path().join("ca.pem")).expect("ca");
        let (_, ca_pem) = parse_x509_pem(&ca_pem).expect("pem");
        let ca = ca_pem.parse_x509().expect("ca cert");
        let crl_pem = std::fs::read(&crl).expect("crl");
        let (_, crl_pem) = parse_x509_pem(&crl_pem).expect("pem");
        let (_, parsed) = x509_parser::parse_x509_crl(&crl_pem.contents).expect("crl");
        assert_eq!(parsed.issuer(), ca.subject());
        // x509-parser checks CRL signatures only for some algorithms; the receiver test checks
        // that rustls accepts it.
    }

    #[test]
    fn revoking_twice_adds_nothing_and_serials_accumulate() {
        let tmp = pki();
        issue_host(tmp.path(), "a").expect("a");
        revoke(tmp.path(), &RevokeTarget::Host("a".into())).expect("first");
        let again = revoke(tmp.path(), &RevokeTarget::Host("a".into())).expect("second");
        assert_eq!(again.added, None);
        let by_serial =
            revoke(tmp.path(), &RevokeTarget::Serial("0x00:5A:0f".into())).expect("serial");
        assert_eq!(by_serial.added.as_deref(), Some("serial 5a:0f"));
        assert_eq!(
            by_serial.crl_serials.len(),
            2,
            "{:?}",
            by_serial.crl_serials
        );
        let text = std::fs::read_to_string(&by_serial.revoked_hosts).expect("read");
        assert_eq!(text.lines().filter(|l| l.starts_with("a ")).count(), 1);
        assert!(text.contains("serial 5a:0f"), "{text}");
        let (_, n1) = read_crl(&tmp.path().join(CRL_FILE)).expect("crl");
        revoke(tmp.path(), &RevokeTarget::Serial("77".into())).expect("third");
        let (_, n2) = read_crl(&tmp.path().join(CRL_FILE)).expect("crl");
        assert!(n2 > n1, "the CRL number grows: {n1} then {n2}");
    }

    #[test]
    fn without_ca_key_only_the_list_is_written() {
        let tmp = pki();
        std::fs::remove_file(tmp.path().join("ca.key")).expect("rm");
        let out = revoke(tmp.path(), &RevokeTarget::Host("gone".into())).expect("revoke");
        assert_eq!(out.crl, None);
        assert!(!tmp.path().join(CRL_FILE).exists());
        assert!(std::fs::read_to_string(out.revoked_hosts)
            .expect("read")
            .contains("gone"));
    }

    #[test]
    fn bad_names_and_serials_are_refused_and_nothing_is_written() {
        let tmp = pki();
        assert!(matches!(
            revoke(tmp.path(), &RevokeTarget::Host("../x".into())),
            Err(CertError::InvalidHostName(_))
        ));
        for bad in ["zz", "", "0x", &"ab".repeat(21)] {
            let err = revoke(tmp.path(), &RevokeTarget::Serial(bad.to_owned())).expect_err(bad);
            assert!(matches!(err, CertError::InvalidSerial(_)), "{err}");
        }
        assert!(!tmp.path().join(REVOKED_HOSTS_FILE).exists());
    }
}
