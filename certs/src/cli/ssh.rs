//! `crashdrop-certs ssh-host-key` and `ssh-client-key`: key pairs for the SSH transport.

use std::path::PathBuf;

use clap::Args;

/// Make the receiver's SSH host key: DIR/ssh_host_ed25519_key (0600) and its .pub
///
/// Start crashdropd with --ssh-host-key DIR/ssh_host_ed25519_key, and give each sender the
/// printed line as --server-key (it pins the receiver: any other key is refused).
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct SshHostKeyArgs {
    /// Directory to write the key into (created if missing).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
}

/// Make a host's SSH client key: DIR/NAME.ssh (0600) and DIR/NAME.ssh.pub
///
/// Append the printed line to the receiver's --ssh-authorized-keys file (then SIGHUP
/// crashdropd) and install DIR/NAME.ssh on the host as crashdrop-send's --identity.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct SshClientKeyArgs {
    /// Directory to write the key into (created if missing).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// The host's name: its identity on the receiver (rules as for `host`).
    #[arg(value_name = "NAME")]
    name: String,
}

pub fn run_host(args: SshHostKeyArgs) -> anyhow::Result<()> {
    let out = crashdrop_certs::ssh_host_key(&args.dir)?;
    println!("Wrote the receiver's SSH host key ({}):", out.fingerprint);
    println!(
        "  {}  private key: crashdropd --ssh-host-key (keep it mode 0600)",
        out.private.display()
    );
    println!("  {}  public key", out.public.display());
    println!();
    println!("Senders pin it with:");
    println!("  --server-key '{}'", out.line);
    Ok(())
}

pub fn run_client(args: SshClientKeyArgs) -> anyhow::Result<()> {
    let out = crashdrop_certs::ssh_client_key(&args.dir, &args.name)?;
    println!(
        "Wrote an SSH key for host {:?} ({}):",
        args.name.to_ascii_lowercase(),
        out.fingerprint
    );
    println!(
        "  {}  private key: crashdrop-send --identity (copy to the host only, mode 0600)",
        out.private.display()
    );
    println!("  {}  public key", out.public.display());
    println!();
    println!("Append this line to crashdropd's --ssh-authorized-keys file, then send it SIGHUP:");
    println!("{}", out.line);
    Ok(())
}
