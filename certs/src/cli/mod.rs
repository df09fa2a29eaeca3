//! Command line: one module per subcommand.

mod host;
mod init;
mod revoke;
mod ssh;

use clap::{Parser, Subcommand};

/// Certificates for crashdrop: a private CA, the receiver's certificate, one per host
///
/// crashdropd accepts hosts over TLS 1.3 with mutual authentication. Each host (a machine whose
/// kernel may crash) holds a client certificate from this CA; the certificate's DNS name is the
/// host's identity, and the directory its dumps are stored under. Senders verify the receiver's
/// certificate against the same CA.
///
/// Enrolment:
///
///   1. Once, on a trusted machine:
///      crashdrop-certs init --dir /etc/crashdrop/pki --receiver-name dumps.example.com
///
///   2. For each host:
///      crashdrop-certs host --dir /etc/crashdrop/pki web-7.example.com
///      then copy ca.pem, web-7.example.com.pem and web-7.example.com.key to that host.
///
/// Keep the directory, and ca.key above all, private: whoever holds ca.key can enrol any host.
#[derive(Debug, Parser)]
#[command(name = "crashdrop-certs", version, verbatim_doc_comment)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Init(init::InitArgs),
    Host(host::HostArgs),
    SshHostKey(ssh::SshHostKeyArgs),
    SshClientKey(ssh::SshClientKeyArgs),
    Revoke(revoke::RevokeArgs),
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Init(args) => init::run(args),
            Command::Host(args) => host::run(args),
            Command::SshHostKey(args) => ssh::run_host(args),
            Command::SshClientKey(args) => ssh::run_client(args),
            Command::Revoke(args) => revoke::run(args),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
