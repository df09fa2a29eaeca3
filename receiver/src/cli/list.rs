//! `crashdropd list`: one row per stored dump, or one per crash signature (`--group-by`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::groups;
use crate::store::{summarize, CrashSummary, DumpRecord, DumpStore, StoreCompression};

#[derive(Args, Debug)]
pub struct ListArgs {
    /// The store directory given to `crashdropd serve --store`.
    #[arg(long, value_name = "DIR")]
    pub store: PathBuf,
    /// Print JSON instead of a table: an array of dumps (each dump's dump.json plus its
    /// `location`), or of signature groups with --group-by (docs/operations.md).
    #[arg(long)]
    pub json: bool,
    /// Only this host's dumps.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Only dumps of crashes at or after T: an RFC 3339 time (2026-11-26T14:03:11Z), a date
    /// (2026-11-26, midnight UTC) or an age (30m, 12h, 7d). A dump without a crash time counts
    /// from when it was first received.
    #[arg(long, value_name = "T", value_parser = parse_since)]
    pub since: Option<i64>,
    /// One row per crash signature instead of one per dump.
    #[arg(long, value_name = "KEY")]
    pub group_by: Option<GroupBy>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum GroupBy {
    /// The crash signature: masked title plus the first meaningful call-trace frames.
    Signature,
}

/// A stored dump with what crashed in it.
pub struct Listed {
    pub location: String,
    pub record: DumpRecord,
    /// `record.crash`, or for dumps stored before it was recorded, read from their `dmesg.txt`.
    pub crash: Option<CrashSummary>,
    /// Seconds since the epoch: the crash time, else when the dump was first received.
    pub time: Option<i64>,
}

pub fn run(args: ListArgs) -> anyhow::Result<ExitCode> {
    if !args.store.is_dir() {
        anyhow::bail!(
            "store {} does not exist or is not a directory",
            args.store.display()
        );
    }
    let dumps = load(&args.store, args.host.as_deref(), args.since)?;
    if let Some(GroupBy::Signature) = args.group_by {
        let groups = groups::by_signature(&dumps);
        if args.json {
            println!("{}", serde_json::to_string_pretty(&groups)?);
        } else {
            groups::print_table(&groups);
        }
    } else if args.json {
        let rows: Vec<serde_json::Value> = dumps
            .iter()
            .map(|d| {
                let mut value = serde_json::to_value(&d.record).unwrap_or_default();
                if let Some(obj) = value.as_object_mut() {
                    obj.insert("location".into(), d.location.clone().into());
                    obj.insert(
                        "crash".into(),
                        serde_json::to_value(&d.crash).unwrap_or_default(),
                    );
                }
                value
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_table(&dumps);
    }
    if dumps.is_empty() && !args.json {
        eprintln!("no dumps in {}", args.store.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The store's dumps, only `host`'s and only those at or after `since` when given.
pub fn load(root: &Path, host: Option<&str>, since: Option<i64>) -> anyhow::Result<Vec<Listed>> {
    let store = DumpStore::open(root, StoreCompression::Zstd)?;
    let dumps = store
        .list()
        .with_context(|| format!("cannot list {}", root.display()))?;
    Ok(dumps
        .into_iter()
        .filter(|(_, r)| host.is_none_or(|h| r.host == h))
        .map(|(location, record)| {
            let crash = record
                .crash
                .clone()
                .or_else(|| crash_from_log(&root.join(&location), &record));
            let time = record.crash_time.or_else(|| rfc3339_secs(&record.created));
            Listed {
                location,
                record,
                crash,
                time,
            }
        })
        .filter(|d| since.is_none_or(|s| d.time.is_some_and(|t| t >= s)))
        .collect())
}

/// The crash summary of a dump whose record predates `crash`, from its extracted log.
fn crash_from_log(dir: &Path, record: &DumpRecord) -> Option<CrashSummary> {
    let file = record.kernel_log.as_ref()?;
    let log = std::fs::read(dir.join(file)).ok()?;
    summarize(&String::from_utf8_lossy(&log))
}

fn print_table(dumps: &[Listed]) {
    println!(
        "{:<24} {:<20} {:<28} {:>5} {:<9} {:>10} {:>10}  {:<44}  TITLE",
        "HOST", "CRASH TIME (UTC)", "KERNEL", "LEVEL", "STATE", "PAGES", "SIZE", "DUMP"
    );
    for d in dumps {
        let r = &d.record;
        println!(
            "{:<24} {:<20} {:<28} {:>5} {:<9} {:>10} {:>10}  {:<44}  {}",
            r.host,
            r.crash_time_utc.as_deref().unwrap_or("unknown"),
            r.kernel_release,
            r.dump_level,
            r.state.as_str(),
            format!("{}/{}", r.pages_stored, r.pages),
            human_bytes(r.bytes_on_disk),
            d.location,
            d.crash.as_ref().map_or("-", |c| c.title.as_str()),
        );
    }
}

/// `--since`: an RFC 3339 time, a `YYYY-MM-DD` date or an age before now, as epoch seconds.
fn parse_since(text: &str) -> Result<i64, String> {
    if let Some(t) = rfc3339_secs(text) {
        return Ok(t);
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = time::Date::parse(text, &date_format) {
        return Ok(date.midnight().assume_utc().unix_timestamp());
    }
    let age = crate::store::space::parse_duration(text).map_err(|_| {
        format!("{text:?}: expected an RFC 3339 time (2026-11-26T14:03:11Z), a date (2026-11-26) or an age (30m, 12h, 7d)")
    })?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Ok(now.saturating_sub(i64::try_from(age.as_secs()).unwrap_or(i64::MAX)))
}

/// An RFC 3339 timestamp as epoch seconds.
pub fn rfc3339_secs(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
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
    use super::*;

    #[test]
    fn human_bytes_picks_a_readable_unit() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn since_takes_times_dates_and_ages() {
        assert_eq!(parse_since("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
        assert_eq!(parse_since("2023-11-14"), Ok(1_699_920_000));
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let two_hours = parse_since("2h").expect("age");
        assert!((now - 7200 - two_hours).abs() <= 2, "{two_hours} vs {now}");
        let err = parse_since("yesterday").expect_err("not a time");
        assert!(
            err.contains("yesterday") && err.contains("RFC 3339"),
            "{err}"
        );
    }
}
