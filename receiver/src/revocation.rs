//! The revocation list: hosts and certificates the receiver refuses even though their certificate
//! chains to the client CA. Read from the `revoked_hosts` file and from the serial numbers in
//! `client_crl`, re-read on SIGHUP, and checked after every handshake — resumed TLS sessions
//! included, which no certificate verifier sees.
//!
//! The file has one entry a line; `#` starts a comment:
//!
//! ```text
//! web-7.example.com          # a host: every certificate naming it is refused
//! serial 5a:0f:3c:11:9e      # one certificate, by serial number (hex, colons optional)
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crashdrop_proto::HostName;
use rustls::pki_types::CertificateRevocationListDer;

/// Why a revocation list or CRL file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    #[error("revoked_hosts {}: cannot read it: {source} (create it empty if nothing is revoked yet)", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("revoked_hosts {}, line {line}: {reason}: {text:?}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        text: String,
        reason: String,
    },
    #[error("client_crl {}: {reason}", path.display())]
    Crl { path: PathBuf, reason: String },
}

/// Why a certificate is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Revoked {
    #[error("host {0} is listed in revoked_hosts")]
    Host(String),
    #[error("certificate serial {0} is listed in revoked_hosts")]
    Serial(String),
    #[error("certificate serial {0} is revoked by client_crl")]
    Crl(String),
}

/// Revoked host names and certificate serial numbers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RevocationList {
    hosts: HashSet<String>,
    /// Serials from `revoked_hosts`, any issuer (the client CA should be a dedicated one).
    serials: HashSet<Vec<u8>>,
    /// Serials from CRLs, with the raw DER of the issuer that revoked them.
    crl_serials: HashSet<(Vec<u8>, Vec<u8>)>,
}

impl RevocationList {
    /// Reads a `revoked_hosts` file.
    pub fn load(path: &Path) -> Result<RevocationList, RevocationError> {
        let text = std::fs::read_to_string(path).map_err(|source| RevocationError::Read {
            path: path.to_owned(),
            source,
        })?;
        RevocationList::parse(&text, path)
    }

    /// Parses the text of a `revoked_hosts` file (`path` is for error messages).
    pub fn parse(text: &str, path: &Path) -> Result<RevocationList, RevocationError> {
        let mut list = RevocationList::default();
        for (index, raw) in text.lines().enumerate() {
            let entry = raw.split('#').next().unwrap_or_default().trim();
            if entry.is_empty() {
                continue;
            }
            let bad = |reason: &str| RevocationError::Line {
                path: path.to_owned(),
                line: index.saturating_add(1),
                text: raw.to_owned(),
                reason: reason.to_owned(),
            };
            let mut words = entry.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("serial"), Some(hex), None) => {
                    let serial = parse_serial(hex).ok_or_else(|| {
                        bad("a serial is hex digits, optionally separated by ':'")
                    })?;
                    list.serials.insert(serial);
                }
                (Some(name), None, None) => {
                    let host = HostName::parse(name).map_err(|e| bad(&e.to_string()))?;
                    list.hosts.insert(host.as_str().to_owned());
                }
                _ => return Err(bad("expected a host name or `serial HEX`")),
            }
        }
        Ok(list)
    }

    /// Adds the serial numbers revoked by these CRLs (already parsed by rustls's verifier too;
    /// here for resumed sessions, which skip the verifier).
    pub fn add_crls(
        &mut self,
        crls: &[CertificateRevocationListDer<'_>],
        path: &Path,
    ) -> Result<(), RevocationError> {
        for der in crls {
            let (_, crl) =
                x509_parser::parse_x509_crl(der.as_ref()).map_err(|e| RevocationError::Crl {
                    path: path.to_owned(),
                    reason: format!("not a CRL: {e}"),
                })?;
            let issuer = crl.issuer().as_raw().to_vec();
            for revoked in crl.iter_revoked_certificates() {
                self.crl_serials
                    .insert((issuer.clone(), canonical(revoked.raw_serial())));
            }
        }
        Ok(())
    }

    /// `Err` if `host`, or the certificate with this `serial` from `issuer` (raw DER name), is
    /// revoked.
    pub fn check(&self, host: &str, issuer: &[u8], serial: &[u8]) -> Result<(), Revoked> {
        let serial = canonical(serial);
        if self.hosts.contains(host) {
            return Err(Revoked::Host(host.to_owned()));
        }
        if self.serials.contains(&serial) {
            return Err(Revoked::Serial(serial_hex(&serial)));
        }
        if self
            .crl_serials
            .contains(&(issuer.to_vec(), serial.clone()))
        {
            return Err(Revoked::Crl(serial_hex(&serial)));
        }
        Ok(())
    }

    /// Entries in force: (host names, serials from the file, serials from CRLs).
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.hosts.len(), self.serials.len(), self.crl_serials.len())
    }
}

