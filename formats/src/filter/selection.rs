//! `PageSelection`: what a kdump-compressed dump of a vmcore at one dump level describes —
//! `max_mapnr` lowered to the end of the last memory section that has a mem_map (formats.md 1.7,
//! 4.4 step 5), the 1st bitmap, the 2nd bitmap and the filter's report — as makedumpfile 1.7.2
//! computes them at every level, 0 and 1 included.

use super::{DumpLevel, FilterError, FilterReport, PageFilter, PhysicalMemory, SectionMap};
use crate::bitmap::Bitmap;
use crate::elf::pfns::{file_backed_bitmap, ram_bitmap};

const PAGE: u64 = 4096;

/// The pfns a dump at one level covers and holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageSelection {
    /// The dump's `max_mapnr`: the vmcore's (1.7), lowered to the end pfn of the last section
    /// with a mem_map. A `mem=` boot or QEMU's BIOS ROM segment at 0xfffc0000 puts PT_LOADs
    /// past the last such section; makedumpfile drops those pfns, and so does this.
    pub max_mapnr: u64,
    /// The vmcore's `max_mapnr` before lowering.
    pub elf_max_mapnr: u64,
    /// The 1st bitmap (RAM), `max_mapnr` bits.
    pub ram: Bitmap,
    /// The 2nd bitmap (pages stored), `max_mapnr` bits.
    pub dumpable: Bitmap,
    /// What the filter left out.
    pub report: FilterReport,
    /// Why `max_mapnr` was not lowered, when the sections could not be found. Only levels that
    /// read no `struct page` get here (the others fail): makedumpfile would refuse the dump
    /// ("Could not validate mem_section"); crashdrop keeps every pfn instead.
    pub not_lowered: Option<String>,
}

impl<'v, M: PhysicalMemory + ?Sized> PageFilter<'v, M> {
    /// The end pfn of the last memory section with a mem_map, at most the vmcore's `max_mapnr`
    /// (4.4 step 5); on FLATMEM kernels the vmcore's `max_mapnr`.
    pub fn mem_map_end(&self) -> Result<u64, FilterError> {
        let struct_page = self.info.size("page").ok_or(FilterError::missing(
            "SIZE(page)",
            "lowering max_mapnr to the last section with a mem_map",
        ))?;
        let mut tr = self.translator()?;
        let floor = self.kernel_floor(tr.five_level());
        let map = SectionMap::locate(&mut tr, self.info, self.max_mapnr, floor, struct_page)?;
        Ok(map
            .sections()
            .last()
            .map_or(self.max_mapnr, |s| s.end_pfn.min(self.max_mapnr)))
    }

