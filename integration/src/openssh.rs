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
