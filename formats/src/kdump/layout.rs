//! Where everything lives in a kdump-compressed file (2.1, 2.6): block counts and offsets.

use super::{KdumpError, PAGE_DESC_LEN, SUB_HEADER_LEN};
use crate::bitmap::bitmap_byte_len;

/// The offsets of a kdump-compressed file, all in bytes unless named `_blocks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdumpLayout {
    /// Block size (= page size).
    pub block_size: u64,
    /// `sub_hdr_size`: blocks of sub header + notes, starting at block 1.
    pub sub_header_blocks: u64,
    /// Meaningful bytes of each bitmap: `ceil(max_mapnr / 8)`.
    pub bitmap_len: u64,
    /// `bitmap_blocks`: blocks of both bitmaps together.
    pub bitmap_blocks: u64,
    /// File offset of the 1st bitmap.
    pub bitmap1_offset: u64,
    /// File offset of the 2nd bitmap.
    pub bitmap2_offset: u64,
    /// File offset of the page descriptor table (`D`).
    pub descriptors_offset: u64,
    /// File offset of the first page data byte: `D + 24 * num_dumpable`.
    pub data_offset: u64,
    /// Number of pfns.
    pub max_mapnr: u64,
    /// Number of page descriptors (set bits of the 2nd bitmap).
    pub num_dumpable: u64,
    /// Bytes of the ELF note segment copied after the sub header.
    pub notes_len: u64,
}

/// Checks a block size: a power of two in 512..=1 MiB.
pub(super) fn check_block_size(block_size: u64) -> Result<(), KdumpError> {
    if block_size.is_power_of_two() && (512..=1 << 20).contains(&block_size) {
        Ok(())
    } else {
        Err(KdumpError::BadBlockSize {
            block_size: i64::try_from(block_size).unwrap_or(i64::MAX),
        })
    }
}

fn overflow(field: &'static str, detail: String) -> KdumpError {
    KdumpError::LayoutOverflow { field, detail }
}

impl KdumpLayout {
    /// The layout makedumpfile would use: `sub_hdr_size = ceil((104 + notes_len) / B)`, each
    /// bitmap `ceil(ceil(max_mapnr / 8) / B)` blocks. All arithmetic checked; values must fit
    /// their header fields (`sub_hdr_size` i32, `bitmap_blocks` u32).
    pub fn new(
        block_size: u64,
        notes_len: u64,
        max_mapnr: u64,
        num_dumpable: u64,
    ) -> Result<KdumpLayout, KdumpError> {
        check_block_size(block_size)?;
        let sub_header_blocks = notes_len
            .checked_add(SUB_HEADER_LEN as u64)
            .map(|n| n.div_ceil(block_size))
            .ok_or_else(|| overflow("sub_hdr_size", format!("notes_len {notes_len}")))?;
        let per_bitmap = bitmap_byte_len(max_mapnr).div_ceil(block_size);
        let bitmap_blocks = per_bitmap
            .checked_mul(2)
            .ok_or_else(|| overflow("bitmap_blocks", format!("max_mapnr {max_mapnr}")))?;
        Self::from_parts(
            block_size,
            sub_header_blocks,
            bitmap_blocks,
            notes_len,
            max_mapnr,
            num_dumpable,
        )
    }

