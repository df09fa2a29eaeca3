//! Progress lines on stderr, at most one a second.

use std::time::{Duration, Instant};

pub struct Progress {
    total: u64,
    started: Instant,
    last: Option<Instant>,
    /// Bytes already held by the receiver when this attempt started (not counted in the rate).
    base: u64,
}

impl Progress {
    pub fn new(total: u64, already: u64) -> Progress {
        Progress {
            total,
            started: Instant::now(),
            last: None,
            base: already,
        }
    }

    /// Prints a line if a second has passed since the last one (or `force`).
    pub fn update(&mut self, done: u64, force: bool) {
        let now = Instant::now();
        if !force && self.last.is_some_and(|l| now - l < Duration::from_secs(1)) {
            return;
        }
        self.last = Some(now);
        eprintln!("{}", self.line(done, now - self.started));
    }

    fn line(&self, done: u64, elapsed: Duration) -> String {
        let rate = done.saturating_sub(self.base) as f64 / elapsed.as_secs_f64().max(1e-3);
        let pct = if self.total == 0 {
            100.0
        } else {
            done as f64 * 100.0 / self.total as f64
        };
        let eta = if rate > 0.0 {
            format!("{:.0}s", self.total.saturating_sub(done) as f64 / rate)
        } else {
            "?".into()
        };
        format!(
            "sent {} / {} ({pct:.0}%), {}/s, eta {eta}",
            human(done as f64),
            human(self.total as f64),
            human(rate)
        )
    }
}

fn human(mut value: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_amounts_percentage_rate_and_eta() {
        let p = Progress::new(4 << 30, 0);
        let line = p.line(1288490189, Duration::from_secs(6));
        assert_eq!(line, "sent 1.2 GiB / 4.0 GiB (30%), 204.8 MiB/s, eta 14s");
    }
}
