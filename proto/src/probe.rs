//! `Probe` (0x11) and `ProbeVerdict` (0x12), protocol v2: "would you accept a dump of this size
//! from me now?", asked by `crashdrop-send --check` after `Welcome` instead of an `Offer`. The
//! receiver answers from what it knows without creating anything on disk, then the sender closes.

use crate::error::ProtocolError;
use crate::limits::{
    MAX_DUMP_LEVEL, MAX_MAPNR, MAX_PAGE_SIZE, MAX_RETRY_AFTER_MS, MAX_STRING, MIN_PAGE_SIZE,
};
use crate::reader::PayloadReader;
use crate::writer::PayloadWriter;

/// The size of a dump the sender would send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// makedumpfile's `-d`, 0..=31.
    pub dump_level: u8,
    /// Bytes per page, a power of two in `MIN_PAGE_SIZE..=MAX_PAGE_SIZE`.
    pub page_size: u32,
    /// Pages the dump would hold (after filtering), at most `MAX_MAPNR`.
    pub num_dumpable: u64,
}

impl Probe {
    pub(crate) fn decode(r: &mut PayloadReader) -> Result<Self, ProtocolError> {
        let dump_level = r.u8("dump_level")?;
        if dump_level > MAX_DUMP_LEVEL {
            return Err(r.invalid("dump_level", u64::from(dump_level)));
        }
        let page_size = r.u32("page_size")?;
        if !page_size.is_power_of_two() || !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(r.invalid("page_size", u64::from(page_size)));
        }
        let num_dumpable = r.u64("num_dumpable")?;
        if num_dumpable > MAX_MAPNR {
            return Err(r.invalid("num_dumpable", num_dumpable));
        }
        Ok(Probe {
            dump_level,
            page_size,
            num_dumpable,
        })
    }

    pub(crate) fn encode(&self, w: &mut PayloadWriter) -> Result<(), ProtocolError> {
        w.u8(self.dump_level);
        w.u32(self.page_size);
        w.u64(self.num_dumpable);
        Ok(())
    }

    /// Page bytes before compression: `num_dumpable × page_size` (cannot overflow within the
    /// limits: 2^40 × 2^16).
    pub fn raw_bytes(&self) -> u64 {
        self.num_dumpable.saturating_mul(u64::from(self.page_size))
    }
}

/// The receiver's answer to a `Probe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// An `Offer` of this size would be accepted now (wire 0).
    Accept,
    /// Not enough free space in the store after its reserve (wire 1). Retryable later.
    NoSpace,
    /// This host is over its quota (wire 2). Retryable after an operator prunes.
    OverQuota,
    /// At capacity right now (wire 3): retry after `retry_after_ms`.
    Busy,
}

impl Verdict {
    /// The wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Verdict::Accept => 0,
            Verdict::NoSpace => 1,
            Verdict::OverQuota => 2,
            Verdict::Busy => 3,
        }
    }

    /// The verdict for a wire value, or `None` for an unknown one.
    pub fn from_u8(v: u8) -> Option<Verdict> {
        Some(match v {
            0 => Verdict::Accept,
            1 => Verdict::NoSpace,
            2 => Verdict::OverQuota,
            3 => Verdict::Busy,
            _ => return None,
        })
    }
}

/// `ProbeVerdict`: the verdict, what the receiver reckoned, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeVerdict {
    /// Accept, or why not.
    pub verdict: Verdict,
    /// For `Busy`: milliseconds to wait (at most `MAX_RETRY_AFTER_MS`); 0 otherwise.
    pub retry_after_ms: u32,
    /// The receiver's estimate of the stored size of the probed dump, in bytes.
    pub estimated_bytes: u64,
    /// Bytes the store could take for this host now (free space less the reserve, or the
    /// host's remaining quota, whichever is smaller).
    pub available_bytes: u64,
    /// For a human: the limit that decided, with its value.
    pub message: String,
}

impl ProbeVerdict {
    pub(crate) fn decode(r: &mut PayloadReader) -> Result<Self, ProtocolError> {
        let raw = r.u8("verdict")?;
        let verdict = Verdict::from_u8(raw).ok_or_else(|| r.invalid("verdict", u64::from(raw)))?;
        let retry_after_ms = r.u32("retry_after_ms")?;
        if retry_after_ms > MAX_RETRY_AFTER_MS {
            return Err(r.invalid("retry_after_ms", u64::from(retry_after_ms)));
        }
        Ok(ProbeVerdict {
            verdict,
            retry_after_ms,
            estimated_bytes: r.u64("estimated_bytes")?,
            available_bytes: r.u64("available_bytes")?,
            message: r.string("message", MAX_STRING)?,
        })
    }

    pub(crate) fn encode(&self, w: &mut PayloadWriter) -> Result<(), ProtocolError> {
        if self.retry_after_ms > MAX_RETRY_AFTER_MS {
            return Err(w.invalid("retry_after_ms", u64::from(self.retry_after_ms)));
        }
        w.u8(self.verdict.as_u8());
        w.u32(self.retry_after_ms);
        w.u64(self.estimated_bytes);
        w.u64(self.available_bytes);
        w.string("message", &self.message, MAX_STRING)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn decode_probe(payload: &[u8]) -> Result<Probe, ProtocolError> {
        let mut r = PayloadReader::new("Probe", Bytes::copy_from_slice(payload));
        Probe::decode(&mut r)
    }

    #[test]
    fn probe_fields_out_of_range_are_refused_by_name() {
        let good = [1u8, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        assert_eq!(decode_probe(&good).expect("good").raw_bytes(), 4096 * 256);
        let mut level = good;
        level[0] = 32;
        let mut size = good;
        size[3] = 17; // 4097: not a power of two
        let mut pages = good;
        pages[5] = 0xff;
        for (bytes, field) in [
            (level, "dump_level"),
            (size, "page_size"),
            (pages, "num_dumpable"),
        ] {
            let err = decode_probe(&bytes).expect_err(field);
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn verdicts_round_trip_and_unknown_ones_are_refused() {
        for v in 0..=3 {
            assert_eq!(Verdict::from_u8(v).map(Verdict::as_u8), Some(v));
        }
        assert_eq!(Verdict::from_u8(4), None);
    }
}
