//! Protocol v2's durable state as a *set* of chunks: [`ChunkRanges`], carried by `ResumeSet`
//! (0x13, the answer to an `Offer`) and `ChunksAck` (0x14, chunks newly made durable). Chunks
//! may arrive in any order, so the receiver can no longer say "everything below n".

use crate::error::ProtocolError;
use crate::limits::{MAX_RANGES, MAX_WINDOW};
use crate::reader::PayloadReader;
use crate::resume::ResumeState;
use crate::writer::PayloadWriter;

/// Bytes of one range on the wire: `first` and `count`, both u64.
const RANGE_LEN: usize = 16;

/// A set of chunk indices as sorted, disjoint, non-adjacent ranges `first..first + count`.
///
/// On the wire: `u32` number of ranges (at most `MAX_RANGES`), then each range as `first: u64`,
/// `count: u64` (count ≥ 1). Ranges must ascend with a gap between them (`first` greater than the
/// previous range's end) and must not overflow u64; anything else is a protocol error, so one set
/// has exactly one encoding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkRanges {
    ranges: Vec<(u64, u64)>,
}

impl ChunkRanges {
    /// The empty set.
    pub fn new() -> ChunkRanges {
        ChunkRanges::default()
    }

    /// The set `0..count` (empty for 0).
    pub fn prefix(count: u64) -> ChunkRanges {
        let mut set = ChunkRanges::new();
        set.insert_range(0, count);
        set
    }

    /// The ranges as `(first, count)`, ascending.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// Chunks in the set.
    pub fn len(&self) -> u64 {
        self.ranges
            .iter()
            .fold(0u64, |n, &(_, count)| n.saturating_add(count))
    }

    /// Whether the set has no chunk.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether chunk `c` is in the set.
    pub fn contains(&self, c: u64) -> bool {
        let i = self.ranges.partition_point(|&(first, _)| first <= c);
        match i.checked_sub(1).and_then(|i| self.ranges.get(i)) {
            Some(&(first, count)) => c.wrapping_sub(first) < count,
            None => false,
        }
    }

    /// Adds chunk `c`.
    pub fn insert(&mut self, c: u64) {
        self.insert_range(c, 1);
    }

    /// Adds `first..first + count` (saturating at u64::MAX), merging with neighbours.
    pub fn insert_range(&mut self, first: u64, count: u64) {
        if count == 0 {
            return;
        }
        let mut lo = first;
        let mut hi = first.saturating_add(count);
        // Ranges ending before `lo` (with a gap) stay; ranges starting after `hi` stay.
        let start = self
            .ranges
            .partition_point(|&(f, n)| f.saturating_add(n) < lo);
        let end = self.ranges.partition_point(|&(f, _)| f <= hi);
        for &(f, n) in self.ranges.get(start..end).unwrap_or(&[]) {
            lo = lo.min(f);
            hi = hi.max(f.saturating_add(n));
        }
        self.ranges
            .splice(start..end, [(lo, hi.saturating_sub(lo))]);
    }

    /// The lowest chunk below `limit` that is not in the set, if any.
    pub fn first_missing(&self, limit: u64) -> Option<u64> {
        let next = match self.ranges.first() {
            Some(&(0, count)) => count,
            _ => 0,
        };
        (next < limit).then_some(next)
    }

    pub(crate) fn decode(r: &mut PayloadReader) -> Result<Self, ProtocolError> {
        let n = r.u32("ranges")?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n > MAX_RANGES {
            return Err(r.invalid("ranges", n as u64));
        }
        let fit = r.remaining().checked_div(RANGE_LEN).unwrap_or(0);
        let mut ranges = Vec::with_capacity(n.min(fit));
        let mut floor: Option<u64> = None;
        for _ in 0..n {
            let first = r.u64("range.first")?;
            let count = r.u64("range.count")?;
            if count == 0 {
                return Err(r.invalid("range.count", 0));
            }
            let end = first
                .checked_add(count)
                .ok_or_else(|| r.invalid("range.count", count))?;
            if floor.is_some_and(|prev_end| first <= prev_end) {
                return Err(r.invalid("range.first (not ascending with a gap)", first));
            }
            floor = Some(end);
            ranges.push((first, count));
        }
        Ok(ChunkRanges { ranges })
    }

    pub(crate) fn encode(&self, w: &mut PayloadWriter) -> Result<(), ProtocolError> {
        let n = u32::try_from(self.ranges.len())
            .ok()
            .filter(|&n| usize::try_from(n).is_ok_and(|n| n <= MAX_RANGES))
            .ok_or_else(|| w.invalid("ranges", self.ranges.len() as u64))?;
        w.u32(n);
        for &(first, count) in &self.ranges {
            w.u64(first);
            w.u64(count);
        }
        Ok(())
    }
}

/// `ResumeSet` (0x13, v2): the answer to an `Offer`: what to do, whether the bitmaps are durable,
/// the window, and which chunks are already durable (send the others, in any order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeSet {
    /// Send, or nothing to do (the dump is complete).
    pub state: ResumeState,
    /// The receiver holds both bitmaps durably: skip straight to pages.
    pub bitmaps_stored: bool,
    /// Chunks the sender may have sent but not yet seen acknowledged: 1..=`MAX_WINDOW`.
    pub window: u16,
    /// Chunk indices durably stored.
    pub durable: ChunkRanges,
}

