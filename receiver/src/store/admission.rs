//! Admission: whether a *new* dump may start, given free space, the reserve (`min_free`), what
//! dumps in transfer still need, and its host's quota. Resumes are never refused here: a dump
//! already admitted has priority over new ones when space is low.
//!
//! Before deciding, the offering host's retention is applied (stale transfers, `keep_per_host`,
//! `max_age`, quota), exactly as `crashdropd prune` would for that host.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crashdrop_formats::kdump::KdumpLayout;
use crashdrop_proto::{ErrorCode, HostName};
use tracing::{info, warn};

use super::retention::{self, Incoming};
use super::space::{self, MinFree};
use super::{DumpState, DumpStore, WriteError};

/// The store's disk limits (docs/operations.md, "Disk").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Space kept free on the store's filesystem; a new dump that would eat into it is refused.
    pub min_free: MinFree,
    /// Bytes one host's dumps may take (with the incoming one's estimate); `None`: no limit.
    pub host_quota_bytes: Option<u64>,
    /// Dumps (any state) one host may have; `None`: no limit.
    pub host_max_dumps: Option<u32>,
    /// Complete dumps kept per host; older ones are removed. `None`: all.
    pub keep_per_host: Option<u32>,
    /// Complete dumps older than this are removed (a host's newest complete dump stays). `None`:
    /// kept for ever.
    pub max_age: Option<Duration>,
    /// Dumps in transfer (or failed) untouched this long are removed.
    pub stale_after: Duration,
}

/// Default `stale_after`: 7 days.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(7 * 86_400);

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            min_free: MinFree::default(),
            host_quota_bytes: None,
            host_max_dumps: None,
            keep_per_host: None,
            max_age: None,
            stale_after: DEFAULT_STALE_AFTER,
        }
    }
}

/// Decides whether a new dump from `host` with `layout` may be created in `dir`, applying the
/// host's retention first.
pub fn admit(
    store: &DumpStore,
    host: &HostName,
    layout: &KdumpLayout,
    dir: &Path,
) -> Result<(), WriteError> {
    let (root, limits) = (store.root(), store.limits());
    let estimate = space::estimated_bytes(layout);
    let now = SystemTime::now();
    // The dump being (re)started does not count against itself.
    let others = |dumps: Vec<retention::StoredDump>| {
        dumps
            .into_iter()
            .filter(|d| d.dir != dir)
            .collect::<Vec<_>>()
    };
    let mine = others(retention::scan(root, Some(host.as_str()), now)?);
    let incoming = Incoming {
        host: host.as_str(),
        bytes: estimate,
    };
    let held = store.held();
    for removal in retention::plan(&mine, limits, &held, Some(incoming), true) {
        match store.remove(&removal.dump) {
            Ok(false) => {}
            Ok(true) => info!(
                location = %removal.dump.location,
                reason = %removal.reason,
                "removed a dump to admit a new one"
            ),
            Err(e) => {
                warn!(location = %removal.dump.location, error = %e, "could not remove a dump")
            }
        }
    }
    let mine = others(retention::scan(root, Some(host.as_str()), now)?);
    let host_bytes: u64 = mine.iter().map(|d| d.bytes).sum();
    if let Some(quota) = limits.host_quota_bytes {
        if host_bytes.saturating_add(estimate) > quota {
            return Err(no_space(format!(
                "host {host} would exceed its quota: its dumps take {host_bytes} bytes, this one \
                 needs about {estimate}, host_quota_bytes = {quota}; its newest complete dump and \
                 dumps in transfer are kept, so the receiver's operator must remove dumps or raise \
                 the quota"
            )));
        }
    }
    if let Some(max) = limits.host_max_dumps {
        if mine.len() as u64 >= u64::from(max) {
            return Err(no_space(format!(
                "host {host} already has {} dumps (host_max_dumps = {max}); the receiver's \
                 operator must remove dumps or raise the limit",
                mine.len()
            )));
        }
    }
    // What dumps in transfer (not stale) may still write comes first.
    let in_transfer: u64 = others(retention::scan(root, None, now)?)
        .iter()
        .filter(|d| d.record.state == DumpState::Receiving && d.age < limits.stale_after)
        .map(|d| space::outstanding_bytes(&d.record))
        .sum();
    let fs = space::fs_space(root)?;
    let reserve = limits.min_free.bytes(fs.total);
    let needed = estimate.saturating_add(reserve).saturating_add(in_transfer);
    if needed > fs.available {
        return Err(no_space(format!(
            "the receiver's disk has {} bytes free; this dump needs about {estimate}, dumps in \
             transfer about {in_transfer} more, and min_free keeps {reserve}; retry later (the \
             receiver's operator can free space with `crashdropd prune`)",
            fs.available
        )));
    }
    Ok(())
}

fn no_space(message: String) -> WriteError {
    warn!(%message, "new dump refused");
    WriteError::rejected(ErrorCode::NoSpace, message)
}
