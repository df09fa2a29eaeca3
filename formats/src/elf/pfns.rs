//! Which pfns an ELF vmcore holds: the 1st bitmap and the file-backed 2nd bitmap (2.6, 4.7).

use std::ops::Range;

use super::{ElfVmcore, LoadSegment};
use crate::bitmap::Bitmap;

impl LoadSegment {
    /// Pfns of the 1st bitmap for this segment, makedumpfile's non-cyclic rule (2.6):
    /// `floor(p_paddr / ps) ..= ceil((p_paddr + p_memsz) / ps) - 1`, so partial first and last
    /// pages are included. Empty for `p_memsz == 0`. `page_size` must be non-zero.
    pub fn ram_pfns(&self, page_size: u64) -> Range<u64> {
        if self.memsz == 0 || page_size == 0 {
            return 0..0;
        }
        let end = self.paddr.saturating_add(self.memsz);
        self.paddr / page_size..end.div_ceil(page_size)
    }

    /// Pfns "past the file part" that makedumpfile 1.7.2 clears from the 2nd bitmap (4.7):
    /// `floor((p_paddr + p_filesz) / ps) .. ceil((p_paddr + p_memsz) / ps)`. It includes a
    /// partial last page even when `p_filesz == p_memsz`.
    pub fn unbacked_pfns(&self, page_size: u64) -> Range<u64> {
        if self.memsz == 0 || page_size == 0 {
            return 0..0;
        }
        let file_end = self.paddr.saturating_add(self.filesz);
        let end = self.paddr.saturating_add(self.memsz);
        file_end / page_size..end.div_ceil(page_size)
    }
}

impl ElfVmcore {
    /// The 1st bitmap ("is RAM"), `max_mapnr` bits: every PT_LOAD's [`LoadSegment::ram_pfns`].
    /// A dump's own 1st bitmap may be shorter: see [`crate::PageSelection`].
    pub fn ram_bitmap(&self) -> Bitmap {
        ram_bitmap(&self.loads, self.page_size, self.max_mapnr)
    }

    /// The 1st bitmap minus every PT_LOAD's [`LoadSegment::unbacked_pfns`] (1.7.2 rule): the 2nd
    /// bitmap of dump levels 0 and 1 before `max_mapnr` is lowered ([`crate::PageSelection`]).
    pub fn file_backed_bitmap(&self) -> Bitmap {
        file_backed_bitmap(&self.loads, self.page_size, self.max_mapnr)
    }
}

/// The 1st bitmap of `bits` pfns: every PT_LOAD's [`LoadSegment::ram_pfns`], clipped.
pub fn ram_bitmap(loads: &[LoadSegment], page_size: u64, bits: u64) -> Bitmap {
    let mut bitmap = Bitmap::new(bits);
    for load in loads {
        bitmap.set_range(load.ram_pfns(page_size));
    }
    bitmap
}

/// [`ram_bitmap`] minus every PT_LOAD's [`LoadSegment::unbacked_pfns`] (1.7.2 rule).
pub fn file_backed_bitmap(loads: &[LoadSegment], page_size: u64, bits: u64) -> Bitmap {
    let mut bitmap = ram_bitmap(loads, page_size, bits);
    for load in loads {
        bitmap.clear_range(load.unbacked_pfns(page_size));
    }
    bitmap
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(paddr: u64, filesz: u64, memsz: u64) -> LoadSegment {
        LoadSegment {
            offset: 0,
            vaddr: 0,
            paddr,
            filesz,
            memsz,
        }
    }

    #[test]
    fn partial_last_page() {
        // The first x86 RAM range of a real /proc/vmcore: 0x1000..0x9fc00.
        let s = seg(0x1000, 0x9ec00, 0x9ec00);
        assert_eq!(s.ram_pfns(4096), 1..0xa0);
        assert_eq!(s.unbacked_pfns(4096), 0x9f..0xa0);
    }

    #[test]
    fn aligned_and_short_file_part() {
        let s = seg(0x10_0000, 0x1000_0000, 0x1000_0000);
        assert_eq!(s.unbacked_pfns(4096).count(), 0);
        let s = seg(0x10_0000, 0x2800, 0x8000);
        assert_eq!(s.ram_pfns(4096), 0x100..0x108);
        assert_eq!(s.unbacked_pfns(4096), 0x102..0x108);
        assert_eq!(seg(0x1800, 0, 0).ram_pfns(4096).count(), 0);
        assert_eq!(seg(0x1800, 0x100, 0x100).ram_pfns(4096), 1..2);
    }
}