impl ResumeSet {
    pub(crate) fn decode(r: &mut PayloadReader) -> Result<Self, ProtocolError> {
        let raw = r.u8("state")?;
        let state = ResumeState::from_u8(raw).ok_or_else(|| r.invalid("state", u64::from(raw)))?;
        let bitmaps_stored = r.bool("bitmaps_stored")?;
        let window = r.u16("window")?;
        if !(1..=MAX_WINDOW).contains(&window) {
            return Err(r.invalid("window", u64::from(window)));
        }
        Ok(ResumeSet {
            state,
            bitmaps_stored,
            window,
            durable: ChunkRanges::decode(r)?,
        })
    }

    pub(crate) fn encode(&self, w: &mut PayloadWriter) -> Result<(), ProtocolError> {
        if !(1..=MAX_WINDOW).contains(&self.window) {
            return Err(w.invalid("window", u64::from(self.window)));
        }
        w.u8(self.state.as_u8());
        w.bool(self.bitmaps_stored);
        w.u16(self.window);
        self.durable.encode(w)
    }
}

/// `ChunksAck` (0x14, v2): these chunks are now written and fsynced (in addition to those
/// acknowledged before). Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunksAck {
    /// Chunk indices made durable since the previous acknowledgement.
    pub durable: ChunkRanges,
}

impl ChunksAck {
    pub(crate) fn decode(r: &mut PayloadReader) -> Result<Self, ProtocolError> {
        let durable = ChunkRanges::decode(r)?;
        if durable.is_empty() {
            return Err(ProtocolError::EmptyField {
                frame: "ChunksAck",
                field: "ranges",
            });
        }
        Ok(ChunksAck { durable })
    }

    pub(crate) fn encode(&self, w: &mut PayloadWriter) -> Result<(), ProtocolError> {
        if self.durable.is_empty() {
            return Err(w.empty("ranges"));
        }
        self.durable.encode(w)
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};

    use super::*;

    fn decode(payload: Vec<u8>) -> Result<ChunkRanges, ProtocolError> {
        let mut r = PayloadReader::new("ChunksAck", Bytes::from(payload));
        let set = ChunkRanges::decode(&mut r)?;
        r.finish()?;
        Ok(set)
    }

    fn wire(ranges: &[(u64, u64)]) -> Vec<u8> {
        let mut p = (ranges.len() as u32).to_be_bytes().to_vec();
        for (f, n) in ranges {
            p.extend_from_slice(&f.to_be_bytes());
            p.extend_from_slice(&n.to_be_bytes());
        }
        p
    }

    #[test]
    fn inserts_merge_in_any_order_and_membership_is_exact() {
        let mut set = ChunkRanges::new();
        for c in [5, 0, 7, 1, 6, 3] {
            set.insert(c);
        }
        assert_eq!(set.ranges(), &[(0, 2), (3, 1), (5, 3)]);
        assert_eq!(set.len(), 6);
        set.insert(2);
        set.insert(4);
        assert_eq!(set.ranges(), &[(0, 8)]);
        set.insert_range(20, 5);
        set.insert_range(8, 12);
        assert_eq!(set.ranges(), &[(0, 25)]);
        assert!(set.contains(0) && set.contains(24) && !set.contains(25));
        assert_eq!(set.first_missing(25), None);
        assert_eq!(set.first_missing(30), Some(25));
        assert_eq!(ChunkRanges::new().first_missing(1), Some(0));
        let mut gap = ChunkRanges::prefix(3);
        gap.insert(9);
        assert!(!gap.contains(5) && gap.contains(9) && !gap.contains(10));
    }

    #[test]
    fn round_trips_and_only_the_canonical_form_decodes() {
        let mut set = ChunkRanges::prefix(4);
        set.insert_range(10, 2);
        let mut dst = BytesMut::new();
        set.encode(&mut PayloadWriter::new("ChunksAck", &mut dst))
            .expect("encodes");
        assert_eq!(decode(dst.to_vec()).expect("decodes"), set);

        for (bad, why) in [
            (wire(&[(0, 0)]), "empty range"),
            (wire(&[(5, 1), (2, 1)]), "descending"),
            (wire(&[(0, 2), (2, 1)]), "adjacent"),
            (wire(&[(0, 3), (1, 1)]), "overlapping"),
            (wire(&[(u64::MAX, 2)]), "overflowing"),
        ] {
            assert!(decode(bad).is_err(), "{why} must be refused");
        }
    }

    #[test]
    fn a_huge_declared_count_allocates_nothing_and_is_refused() {
        assert!(decode((MAX_RANGES as u32 + 1).to_be_bytes().to_vec()).is_err());
        // Within the limit but not present: truncated, not a big allocation.
        assert!(matches!(
            decode((MAX_RANGES as u32).to_be_bytes().to_vec()),
            Err(ProtocolError::Truncated { .. })
        ));
    }

    #[test]
    fn a_window_out_of_range_is_refused() {
        let mut p = vec![0, 1];
        p.extend_from_slice(&0u16.to_be_bytes());
        p.extend_from_slice(&wire(&[]));
        let mut r = PayloadReader::new("ResumeSet", Bytes::from(p));
        let err = ResumeSet::decode(&mut r).expect_err("window 0");
        assert!(err.to_string().contains("window"), "{err}");
    }
}
