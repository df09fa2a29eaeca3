//! `Busy` (0x10, protocol v2): "not now, try again in `retry_after_ms`", the receiver's answer
//! when it is at `max_sessions`, the host at its per-host cap, or the dump leased by another
//! session. A v1 sender gets `Error Busy` instead (no delay; it backs off on its own).

use std::time::Duration;

use crate::error::ProtocolError;
use crate::limits::{MAX_RETRY_AFTER_MS, MAX_STRING};
use crate::reader::PayloadReader;
use crate::writer::PayloadWriter;

/// A retryable refusal with the delay the receiver asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    /// Milliseconds the sender should wait before reconnecting (at most `MAX_RETRY_AFTER_MS`).
    pub retry_after_ms: u32,
    /// For a human: which limit was reached.
    pub message: String,
}

impl Busy {
    /// A `Busy` asking for `retry_after` (capped at `MAX_RETRY_AFTER_MS`), with its message cut
    /// to `MAX_STRING` bytes at a char boundary.
    pub fn new(retry_after: Duration, message: impl Into<String>) -> Busy {
        let ms = u32::try_from(retry_after.as_millis())
            .unwrap_or(u32::MAX)
            .min(MAX_RETRY_AFTER_MS);
        let mut message = message.into();
        if message.len() > MAX_STRING {
            let mut end = MAX_STRING;
            while !message.is_char_boundary(end) {
                end = end.saturating_sub(1);
            }
            message.truncate(end);
        }
        Busy {
            retry_after_ms: ms,
            message,
        }
    }

    /// The delay to wait before the next attempt.
    pub fn retry_after(&self) -> Duration {
        Duration::from_millis(u64::from(self.retry_after_ms))
    }

    pub(crate) fn decode(r: &mut PayloadReader) -> Result<Self, ProtocolError> {
        let retry_after_ms = r.u32("retry_after_ms")?;
        if retry_after_ms > MAX_RETRY_AFTER_MS {
            return Err(r.invalid("retry_after_ms", u64::from(retry_after_ms)));
        }
        Ok(Busy {
            retry_after_ms,
            message: r.string("message", MAX_STRING)?,
        })
    }

    pub(crate) fn encode(&self, w: &mut PayloadWriter) -> Result<(), ProtocolError> {
        if self.retry_after_ms > MAX_RETRY_AFTER_MS {
            return Err(w.invalid("retry_after_ms", u64::from(self.retry_after_ms)));
        }
        w.u32(self.retry_after_ms);
        w.string("message", &self.message, MAX_STRING)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn new_caps_the_delay_and_round_trips_it() {
        let busy = Busy::new(Duration::from_secs(3), "at max_sessions (8)");
        assert_eq!(busy.retry_after(), Duration::from_secs(3));
        let forever = Busy::new(Duration::from_secs(1 << 40), "x");
        assert_eq!(forever.retry_after_ms, MAX_RETRY_AFTER_MS);
    }

    #[test]
    fn a_delay_beyond_the_limit_is_refused_by_name() {
        let mut payload = (MAX_RETRY_AFTER_MS + 1).to_be_bytes().to_vec();
        payload.extend_from_slice(&[0, 0]);
        let mut r = PayloadReader::new("Busy", Bytes::from(payload));
        let err = Busy::decode(&mut r).expect_err("over the limit");
        assert!(err.to_string().contains("retry_after_ms"), "{err}");
    }
}
