//! Retention: which stored dumps may go (stale transfers, dumps past `keep_per_host` or `max_age`,
//! a host over its quota), decided from the store as it is and applied by `crashdropd prune` and
//! at admission.
//!
//! A dump's age is the time since any of its files (`dump.json`, `vmcore`, `progress`) last
//! changed. Never removed: a dump a session holds, a dump in transfer younger than `stale_after`,
//! and (unless told otherwise) a host's newest complete dump.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::admission::StoreLimits;
use super::{read_dir_sorted, sync_dir, DumpRecord, DumpState, StoreError};

/// One dump directory as found on disk.
#[derive(Clone, Debug)]
pub struct StoredDump {
    /// `HOST/DUMP`, as `crashdropd list` prints it.
    pub location: String,
    pub dir: PathBuf,
    pub record: DumpRecord,
    /// Time since its files last changed.
    pub age: Duration,
    /// Bytes its files take (their lengths; sparse holes count).
    pub bytes: u64,
}

/// Why a dump is to be removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A transfer (or failed dump) untouched for `stale_after`.
    Stale { age: Duration },
    /// A complete dump older than `max_age`.
    Expired { age: Duration },
    /// More than `keep_per_host` complete dumps of its host.
    BeyondKeep { keep: u32 },
    /// Its host is over `host_quota_bytes` or `host_max_dumps`: the oldest complete dumps go.
    OverQuota,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Stale { age } => write!(f, "stale: untouched for {}", days(*age)),
            Reason::Expired { age } => write!(f, "older than max_age ({})", days(*age)),
            Reason::BeyondKeep { keep } => write!(f, "beyond keep_per_host = {keep}"),
            Reason::OverQuota => f.write_str("host over its quota"),
        }
    }
}

fn days(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 86_400 {
        format!("{:.1} days", secs as f64 / 86_400.0)
    } else {
        format!("{:.1} hours", secs as f64 / 3600.0)
    }
}

/// A dump chosen for removal.
#[derive(Clone, Debug)]
pub struct Removal {
    pub dump: StoredDump,
    pub reason: Reason,
}

/// Every readable dump under `root` (or only `host`'s). Records that do not load are skipped with
/// a warning: what we cannot read we do not delete.
pub fn scan(
    root: &Path,
    host: Option<&str>,
    now: SystemTime,
) -> Result<Vec<StoredDump>, StoreError> {
    let hosts = match host {
        Some(h) if root.join(h).is_dir() => vec![root.join(h)],
        Some(_) => Vec::new(),
        None => read_dir_sorted(root)?,
    };
    let mut dumps = Vec::new();
    for host_dir in hosts.iter().filter(|p| p.is_dir()) {
        for dir in read_dir_sorted(host_dir)? {
            let record_path = dir.join("dump.json");
            if !record_path.is_file() {
                continue;
            }
            let record = match DumpRecord::load(&record_path) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a dump whose record does not load");
                    continue;
                }
            };
            let (mut newest, mut bytes) = (SystemTime::UNIX_EPOCH, 0u64);
            for entry in fs::read_dir(&dir).map_err(|source| StoreError::Io {
                path: dir.clone(),
                source,
            })? {
                let Ok(meta) = entry.and_then(|e| e.metadata()) else {
                    continue;
                };
                bytes = bytes.saturating_add(meta.len());
                if let Ok(modified) = meta.modified() {
                    newest = newest.max(modified);
                }
            }
            let location = dir.strip_prefix(root).unwrap_or(&dir).display().to_string();
            dumps.push(StoredDump {
                location,
                dir,
                record,
                age: now.duration_since(newest).unwrap_or_default(),
                bytes,
            });
        }
    }
    Ok(dumps)
}

/// What an incoming dump will add to its host, when planning at admission.
#[derive(Clone, Copy, Debug)]
pub struct Incoming<'a> {
    pub host: &'a str,
    pub bytes: u64,
}

/// The dumps the limits say must go. `held` are directories a session owns (never removed);
/// `incoming` is counted against its host's quota. With `keep_last_complete`, each host keeps its
/// newest complete dump whatever the rules say.
pub fn plan(
    dumps: &[StoredDump],
    limits: &StoreLimits,
    held: &HashSet<PathBuf>,
    incoming: Option<Incoming<'_>>,
    keep_last_complete: bool,
) -> Vec<Removal> {
    let mut by_host: BTreeMap<&str, Vec<&StoredDump>> = BTreeMap::new();
    for dump in dumps {
        by_host.entry(&dump.record.host).or_default().push(dump);
    }
    let mut removals = Vec::new();
    for (host, mut host_dumps) in by_host {
        // Newest first.
        host_dumps.sort_by_key(|d| d.age);
        let mut going: Vec<(usize, Reason)> = Vec::new();
        let mut complete_seen = 0u32;
        let mut newest_complete = None;
        for (i, d) in host_dumps.iter().enumerate() {
            if held.contains(&d.dir) {
                continue;
            }
            match d.record.state {
                DumpState::Receiving | DumpState::Failed => {
                    if d.age >= limits.stale_after {
                        going.push((i, Reason::Stale { age: d.age }));
                    }
                }
                DumpState::Complete => {
                    complete_seen += 1;
                    newest_complete.get_or_insert(i);
                    if limits.keep_per_host.is_some_and(|k| complete_seen > k) {
                        let keep = limits.keep_per_host.unwrap_or_default();
                        going.push((i, Reason::BeyondKeep { keep }));
                    } else if limits.max_age.is_some_and(|max| d.age >= max) {
                        going.push((i, Reason::Expired { age: d.age }));
                    }
                }
            }
        }
        if keep_last_complete {
            going.retain(|(i, _)| Some(*i) != newest_complete);
        }
        // Quota: count what stays (plus the incoming dump) and remove the oldest complete dumps
        // until the host fits.
        let extra = incoming.filter(|inc| inc.host == host);
        let removed: HashSet<usize> = going.iter().map(|(i, _)| *i).collect();
        let mut bytes: u64 = host_dumps
            .iter()
            .enumerate()
            .filter(|(i, _)| !removed.contains(i))
            .map(|(_, d)| d.bytes)
            .sum::<u64>()
            .saturating_add(extra.map_or(0, |e| e.bytes));
        let mut count = (host_dumps.len() - removed.len()) as u64 + u64::from(extra.is_some());
        let over = |bytes: u64, count: u64| {
            limits.host_quota_bytes.is_some_and(|q| bytes > q)
                || limits.host_max_dumps.is_some_and(|m| count > u64::from(m))
        };
        for (i, d) in host_dumps.iter().enumerate().rev() {
            if !over(bytes, count) {
                break;
            }
            let protected = held.contains(&d.dir)
                || removed.contains(&i)
                || d.record.state != DumpState::Complete
                || (keep_last_complete && Some(i) == newest_complete);
            if !protected {
                going.push((i, Reason::OverQuota));
                bytes = bytes.saturating_sub(d.bytes);
                count -= 1;
            }
        }
        removals.extend(going.into_iter().map(|(i, reason)| Removal {
            dump: host_dumps[i].clone(),
            reason,
        }));
    }
    removals
}

