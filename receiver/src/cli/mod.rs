//! Command-line interface: `serve`, `list`, `verify`, `dmesg`, `export`.

pub mod dmesg;
pub mod export;
pub mod groups;
pub mod list;
pub mod prune;
pub mod serve;
pub mod verify;

use std::path::{Component, Path, PathBuf};

use anyhow::bail;
use clap::{Parser, Subcommand};

/// crashdropd receives Linux kernel crash dumps from crashdrop-send over mutual TLS and stores
/// each one as a kdump-compressed file that `crash` opens directly.
#[derive(Parser, Debug)]
#[command(name = "crashdropd", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start-up: the size of the `serve` variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the receiver: listen for senders and store their dumps.
    ///
    /// Required, as flags or in the --config file: --store, and either --tls-listen with
    /// --tls-cert, --tls-key and --client-ca, or --ssh-listen with --ssh-host-key and
    /// --ssh-authorized-keys (or both). Everything else has a default.
    ///
    /// Each bound address is printed on stdout (`listening tls ADDR`); logs go to stderr, at
    /// level info unless RUST_LOG says otherwise (RUST_LOG=debug for more, RUST_LOG=warn for less).
    #[command(verbatim_doc_comment)]
    Serve(serve::ServeArgs),
    /// List the dumps in a store (--group-by signature: one row per crash signature).
    List(list::ListArgs),
    /// Re-read a stored dump and check it against its recorded digest (exit 0 only if it matches).
    Verify(verify::VerifyArgs),
    /// Remove stale transfers and the dumps retention and quotas say must go (see --dry-run).
    Prune(prune::PruneArgs),
    /// Print the crashed kernel's log, read from a stored dump (as vmcore-dmesg prints it).
    Dmesg(dmesg::DmesgArgs),
    /// Write a stored dump as ELF, kdump-compressed with zlib or raw pages, or a flattened
    /// stream, for tools that cannot read zstd pages (Debian 12's makedumpfile, gdb, drgn).
    Export(export::ExportArgs),
}

/// `store/HOST/DUMP` for a dump named as `crashdropd list` prints it; anything but two plain
/// path components is refused.
pub fn dump_dir(store: &Path, dump: &str) -> anyhow::Result<PathBuf> {
    let relative = Path::new(dump);
    let normal = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if !normal || relative.components().count() != 2 {
        bail!("{dump}: expected HOST/DUMP as printed by `crashdropd list`");
    }
    Ok(store.join(relative))
}
