//! `crashdrop-certs revoke`: refuses a host, or one certificate, from the next connection on.

use std::path::PathBuf;

use clap::Args;
use crashdrop_certs::RevokeTarget;

/// Revoke a host (every certificate naming it) or one certificate by --serial
///
/// Appends the host name (or `serial HEX`) to DIR/revoked_hosts, the deny-list crashdropd reads
/// with --revoked-hosts, and, if DIR/ca.key is here, re-signs DIR/crl.pem (for --client-crl)
/// with the certificate's serial added. Then send crashdropd SIGHUP (or copy the files to the
/// receiver first): it refuses the host at its next connection, resumed TLS sessions included.
///
/// Revoke by serial to retire one stolen certificate and re-enrol the host with
/// `crashdrop-certs host --force`; revoking the name refuses the host whatever its certificate.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct RevokeArgs {
    /// Certificate directory (made by `crashdrop-certs init`).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,

    /// The host to revoke.
    #[arg(
        value_name = "NAME",
        required_unless_present = "serial",
        conflicts_with = "serial"
    )]
    name: Option<String>,

    /// Revoke one certificate by its serial number, in hex (colons optional).
    #[arg(long, value_name = "HEX")]
    serial: Option<String>,
}

pub fn run(args: RevokeArgs) -> anyhow::Result<()> {
    let target = match (args.name, args.serial) {
        (_, Some(serial)) => RevokeTarget::Serial(serial),
        (Some(name), None) => RevokeTarget::Host(name),
        (None, None) => anyhow::bail!("give a host NAME or --serial HEX"),
    };
    let out = crashdrop_certs::revoke(&args.dir, &target)?;
    match &out.added {
        Some(entry) => println!("Added {entry:?} to {}", out.revoked_hosts.display()),
        None => println!("Already listed in {}", out.revoked_hosts.display()),
    }
    match &out.crl {
        Some(crl) => println!(
            "Signed {} revoking {} certificate(s): {}",
            crl.display(),
            out.crl_serials.len(),
            out.crl_serials.join(", ")
        ),
        None => {
            println!("No ca.key in this directory: crl.pem not updated (revoked_hosts is enough)")
        }
    }
    println!("Now reload crashdropd (kill -HUP) with --revoked-hosts and --client-crl pointing at these files.");
    Ok(())
}
