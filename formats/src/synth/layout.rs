//! `Layout`: where everything of the synthetic machine sits physically and virtually — the RAM
//! ranges, the kernel image, the present memory sections, their `struct page` arrays (vmemmap)
//! and the memblock area holding the page tables, `mem_section` and the printk ring.
//!
//! Like a booted x86_64 kernel: the vmemmap blocks (2 MiB per 128 MiB section) and the other
//! early allocations come from the top of RAM; the first MiB and the kernel image are reserved.

use std::io;
use std::ops::Range;

use crate::X86_64_START_KERNEL_MAP;

pub(super) const PAGE: u64 = 4096;
pub(super) const MIB: u64 = 1 << 20;
pub(super) const SIZE_2M: u64 = 2 * MIB;
pub(super) const SIZE_1G: u64 = 1 << 30;
/// `NUMBER(SECTION_SIZE_BITS)`: 128 MiB sections.
pub(super) const SECTION_SIZE_BITS: u32 = 27;
pub(super) const PAGES_PER_SECTION: u64 = 1 << (SECTION_SIZE_BITS - 12);
/// `SIZE(page)`.
pub(super) const STRUCT_PAGE: u64 = 64;
/// `NUMBER(MAX_PHYSMEM_BITS)` of 4-level paging.
pub(super) const MAX_PHYSMEM_BITS: u32 = 46;
/// `LENGTH(mem_section)`: `2^(46 - 27) / 256` roots.
pub(super) const MEM_SECTION_ROOTS: u64 = 2048;
/// `struct mem_section`s per root page (4096 / `SIZE(mem_section)`).
pub(super) const SECTIONS_PER_ROOT: u64 = 256;

/// Run-time address of `_stext` (a KASLR-shifted kernel-image address).
pub const SYNTH_STEXT: u64 = 0xffff_ffff_a800_0000;
/// Link-time address of `_stext` without KASLR.
pub(super) const LINK_STEXT: u64 = 0xffff_ffff_8100_0000;
/// The direct-map base (`page_offset_base`), KASLR-randomised like a real one (1 GiB aligned).
pub const SYNTH_PAGE_OFFSET: u64 = 0xffff_93c6_4000_0000;
/// `vmemmap_base`, KASLR-randomised (1 GiB aligned).
pub const SYNTH_VMEMMAP: u64 = 0xffff_d4a1_c000_0000;

/// Offsets inside the kernel image of the kernel's own data (the image is at least 5 MiB).
pub(super) const IMAGE_PGD: u64 = 0x20_0000;
pub(super) const IMAGE_DATA: u64 = 0x21_0000;
/// Offset of `init_uts_ns` inside its page.
const UTS_PAGE_OFFSET: u64 = 0xb60;

/// Pages of the memblock area that are not page tables: the printk ring (text, descriptors,
/// infos) and the `mem_section` root array.
const PRINTK_PAGES: u64 = (super::printk::TEXT_BYTES
    + super::printk::DESCS * super::printk::DESC_BYTES
    + super::printk::DESCS * super::printk::INFO_BYTES)
    / PAGE;
const ROOT_ARRAY_PAGES: u64 = MEM_SECTION_ROOTS * 8 / PAGE;

/// The synthetic machine's physical and virtual layout.
pub(super) struct Layout {
    /// RAM byte ranges (one PT_LOAD each), ascending.
    pub ram: Vec<Range<u64>>,
    /// The kernel image, physically (inside the second RAM range).
    pub image: Range<u64>,
    pub phys_base: u64,
    /// One past the last pfn of RAM (`max_mapnr`).
    pub end_pfn: u64,
    /// Present section numbers, ascending; section `sections[i]`'s struct pages are the 2 MiB at
    /// `vmemmap_phys + i * 2 MiB`.
    pub sections: Vec<u64>,
    pub vmemmap_phys: u64,
    /// The memblock allocations below the vmemmap blocks: `[start, vmemmap_phys)` holds page
    /// tables, the `mem_section` roots and the printk ring.
    pub memblock: Range<u64>,
}

