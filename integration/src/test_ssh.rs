//! SSH keys made at test time with `crashdrop_certs` ([`TestSshKeys`]): the receiver's host key,
//! one client key per host, and the receiver's authorized-keys file, which a test can rewrite
//! (then SIGHUP the receiver) to add or remove hosts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crashdrop_certs::SshKeyOutput;

use crate::workspace::bin_path;

/// A directory of SSH keys for one test.
pub struct TestSshKeys {
    dir: tempfile::TempDir,
    /// The receiver's host key (`ssh_host_ed25519_key`) and its public line.
    pub host_key: SshKeyOutput,
    /// Each host's client key and its `crashdrop-host="NAME" ...` line.
    clients: BTreeMap<String, SshKeyOutput>,
}

impl TestSshKeys {
    /// A host key, a client key per host, and an authorized-keys file listing all of them.
    pub fn new(hosts: &[&str]) -> TestSshKeys {
        let dir = tempfile::tempdir().expect("tempdir");
        let host_key = crashdrop_certs::ssh_host_key(&dir.path().join("receiver"))
            .unwrap_or_else(|e| panic!("ssh_host_key: {e}"));
        let mut keys = TestSshKeys {
            dir,
            host_key,
            clients: BTreeMap::new(),
        };
        for host in hosts {
            keys.add_client(host);
        }
        keys.authorize(hosts);
        keys
    }

    /// Makes a client key for `host` (not yet authorized) and returns its private key file.
    pub fn add_client(&mut self, host: &str) -> PathBuf {
        let key = crashdrop_certs::ssh_client_key(&self.dir.path().join("clients"), host)
            .unwrap_or_else(|e| panic!("ssh_client_key({host}): {e}"));
        let path = key.private.clone();
        self.clients.insert(host.to_owned(), key);
        path
    }

    /// Rewrites the authorized-keys file to hold exactly `hosts`' keys.
    pub fn authorize(&self, hosts: &[&str]) {
        let mut text = String::from("# written by the test\n");
        for host in hosts {
            text.push_str(&self.client(host).line);
            text.push('\n');
        }
        std::fs::write(self.authorized_keys(), text).expect("write authorized_keys");
    }

    /// `host`'s client key (made by [`TestSshKeys::new`] or [`TestSshKeys::add_client`]).
    pub fn client(&self, host: &str) -> &SshKeyOutput {
        self.clients
            .get(host)
            .unwrap_or_else(|| panic!("no SSH client key for {host}"))
    }

    /// `host`'s private key file, for `crashdrop-send --identity`.
    pub fn identity(&self, host: &str) -> &Path {
        &self.client(host).private
    }

    pub fn authorized_keys(&self) -> PathBuf {
        self.dir.path().join("authorized_keys")
    }

    /// The `serve` flags for an SSH listener on 127.0.0.1:0 with these keys.
    pub fn serve_args(&self) -> Vec<String> {
        self.serve_args_on("127.0.0.1:0")
    }

    /// The `serve` flags for an SSH listener on `listen` with these keys.
    pub fn serve_args_on(&self, listen: &str) -> Vec<String> {
        vec![
            "--ssh-listen".into(),
            listen.into(),
            "--ssh-host-key".into(),
            self.host_key.private.display().to_string(),
            "--ssh-authorized-keys".into(),
            self.authorized_keys().display().to_string(),
        ]
    }

    /// A scratch directory inside the key directory (e.g. for a known_hosts file).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A `crashdrop-send` command to an SSH `url` as `host`, pinning `server_key` (a public key line).
pub fn ssh_sender_to(
    url: &str,
    identity: &Path,
    server_key: &str,
    vmcore: &Path,
    level: u8,
) -> Command {
    let mut cmd = Command::new(bin_path("crashdrop-send"));
    cmd.arg("--receiver")
        .arg(url)
        .arg("--identity")
        .arg(identity)
        .arg("--server-key")
        .arg(server_key)
        .arg("--vmcore")
        .arg(vmcore)
        .arg("--dump-level")
        .arg(level.to_string());
    cmd
}
