//! The real OpenSSH client (`ssh`), set up for one test: its own known_hosts file pinning the
//! receiver's host key, one identity, no user or system configuration, no prompts.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use crate::test_ssh::TestSshKeys;
use crate::tools::find_tool;

/// Whether `ssh` is on `PATH`; otherwise [`skip`](crate::skip)s (a failure in CI).
pub fn openssh_client_available() -> bool {
    crate::tools::require_tools(&["ssh"])
}

/// `ssh -p PORT [OPTIONS] crashdrop@HOST` with `identity`, pinning `keys`' host key for `addr`
/// and refusing any other (StrictHostKeyChecking=yes); the test appends a command, a subsystem
/// name (with `-s` in `options`), or nothing (a shell).
pub fn openssh_client(
    keys: &TestSshKeys,
    addr: SocketAddr,
    identity: &Path,
    options: &[&str],
) -> Command {
    let known_hosts = keys
        .path()
        .join(format!("openssh_known_hosts_{}", addr.port()));
    let entry = format!("[{}]:{} {}\n", addr.ip(), addr.port(), keys.host_key.line);
    std::fs::write(&known_hosts, entry).expect("write known_hosts");
    let mut cmd = Command::new(find_tool("ssh").unwrap_or_else(|| "ssh".into()));
    cmd.arg("-F")
        .arg("/dev/null")
        .arg("-T")
        .arg("-i")
        .arg(identity)
        .arg("-p")
        .arg(addr.port().to_string())
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(options)
        .arg(format!("crashdrop@{}", addr.ip()));
    cmd
}

/// A real OpenSSH server (`sshd -D -e`) on a loopback port, with its own `sshd_config`, host key
/// (the test's receiver key) and `authorized_keys`, started by the test as whoever runs it.
pub struct Sshd {
    pub guard: crate::child::ChildGuard,
    pub addr: SocketAddr,
    /// The account to log in as (the one running the test: sshd can only switch to another as
    /// root).
    pub user: String,
}

impl Sshd {
    /// Starts `sshd` with `authorized_keys` (the file's text) for the current user; `None`, with
    /// the skip printed (a failure in CI), when `sshd` is not installed.
    pub fn start(keys: &TestSshKeys, authorized_keys: &str) -> Option<Sshd> {
        let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
            .iter()
            .map(std::path::PathBuf::from)
            .find(|p| p.exists())
            .or_else(|| find_tool("sshd"));
        let Some(sshd) = sshd else {
            crate::skip("sshd (openssh-server) is not installed");
            return None;
        };
        let dir = keys.path().join("sshd");
        std::fs::create_dir_all(&dir).expect("sshd dir");
        let auth = dir.join("authorized_keys");
        std::fs::write(&auth, authorized_keys).expect("authorized_keys");
        let user = current_user();
        let root = user == "root";
        if root {
            // The privilege-separation directory Debian's service unit creates.
            std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        }
        // A free port, released for sshd (which cannot print one it picked itself).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PidFile none\nUsePAM no\nStrictModes no\nPubkeyAuthentication yes\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin {}\nAllowTcpForwarding no\nX11Forwarding no\n\
                 PermitTTY no\nLogLevel VERBOSE\n",
                keys.host_key.private.display(),
                auth.display(),
                if root { "forced-commands-only" } else { "no" },
            ),
        )
        .expect("sshd_config");
        let mut cmd = Command::new(&sshd);
        cmd.arg("-D").arg("-e").arg("-f").arg(&config);
        let guard = crate::child::ChildGuard::spawn("sshd", &mut cmd).expect("start sshd");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !guard.stderr_text().contains("Server listening on") {
            assert!(
                std::time::Instant::now() < deadline,
                "sshd did not start:\n{}",
                guard.stderr_text()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Some(Sshd {
            guard,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            user,
        })
    }

    /// `ssh://USER@127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ssh://{}@{}", self.user, self.addr)
    }
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
