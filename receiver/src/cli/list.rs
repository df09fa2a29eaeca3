//! `crashdropd list`: one row per stored dump, or one per crash signature (`--group-by`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::groups;
use crate::store::{summarize, CrashSummary, DumpRecord, DumpState, DumpStore, StoreCompression};

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
        print_table(&args.store, &dumps);
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

const HEADER: [&str; 10] = [
    "HOST",
    "CRASH TIME (UTC)",
    "KERNEL",
    "LEVEL",
    "STATE",
    "PAGES",
    "SIZE",
    "IDLE",
    "DUMP",
    "TITLE",
];
/// Columns printed right-aligned (numbers).
const RIGHT: [bool; 10] = [
    false, false, false, true, false, true, true, true, false, false,
];

fn print_table(root: &Path, dumps: &[Listed]) {
    let now = std::time::SystemTime::now();
    let rows: Vec<[String; 10]> = dumps.iter().map(|d| table_row(root, d, now)).collect();
    for line in format_table(&rows) {
        println!("{line}");
    }
}

/// The header and `rows`, each column as wide as its widest cell; the last is not padded.
fn format_table(rows: &[[String; 10]]) -> Vec<String> {
    let header = HEADER.map(str::to_string);
    let mut widths = [0usize; 10];
    for row in std::iter::once(&header).chain(rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    std::iter::once(&header)
        .chain(rows)
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else if RIGHT[i] {
                    line.push_str(&format!("{cell:>w$}  ", w = widths[i]));
                } else {
                    line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
                }
            }
            line.trim_end().to_string()
        })
        .collect()
}

fn table_row(root: &Path, d: &Listed, now: std::time::SystemTime) -> [String; 10] {
    let r = &d.record;
    let dir = root.join(&d.location);
    let complete = r.state == DumpState::Complete;
    // Until a dump completes its record holds no size: show what its file takes on disk, and
    // how long nothing has been written to it (stale transfers are pruned after stale_after).
    let (size, idle) = if complete {
        (r.bytes_on_disk, "-".to_string())
    } else {
        let vmcore = std::fs::metadata(dir.join("vmcore")).ok();
        let size = vmcore.as_ref().map_or(0, |m| {
            use std::os::unix::fs::MetadataExt;
            m.blocks() * 512
        });
        let last_write = ["vmcore", "progress", "dump.json"]
            .iter()
            .filter_map(|f| {
                std::fs::metadata(dir.join(f))
                    .and_then(|m| m.modified())
                    .ok()
            })
            .max();
        let idle = last_write
            .and_then(|t| now.duration_since(t).ok())
            .map_or("?".to_string(), |age| human_age(age.as_secs()));
        (size, idle)
    };
    [
        r.host.clone(),
        r.crash_time_utc.as_deref().unwrap_or("unknown").to_string(),
        r.kernel_release.clone(),
        r.dump_level.to_string(),
        r.state.as_str().to_string(),
        format!("{}/{}", r.pages_stored, r.pages),
        human_bytes(size),
        idle,
        d.location.clone(),
        match (&r.interrupted, &r.failure, &d.crash) {
            (_, Some(why), _) if r.state == DumpState::Failed => format!("failed: {why}"),
            (Some(why), _, _) if !complete => format!("stuck: {why}"),
            (_, _, Some(crash)) => crash.title.clone(),
            _ => "-".to_string(),
        },
    ]
}

/// 59 → "59s", 7200 → "2h", 900000 → "10d".
fn human_age(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
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
    fn table_columns_stay_aligned_with_large_numbers() {
        let row = |pages: &str, host: &str| -> [String; 10] {
            [
                host,
                "2026-11-26T14:03:11Z",
                "6.1.0",
                "31",
                "complete",
                pages,
                "1.0 GiB",
                "-",
                "h/d",
                "Oops",
            ]
            .map(str::to_string)
        };
        let lines = format_table(&[
            row("12345678901/12345678901", "a"),
            row("1/1", "a-much-longer-host-name.example.com"),
        ]);
        let dump_column: Vec<usize> = lines.iter().map(|l| l.find("h/d").unwrap_or(0)).collect();
        assert_eq!(dump_column[1], dump_column[2], "{lines:#?}");
        assert_eq!(lines[0].find("DUMP"), Some(dump_column[1]), "{lines:#?}");
        // Numbers are right-aligned: both PAGES cells end in the same column.
        let end = |l: &str, cell: &str| l.find(cell).map(|i| i + cell.len());
        assert_eq!(
            end(&lines[1], "12345678901/12345678901"),
            end(&lines[2], " 1/1"),
            "{lines:#?}"
        );
    }

    #[test]
    fn ages_are_short() {
        assert_eq!(human_age(59), "59s");
        assert_eq!(human_age(7200), "2h");
        assert_eq!(human_age(900_000), "10d");
    }

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
