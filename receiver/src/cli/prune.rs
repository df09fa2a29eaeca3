//! `crashdropd prune [--dry-run]`: removes stale transfers and the dumps retention and quotas say
//! must go (docs/operations.md, "Disk"), printing one line per dump.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use clap::Args;

use super::list::human_bytes;
use super::serve::StoreLimitArgs;
use crate::store::{retention, DumpStore, StoreCompression};

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// The receiver's TOML config (as for `serve --config`): its store and disk limits apply.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The store directory given to `crashdropd serve --store`.
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Print what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Let retention remove a host's newest complete dump too (kept by default).
    #[arg(long)]
    pub delete_last: bool,
    #[command(flatten)]
    pub limits: StoreLimitArgs,
}

pub fn run(args: PruneArgs) -> anyhow::Result<ExitCode> {
    let (store_dir, limits) = args.limits.resolve(args.config.as_deref(), args.store)?;
    if !store_dir.is_dir() {
        anyhow::bail!(
            "store {} does not exist or is not a directory",
            store_dir.display()
        );
    }
    let store = DumpStore::open(&store_dir, StoreCompression::Zstd)?.with_limits(limits.clone());
    let dumps = retention::scan(&store_dir, None, SystemTime::now())
        .with_context(|| format!("cannot read {}", store_dir.display()))?;
    let plan = retention::plan(&dumps, &limits, &HashSet::new(), None, !args.delete_last);
    let mut freed = 0u64;
    for removal in &plan {
        let verb = if args.dry_run {
            "would remove"
        } else {
            store
                .remove(&removal.dump)
                .with_context(|| format!("cannot remove {}", removal.dump.location))?;
            "removed"
        };
        freed += removal.dump.bytes;
        println!(
            "{verb} {} ({}, {}): {}",
            removal.dump.location,
            removal.dump.record.state.as_str(),
            human_bytes(removal.dump.bytes),
            removal.reason
        );
    }
    let verb = if args.dry_run { "would free" } else { "freed" };
    println!("{} dumps, {verb} {}", plan.len(), human_bytes(freed));
    Ok(ExitCode::SUCCESS)
}
