//! The SSH authorized-keys file: OpenSSH's `authorized_keys` syntax, where every key carries a
//! `crashdrop-host="NAME"` option naming the one host it may send as.
//!
//! ```text
//! # comments and blank lines are ignored
//! crashdrop-host="web01.example.com" ssh-ed25519 AAAAC3Nza... root@web01
//! restrict,crashdrop-host="db-2" ecdsa-sha2-nistp256 AAAAE2Vj...
//! ```
//!
//! Accepted keys: ed25519, ECDSA (P-256, P-384, P-521) and RSA of at least
//! [`MIN_RSA_BITS`] bits. A host name follows the same rules as a certificate's DNS name
//! ([`HostName::parse`]). One key maps to exactly one host: the same key on two lines is an error
//! naming both. OpenSSH's restricting options (`restrict`, `no-pty`, ...) are accepted and mean
//! nothing more here (the server allows nothing but the `crashdrop` subsystem anyway); options that
//! would widen or change access (`command=`, `from=`, `permitopen=`, ...) are refused rather than
//! silently ignored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crashdrop_proto::HostName;
use russh::keys::ssh_key::public::KeyData;
use russh::keys::{HashAlg, PublicKey};

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// Key types a line may use.
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
];

/// Options that only take rights away; accepted and otherwise ignored.
const RESTRICTING_OPTIONS: &[&str] = &[
    "restrict",
    "no-agent-forwarding",
    "no-port-forwarding",
    "no-pty",
    "no-user-rc",
    "no-X11-forwarding",
    "no-x11-forwarding",
];

/// Why the authorized-keys file does not load.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizedKeysError {
    #[error("cannot read the SSH authorized-keys file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {why}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error("{}:{line}: this key is already on line {first} (a key maps to exactly one host; remove one of the lines)", path.display())]
    Duplicate {
        path: PathBuf,
        first: usize,
        line: usize,
    },
}

/// One authorized key's entry.
#[derive(Debug, Clone)]
pub struct AuthorizedKey {
    pub host: HostName,
    /// Line number in the file, for the log.
    pub line: usize,
}

/// The keys allowed to send, each with its host.
#[derive(Debug, Default)]
pub struct AuthorizedKeys {
    keys: HashMap<KeyData, AuthorizedKey>,
}

impl AuthorizedKeys {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<AuthorizedKeys, AuthorizedKeysError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthorizedKeysError::Read {
            path: path.to_owned(),
            source,
        })?;
        AuthorizedKeys::parse(&text, path)
    }

    /// Parses the text of an authorized-keys file (`path` is only for messages).
    pub fn parse(text: &str, path: &Path) -> Result<AuthorizedKeys, AuthorizedKeysError> {
        let mut keys: HashMap<KeyData, AuthorizedKey> = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index.saturating_add(1);
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (key, host) = parse_line(trimmed).map_err(|why| AuthorizedKeysError::Line {
                path: path.to_owned(),
                line,
                why,
            })?;
            if let Some(first) = keys.get(key.key_data()) {
                return Err(AuthorizedKeysError::Duplicate {
                    path: path.to_owned(),
                    first: first.line,
                    line,
                });
            }
            keys.insert(key.key_data().clone(), AuthorizedKey { host, line });
        }
        Ok(AuthorizedKeys { keys })
    }

    /// The host this key may send as, if it is authorized.
    pub fn host_of(&self, key: &PublicKey) -> Option<&AuthorizedKey> {
        self.keys.get(key.key_data())
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// `SHA256:...` as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// One non-comment line: `[options] keytype base64 [comment]`.
fn parse_line(line: &str) -> Result<(PublicKey, HostName), String> {
    let (options, rest) = match first_token(line) {
        Some((first, rest)) if !KEY_TYPES.contains(&first) && !is_key_type_like(first) => {
            (Some(first), rest.trim_start())
        }
        _ => (None, line),
    };
    let mut host = None;
    for option in split_options(options.unwrap_or(""))? {
        if let Some(value) = option.strip_prefix("crashdrop-host=") {
            if host.is_some() {
                return Err("crashdrop-host is given twice".into());
            }
            let value = unquote(value)
                .ok_or_else(|| format!("crashdrop-host={value}: put the host name in double quotes, e.g. crashdrop-host=\"web01.example.com\""))?;
            host = Some(
                HostName::parse(value).map_err(|e| format!("crashdrop-host=\"{value}\": {e}"))?,
            );
        } else if RESTRICTING_OPTIONS.contains(&option) {
        } else {
            let name = option.split('=').next().unwrap_or(option);
            return Err(format!(
                "option `{name}` is not supported here (crashdropd only runs its own protocol for the key's host); remove it"
            ));
        }
    }
    let host = host.ok_or_else(|| {
        "no crashdrop-host=\"NAME\" option: every key must name the host it sends as".to_owned()
    })?;
    let mut fields = rest.split_ascii_whitespace();
    let kind = fields.next().ok_or("no key after the options")?;
    if !KEY_TYPES.contains(&kind) {
        return Err(format!(
            "key type `{kind}` is not accepted (use ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa of at least {MIN_RSA_BITS} bits)"
        ));
    }
    let base64 = fields.next().ok_or("the key's base64 data is missing")?;
    let key = PublicKey::from_openssh(&format!("{kind} {base64}"))
        .map_err(|e| format!("not a valid {kind} key: {e}"))?;
    if let Some(rsa) = key.key_data().rsa() {
        let bits = rsa_bits(rsa.n().as_positive_bytes().unwrap_or_default());
        if bits < MIN_RSA_BITS {
            return Err(format!(
                "RSA key of {bits} bits is too small (at least {MIN_RSA_BITS}); make a new one with `crashdrop-certs ssh-client-key`"
            ));
        }
    }
    Ok((key, host))
}

/// Bits in a big-endian unsigned number without leading zero bytes.
fn rsa_bits(bytes: &[u8]) -> usize {
    match bytes.first() {
        None => 0,
        Some(&top) => {
            (bytes.len().saturating_sub(1)).saturating_mul(8) + (8 - top.leading_zeros() as usize)
        }
    }
}

/// Something that looks like an SSH key type we do not accept (so it is reported as a key type,
/// not as an unknown option).
fn is_key_type_like(token: &str) -> bool {
    token.starts_with("ssh-") || token.starts_with("ecdsa-") || token.starts_with("sk-")
}

/// The first whitespace-separated token, where double quotes protect spaces.
fn first_token(line: &str) -> Option<(&str, &str)> {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_ascii_whitespace() && !quoted => return Some((&line[..i], &line[i..])),
            _ => {}
        }
    }
    None
}

