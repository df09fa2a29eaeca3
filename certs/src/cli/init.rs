//! `crashdrop-certs init`: creates the CA and the receiver's certificate.

use std::path::PathBuf;

use clap::Args;
use crashdrop_certs::{InitOptions, DEFAULT_VALIDITY_DAYS};

/// Create the CA and the receiver's certificate (once per deployment)
///
/// Writes into DIR (created with mode 0700 if missing):
///   ca.pem        the CA certificate: crashdropd verifies hosts against it, senders verify
///                 the receiver against it
///   ca.key        the CA private key (0600): it signs every host certificate; keep it offline
///                 if you can
///   receiver.pem  crashdropd's server certificate, naming every --receiver-name
///   receiver.key  its private key (0600)
///
/// Refuses to run if DIR/ca.key exists: a new CA would orphan every enrolled host.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct InitArgs {
    /// Certificate directory to create the CA in.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,

    /// DNS name or IP address (v4 or v6) senders use to reach crashdropd; repeat for each.
    /// Senders check the receiver's certificate against the address they dial, so list every
    /// name and address they may use.
    #[arg(long = "receiver-name", value_name = "NAME", required = true)]
    receiver_names: Vec<String>,

    /// Days the CA and the receiver certificate stay valid. Host certificates stop being
    /// accepted when the CA expires.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_VALIDITY_DAYS)]
    validity_days: u32,
}

pub fn run(args: InitArgs) -> anyhow::Result<()> {
    let opts = InitOptions {
        receiver_names: args.receiver_names,
        validity_days: args.validity_days,
    };
    let out = crashdrop_certs::init_with(&args.dir, &opts)?;
    let dir = args.dir.display();
    println!("Created a CA valid for {} days:", opts.validity_days);
    println!("  {}  CA certificate", out.ca.cert.display());
    println!(
        "  {}  CA private key: keep it secret, it can enrol any host",
        out.ca.key.display()
    );
    println!(
        "Created the receiver certificate for {}:",
        opts.receiver_names.join(", ")
    );
    println!("  {}  receiver certificate", out.receiver.cert.display());
    println!("  {}  receiver private key", out.receiver.key.display());
    println!();
    println!("Next steps:");
    println!(
        "  1. Give crashdropd {} as its certificate, {} as its key,",
        out.receiver.cert.display(),
        out.receiver.key.display()
    );
    println!(
        "     and {} as the CA that host certificates must chain to.",
        out.ca.cert.display()
    );
    println!("  2. Enrol each host that may crash:");
    println!("       crashdrop-certs host --dir {dir} <host-name>");
    Ok(())
}
