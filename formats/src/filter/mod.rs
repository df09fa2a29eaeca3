//! `PageFilter`: makedumpfile's dump levels (formats.md section 4) — which pfns of an ELF vmcore
//! a kdump-compressed dump at `-d N` holds, computed from the vmcore alone (VMCOREINFO, page
//! tables and `struct page`s; no vmlinux).
//!
//! The result is the 2nd bitmap: the 1st bitmap minus the pfns past each PT_LOAD's file part
//! ([`crate::ElfVmcore::file_backed_bitmap`]), minus the pfns the level excludes. Zero pages
//! (bit 1) stay in it: they are found while the pages are read (2.6, 4.9).
//!
//! Memory: the bitmap the caller passes, one window of `struct page`s ([`WINDOW_BYTES`])
//! and one entry per memory section; nothing else grows with the machine.

mod classify;
mod error;
mod free_list;
mod layout;
mod mem_section;
mod memory;
mod selection;
mod translate;
mod walk;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

use std::ops::Range;

pub use classify::{classify, Class, PageFields, Verdict};
pub use error::{FilterError, MemoryError};
pub use layout::{kernel_version, CompoundScheme, FlagBits, PageLayout, PageTypes};
pub use mem_section::{Section, SectionMap};
pub use memory::PhysicalMemory;
pub use selection::PageSelection;
pub use translate::{Translator, Unmapped, DIRECT_MAP_FLOOR};
pub use walk::WINDOW_BYTES;

use crate::bitmap::Bitmap;
use crate::elf::{ElfVmcore, LoadSegment};
use crate::vmcoreinfo::VmcoreInfo;
use crate::X86_64_START_KERNEL_MAP;
use free_list::FreeListWalk;
use walk::MemMapWalk;

/// makedumpfile's `-d N`: a combination of the bits of 4.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DumpLevel(u8);

impl DumpLevel {
    /// Everything excludable: makedumpfile's and every distribution's default.
    pub const ALL: DumpLevel = DumpLevel(31);

    /// Level `n`; errs unless `n` is in 0..=31.
    pub fn new(n: u8) -> Result<DumpLevel, FilterError> {
        if n > 31 {
            return Err(FilterError::BadLevel(n));
        }
        Ok(DumpLevel(n))
    }

    /// The number, 0..=31.
    pub fn get(self) -> u8 {
        self.0
    }

    /// Bit 1: zero pages (applied while sending, 4.9).
    pub fn excludes_zero(self) -> bool {
        self.0 & 1 != 0
    }

    /// Bit 2: page cache without private data.
    pub fn excludes_cache_without_private(self) -> bool {
        self.0 & 2 != 0
    }

    /// Bit 4: all page cache.
    pub fn excludes_all_cache(self) -> bool {
        self.0 & 4 != 0
    }

    /// Bit 8: user data (anonymous and hugetlbfs pages).
    pub fn excludes_user(self) -> bool {
        self.0 & 8 != 0
    }

    /// Bit 16: free pages.
    pub fn excludes_free(self) -> bool {
        self.0 & 16 != 0
    }
}

/// What one filtering run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilterReport {
    /// Whether the mem_map walk ran (4.1: levels with 2, 4, 8, or 16 with buddy detection, or a
    /// kernel exporting `NUMBER(PG_hwpoison)`).
    pub walked: bool,
    /// Whether free pages came from the free lists (4.8) instead of buddy detection.
    pub free_lists: bool,
    /// Pfns cleared per class (pfns already clear in the input bitmap are not counted).
    pub free: u64,
    pub unaccepted: u64,
    pub cache: u64,
    pub user: u64,
    pub hwpoison: u64,
    pub offline: u64,
    /// Examined pfns kept because their `struct page` could not be read (makedumpfile would
    /// abort the dump instead).
    pub unreadable: u64,
    /// Free pages kept because their order was not below `LENGTH(zone.free_area)` (makedumpfile
    /// warns and keeps them too).
    pub bad_buddy_orders: u64,
    /// Why a walk that only the hwpoison rule wanted did not run, if it did not.
    pub skipped_walk: Option<String>,
}

impl FilterReport {
    fn add(&mut self, class: Class, pfns: u64) {
        let slot = match class {
            Class::Free => &mut self.free,
            Class::Unaccepted => &mut self.unaccepted,
            Class::Cache => &mut self.cache,
            Class::User => &mut self.user,
            Class::Hwpoison => &mut self.hwpoison,
            Class::Offline => &mut self.offline,
        };
        *slot += pfns;
    }

    /// Pfns cleared in all.
    pub fn excluded(&self) -> u64 {
        self.free + self.unaccepted + self.cache + self.user + self.hwpoison + self.offline
    }
}

/// Computes dump levels' 2nd bitmaps for one crashed machine.
pub struct PageFilter<'v, M: PhysicalMemory + ?Sized> {
    memory: &'v M,
    info: &'v VmcoreInfo,
    phys_base: u64,
    /// `p_vaddr - p_paddr` of the last PT_LOAD below the kernel-image map (1.7), if non-zero.
    page_offset: Option<u64>,
    /// Pfns whose first byte is in some PT_LOAD's file part (4.5): sorted, disjoint.
    examined: Vec<Range<u64>>,
    /// The PT_LOADs, for the bitmaps of [`PageFilter::select`].
    loads: Vec<LoadSegment>,
    max_mapnr: u64,
}

impl<'v> PageFilter<'v, ElfVmcore> {
    /// The filter for an opened ELF vmcore.
    pub fn for_vmcore(vmcore: &'v ElfVmcore) -> Self {
        PageFilter::new(
            vmcore,
            vmcore.vmcoreinfo(),
            vmcore.loads(),
            vmcore.phys_base(),
            vmcore.max_mapnr(),
        )
    }
}