/// Splits `a,b="x,y",c` at the commas outside quotes.
fn split_options(options: &str) -> Result<Vec<&str>, String> {
    if options.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in options.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&options[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err("an option's double quote is not closed".into());
    }
    out.push(&options[start..]);
    if out.iter().any(|o| o.is_empty()) {
        return Err("an empty option (two commas in a row?)".into());
    }
    Ok(out)
}

/// `"value"` without its quotes (no escapes: host names have no quotes).
fn unquote(value: &str) -> Option<&str> {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .filter(|v| !v.contains('"'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::{Algorithm, PrivateKey};

    fn key_line(algorithm: Algorithm) -> String {
        let key = PrivateKey::random(&mut rand::rng(), algorithm).expect("key");
        key.public_key().to_openssh().expect("openssh")
    }

    fn parse(text: &str) -> Result<AuthorizedKeys, AuthorizedKeysError> {
        AuthorizedKeys::parse(text, Path::new("authorized_keys"))
    }

    #[test]
    fn each_key_maps_to_the_host_its_option_names() {
        let a = key_line(Algorithm::Ed25519);
        let b = key_line(Algorithm::Ecdsa {
            curve: russh::keys::EcdsaCurve::NistP256,
        });
        let text = format!(
            "# hosts\n\ncrashdrop-host=\"WEB01.example.com\" {a} root@web01\nrestrict,crashdrop-host=\"db-2\",no-pty {b}\n"
        );
        let keys = parse(&text).expect("parses");
        assert_eq!(keys.len(), 2);
        let a_key = PublicKey::from_openssh(&a).expect("a");
        let b_key = PublicKey::from_openssh(&b).expect("b");
        assert_eq!(
            keys.host_of(&a_key).expect("a").host.as_str(),
            "web01.example.com"
        );
        assert_eq!(keys.host_of(&b_key).expect("b").host.as_str(), "db-2");
        let other = PublicKey::from_openssh(&key_line(Algorithm::Ed25519)).expect("c");
        assert!(keys.host_of(&other).is_none());
    }

    #[test]
    fn a_duplicate_key_names_both_lines() {
        let a = key_line(Algorithm::Ed25519);
        let text = format!("crashdrop-host=\"one\" {a}\n# x\ncrashdrop-host=\"two\" {a}\n");
        let err = parse(&text).expect_err("duplicate");
        assert!(
            matches!(
                err,
                AuthorizedKeysError::Duplicate {
                    first: 1,
                    line: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn a_line_without_a_host_or_with_a_bad_host_is_refused_with_its_line_number() {
        let a = key_line(Algorithm::Ed25519);
        let err = parse(&format!("{a}\n")).expect_err("no host");
        assert!(err.to_string().contains("authorized_keys:1"), "{err}");
        assert!(err.to_string().contains("crashdrop-host"), "{err}");
        let err = parse(&format!("\ncrashdrop-host=\"../etc\" {a}\n")).expect_err("bad host");
        assert!(err.to_string().contains("authorized_keys:2"), "{err}");
        let err = parse(&format!("crashdrop-host=web {a}\n")).expect_err("unquoted");
        assert!(err.to_string().contains("double quotes"), "{err}");
    }

    #[test]
    fn widening_options_small_rsa_and_other_key_types_are_refused() {
        let a = key_line(Algorithm::Ed25519);
        let err =
            parse(&format!("command=\"sh\",crashdrop-host=\"w\" {a}\n")).expect_err("command");
        assert!(err.to_string().contains("`command`"), "{err}");
        let err =
            parse(&format!("from=\"10.0.0.1\",crashdrop-host=\"w\" {a}\n")).expect_err("from");
        assert!(err.to_string().contains("`from`"), "{err}");
        let err = parse("crashdrop-host=\"w\" ssh-dss AAAAB3NzaC1kc3MAAACBAP\n").expect_err("dss");
        assert!(err.to_string().contains("ssh-dss"), "{err}");
        let err = parse("crashdrop-host=\"w\" ssh-ed25519 AAAA!!\n").expect_err("garbage");
        assert!(err.to_string().contains("not a valid"), "{err}");
        assert_eq!(rsa_bits(&[0x01, 0, 0]), 17);
        assert_eq!(rsa_bits(&[0x80; 256]), 2048);
        assert_eq!(rsa_bits(&[0x7f; 256]), 2047);
    }
}
