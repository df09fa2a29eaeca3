//! `MemMapWalk`: the walk over every section's `struct page`s (formats.md 4.5), in bounded
//! windows of at most [`WINDOW_BYTES`] (like makedumpfile's cyclic mode), clearing the 2nd-bitmap
//! bits of the pfns that [`classify`] excludes.

use std::ops::Range;

use super::classify::{classify, Verdict};
use super::layout::PageLayout;
use super::mem_section::{Section, SectionMap};
use super::memory::PhysicalMemory;
use super::translate::Translator;
use super::{DumpLevel, FilterReport};
use crate::bitmap::Bitmap;

/// Bytes of `struct page`s read at once: the walk's only buffer.
pub const WINDOW_BYTES: usize = 4 << 20;
/// makedumpfile reads struct pages in batches ending at a multiple of this many pfns (4.5).
pub const BATCH_PFNS: u64 = 512;

const PAGE: u64 = 4096;

/// The walk's state: the window of struct pages currently read.
pub struct MemMapWalk<'t, 'm, M: PhysicalMemory + ?Sized> {
    tr: &'t mut Translator<'m, M>,
    layout: &'t PageLayout,
    level: DumpLevel,
    /// Pfns whose first byte is in the file part of some PT_LOAD: sorted, disjoint.
    examined: &'t [Range<u64>],
    window: Window,
}

/// Struct pages of pfns `start..end` of one section; `bad` holds byte ranges of `buf` that could
/// not be read (their vmemmap is unmapped or not in the dump).
struct Window {
    start: u64,
    end: u64,
    buf: Vec<u8>,
    bad: Vec<Range<usize>>,
    max_pfns: u64,
}

impl<'t, 'm, M: PhysicalMemory + ?Sized> MemMapWalk<'t, 'm, M> {
    pub fn new(
        tr: &'t mut Translator<'m, M>,
        layout: &'t PageLayout,
        level: DumpLevel,
        examined: &'t [Range<u64>],
    ) -> Self {
        let per_window = (WINDOW_BYTES / layout.size.max(1)) as u64;
        let max_pfns = (per_window / BATCH_PFNS * BATCH_PFNS).max(BATCH_PFNS);
        MemMapWalk {
            tr,
            layout,
            level,
            examined,
            window: Window {
                start: 0,
                end: 0,
                buf: Vec::new(),
                bad: Vec::new(),
                max_pfns,
            },
        }
    }

    /// Walks every section of `map`, clearing excluded pfns in `bitmap` and counting in `report`.
    pub fn run(&mut self, map: &SectionMap, bitmap: &mut Bitmap, report: &mut FilterReport) {
        for section in map.sections() {
            self.window.end = self.window.start; // a new section: nothing read yet
            self.section(map, section, bitmap, report);
        }
    }

    fn section(
        &mut self,
        map: &SectionMap,
        section: &Section,
        bitmap: &mut Bitmap,
        report: &mut FilterReport,
    ) {
        let end = section.end_pfn;
        let size = self.layout.size;
        let mut pfn = section.start_pfn;
        while pfn < end {
            match next_examined(self.examined, pfn) {
                Some(p) if p < end => pfn = p,
                _ => break,
            }
            if !(self.window.start..self.window.end).contains(&pfn) {
                self.load(map, section, pfn);
            }
            let at = ((pfn - self.window.start) as usize) * size;
            let Some(page) = self.window.bytes(at, size) else {
                report.unreadable += 1;
                pfn += 1;
                continue;
            };
            // page[1] is there when makedumpfile's batch holds it (4.5, 4.6).
            let next = if pfn % BATCH_PFNS != BATCH_PFNS - 1 && pfn + 1 < end {
                match self.window.bytes(at + size, size) {
                    Some(next) => Some(next),
                    None => {
                        report.unreadable += 1;
                        pfn += 1;
                        continue;
                    }
                }
            } else {
                None
            };
            match classify(self.layout, self.level, pfn, page, next) {
                Verdict::Keep => pfn += 1,
                Verdict::BadBuddyOrder(_) => {
                    report.bad_buddy_orders += 1;
                    pfn += 1;
                }
                Verdict::Exclude { class, pfns } => {
                    let stop = pfn.saturating_add(pfns);
                    report.add(class, clear_counting(bitmap, pfn..stop));
                    pfn = stop;
                }
            }
        }
    }