/// A serial's magnitude: big-endian bytes without leading zeros (DER adds one for the sign).
fn canonical(serial: &[u8]) -> Vec<u8> {
    let start = serial.iter().position(|&b| b != 0).unwrap_or(serial.len());
    serial.get(start..).unwrap_or_default().to_vec()
}

/// `"5a:0f"`, `"5A0F"` or `"0x5a0f"` → canonical bytes; `None` if not hex.
fn parse_serial(text: &str) -> Option<Vec<u8>> {
    let text = text.strip_prefix("0x").unwrap_or(text);
    let digits: String = text.chars().filter(|&c| c != ':').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    // An odd count has an implied leading zero.
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
    Some(canonical(&bytes))
}

/// Colon-separated lowercase hex, as `openssl x509 -serial` and `crashdrop-certs` print it.
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

    fn parse(text: &str) -> Result<RevocationList, RevocationError> {
        RevocationList::parse(text, Path::new("/etc/crashdrop/revoked_hosts"))
    }

    #[test]
    fn hosts_and_serials_are_refused_and_others_pass() {
        let list = parse(
            "# revoked 2026-12-01\nWeb-7.Example.com   # stolen initramfs\n\nserial 00:5A:0f\nserial 0x7\n",
        )
        .expect("parses");
        assert_eq!(list.counts(), (1, 2, 0));
        assert_eq!(
            list.check("web-7.example.com", b"ca", &[1]),
            Err(Revoked::Host("web-7.example.com".into()))
        );
        assert_eq!(
            list.check("db-1", b"ca", &[0x00, 0x5a, 0x0f]),
            Err(Revoked::Serial("5a:0f".into())),
            "a DER sign byte does not hide a serial"
        );
        assert!(list.check("db-1", b"ca", &[7]).is_err(), "odd digit count");
        assert_eq!(list.check("db-1", b"ca", &[0x5a, 0x10]), Ok(()));
    }

    #[test]
    fn a_bad_line_is_named_with_its_number() {
        let err = parse("web-7\nserial zz\n").expect_err("bad serial");
        let text = err.to_string();
        assert!(
            text.contains("line 2") && text.contains("serial zz"),
            "{text}"
        );
        let err = parse("web 7 8\n").expect_err("three words");
        assert!(err.to_string().contains("line 1"), "{err}");
        let err = parse("../etc\n").expect_err("not a host name");
        assert!(err.to_string().contains("../etc"), "{err}");
    }

    #[test]
    fn a_missing_file_says_how_to_start_empty() {
        let err =
            RevocationList::load(Path::new("/nonexistent/revoked_hosts")).expect_err("no file");
        assert!(err.to_string().contains("create it empty"), "{err}");
    }

    #[test]
    fn serials_print_as_colon_hex_without_leading_zeros() {
        assert_eq!(serial_hex(&[0x00, 0x9f, 0x01]), "9f:01");
        assert_eq!(serial_hex(&[0]), "00");
        assert_eq!(parse_serial("9F01"), Some(vec![0x9f, 0x01]));
        assert_eq!(parse_serial(""), None);
    }
}
