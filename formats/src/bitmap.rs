//! Page bitmaps (2.6): bit `n` is byte `n / 8`, mask `1 << (n % 8)`; plus a rank index.

use std::ops::Range;

/// Number of bytes of a bitmap of `bits` bits: `ceil(bits / 8)`.
pub fn bitmap_byte_len(bits: u64) -> u64 {
    bits.div_ceil(8)
}

/// A defect in bitmap bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BitmapError {
    /// The byte count does not match `ceil(bits / 8)`.
    #[error("bitmap of {bits} bits needs {expected} bytes, got {actual}")]
    WrongLength {
        bits: u64,
        expected: u64,
        actual: u64,
    },
    /// A bit at or beyond `bits` is set.
    #[error("bitmap of {bits} bits has bit {bit} set beyond its end")]
    BitBeyondEnd { bits: u64, bit: u64 },
}

/// A bitmap over pfns `0..bits`. Bits at or beyond `bits` are always zero.
#[derive(Clone, PartialEq, Eq)]
pub struct Bitmap {
    bytes: Vec<u8>,
    bits: u64,
}

impl std::fmt::Debug for Bitmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bitmap")
            .field("bits", &self.bits)
            .field("ones", &self.count_ones())
            .finish()
    }
}

impl Bitmap {
    /// An all-zero bitmap of `bits` bits. Allocates `ceil(bits / 8)` bytes: callers bound `bits`.
    pub fn new(bits: u64) -> Bitmap {
        Bitmap {
            bytes: vec![0; bitmap_byte_len(bits) as usize],
            bits,
        }
    }

    /// Takes bitmap bytes as stored in a kdump file or sent on the wire.
    pub fn from_bytes(bytes: Vec<u8>, bits: u64) -> Result<Bitmap, BitmapError> {
        let expected = bitmap_byte_len(bits);
        if bytes.len() as u64 != expected {
            return Err(BitmapError::WrongLength {
                bits,
                expected,
                actual: bytes.len() as u64,
            });
        }
        let tail_bits = bits % 8;
        if tail_bits != 0 {
            if let Some(&last) = bytes.last() {
                let extra = last & !((1u8 << tail_bits) - 1);
                if extra != 0 {
                    let bit = (expected - 1) * 8 + u64::from(extra.trailing_zeros());
                    return Err(BitmapError::BitBeyondEnd { bits, bit });
                }
            }
        }
        Ok(Bitmap { bytes, bits })
    }

    /// Number of bits (pfns) covered.
    pub fn bits(&self) -> u64 {
        self.bits
    }

    /// The bytes, `ceil(bits / 8)` of them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Consumes the bitmap, returning its bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Bit `n`; false for `n >= bits`.
    pub fn get(&self, n: u64) -> bool {
        if n >= self.bits {
            return false;
        }
        self.bytes[(n / 8) as usize] & (1 << (n % 8)) != 0
    }

    /// Sets bit `n`; ignored for `n >= bits`.
    pub fn set(&mut self, n: u64) {
        if n < self.bits {
            self.bytes[(n / 8) as usize] |= 1 << (n % 8);
        }
    }

    /// Clears bit `n`; ignored for `n >= bits`.
    pub fn clear(&mut self, n: u64) {
        if n < self.bits {
            self.bytes[(n / 8) as usize] &= !(1 << (n % 8));
        }
    }

    /// Sets every bit of `range` (clamped to `0..bits`).
    pub fn set_range(&mut self, range: Range<u64>) {
        self.fill_range(range, true);
    }

    /// Clears every bit of `range` (clamped to `0..bits`).
    pub fn clear_range(&mut self, range: Range<u64>) {
        self.fill_range(range, false);
    }

    fn fill_range(&mut self, range: Range<u64>, value: bool) {
        let end = range.end.min(self.bits);
        let mut n = range.start;
        while n < end && !n.is_multiple_of(8) {
            self.put(n, value);
            n += 1;
        }
        let whole_end = end - end % 8;
        if n < whole_end {
            let fill = if value { 0xff } else { 0 };
            self.bytes[(n / 8) as usize..(whole_end / 8) as usize].fill(fill);
            n = whole_end;
        }
        while n < end {
            self.put(n, value);
            n += 1;
        }
    }

