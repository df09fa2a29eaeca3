//! Rate-limited logging for events any peer can cause by the thousand (refused, evicted and
//! timed-out connections): a few lines in full, then one count per interval, so a flood cannot
//! fill the disk with the receiver's log or bury the lines that matter.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines logged in full per kind before counting starts.
const BURST: u32 = 5;
/// One more full line per kind per this interval; also how often counts are summarised.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Per kind of event: a token bucket of full lines and a count of the events not logged.
#[derive(Debug, Default)]
pub struct LogLimiter {
    kinds: Mutex<BTreeMap<&'static str, Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: u32,
    refilled: Instant,
    suppressed: u64,
}

impl LogLimiter {
    /// Whether this event of `kind` should be logged in full now; if not, it is counted for the
    /// next [`take_suppressed`](LogLimiter::take_suppressed).
    pub fn allow(&self, kind: &'static str) -> bool {
        self.allow_at(kind, Instant::now())
    }

    fn allow_at(&self, kind: &'static str, now: Instant) -> bool {
        let Ok(mut kinds) = self.kinds.lock() else {
            return true;
        };
        let bucket = kinds.entry(kind).or_insert(Bucket {
            tokens: BURST,
            refilled: now,
            suppressed: 0,
        });
        let earned =
            now.saturating_duration_since(bucket.refilled).as_secs() / LOG_INTERVAL.as_secs();
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            bucket.tokens = bucket.tokens.saturating_add(earned).min(BURST);
            bucket.refilled = now;
        }
        if bucket.tokens > 0 {
            bucket.tokens -= 1;
            true
        } else {
            bucket.suppressed = bucket.suppressed.saturating_add(1);
            false
        }
    }

    /// The kinds with events not logged since the last call, and how many; resets the counts.
    pub fn take_suppressed(&self) -> Vec<(&'static str, u64)> {
        let Ok(mut kinds) = self.kinds.lock() else {
            return Vec::new();
        };
        kinds
            .iter_mut()
            .filter(|(_, b)| b.suppressed > 0)
            .map(|(kind, b)| (*kind, std::mem::take(&mut b.suppressed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_logged_then_counted_then_a_line_per_interval() {
        let limiter = LogLimiter::default();
        let start = Instant::now();
        let logged = (0..1000)
            .filter(|_| limiter.allow_at("evicted", start))
            .count();
        assert_eq!(logged, BURST as usize);
        assert_eq!(limiter.take_suppressed(), vec![("evicted", 995)]);
        assert!(limiter.take_suppressed().is_empty(), "counts reset");
        assert!(limiter.allow_at("other kind", start), "kinds are separate");
        let later = start + LOG_INTERVAL;
        assert!(limiter.allow_at("evicted", later), "a token per interval");
        assert!(!limiter.allow_at("evicted", later));
    }
}