    /// A layout from header values as read from a file. `sub_header_blocks` and
    /// `bitmap_blocks` must be at least what [`Self::new`] computes, and `bitmap_blocks` even.
    pub fn from_parts(
        block_size: u64,
        sub_header_blocks: u64,
        bitmap_blocks: u64,
        notes_len: u64,
        max_mapnr: u64,
        num_dumpable: u64,
    ) -> Result<KdumpLayout, KdumpError> {
        check_block_size(block_size)?;
        if num_dumpable > max_mapnr {
            return Err(KdumpError::TooManyDumpable {
                num_dumpable,
                max_mapnr,
            });
        }
        let sub_min = notes_len
            .saturating_add(SUB_HEADER_LEN as u64)
            .div_ceil(block_size);
        if sub_header_blocks < sub_min || i32::try_from(sub_header_blocks).is_err() {
            return Err(KdumpError::BadField {
                field: "sub_hdr_size",
                detail: format!(
                    "{sub_header_blocks} blocks, need {sub_min} for the sub header and {notes_len} bytes of notes (and at most i32::MAX)"
                ),
            });
        }
        let bitmap_len = bitmap_byte_len(max_mapnr);
        let per_bitmap = bitmap_len.div_ceil(block_size);
        if !bitmap_blocks.is_multiple_of(2)
            || bitmap_blocks / 2 < per_bitmap
            || u32::try_from(bitmap_blocks).is_err()
        {
            return Err(KdumpError::BadField {
                field: "bitmap_blocks",
                detail: format!(
                    "{bitmap_blocks}, need an even number of at least {} (two bitmaps of {bitmap_len} bytes) that fits a u32",
                    per_bitmap.saturating_mul(2)
                ),
            });
        }
        let blocks = |n: u64, field: &'static str| {
            n.checked_mul(block_size)
                .ok_or_else(|| overflow(field, format!("{n} blocks of {block_size}")))
        };
        let bitmap1_offset = blocks(1 + sub_header_blocks, "bitmap1_offset")?;
        let bitmap2_offset = blocks(bitmap_blocks / 2, "bitmap2_offset")?
            .checked_add(bitmap1_offset)
            .ok_or_else(|| overflow("bitmap2_offset", format!("bitmap_blocks {bitmap_blocks}")))?;
        let descriptors_offset = blocks(bitmap_blocks / 2, "descriptors_offset")?
            .checked_add(bitmap2_offset)
            .ok_or_else(|| {
                overflow(
                    "descriptors_offset",
                    format!("bitmap_blocks {bitmap_blocks}"),
                )
            })?;
        let data_offset = num_dumpable
            .checked_mul(PAGE_DESC_LEN)
            .and_then(|n| n.checked_add(descriptors_offset))
            .filter(|&n| i64::try_from(n).is_ok())
            .ok_or_else(|| overflow("data_offset", format!("num_dumpable {num_dumpable}")))?;
        Ok(KdumpLayout {
            block_size,
            sub_header_blocks,
            bitmap_len,
            bitmap_blocks,
            bitmap1_offset,
            bitmap2_offset,
            descriptors_offset,
            data_offset,
            max_mapnr,
            num_dumpable,
            notes_len,
        })
    }

    /// File offset of descriptor `index` (`D + 24 * index`); saturates instead of overflowing.
    pub fn descriptor_offset(&self, index: u64) -> u64 {
        index
            .saturating_mul(PAGE_DESC_LEN)
            .saturating_add(self.descriptors_offset)
    }

    /// Bytes reserved for one bitmap: `bitmap_blocks / 2` blocks (the tail past
    /// `bitmap_len` is zero).
    pub fn bitmap_region_len(&self) -> u64 {
        (self.bitmap_blocks / 2) * self.block_size
    }

    /// File offset of the VMCOREINFO-independent note copy: `block_size + 104`.
    pub fn notes_offset(&self) -> u64 {
        self.block_size + SUB_HEADER_LEN as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_layout() {
        // 0x20000 pfns (512 MiB): 16384 bitmap bytes = 4 blocks each, 8 in all; 104 + 3992 bytes
        // of sub header and notes fill exactly one block.
        let l = KdumpLayout::new(4096, 3992, 0x20000, 1000).expect("layout");
        assert_eq!(l.sub_header_blocks, 1);
        assert_eq!(l.bitmap_len, 16384);
        assert_eq!(l.bitmap_blocks, 8);
        assert_eq!(l.bitmap_region_len(), 4 * 4096);
        assert_eq!(l.bitmap1_offset, 2 * 4096);
        assert_eq!(l.bitmap2_offset, 6 * 4096);
        assert_eq!(l.descriptors_offset, 10 * 4096);
        assert_eq!(l.data_offset, 10 * 4096 + 24 * 1000);
        assert_eq!(l.descriptor_offset(2), 10 * 4096 + 48);
        assert_eq!(l.notes_offset(), 4096 + 104);
    }

    #[test]
    fn fixture_sized_layout() {
        // The fixture: 4020 bytes of notes, max_mapnr 0x1ffe0, 81,790 dumpable pfns at level 0.
        let l = KdumpLayout::new(4096, 4020, 0x1ffe0, 81_790).expect("layout");
        assert_eq!(l.sub_header_blocks, 2); // 104 + 4020 = 4124 bytes
        assert_eq!(l.bitmap_len, 16380);
        assert_eq!(l.bitmap_blocks, 8);
        assert_eq!(l.bitmap1_offset, 3 * 4096);
        assert_eq!(l.bitmap2_offset, 7 * 4096);
        assert_eq!(l.descriptors_offset, 11 * 4096);
        assert_eq!(l.data_offset, 45_056 + 1_962_960);
        let empty = KdumpLayout::new(4096, 0, 1, 1).expect("layout");
        assert_eq!((empty.sub_header_blocks, empty.bitmap_blocks), (1, 2));
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(
            KdumpLayout::new(1000, 0, 10, 1),
            Err(KdumpError::BadBlockSize { .. })
        ));
        assert!(matches!(
            KdumpLayout::new(4096, 0, 10, 11),
            Err(KdumpError::TooManyDumpable { .. })
        ));
        assert!(KdumpLayout::new(4096, u64::MAX, 10, 1).is_err());
        assert!(KdumpLayout::new(4096, 0, u64::MAX, 1).is_err());
        assert!(KdumpLayout::new(4096, 0, 1 << 40, 1 << 40).is_ok());
        assert!(KdumpLayout::from_parts(4096, 1, 7, 0, 0x20000, 0).is_err());
        assert!(KdumpLayout::from_parts(4096, 1, 6, 0, 0x20000, 0).is_err());
        assert!(KdumpLayout::from_parts(4096, 1, 10, 0, 0x20000, 0).is_ok());
        assert!(KdumpLayout::from_parts(4096, 1, 8, 4020, 0x20000, 0).is_err());
    }
}
