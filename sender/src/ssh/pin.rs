//! Which SSH host key the receiver must present: one key given with `--server-key`, or the
//! entries for the receiver in an OpenSSH `known_hosts` file (`--known-hosts`). Anything else is
//! a fatal error that names the expected and the presented SHA256 fingerprints, as `ssh` does.
//!
//! `known_hosts` lines are `[marker] patterns keytype base64 [comment]`, where patterns are
//! comma-separated host names, `[host]:port` for a port other than 22, `*`/`?` wildcards,
//! `!negated` patterns, or one hashed entry `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`
//! (`ssh-keygen -H`). `@revoked` keys are refused; `@cert-authority` lines are skipped (the
//! receiver presents a plain key, never a certificate).

use std::path::{Path, PathBuf};

use data_encoding::BASE64;
use russh::keys::{HashAlg, PublicKey};

use crate::error::SendError;

/// The keys the receiver may present.
#[derive(Debug)]
pub enum ServerKeyPin {
    /// `--server-key 'ssh-ed25519 AAAA...'`.
    Key(PublicKey),
    /// `--known-hosts FILE`: the entries for this receiver, read once at start.
    KnownHosts {
        path: PathBuf,
        /// The name looked up (`host`, or `[host]:port`).
        lookup: String,
        entries: Vec<KnownKey>,
    },
}

/// One `known_hosts` entry that matches the receiver.
#[derive(Debug)]
pub struct KnownKey {
    pub line: usize,
    pub key: PublicKey,
    pub revoked: bool,
}

/// `SHA256:...` with the key type, as `ssh` prints it.
pub fn describe(key: &PublicKey) -> String {
    format!(
        "{} {}",
        key.algorithm().as_str(),
        key.fingerprint(HashAlg::Sha256)
    )
}

impl ServerKeyPin {
    /// `--server-key`: `ssh-ed25519 AAAA... [comment]` (the line `crashdrop-certs ssh-host-key`
    /// prints, or the receiver's `.pub` file).
    pub fn from_line(text: &str) -> Result<ServerKeyPin, SendError> {
        let mut fields = text.split_ascii_whitespace();
        let (Some(kind), Some(data)) = (fields.next(), fields.next()) else {
            return Err(SendError::Credentials(format!(
                "--server-key {text:?}: expected the receiver's public key line, e.g. 'ssh-ed25519 AAAAC3Nza...' (crashdrop-certs ssh-host-key prints it)"
            )));
        };
        PublicKey::from_openssh(&format!("{kind} {data}"))
            .map(ServerKeyPin::Key)
            .map_err(|e| {
                SendError::Credentials(format!("--server-key: not a valid {kind} key: {e}"))
            })
    }