    /// The bitmaps and `max_mapnr` of a dump at `level`: the 1st bitmap from the PT_LOADs, the
    /// 2nd from it by [`PageFilter::apply`], both cut at the lowered `max_mapnr`.
    pub fn select(&self, level: DumpLevel) -> Result<PageSelection, FilterError> {
        let (max_mapnr, not_lowered) = match self.mem_map_end() {
            Ok(end) => (end, None),
            Err(e) => (self.max_mapnr, Some(e.to_string())),
        };
        let ram = ram_bitmap(&self.loads, PAGE, max_mapnr);
        let mut dumpable = file_backed_bitmap(&self.loads, PAGE, max_mapnr);
        let report = self.apply(level, &mut dumpable)?;
        Ok(PageSelection {
            max_mapnr,
            elf_max_mapnr: self.max_mapnr,
            ram,
            dumpable,
            report,
            not_lowered,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{FakeMachine, Page, PAGES_PER_SECTION, PAGE_OFFSET, PHYS_BASE};
    use super::*;
    use crate::elf::LoadSegment;

    const SECTIONS: u64 = 4;
    /// QEMU's BIOS ROM segment: the last 64 pfns below the end of the machine.
    const ROM_PFNS: u64 = 64;

    /// A 4-section machine whose sections 2 and 3 have no mem_map; RAM in sections 0 and 1 as
    /// a QEMU dump has it (`p_vaddr = p_paddr`), and a BIOS ROM PT_LOAD at the very end.
    fn qemu_like() -> (FakeMachine, Vec<LoadSegment>) {
        let mut m = FakeMachine::new(SECTIONS * PAGES_PER_SECTION, false);
        m.set_section(2, None);
        m.set_section(3, Some(0)); // root present, section not PRESENT
        let ram = 2 * PAGES_PER_SECTION * 4096;
        let rom = (SECTIONS * PAGES_PER_SECTION - ROM_PFNS) * 4096;
        let loads = vec![
            LoadSegment {
                offset: 0,
                vaddr: 0,
                paddr: 0,
                filesz: ram,
                memsz: ram,
            },
            LoadSegment {
                offset: ram,
                vaddr: rom,
                paddr: rom,
                filesz: ROM_PFNS * 4096,
                memsz: ROM_PFNS * 4096,
            },
        ];
        (m, loads)
    }

    fn select(m: &FakeMachine, loads: &[LoadSegment], level: u8) -> PageSelection {
        let info = m.info();
        let filter = PageFilter::new(&m.memory, &info, loads, PHYS_BASE, m.max_mapnr);
        filter
            .select(DumpLevel::new(level).expect("level"))
            .unwrap_or_else(|e| panic!("level {level}: {e}"))
    }

    #[test]
    fn max_mapnr_ends_at_the_last_section_with_a_mem_map_at_every_level() {
        let (mut m, loads) = qemu_like();
        m.set_page(
            0x10,
            Page {
                mapcount: 0xffff_ff7f, // buddy, order 0
                ..Page::plain()
            },
        );
        for level in [0, 1, 2, 8, 16, 31] {
            let s = select(&m, &loads, level);
            assert_eq!(s.elf_max_mapnr, SECTIONS * PAGES_PER_SECTION);
            assert_eq!(s.max_mapnr, 2 * PAGES_PER_SECTION, "-d {level}");
            assert_eq!(s.ram.bits(), s.max_mapnr, "-d {level}: 1st bitmap length");
            assert_eq!(
                s.dumpable.bits(),
                s.max_mapnr,
                "-d {level}: 2nd bitmap length"
            );
            assert_eq!(
                s.ram.count_ones(),
                2 * PAGES_PER_SECTION,
                "-d {level}: ROM gone"
            );
            assert!(s.dumpable.is_subset_of(&s.ram));
            assert_eq!(s.not_lowered, None);
            assert_eq!(
                s.dumpable.get(0x10),
                level & 16 == 0,
                "-d {level}: free pfn"
            );
        }
    }

    #[test]
    fn a_hole_before_the_last_mem_map_section_does_not_lower() {
        let (mut m, loads) = qemu_like();
        m.set_section(1, None);
        m.set_section(2, Some(super::super::testing::VMEMMAP | 0x7));
        let s = select(&m, &loads, 1);
        assert_eq!(s.max_mapnr, 3 * PAGES_PER_SECTION);
        assert_eq!(
            s.ram.count_ones(),
            2 * PAGES_PER_SECTION,
            "RAM of sections 0, 1"
        );
    }

    #[test]
    fn an_unaligned_max_mapnr_in_a_mem_map_section_stays() {
        let max_mapnr = PAGES_PER_SECTION + 100;
        let m = FakeMachine::new(max_mapnr, false);
        let s = select(&m, &m.loads(), 31);
        assert_eq!(s.max_mapnr, max_mapnr);
        assert_eq!(s.ram.count_ones(), max_mapnr);
    }

    #[test]
    fn the_direct_map_of_proc_vmcore_gives_the_same_lowering() {
        // /proc/vmcore style: RAM in the direct map, so PAGE_OFFSET comes from the PT_LOADs.
        let (m, mut loads) = qemu_like();
        loads[0].vaddr = PAGE_OFFSET;
        let s = select(&m, &loads, 0);
        assert_eq!(s.max_mapnr, 2 * PAGES_PER_SECTION);
    }

    #[test]
    fn levels_without_struct_pages_keep_max_mapnr_when_sections_cannot_be_found() {
        let (mut m, loads) = qemu_like();
        m.drop = vec!["SYMBOL(mem_section)"];
        for level in [0, 1] {
            let s = select(&m, &loads, level);
            assert_eq!(s.max_mapnr, SECTIONS * PAGES_PER_SECTION, "-d {level}");
            let why = s.not_lowered.expect("reason");
            assert!(why.contains("SYMBOL(mem_section)"), "{why}");
            assert_eq!(s.ram.count_ones(), 2 * PAGES_PER_SECTION + ROM_PFNS);
        }
        let info = m.info();
        let filter = PageFilter::new(&m.memory, &info, &loads, PHYS_BASE, m.max_mapnr);
        let err = filter
            .select(DumpLevel::ALL)
            .expect_err("level 31 needs the sections");
        assert!(err.to_string().contains("SYMBOL(mem_section)"), "{err}");
    }
}
