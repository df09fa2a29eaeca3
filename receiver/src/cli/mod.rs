//! Command-line interface: `serve`, `list`, `verify`.

pub mod list;
pub mod serve;
pub mod verify;

use clap::{Parser, Subcommand};

/// crashdropd receives Linux kernel crash dumps from crashdrop-send over mutual TLS and stores
/// each one as a kdump-compressed file that `crash` opens directly.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the receiver: listen for senders and store their dumps.
    Serve(serve::ServeArgs),
    /// List the dumps in a store.
    List(list::ListArgs),
    /// Re-read a stored dump and check it against its recorded digest (exit 0 only if it matches).
    Verify(verify::VerifyArgs),
}