    fn put(&mut self, n: u64, value: bool) {
        if value {
            self.set(n);
        } else {
            self.clear(n);
        }
    }

    /// Number of set bits.
    pub fn count_ones(&self) -> u64 {
        count_ones_bytes(&self.bytes)
    }

    /// True if every bit set here is also set in `other`.
    pub fn is_subset_of(&self, other: &Bitmap) -> bool {
        self.bytes.iter().enumerate().all(|(i, &b)| {
            let o = other.bytes.get(i).copied().unwrap_or(0);
            b & !o == 0
        })
    }

    /// The set bits in ascending order; skips zero words quickly.
    pub fn iter_ones(&self) -> impl Iterator<Item = u64> + '_ {
        self.bytes
            .chunks(8)
            .enumerate()
            .filter_map(|(w, chunk)| {
                let word = word_le(chunk);
                (word != 0).then_some((w as u64 * 64, word))
            })
            .flat_map(|(base, word)| SetBits { word }.map(move |bit| base + bit))
    }

    /// Index of the first set bit at or after `n`, if any.
    pub fn next_one(&self, n: u64) -> Option<u64> {
        if n >= self.bits {
            return None;
        }
        let mut byte = (n / 8) as usize;
        let first = self.bytes[byte] & (0xffu8 << (n % 8));
        if first != 0 {
            return Some(byte as u64 * 8 + u64::from(first.trailing_zeros()));
        }
        byte += 1;
        while byte < self.bytes.len() {
            if byte.is_multiple_of(8) {
                if let Some(chunk) = self.bytes.get(byte..byte + 8) {
                    if word_le(chunk) == 0 {
                        byte += 8;
                        continue;
                    }
                }
            }
            let b = self.bytes[byte];
            if b != 0 {
                return Some(byte as u64 * 8 + u64::from(b.trailing_zeros()));
            }
            byte += 1;
        }
        None
    }
}

/// Iterator over the set bits of one word.
struct SetBits {
    word: u64,
}

impl Iterator for SetBits {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        if self.word == 0 {
            return None;
        }
        let bit = self.word.trailing_zeros();
        self.word &= self.word - 1;
        Some(u64::from(bit))
    }
}

/// Little-endian word of up to 8 bytes (a short last chunk is zero-extended).
fn word_le(chunk: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..chunk.len().min(8)].copy_from_slice(&chunk[..chunk.len().min(8)]);
    u64::from_le_bytes(b)
}

/// Set bits in a byte slice.
fn count_ones_bytes(bytes: &[u8]) -> u64 {
    let words = bytes.chunks_exact(8);
    let tail: u64 = words
        .remainder()
        .iter()
        .map(|b| u64::from(b.count_ones()))
        .sum();
    words
        .map(|c| u64::from(word_le(c).count_ones()))
        .sum::<u64>()
        + tail
}

/// Pfns per rank block: one prefix count per 4096 pfns (512 bitmap bytes), like crash.
pub const RANK_BLOCK_BITS: u64 = 4096;

/// Prefix counts over a bitmap so that `rank(n)` (set bits below `n`) is cheap: a page
/// descriptor's index is the rank of its pfn in the 2nd bitmap (2.7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BitmapRank {
    /// `prefix[k]` = set bits in pfns `0 .. k * RANK_BLOCK_BITS`.
    prefix: Vec<u64>,
}

impl BitmapRank {
    /// Builds the index for `bitmap` (one pass over its bytes).
    pub fn new(bitmap: &Bitmap) -> BitmapRank {
        let block_bytes = (RANK_BLOCK_BITS / 8) as usize;
        let mut prefix = Vec::with_capacity(bitmap.bytes.len() / block_bytes + 2);
        let mut total = 0u64;
        prefix.push(0);
        for block in bitmap.bytes.chunks(block_bytes) {
            total += count_ones_bytes(block);
            prefix.push(total);
        }
        BitmapRank { prefix }
    }

