//! SSH keys for crashdrop's SSH transport: the receiver's host key (and the line a sender pins)
//! and one client key per host (and the `crashdrop-host="NAME"` line for the receiver's
//! authorized-keys file). Ed25519, OpenSSH formats, private keys 0600, never overwritten.

use std::path::{Path, PathBuf};

use crashdrop_proto::HostName;
use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, HashAlg, PrivateKey};

use crate::pem_file::{self, Existing, Mode};
use crate::CertError;

/// File name of the receiver's SSH host key in its directory (`.pub` beside it).
pub const SSH_HOST_KEY: &str = "ssh_host_ed25519_key";

/// What was written, and the lines to hand on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKeyOutput {
    /// The OpenSSH private key (mode 0600).
    pub private: PathBuf,
    /// The public key, one OpenSSH line (mode 0644).
    pub public: PathBuf,
    /// `ssh-ed25519 AAAA...`: what `crashdrop-send --server-key` pins (host key), or the
    /// authorized-keys line with its `crashdrop-host` option (client key).
    pub line: String,
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
}

/// Writes `dir/ssh_host_ed25519_key` and its `.pub`.
pub fn ssh_host_key(dir: &Path) -> Result<SshKeyOutput, CertError> {
    let (key, public) = generate(dir, SSH_HOST_KEY, "crashdropd")?;
    Ok(SshKeyOutput {
        line: public.clone(),
        ..key
    })
}

/// Writes `dir/<host>.ssh` (private) and `dir/<host>.ssh.pub` for host `name`.
pub fn ssh_client_key(dir: &Path, name: &str) -> Result<SshKeyOutput, CertError> {
    let host = HostName::parse(name)?;
    let stem = format!("{}.ssh", host.as_str());
    let (key, public) = generate(dir, &stem, host.as_str())?;
    Ok(SshKeyOutput {
        line: format!("crashdrop-host=\"{}\" {public}", host.as_str()),
        ..key
    })
}

fn generate(dir: &Path, stem: &str, comment: &str) -> Result<(SshKeyOutput, String), CertError> {
    let write_err = |path: &Path, e: &dyn std::fmt::Display| CertError::Write {
        path: path.to_owned(),
        source: std::io::Error::other(e.to_string()),
    };
    std::fs::create_dir_all(dir).map_err(|source| CertError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let private = dir.join(stem);
    let public = dir.join(format!("{stem}.pub"));
    let mut key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
        .map_err(|e| write_err(&private, &e))?;
    key.set_comment(comment);
    let pem = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| write_err(&private, &e))?;
    let public_line = key
        .public_key()
        .to_openssh()
        .map_err(|e| write_err(&public, &e))?;
    let refuse = Existing::Refuse("an SSH key is never replaced: remove it first if you mean to");
    pem_file::write(&private, pem.as_bytes(), Mode::Secret, refuse)?;
    pem_file::write(
        &public,
        format!("{public_line}\n").as_bytes(),
        Mode::Public,
        refuse,
    )?;
    let fingerprint = key.public_key().fingerprint(HashAlg::Sha256).to_string();
    // The line without the comment: what a sender pins.
    let bare = public_line
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    Ok((
        SshKeyOutput {
            private,
            public,
            line: String::new(),
            fingerprint,
        },
        bare,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn host_and_client_keys_are_private_loadable_and_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = ssh_host_key(dir.path()).expect("host key");
        assert!(host.line.starts_with("ssh-ed25519 "), "{}", host.line);
        let mode = std::fs::metadata(&host.private)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&host.private).expect("read");
        let loaded = PrivateKey::from_openssh(text.as_bytes()).expect("loads");
        assert_eq!(
            loaded.public_key().fingerprint(HashAlg::Sha256).to_string(),
            host.fingerprint
        );
        let err = ssh_host_key(dir.path()).expect_err("second time");
        assert!(matches!(err, CertError::AlreadyExists { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&host.private).expect("read"), text);

        let client = ssh_client_key(dir.path(), "Web-7").expect("client key");
        assert!(
            client
                .line
                .starts_with("crashdrop-host=\"web-7\" ssh-ed25519 "),
            "{}",
            client.line
        );
        assert!(client.private.ends_with("web-7.ssh"));
        assert!(ssh_client_key(dir.path(), "../x").is_err());
    }
}
