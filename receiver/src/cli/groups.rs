//! `crashdropd list --group-by signature`: the store's dumps folded by crash signature, so that a
//! crash storm reads as a few bugs with their reach (hosts, kernels, first and last seen).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::list::Listed;
use crate::store::crash_time_dir_name;

/// One signature's dumps. Serialised as one element of `list --group-by signature --json`
/// (described in docs/operations.md).
#[derive(Debug, Serialize, PartialEq)]
pub struct SignatureGroup {
    /// 16 hex digits; `null` for dumps with no crash report (no log yet, or none recognised).
    pub signature: Option<String>,
    /// The masked crash title; `null` with `signature`.
    pub title: Option<String>,
    /// The call-trace frames the signature covers, innermost first.
    pub frames: Vec<String>,
    /// How many dumps, and of how many distinct hosts.
    pub dumps: usize,
    pub hosts: usize,
    /// The distinct hosts and kernel releases, sorted.
    pub host_names: Vec<String>,
    pub kernels: Vec<String>,
    /// Epoch seconds and UTC of the earliest and latest crash (`null` if no dump has a time).
    pub first_seen: Option<i64>,
    pub first_seen_utc: Option<String>,
    pub last_seen: Option<i64>,
    pub last_seen_utc: Option<String>,
    /// `HOST/DUMP` of every dump in the group, oldest first.
    pub locations: Vec<String>,
}

/// Groups `dumps` by signature: most dumps first, then most recently seen.
pub fn by_signature(dumps: &[Listed]) -> Vec<SignatureGroup> {
    let mut by_id: BTreeMap<Option<&str>, Vec<&Listed>> = BTreeMap::new();
    for d in dumps {
        let key = d.crash.as_ref().map(|c| c.signature.as_str());
        by_id.entry(key).or_default().push(d);
    }
    let mut groups: Vec<SignatureGroup> = by_id
        .into_iter()
        .map(|(signature, mut members)| {
            members.sort_by_key(|d| (d.time, d.location.clone()));
            let crash = members.iter().find_map(|d| d.crash.as_ref());
            let hosts: BTreeSet<&str> = members.iter().map(|d| d.record.host.as_str()).collect();
            let kernels: BTreeSet<&str> = members
                .iter()
                .map(|d| d.record.kernel_release.as_str())
                .filter(|k| !k.is_empty())
                .collect();
            let times = members.iter().filter_map(|d| d.time);
            let (first, last) = (times.clone().min(), times.max());
            SignatureGroup {
                signature: signature.map(str::to_owned),
                title: crash.map(|c| c.title.clone()),
                frames: crash.map(|c| c.frames.clone()).unwrap_or_default(),
                dumps: members.len(),
                hosts: hosts.len(),
                host_names: hosts.into_iter().map(str::to_owned).collect(),
                kernels: kernels.into_iter().map(str::to_owned).collect(),
                first_seen: first,
                first_seen_utc: first.and_then(crash_time_dir_name).map(utc),
                last_seen: last,
                last_seen_utc: last.and_then(crash_time_dir_name).map(utc),
                locations: members.iter().map(|d| d.location.clone()).collect(),
            }
        })
        .collect();
    groups.sort_by(|a, b| {
        b.dumps
            .cmp(&a.dumps)
            .then(b.last_seen.cmp(&a.last_seen))
            .then(a.signature.cmp(&b.signature))
    });
    groups
}

/// `2026-11-26T14-03-11Z` (the directory form) → `2026-11-26T14:03:11Z`.
fn utc(dir_name: String) -> String {
    match dir_name.split_once('T') {
        Some((date, clock)) => format!("{date}T{}", clock.replace('-', ":")),
        None => dir_name,
    }
}

pub fn print_table(groups: &[SignatureGroup]) {
    println!(
        "{:<16} {:>5} {:>5} {:<20} {:<20} {:<28}  TITLE",
        "SIGNATURE", "DUMPS", "HOSTS", "FIRST SEEN (UTC)", "LAST SEEN (UTC)", "KERNELS"
    );
    for g in groups {
        println!(
            "{:<16} {:>5} {:>5} {:<20} {:<20} {:<28}  {}",
            g.signature.as_deref().unwrap_or("-"),
            g.dumps,
            g.hosts,
            g.first_seen_utc.as_deref().unwrap_or("unknown"),
            g.last_seen_utc.as_deref().unwrap_or("unknown"),
            if g.kernels.is_empty() {
                "unknown".to_owned()
            } else {
                g.kernels.join(",")
            },
            g.title
                .as_deref()
                .unwrap_or("(no crash report in the kernel log, or no log yet)"),
        );
    }
}