    /// Reads the window that starts at `pfn`: up to `max_pfns`, ending on a batch boundary or at
    /// the section's end, so that a `page[1]` the batch rule allows is always inside it.
    fn load(&mut self, map: &SectionMap, section: &Section, pfn: u64) {
        let w = &mut self.window;
        let size = self.layout.size as u64;
        w.start = pfn;
        w.end = section.end_pfn.min(pfn - pfn % BATCH_PFNS + w.max_pfns);
        let len = ((w.end - w.start) * size) as usize;
        w.buf.clear();
        w.buf.resize(len, 0);
        w.bad.clear();
        let va = map.struct_page(section, pfn);
        let mut off = 0usize;
        while off < len {
            let chunk_va = va.wrapping_add(off as u64);
            let chunk = ((PAGE - chunk_va % PAGE) as usize).min(len - off);
            let Ok(pa) = self.tr.to_physical(chunk_va) else {
                w.bad.push(off..off + chunk);
                off += chunk;
                continue;
            };
            // Extend over physically contiguous pages (vmemmap is mostly 2 MiB pages).
            let mut run = chunk;
            while off + run < len {
                let next_va = va.wrapping_add((off + run) as u64);
                if self.tr.to_physical(next_va).ok() != Some(pa.wrapping_add(run as u64)) {
                    break;
                }
                run += (PAGE as usize).min(len - off - run);
            }
            let memory = self.tr.memory();
            if memory.read(pa, &mut w.buf[off..off + run]).is_err() {
                // Find out page by page which parts are missing.
                let mut at = off;
                while at < off + run {
                    let n = ((PAGE - (pa + (at - off) as u64) % PAGE) as usize).min(off + run - at);
                    let phys = pa + (at - off) as u64;
                    if memory.read(phys, &mut w.buf[at..at + n]).is_err() {
                        w.bad.push(at..at + n);
                    }
                    at += n;
                }
            }
            off += run;
        }
    }
}

impl Window {
    /// `len` bytes at `at`, unless some of them could not be read.
    fn bytes(&self, at: usize, len: usize) -> Option<&[u8]> {
        let end = at.checked_add(len)?;
        if self.bad.iter().any(|r| r.start < end && at < r.end) {
            return None;
        }
        self.buf.get(at..end)
    }
}

/// The first examined pfn at or after `pfn`.
fn next_examined(examined: &[Range<u64>], pfn: u64) -> Option<u64> {
    let i = examined.partition_point(|r| r.end <= pfn);
    examined.get(i).map(|r| r.start.max(pfn))
}

/// Clears `range` in `bitmap`; returns how many bits were set in it.
pub fn clear_counting(bitmap: &mut Bitmap, range: Range<u64>) -> u64 {
    let end = range.end.min(bitmap.bits());
    if range.start >= end {
        return 0;
    }
    let bytes = bitmap.as_bytes();
    let mut ones = 0u64;
    let mut n = range.start;
    while n < end {
        let byte = bytes.get((n / 8) as usize).copied().unwrap_or(0);
        if n.is_multiple_of(8) && end - n >= 8 {
            ones += u64::from(byte.count_ones());
            n += 8;
        } else {
            ones += u64::from((byte >> (n % 8)) & 1);
            n += 1;
        }
    }
    bitmap.clear_range(range.start..end);
    ones
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_counting_counts_only_set_bits() {
        let mut b = Bitmap::new(100);
        b.set_range(3..40);
        assert_eq!(clear_counting(&mut b, 0..16), 13);
        assert_eq!(b.count_ones(), 24);
        assert_eq!(clear_counting(&mut b, 90..200), 0);
        assert_eq!(clear_counting(&mut b, 17..17), 0);
        assert_eq!(clear_counting(&mut b, 0..100), 24);
        assert_eq!(b.count_ones(), 0);
    }

    #[test]
    fn examined_ranges_are_searched() {
        let ranges = [1..0x9f, 0x100..0x200];
        assert_eq!(next_examined(&ranges, 0), Some(1));
        assert_eq!(next_examined(&ranges, 5), Some(5));
        assert_eq!(next_examined(&ranges, 0x9f), Some(0x100));
        assert_eq!(next_examined(&ranges, 0x200), None);
    }
}