/// Removes one dump directory durably (its host directory is fsynced).
pub fn remove(dump: &StoredDump) -> Result<(), StoreError> {
    fs::remove_dir_all(&dump.dir).map_err(|source| StoreError::Io {
        path: dump.dir.clone(),
        source,
    })?;
    if let Some(host_dir) = dump.dir.parent() {
        sync_dir(host_dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn dump(host: &str, name: &str, state: DumpState, age_days: u64, bytes: u64) -> StoredDump {
        let record = DumpRecord {
            host: host.into(),
            dump_id: "ab".repeat(32),
            kernel_release: "6.1.0".into(),
            crash_time: None,
            crash_time_utc: None,
            dump_level: 31,
            page_size: 4096,
            max_mapnr: 10,
            pages: 5,
            pages_per_chunk: 256,
            pages_stored: 0,
            bytes_on_wire: 0,
            bytes_on_disk: bytes,
            store_compression: "zstd".into(),
            digest: None,
            state,
            failure: None,
            interrupted: None,
            created: String::new(),
            updated: String::new(),
            sessions: 1,
            kernel_log: None,
            kernel_log_error: None,
            digest_version: None,
            offer_digest: None,
            crash: None,
            unknown: serde_json::Map::new(),
        };
        StoredDump {
            location: format!("{host}/{name}"),
            dir: PathBuf::from(format!("/store/{host}/{name}")),
            record,
            age: DAY * age_days as u32,
            bytes,
        }
    }

    fn names(removals: &[Removal]) -> Vec<&str> {
        let mut v: Vec<&str> = removals.iter().map(|r| r.dump.location.as_str()).collect();
        v.sort();
        v
    }

    #[test]
    fn stale_transfers_go_and_fresh_or_held_ones_stay() {
        let dumps = [
            dump("a", "old", DumpState::Receiving, 8, 10),
            dump("a", "new", DumpState::Receiving, 1, 10),
            dump("a", "held", DumpState::Receiving, 30, 10),
            dump("a", "failed", DumpState::Failed, 9, 10),
        ];
        let held = HashSet::from([PathBuf::from("/store/a/held")]);
        let plan = plan(&dumps, &StoreLimits::default(), &held, None, true);
        assert_eq!(names(&plan), ["a/failed", "a/old"]);
    }

    #[test]
    fn keep_per_host_and_max_age_keep_the_newest_complete_dump() {
        let dumps = [
            dump("a", "d1", DumpState::Complete, 100, 10),
            dump("a", "d2", DumpState::Complete, 50, 10),
            dump("a", "d3", DumpState::Complete, 40, 10),
            dump("b", "only", DumpState::Complete, 400, 10),
        ];
        let limits = StoreLimits {
            keep_per_host: Some(2),
            max_age: Some(DAY * 45),
            ..StoreLimits::default()
        };
        let plan_kept = plan(&dumps, &limits, &HashSet::new(), None, true);
        assert_eq!(names(&plan_kept), ["a/d1", "a/d2"]);
        let plan_all = plan(&dumps, &limits, &HashSet::new(), None, false);
        assert_eq!(names(&plan_all), ["a/d1", "a/d2", "b/only"]);
    }

    #[test]
    fn a_host_over_quota_loses_its_oldest_complete_dumps_not_its_transfers() {
        let dumps = [
            dump("a", "d1", DumpState::Complete, 3, 100),
            dump("a", "d2", DumpState::Complete, 2, 100),
            dump("a", "t", DumpState::Receiving, 0, 100),
            dump("a", "d3", DumpState::Complete, 1, 100),
        ];
        let limits = StoreLimits {
            host_quota_bytes: Some(250),
            ..StoreLimits::default()
        };
        let plan_quota = plan(&dumps, &limits, &HashSet::new(), None, true);
        assert_eq!(names(&plan_quota), ["a/d1", "a/d2"]);
        assert!(plan_quota.iter().all(|r| r.reason == Reason::OverQuota));
        // At admission the incoming dump counts: one more has to go, but never the newest.
        let incoming = Incoming {
            host: "a",
            bytes: 100,
        };
        let limits = StoreLimits {
            host_max_dumps: Some(3),
            ..StoreLimits::default()
        };
        let plan_count = plan(&dumps, &limits, &HashSet::new(), Some(incoming), true);
        assert_eq!(names(&plan_count), ["a/d1", "a/d2"]);
    }
}
