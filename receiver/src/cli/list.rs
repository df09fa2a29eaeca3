//! `crashdropd list`: one row per stored dump.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::store::{DumpStore, StoreCompression};

#[derive(Args, Debug)]
pub struct ListArgs {
    /// The store directory given to `crashdropd serve --store`.
    #[arg(long, value_name = "DIR")]
    pub store: PathBuf,
    /// Print a JSON array (each dump's dump.json plus its `location`) instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ListArgs) -> anyhow::Result<ExitCode> {
    if !args.store.is_dir() {
        anyhow::bail!(
            "store {} does not exist or is not a directory",
            args.store.display()
        );
    }
    let store = DumpStore::open(&args.store, StoreCompression::Zstd)?;
    let dumps = store
        .list()
        .with_context(|| format!("cannot list {}", args.store.display()))?;
    if args.json {
        let rows: Vec<serde_json::Value> = dumps
            .iter()
            .map(|(location, record)| {
                let mut value = serde_json::to_value(record).unwrap_or_default();
                if let Some(obj) = value.as_object_mut() {
                    obj.insert("location".into(), location.clone().into());
                }
                value
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:<20} {:<28} {:>5} {:<9} {:>10} {:>10}  DUMP",
        "HOST", "CRASH TIME (UTC)", "KERNEL", "LEVEL", "STATE", "PAGES", "SIZE"
    );
    for (location, r) in &dumps {
        println!(
            "{:<24} {:<20} {:<28} {:>5} {:<9} {:>10} {:>10}  {}",
            r.host,
            r.crash_time_utc.as_deref().unwrap_or("unknown"),
            r.kernel_release,
            r.dump_level,
            r.state.as_str(),
            format!("{}/{}", r.pages_stored, r.pages),
            human_bytes(r.bytes_on_disk),
            location
        );
    }
    if dumps.is_empty() {
        eprintln!("no dumps in {}", args.store.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// 1536 → "1.5 KiB".
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_bytes_picks_a_readable_unit() {
        assert_eq!(super::human_bytes(512), "512 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(3 << 30), "3.0 GiB");
    }
}
