//! Disk space: what the store's filesystem has free, how much a dump is expected to take, and the
//! size and duration settings (`2GiB`, `5%`, `7d`) the operator writes them in.

use std::path::Path;
use std::time::Duration;

use crashdrop_formats::kdump::KdumpLayout;

use super::{DumpRecord, StoreError};

/// Page data is estimated at this percentage of its raw size. Kernel memory compresses well
/// (zstd level 1 typically stores a page in a third of its size or less; zero and free pages are
/// excluded or tiny at dump levels 1 and up), so half is a cautious guess. A dump larger than its
/// estimate still stores: admission is a forecast, and a full disk mid-transfer is recoverable.
pub const PAGE_DATA_ESTIMATE_PERCENT: u64 = 50;

/// Free and total bytes of a filesystem, as an unprivileged writer sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsSpace {
    /// Bytes a non-root process may still allocate (`f_bavail`).
    pub available: u64,
    /// Size of the filesystem.
    pub total: u64,
}

/// The space of the filesystem holding `path`.
pub fn fs_space(path: &Path) -> Result<FsSpace, StoreError> {
    let stat = rustix::fs::statvfs(path).map_err(|e| StoreError::Io {
        path: path.to_owned(),
        source: e.into(),
    })?;
    Ok(FsSpace {
        available: stat.f_bavail.saturating_mul(stat.f_frsize),
        total: stat.f_blocks.saturating_mul(stat.f_frsize),
    })
}

/// The stored size forecast for an offered dump: headers, bitmaps and descriptors exactly, the
/// shared zero block, and page data at [`PAGE_DATA_ESTIMATE_PERCENT`] of its raw size.
pub fn estimated_bytes(layout: &KdumpLayout) -> u64 {
    let page_data = layout
        .num_dumpable
        .saturating_mul(layout.block_size)
        .saturating_mul(PAGE_DATA_ESTIMATE_PERCENT)
        / 100;
    layout
        .data_offset
        .saturating_add(layout.block_size)
        .saturating_add(page_data)
}

/// What a dump in transfer is still expected to need: its forecast less what it already holds.
pub fn outstanding_bytes(record: &DumpRecord) -> u64 {
    let forecast = record
        .pages
        .saturating_mul(u64::from(record.page_size))
        .saturating_mul(PAGE_DATA_ESTIMATE_PERCENT)
        / 100
        + record.pages.saturating_mul(24);
    forecast.saturating_sub(record.bytes_on_disk)
}

/// The space kept free on the store's filesystem: a size, or a percentage of the filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MinFree {
    Bytes(u64),
    Percent(u8),
    /// A percentage of the filesystem, but never more than a size: the default, so a small disk
    /// keeps a proportionate reserve and a large one does not strand hundreds of GiB.
    PercentUpTo(u8, u64),
}

/// The default reserve's cap: 2 GiB.
pub const DEFAULT_MIN_FREE_CAP: u64 = 2 << 30;

impl Default for MinFree {
    /// 5% of the filesystem, at most 2 GiB.
    fn default() -> Self {
        MinFree::PercentUpTo(5, DEFAULT_MIN_FREE_CAP)
    }
}

impl MinFree {
    /// `5%`, `2GiB`, `0`.
    pub fn parse(text: &str) -> Result<MinFree, String> {
        let text = text.trim();
        if let Some(percent) = text.strip_suffix('%') {
            let n: u8 = percent
                .trim()
                .parse()
                .ok()
                .filter(|n| *n <= 100)
                .ok_or_else(|| format!("{text:?}: a percentage must be 0% to 100%"))?;
            return Ok(MinFree::Percent(n));
        }
        parse_bytes(text).map(MinFree::Bytes)
    }

    /// The reserve in bytes on a filesystem of `total` bytes.
    pub fn bytes(self, total: u64) -> u64 {
        match self {
            MinFree::Bytes(n) => n,
            MinFree::Percent(p) => total / 100 * u64::from(p),
            MinFree::PercentUpTo(p, cap) => (total / 100 * u64::from(p)).min(cap),
        }
    }
}

impl std::fmt::Display for MinFree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MinFree::Bytes(n) => write!(f, "{n} bytes"),
            MinFree::Percent(p) => write!(f, "{p}% of the filesystem"),
            MinFree::PercentUpTo(p, cap) => {
                write!(f, "{p}% of the filesystem, at most {cap} bytes")
            }
        }
    }
}

/// A size: a number with an optional binary unit (`B`, `K`/`KiB`, `M`/`MiB`, `G`/`GiB`,
/// `T`/`TiB`), e.g. `500MiB`, `2G`, `1048576`.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        "T" | "TiB" => 40,
        other => {
            return Err(format!(
                "{text:?}: unknown size unit {other:?} (use B, KiB, MiB, GiB or TiB)"
            ))
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| format!("{text:?}: not a size like 2GiB, 500MiB or 1048576"))
}

/// A duration: a number with a unit `s`, `m`, `h` or `d`, e.g. `7d`, `12h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_secs = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: not a duration like 7d, 12h, 30m or 90s")),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_secs))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?}: not a duration like 7d, 12h, 30m or 90s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_percentages_parse_and_bad_ones_name_the_text() {
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("500M"), Ok(500 << 20));
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert!(parse_bytes("2 PB").expect_err("unit").contains("2 PB"));
        assert!(parse_bytes("99999999999T").is_err(), "overflow refused");
        assert_eq!(MinFree::parse("5%"), Ok(MinFree::Percent(5)));
        assert_eq!(MinFree::parse("0"), Ok(MinFree::Bytes(0)));
        assert!(MinFree::parse("150%").is_err());
        assert_eq!(MinFree::Percent(5).bytes(1000), 50);
    }

    #[test]
    fn the_default_reserve_is_five_percent_but_never_more_than_two_gib() {
        let small = 10 << 30;
        assert_eq!(MinFree::default().bytes(small), small / 100 * 5);
        let large = 1 << 40;
        assert_eq!(MinFree::default().bytes(large), 2 << 30);
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("d").is_err());
    }

    #[test]
    fn the_filesystem_of_a_temp_dir_has_space() {
        let dir = tempfile::tempdir().expect("tempdir");
        let space = fs_space(dir.path()).expect("statvfs");
        assert!(
            space.total > 0 && space.available <= space.total,
            "{space:?}"
        );
        let err = fs_space(&dir.path().join("missing")).expect_err("missing path");
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