impl Layout {
    pub fn new(memory_bytes: u64) -> io::Result<Layout> {
        if !(16 * MIB..=1 << 46).contains(&memory_bytes) {
            return Err(invalid(format!(
                "synthetic vmcore: memory_bytes {memory_bytes} is not in 16 MiB..=64 TiB"
            )));
        }
        let rest = memory_bytes - MIB;
        let low = (rest / 4 * 3) / MIB * MIB; // 0x100000 .. 0x100000 + low
        let high = (rest - low) / PAGE * PAGE;
        let high_start = MIB + low + 16 * MIB;
        let image = (low / 2 / MIB * MIB).min(32 * MIB);
        let text = (MIB + (low - image) / 2).min(0x8a0_0000) / SIZE_2M * SIZE_2M;
        let text = text.max(SIZE_2M);
        let phys_base = text.wrapping_sub(SYNTH_STEXT - X86_64_START_KERNEL_MAP);
        let ram = vec![
            0x1000..0x9_fc00,
            MIB..MIB + low,
            high_start..high_start + high,
        ];
        let end = high_start + high;
        let end_pfn = end.div_ceil(PAGE);
        let sections: Vec<u64> = (0..end.div_ceil(1 << SECTION_SIZE_BITS))
            .filter(|&nr| {
                let span = nr << SECTION_SIZE_BITS..(nr + 1) << SECTION_SIZE_BITS;
                ram.iter().any(|r| r.start < span.end && span.start < r.end)
            })
            .collect();
        let n = sections.len() as u64;
        let vmemmap_phys = (end / SIZE_2M * SIZE_2M)
            .checked_sub(n * SIZE_2M)
            .ok_or_else(|| invalid("synthetic vmcore: no room for the vmemmap".into()))?;
        let last = sections.last().copied().unwrap_or(0) + 1;
        let tables = last.div_ceil(SECTIONS_PER_ROOT) // mem_section roots
            + last.div_ceil(512) + last.div_ceil(512 * 512) + 2 // vmemmap PMD and PUD tables
            + end.div_ceil(512 * SIZE_1G) + 2 // direct-map PUD tables
            + 8;
        let memblock_pages = PRINTK_PAGES + ROOT_ARRAY_PAGES + tables;
        let memblock_start = vmemmap_phys - memblock_pages * PAGE;
        if memblock_start < high_start {
            return Err(invalid(format!(
                "synthetic vmcore: {memory_bytes} bytes leave no room for the kernel's memblock area"
            )));
        }
        Ok(Layout {
            ram,
            image: text..text + image,
            phys_base,
            end_pfn,
            sections,
            vmemmap_phys,
            memblock: memblock_start..vmemmap_phys,
        })
    }

    /// Whether the page allocator owns `pfn` (it is whole RAM above the first MiB, outside the
    /// kernel image and the memblock area); the other pfns are reserved.
    pub fn allocatable(&self, pfn: u64) -> bool {
        let (start, end) = (pfn * PAGE, pfn * PAGE + PAGE);
        start >= MIB
            && self.ram.iter().any(|r| r.start <= start && end <= r.end)
            && !(self.image.start < end && start < self.image.end)
            && !(self.memblock.start < end && start < self.vmemmap_end())
    }

    pub fn vmemmap_end(&self) -> u64 {
        self.vmemmap_phys + self.sections.len() as u64 * SIZE_2M
    }

    /// For a pfn of the vmemmap blocks: the first of the 64 pfns its page describes.
    pub fn described_by_vmemmap_page(&self, pfn: u64) -> Option<u64> {
        let pa = pfn * PAGE;
        if !(self.vmemmap_phys..self.vmemmap_end()).contains(&pa) {
            return None;
        }
        let off = pa - self.vmemmap_phys;
        let nr = *self.sections.get((off / SIZE_2M) as usize)?;
        Some(nr * PAGES_PER_SECTION + (off % SIZE_2M) / STRUCT_PAGE)
    }

    /// Kernel-image virtual address of image offset `off`.
    pub fn image_va(&self, off: u64) -> u64 {
        SYNTH_STEXT + off
    }

    /// Physical address of kernel-image virtual address `va`.
    pub fn image_pa(&self, va: u64) -> u64 {
        (va - X86_64_START_KERNEL_MAP).wrapping_add(self.phys_base)
    }

    pub fn init_uts_ns(&self) -> u64 {
        let len = self.image.end - self.image.start;
        self.image_va(len / 2 / PAGE * PAGE + UTS_PAGE_OFFSET)
    }

    /// `(vaddr, paddr, size)` of each PT_LOAD: the kernel image, then the RAM ranges.
    pub fn loads(&self) -> Vec<(u64, u64, u64)> {
        let image = (
            SYNTH_STEXT,
            self.image.start,
            self.image.end - self.image.start,
        );
        std::iter::once(image)
            .chain(
                self.ram
                    .iter()
                    .map(|r| (SYNTH_PAGE_OFFSET + r.start, r.start, r.end - r.start)),
            )
            .collect()
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}
