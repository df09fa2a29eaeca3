//! `crashdrop-certs host`: issues one host's client certificate.

use std::path::PathBuf;

use clap::Args;
use crashdrop_certs::{HostOptions, CA_STEM, DEFAULT_HOST_VALIDITY_DAYS};

/// Enrol a host: issue its client certificate from the CA in DIR
///
/// Writes DIR/NAME.pem (the certificate) and DIR/NAME.key (its private key, mode 0600). The
/// certificate's DNS name is NAME, lowercased: the receiver takes it as the host's identity
/// and stores the host's dumps under a directory of that name.
///
/// NAME: 1 to 253 bytes of dot-separated labels, each 1 to 63 of A-Z a-z 0-9 '-' '_', not
/// starting or ending with '-' (for example web-7 or web-7.example.com). "ca" and "receiver"
/// are reserved.
///
/// Then install NAME.pem, NAME.key and DIR/ca.pem on the host and run the sender with:
///   crashdrop-send --receiver tls://RECEIVER:PORT --cert NAME.pem --key NAME.key --ca ca.pem
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct HostArgs {
    /// Certificate directory holding ca.pem and ca.key (made by `crashdrop-certs init`).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,

    /// The host's name: its identity on the receiver.
    #[arg(value_name = "NAME")]
    name: String,

    /// Days the certificate stays valid (default two years: reissue with --force and rebuild
    /// the host's initramfs before then). It is not accepted after the CA expires, whatever
    /// this says.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_HOST_VALIDITY_DAYS)]
    validity_days: u32,

    /// Replace an existing certificate and key for NAME (the old ones stay valid until they
    /// expire: the receiver keeps accepting them).
    #[arg(long)]
    force: bool,
}

pub fn run(args: HostArgs) -> anyhow::Result<()> {
    let opts = HostOptions {
        force: args.force,
        ..HostOptions::valid_for_days(args.validity_days)?
    };
    let paths = crashdrop_certs::issue_host_with(&args.dir, &args.name, &opts)?;
    let ca = args.dir.join(format!("{CA_STEM}.pem"));
    println!(
        "Issued a client certificate for host {:?}, valid for {} days:",
        args.name.to_ascii_lowercase(),
        args.validity_days
    );
    println!("  {}  certificate", paths.cert.display());
    println!(
        "  {}  private key: copy it to the host only, keep it mode 0600",
        paths.key.display()
    );
    println!();
    println!(
        "On the host, install the two files and {}, then run the sender with:",
        ca.display()
    );
    println!(
        "  crashdrop-send --receiver tls://RECEIVER:PORT --cert {} --key {} --ca {}",
        paths.cert.display(),
        paths.key.display(),
        ca.display()
    );
    println!("(paths as installed on the host; the key must stay readable by root only)");
    Ok(())
}
