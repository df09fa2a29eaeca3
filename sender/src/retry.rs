//! Keeping at it: capped exponential backoff with jitter between attempts, until a deadline.

use std::time::{Duration, Instant, SystemTime};

/// First wait after a failed attempt; doubles up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(15);

pub struct Backoff {
    next: Duration,
    deadline: Instant,
    rng: u64,
}

impl Backoff {
    pub fn new(retry_for: Duration) -> Backoff {
        // Jitter only needs to differ between hosts rebooting together, not to be secret.
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ u64::from(std::process::id()).rotate_left(32);
        Backoff {
            next: FIRST_DELAY,
            deadline: Instant::now() + retry_for,
            rng: seed | 1,
        }
    }

    /// The wait before the next attempt, or `None` once the deadline has passed. A wait that
    /// would end past the deadline is cut to end at it, so the last attempt is made right at the
    /// deadline: `--retry-for` is how long we keep trying, not a bound on the sum of the waits.
    pub fn next_delay(&mut self) -> Option<Duration> {
        let remaining = self.remaining()?;
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        // Full jitter over the upper half: [next/2, next).
        let half = self.next / 2;
        let jitter = Duration::from_nanos(self.rng % (half.as_nanos() as u64).max(1));
        let delay = half + jitter;
        self.next = (self.next * 2).min(MAX_DELAY);
        Some(delay.min(remaining))
    }

    /// Time left before the deadline; `None` once it has passed.
    fn remaining(&self) -> Option<Duration> {
        let left = self.deadline.checked_duration_since(Instant::now())?;
        (!left.is_zero()).then_some(left)
    }

    /// The wait before the next attempt when the receiver asked for at least `asked` (a `Busy`
    /// frame's `retry_after`): that plus up to a quarter more of jitter, so that senders refused
    /// together do not return together; our own backoff when it is longer, both cut to end at
    /// the deadline. `None` once the deadline has passed, or when the receiver asked us to stay
    /// away past it (coming back sooner than asked would only be refused again).
    pub fn next_delay_after(&mut self, asked: Option<Duration>) -> Option<Duration> {
        let ours = self.next_delay()?;
        let Some(asked) = asked else {
            return Some(ours);
        };
        let remaining = self.remaining()?;
        if asked > remaining {
            return None;
        }
        let quarter = (asked.as_nanos() as u64 / 4).max(1);
        let delay = (asked + Duration::from_nanos(self.rng % quarter)).max(ours);
        Some(delay.min(remaining))
    }

    /// Starts over from the shortest wait (after an attempt that made progress).
    pub fn reset(&mut self) {
        self.next = FIRST_DELAY;
    }
}

/// A duration as `--retry-for` takes it: "0", "45s", "30m", "1h30m".
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return "0".to_owned();
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut text = String::new();
    for (n, unit) in [(h, 'h'), (m, 'm'), (s, 's')] {
        if n > 0 {
            text.push_str(&format!("{n}{unit}"));
        }
    }
    text
}

/// "30m", "90s", "1h", "1h30m", "0" → a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0u64;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{text}: expected e.g. 30m, 90s, 1h30m"))?;
        digits.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(format!("{text}: unknown unit {c:?} (use s, m, h)")),
        };
        total = total
            .checked_add(n.checked_mul(unit).ok_or("too long")?)
            .ok_or("too long")?;
    }
    if !digits.is_empty() {
        return Err(format!(
            "{text}: a unit is needed after {digits} (s, m or h)"
        ));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("3d").is_err());
    }

    #[test]
    fn delays_grow_to_the_cap_with_jitter_and_stop_at_the_deadline() {
        let mut b = Backoff::new(Duration::from_secs(3600));
        let first = b.next_delay().expect("delay");
        assert!(first >= FIRST_DELAY / 2 && first < FIRST_DELAY, "{first:?}");
        let mut last = first;
        for _ in 0..20 {
            last = b.next_delay().expect("delay");
        }
        assert!(last >= MAX_DELAY / 2 && last < MAX_DELAY, "{last:?}");
        b.reset();
        assert!(b.next_delay().expect("delay") < FIRST_DELAY);

        let mut none = Backoff::new(Duration::ZERO);
        assert_eq!(none.next_delay(), None);
    }

    #[test]
    fn the_last_wait_is_cut_to_end_at_the_deadline() {
        let mut b = Backoff::new(Duration::from_secs(2));
        for _ in 0..10 {
            b.next_delay();
        }
        // Our backoff is now 7.5-15 s, but only about 2 s are left: wait those, then try once more.
        let last = b.next_delay().expect("time is left");
        assert!(last <= Duration::from_secs(2), "{last:?}");
        assert!(last > Duration::from_millis(1500), "{last:?}");
    }

    #[test]
    fn durations_print_as_they_are_written() {
        assert_eq!(format_duration(Duration::ZERO), "0");
        assert_eq!(format_duration(Duration::from_secs(3)), "3s");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }

    #[test]
    fn a_busy_delay_is_honoured_with_jitter_and_within_the_deadline() {
        let mut b = Backoff::new(Duration::from_secs(3600));
        let asked = Duration::from_secs(4);
        for _ in 0..20 {
            b.reset();
            let d = b.next_delay_after(Some(asked)).expect("delay");
            assert!(d >= asked && d < asked + asked / 4, "{d:?}");
        }
        // Our own backoff when it is longer than what was asked.
        for _ in 0..10 {
            b.next_delay();
        }
        let d = b
            .next_delay_after(Some(Duration::from_millis(10)))
            .expect("delay");
        assert!(d >= MAX_DELAY / 2, "{d:?}");
        // A delay past the deadline ends the retries.
        let mut short = Backoff::new(Duration::from_secs(5));
        assert_eq!(short.next_delay_after(Some(Duration::from_secs(60))), None);
    }
}