    /// Number of set bits of `bitmap` (the one the index was built from) in `0..n`.
    pub fn rank(&self, bitmap: &Bitmap, n: u64) -> u64 {
        let n = n.min(bitmap.bits);
        let block = n / RANK_BLOCK_BITS;
        let base = self.prefix.get(block as usize).copied().unwrap_or(0);
        let start = (block * RANK_BLOCK_BITS / 8) as usize;
        let whole = (n / 8) as usize;
        let mut count = base + count_ones_bytes(&bitmap.bytes[start..whole]);
        if !n.is_multiple_of(8) {
            let partial = bitmap.bytes[whole] & ((1u8 << (n % 8)) - 1);
            count += u64::from(partial.count_ones());
        }
        count
    }

    /// Total set bits.
    pub fn total(&self) -> u64 {
        self.prefix.last().copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_layout_matches_kdump() {
        let mut b = Bitmap::new(20);
        b.set(0);
        b.set(9);
        b.set(19);
        assert_eq!(b.as_bytes(), &[0x01, 0x02, 0x08]);
        assert!(b.get(9) && !b.get(10) && !b.get(100));
        b.clear(9);
        assert_eq!(b.as_bytes(), &[0x01, 0x00, 0x08]);
        b.set(20); // beyond the end: ignored
        assert_eq!(b.count_ones(), 2);
    }

    #[test]
    fn ranges_against_single_bits() {
        for (start, end) in [
            (0, 0),
            (3, 5),
            (3, 8),
            (8, 16),
            (5, 150),
            (0, 200),
            (199, 300),
        ] {
            let mut fast = Bitmap::new(200);
            let mut slow = Bitmap::new(200);
            fast.set_range(start..end);
            for n in start..end.min(200) {
                slow.set(n);
            }
            assert_eq!(fast, slow, "{start}..{end}");
            assert_eq!(fast.count_ones(), end.min(200).saturating_sub(start));
            fast.clear_range(start + 1..end);
            assert_eq!(fast.count_ones(), u64::from(end > start));
        }
    }

    #[test]
    fn from_bytes_checks_length_and_tail() {
        assert!(Bitmap::from_bytes(vec![0xff, 0x03], 10).is_ok());
        assert_eq!(
            Bitmap::from_bytes(vec![0xff, 0x04], 10),
            Err(BitmapError::BitBeyondEnd { bits: 10, bit: 10 })
        );
        assert!(matches!(
            Bitmap::from_bytes(vec![0; 3], 10),
            Err(BitmapError::WrongLength { expected: 2, .. })
        ));
        assert!(Bitmap::from_bytes(vec![0xff], 8).is_ok());
    }

    #[test]
    fn iter_ones_and_next_one() {
        let mut b = Bitmap::new(1000);
        let set = [0u64, 7, 63, 64, 65, 500, 999];
        for &n in &set {
            b.set(n);
        }
        assert_eq!(b.iter_ones().collect::<Vec<_>>(), set);
        assert_eq!(b.next_one(0), Some(0));
        assert_eq!(b.next_one(1), Some(7));
        assert_eq!(b.next_one(66), Some(500));
        assert_eq!(b.next_one(501), Some(999));
        assert_eq!(b.next_one(1000), None);
    }

    #[test]
    fn subset() {
        let mut a = Bitmap::new(100);
        let mut b = Bitmap::new(100);
        a.set_range(10..20);
        b.set_range(0..50);
        assert!(a.is_subset_of(&b));
        assert!(!b.is_subset_of(&a));
    }

    #[test]
    fn rank_matches_naive_count() {
        let mut b = Bitmap::new(3 * 4096 + 77);
        let mut x = 12345u64;
        for n in 0..b.bits() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x.is_multiple_of(3) {
                b.set(n);
            }
        }
        let rank = BitmapRank::new(&b);
        let mut naive = 0;
        for n in 0..=b.bits() {
            assert_eq!(rank.rank(&b, n), naive, "rank({n})");
            if b.get(n) {
                naive += 1;
            }
        }
        assert_eq!(rank.total(), b.count_ones());
    }
}