impl<'v, M: PhysicalMemory + ?Sized> PageFilter<'v, M> {
    /// A filter over `memory`, described by its VMCOREINFO, PT_LOADs (4096-byte pages),
    /// `phys_base` and `max_mapnr`.
    pub fn new(
        memory: &'v M,
        info: &'v VmcoreInfo,
        loads: &[LoadSegment],
        phys_base: u64,
        max_mapnr: u64,
    ) -> Self {
        let page_offset = loads
            .iter()
            .rev()
            .find(|l| l.vaddr < X86_64_START_KERNEL_MAP)
            .map(|l| l.vaddr.wrapping_sub(l.paddr))
            .filter(|&o| o != 0);
        PageFilter {
            memory,
            info,
            phys_base,
            page_offset,
            examined: examined_pfns(loads, max_mapnr),
            loads: loads.to_vec(),
            max_mapnr,
        }
    }

    /// Clears from `bitmap` (normally [`ElfVmcore::file_backed_bitmap`]) every pfn `level`
    /// excludes, as makedumpfile 1.7.2 does. Errs, naming the VMCOREINFO key, when the level
    /// needs something the dump lacks; `bitmap` is then unspecified.
    pub fn apply(
        &self,
        level: DumpLevel,
        bitmap: &mut Bitmap,
    ) -> Result<FilterReport, FilterError> {
        let mut report = FilterReport::default();
        if let Some(ps) = self.info.page_size().filter(|&ps| ps != 4096) {
            return Err(FilterError::bad(
                "PAGESIZE",
                ps,
                "x86_64 pages are 4096 bytes",
            ));
        }
        let hwpoison = self.info.number("PG_hwpoison").is_some();
        let wants_walk = level.excludes_cache_without_private()
            || level.excludes_all_cache()
            || level.excludes_user();
        if !(wants_walk || level.excludes_free() || hwpoison) {
            return Ok(report);
        }
        let layout = match PageLayout::from_info(self.info) {
            Ok(layout) => layout,
            Err(e) if !wants_walk && !level.excludes_free() => {
                report.skipped_walk = Some(e.to_string());
                return Ok(report);
            }
            Err(e) => return Err(e),
        };
        let buddy = layout.buddy_detection();
        let needs_walk = wants_walk || (level.excludes_free() && buddy);
        let free_lists = level.excludes_free() && !buddy;
        check_level_keys(&layout, level)?;
        let free_walk = free_lists
            .then(|| FreeListWalk::from_info(self.info))
            .transpose()?;

        let prepared = self.translator().and_then(|mut tr| {
            let floor = self.kernel_floor(tr.five_level());
            let map = SectionMap::locate(
                &mut tr,
                self.info,
                self.max_mapnr,
                floor,
                layout.size as u64,
            )?;
            Ok((tr, map))
        });
        let (mut tr, map) = match prepared {
            Ok(ready) => ready,
            Err(e) if !needs_walk && !free_lists => {
                report.skipped_walk = Some(e.to_string());
                return Ok(report);
            }
            Err(e) => return Err(e),
        };
        if let Some(free_walk) = free_walk {
            report.free_lists = true;
            report.free += free_walk.run(&mut tr, &map, bitmap)?;
        }
        if needs_walk || hwpoison {
            report.walked = true;
            MemMapWalk::new(&mut tr, &layout, level, &self.examined).run(&map, bitmap, &mut report);
        }
        Ok(report)
    }

    fn translator(&self) -> Result<Translator<'v, M>, FilterError> {
        Translator::new(self.memory, self.info, self.phys_base, self.page_offset)
    }

    /// The lowest kernel address, for validating `mem_section` pointers (4.4): the PT_LOADs'
    /// `PAGE_OFFSET`, else makedumpfile's constants (Appendix A).
    fn kernel_floor(&self, five_level: bool) -> u64 {
        if let Some(base) = self.page_offset {
            return base;
        }
        if five_level {
            0xff10_0000_0000_0000
        } else if kernel_version(self.info).is_some_and(|v| v < (4, 20)) {
            0xffff_8800_0000_0000
        } else {
            0xffff_8880_0000_0000
        }
    }
}

/// Keys whose absence would make a rule exclude pages it cannot justify: refuse instead.
fn check_level_keys(layout: &PageLayout, level: DumpLevel) -> Result<(), FilterError> {
    let cache = level.excludes_cache_without_private() || level.excludes_all_cache();
    if cache && layout.bits.lru.is_none() {
        return Err(FilterError::missing(
            "NUMBER(PG_lru)",
            "dump levels 2 and 4 (page cache)",
        ));
    }
    if level.excludes_cache_without_private()
        && !level.excludes_all_cache()
        && layout.bits.private.is_none()
    {
        return Err(FilterError::missing(
            "NUMBER(PG_private)",
            "dump level 2 (cache pages without private data)",
        ));
    }
    Ok(())
}

/// Pfns whose first byte lies in the file part of some PT_LOAD (4.5), below `max_mapnr`,
/// merged into sorted disjoint ranges.
pub fn examined_pfns(loads: &[LoadSegment], max_mapnr: u64) -> Vec<Range<u64>> {
    const PAGE: u64 = 4096;
    let mut ranges: Vec<Range<u64>> = loads
        .iter()
        .map(|l| {
            let start = l.paddr.div_ceil(PAGE);
            let end = l
                .paddr
                .saturating_add(l.filesz)
                .div_ceil(PAGE)
                .min(max_mapnr);
            start..end
        })
        .filter(|r| r.start < r.end)
        .collect();
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    merged
}