    /// `--known-hosts FILE`: the entries for `host` on `port`.
    pub fn from_known_hosts(path: &Path, host: &str, port: u16) -> Result<ServerKeyPin, SendError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            SendError::Credentials(format!("--known-hosts {}: {e}", path.display()))
        })?;
        let lookup = if port == 22 {
            host.to_owned()
        } else {
            format!("[{host}]:{port}")
        };
        let entries = parse_known_hosts(&text, &lookup).map_err(|(line, why)| {
            SendError::Credentials(format!("--known-hosts {}:{line}: {why}", path.display()))
        })?;
        Ok(ServerKeyPin::KnownHosts {
            path: path.to_owned(),
            lookup,
            entries,
        })
    }

    /// Accepts `presented` or says why not (fatal: retrying cannot fix a wrong key).
    pub fn check(&self, presented: &PublicKey, address: &str) -> Result<(), SendError> {
        let presented_text = describe(presented);
        let warning = "someone may be intercepting the connection, or the receiver's SSH host key was replaced";
        match self {
            ServerKeyPin::Key(pinned) if pinned.key_data() == presented.key_data() => Ok(()),
            ServerKeyPin::Key(pinned) => Err(SendError::Refused(format!(
                "the receiver at {address} presented the SSH host key {presented_text}, but --server-key pins {}: {warning}. Nothing was sent. If the change is expected, pin the new key (ssh-keygen -lf ssh_host_ed25519_key.pub on the receiver shows its fingerprint)",
                describe(pinned)
            ))),
            ServerKeyPin::KnownHosts {
                path,
                lookup,
                entries,
            } => {
                let same = |k: &KnownKey| k.key.key_data() == presented.key_data();
                if let Some(revoked) = entries.iter().find(|k| k.revoked && same(k)) {
                    return Err(SendError::Refused(format!(
                        "the receiver at {address} presented the SSH host key {presented_text}, which {}:{} marks @revoked; nothing was sent",
                        path.display(),
                        revoked.line
                    )));
                }
                if entries.iter().any(|k| !k.revoked && same(k)) {
                    return Ok(());
                }
                let expected: Vec<String> = entries
                    .iter()
                    .filter(|k| !k.revoked)
                    .map(|k| format!("{} (line {})", describe(&k.key), k.line))
                    .collect();
                if expected.is_empty() {
                    Err(SendError::Refused(format!(
                        "{} has no key for {lookup}; the receiver at {address} presented {presented_text}. Nothing was sent. Add the receiver's key as `{lookup} ssh-ed25519 AAAA...` (the line crashdrop-certs ssh-host-key printed) after checking its fingerprint on the receiver",
                        path.display()
                    )))
                } else {
                    Err(SendError::Refused(format!(
                        "the receiver at {address} presented the SSH host key {presented_text}, but {} expects {} for {lookup}: {warning}. Nothing was sent",
                        path.display(),
                        expected.join(", ")
                    )))
                }
            }
        }
    }
}

/// The entries of a `known_hosts` text whose patterns match `lookup`; `Err((line, why))` for a
/// matching line whose key does not parse (a line for another host is never our business).
fn parse_known_hosts(text: &str, lookup: &str) -> Result<Vec<KnownKey>, (usize, String)> {
    let mut found = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index.saturating_add(1);
        let mut fields = raw.split_ascii_whitespace().peekable();
        let revoked = match fields.peek() {
            None => continue,
            Some(f) if f.starts_with('#') => continue,
            Some(&"@revoked") => {
                fields.next();
                true
            }
            Some(&"@cert-authority") => continue,
            Some(f) if f.starts_with('@') => {
                return Err((line, format!("unknown marker {f}")));
            }
            Some(_) => false,
        };
        let (Some(patterns), Some(kind), Some(data)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !patterns_match(patterns, lookup) {
            continue;
        }
        let key = PublicKey::from_openssh(&format!("{kind} {data}")).map_err(|e| {
            (
                line,
                format!("the {kind} key for {lookup} does not parse: {e}"),
            )
        })?;
        found.push(KnownKey { line, key, revoked });
    }
    Ok(found)
}

/// OpenSSH's rule: some positive pattern matches and no negated one does.
fn patterns_match(patterns: &str, name: &str) -> bool {
    if let Some(hashed) = patterns.strip_prefix("|1|") {
        return hashed_matches(hashed, name);
    }
    let mut matched = false;
    for pattern in patterns.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if glob(&negated.to_ascii_lowercase(), &name.to_ascii_lowercase()) {
                return false;
            }
        } else if glob(&pattern.to_ascii_lowercase(), &name.to_ascii_lowercase()) {
            matched = true;
        }
    }
    matched
}

/// `salt|hash` (both base64): HMAC-SHA1 keyed with the salt over the name.
fn hashed_matches(hashed: &str, name: &str) -> bool {
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (
        BASE64.decode(salt.as_bytes()),
        BASE64.decode(hash.as_bytes()),
    ) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
    ring::hmac::verify(&key, name.as_bytes(), &hash).is_ok()
}

/// `*` (any run) and `?` (any one character) wildcards, iteratively (no recursion on input).
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || Some(&c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::{Algorithm, PrivateKey};

    fn key() -> PublicKey {
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
            .expect("key")
            .public_key()
            .clone()
    }

    fn line(key: &PublicKey) -> String {
        key.to_openssh().expect("openssh")
    }

    /// `|1|salt|hash` for `name`, as `ssh-keygen -H` writes it.
    fn hashed(name: &str, salt: &[u8]) -> String {
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
        let tag = ring::hmac::sign(&k, name.as_bytes());
        format!("|1|{}|{}", BASE64.encode(salt), BASE64.encode(tag.as_ref()))
    }

    #[test]
    fn globs_and_negations_follow_openssh() {
        assert!(glob("*.example.com", "web.example.com"));
        assert!(glob("web?", "web1"));
        assert!(!glob("web?", "web12"));
        assert!(glob("*", ""));
        assert!(!glob("a*b", "acd"));
        assert!(patterns_match("[dumps]:7422,other", "[dumps]:7422"));
        assert!(!patterns_match("dumps", "[dumps]:7422"));
        assert!(!patterns_match("*.example,!bad.example", "bad.example"));
        assert!(patterns_match("*.example,!bad.example", "good.example"));
        assert!(patterns_match("DUMPS", "dumps"));
    }

    #[test]
    fn hashed_and_bracketed_entries_pin_the_key_and_a_wrong_key_names_both_fingerprints() {
        let (good, other, wrong) = (key(), key(), key());
        let text = format!(
            "# comment\n\n{} {}\n[other]:7422 {}\n@cert-authority * {}\n",
            hashed("[127.0.0.1]:7422", b"0123456789abcdef0123"),
            line(&good),
            line(&other),
            line(&wrong)
        );
        let entries = parse_known_hosts(&text, "[127.0.0.1]:7422").expect("parses");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].line, 3);
        let pin = ServerKeyPin::KnownHosts {
            path: "known_hosts".into(),
            lookup: "[127.0.0.1]:7422".into(),
            entries,
        };
        pin.check(&good, "127.0.0.1:7422")
            .expect("pinned key accepted");
        let err = pin.check(&wrong, "127.0.0.1:7422").expect_err("wrong key");
        let text = err.to_string();
        assert!(
            text.contains(&wrong.fingerprint(HashAlg::Sha256).to_string()),
            "{text}"
        );
        assert!(
            text.contains(&good.fingerprint(HashAlg::Sha256).to_string()),
            "{text}"
        );
        assert!(matches!(err, SendError::Refused(_)));
        // A different salt or name does not match.
        assert!(!patterns_match(
            &hashed("other", b"salt"),
            "[127.0.0.1]:7422"
        ));
        assert!(patterns_match(&hashed("other", b"salt"), "other"));
    }

    #[test]
    fn an_unknown_host_and_a_revoked_key_are_refused() {
        let (good, revoked) = (key(), key());
        let text = format!("dumps {}\n@revoked dumps {}\n", line(&good), line(&revoked));
        let none = parse_known_hosts(&text, "[elsewhere]:7422").expect("parses");
        let pin = ServerKeyPin::KnownHosts {
            path: "kh".into(),
            lookup: "[elsewhere]:7422".into(),
            entries: none,
        };
        let err = pin.check(&good, "elsewhere:7422").expect_err("unknown");
        assert!(
            err.to_string().contains("has no key for [elsewhere]:7422"),
            "{err}"
        );
        let entries = parse_known_hosts(&text, "dumps").expect("parses");
        let pin = ServerKeyPin::KnownHosts {
            path: "kh".into(),
            lookup: "dumps".into(),
            entries,
        };
        pin.check(&good, "dumps:22").expect("good");
        let err = pin.check(&revoked, "dumps:22").expect_err("revoked");
        assert!(err.to_string().contains("@revoked"), "{err}");
    }

    #[test]
    fn server_key_lines_parse_and_pin_exactly() {
        let (good, wrong) = (key(), key());
        let pin = ServerKeyPin::from_line(&format!("{} crashdropd", line(&good))).expect("line");
        pin.check(&good, "r:7422").expect("same key");
        let err = pin.check(&wrong, "r:7422").expect_err("other key");
        assert!(err.to_string().contains("--server-key pins"), "{err}");
        assert!(matches!(
            ServerKeyPin::from_line("ssh-ed25519"),
            Err(SendError::Credentials(_))
        ));
        assert!(matches!(
            ServerKeyPin::from_line("ssh-ed25519 AAAA!!"),
            Err(SendError::Credentials(_))
        ));
    }
}
