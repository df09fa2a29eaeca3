//! The synthetic kernel's `struct page`s, in the 64-byte layout of the fixture's 6.1 kernel
//! (the offsets the VMCOREINFO of `kernel.rs` exports): `flags` 0, `compound_head`/`lru` 8,
//! `compound_dtor` 16 and `compound_order` 17 (read from page[1]), `mapping` 24, `index` 32,
//! `private` 40, `_mapcount`/`page_type` 48, `_refcount` 52.

use super::classes::{ChunkCache, SynthClass};
use super::layout::{Layout, PAGE, STRUCT_PAGE, SYNTH_PAGE_OFFSET, SYNTH_VMEMMAP};
use super::mix;

/// Page-flag bit numbers (the `NUMBER(PG_*)` values exported, plus ones only set for realism).
pub(super) const PG_REFERENCED: u32 = 1;
pub(super) const PG_UPTODATE: u32 = 2;
pub(super) const PG_DIRTY: u32 = 3;
pub(super) const PG_LRU: u32 = 4;
pub(super) const PG_ACTIVE: u32 = 5;
pub(super) const PG_SLAB: u32 = 9;
pub(super) const PG_SWAPCACHE: u32 = 10;
pub(super) const PG_RESERVED: u32 = 12;
pub(super) const PG_PRIVATE: u32 = 13;
pub(super) const PG_HEAD: u32 = 16;
pub(super) const PG_SWAPBACKED: u32 = 19;
/// `page_type` of a free buddy page (`NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)` = -129).
pub(super) const PAGE_BUDDY: u32 = !0x80;
/// `page_type` of a page-table page (not exported; kept at every level).
const PAGE_TABLE: u32 = !0x200;
/// `compound_dtor` values of 6.1.
const COMPOUND_PAGE_DTOR: u8 = 1;
const TRANSHUGE_PAGE_DTOR: u8 = 3;
/// Poison in a tail page's `mapping` (`TAIL_MAPPING`).
const TAIL_MAPPING: u64 = 0x400;
/// Zone number in the top bits of `flags` (0 DMA, 1 DMA32, 2 Normal).
const ZONE_SHIFT: u32 = 62;

const fn bit(n: u32) -> u64 {
    1 << n
}

/// Virtual address of `pfn`'s struct page.
pub(super) fn struct_page_va(pfn: u64) -> u64 {
    SYNTH_VMEMMAP + pfn * STRUCT_PAGE
}

fn zone(pfn: u64) -> u64 {
    let pa = pfn * PAGE;
    let zone = if pa < 16 << 20 {
        0
    } else if pa < 4 << 30 {
        1
    } else {
        2
    };
    zone << ZONE_SHIFT
}

/// A plausible direct-map pointer to a kernel object of `align` bytes, from hash `h`.
fn kernel_pointer(layout: &Layout, h: u64, align: u64) -> u64 {
    let span = layout.end_pfn * PAGE;
    SYNTH_PAGE_OFFSET + (h % span) / align * align
}

/// Pfn `pfn`'s struct page.
pub(super) fn encode(layout: &Layout, seed: u64, cache: &mut ChunkCache<'_>, pfn: u64) -> [u8; 64] {
    let (class, head, order) = cache.slot(pfn);
    let h = mix(seed ^ mix(pfn ^ 0x57a6_e000));
    let mut flags = zone(pfn);
    let mut compound_head = 0u64;
    let mut lru_prev = 0u64;
    let mut mapping = 0u64;
    let mut index = 0u64;
    let mut private = 0u64;
    let mut mapcount = u32::MAX; // _mapcount -1: not mapped, no page type
    let mut refcount = 1u32;
    let compound = order > 0 && class != SynthClass::Free;
    if compound && pfn != head {
        // A tail page: only the link to its head, and page[1] carries the order.
        compound_head = struct_page_va(head) | 1;
        mapping = TAIL_MAPPING;
        refcount = 0;
        if pfn == head + 1 {
            let dtor = if class == SynthClass::Anon {
                TRANSHUGE_PAGE_DTOR
            } else {
                COMPOUND_PAGE_DTOR
            };
            lru_prev = u64::from(dtor) | u64::from(order) << 8;
        }
    } else {
        if compound {
            flags |= bit(PG_HEAD);
        }
        let self_lru = struct_page_va(pfn) + 8;
        match class {
            SynthClass::Reserved => flags |= bit(PG_RESERVED),
            SynthClass::Kernel => {
                if h.is_multiple_of(8) {
                    mapcount = PAGE_TABLE;
                }
            }
            SynthClass::Slab => {
                flags |= bit(PG_SLAB);
                compound_head = self_lru;
                mapping = kernel_pointer(layout, h >> 7, 64); // the kmem_cache
            }
            SynthClass::Free if pfn == head => {
                mapcount = PAGE_BUDDY;
                private = u64::from(order);
                refcount = 0;
                compound_head = self_lru; // lru: an empty free list of its own
                lru_prev = self_lru;
            }
            SynthClass::Free => refcount = 0,
            SynthClass::Cache | SynthClass::CachePrivate => {
                flags |= bit(PG_LRU) | bit(PG_UPTODATE) | bit(PG_REFERENCED);
                if h.is_multiple_of(4) {
                    flags |= bit(PG_ACTIVE);
                }
                if h % 16 == 1 {
                    flags |= bit(PG_DIRTY);
                }
                if class == SynthClass::CachePrivate {
                    flags |= bit(PG_PRIVATE);
                    private = kernel_pointer(layout, h >> 9, 104); // the buffer_head list
                    refcount = 2;
                }
                mapping = kernel_pointer(layout, h >> 3, 8); // the address_space
                index = (h >> 20) % (1 << 20);
                compound_head = self_lru;
                lru_prev = self_lru;
                if h.is_multiple_of(3) {
                    mapcount = 0; // mapped by one process
                    refcount += 1;
                }
            }
            SynthClass::Anon => {
                flags |= bit(PG_LRU) | bit(PG_UPTODATE) | bit(PG_SWAPBACKED) | bit(PG_ACTIVE);
                mapping = kernel_pointer(layout, h >> 5, 8) | 1; // the anon_vma, PAGE_MAPPING_ANON
                index = (h >> 24) % (1 << 28);
                mapcount = 0;
                if order == 0 && h.is_multiple_of(20) {
                    flags |= bit(PG_SWAPCACHE);
                    private = (h >> 11) % (1 << 24); // the swap entry
                    refcount = 2;
                }
                compound_head = self_lru;
                lru_prev = self_lru;
            }
        }
    }
    let mut b = [0u8; 64];
    b[0..8].copy_from_slice(&flags.to_le_bytes());
    b[8..16].copy_from_slice(&compound_head.to_le_bytes());
    b[16..24].copy_from_slice(&lru_prev.to_le_bytes());
    b[24..32].copy_from_slice(&mapping.to_le_bytes());
    b[32..40].copy_from_slice(&index.to_le_bytes());
    b[40..48].copy_from_slice(&private.to_le_bytes());
    b[48..52].copy_from_slice(&mapcount.to_le_bytes());
    b[52..56].copy_from_slice(&refcount.to_le_bytes());
    b
}

/// Fills `page` with the 64 struct pages starting at pfn `first`.
pub(super) fn vmemmap_page(
    layout: &Layout,
    seed: u64,
    cache: &mut ChunkCache<'_>,
    first: u64,
    page: &mut [u8; PAGE as usize],
) {
    for (i, out) in page.chunks_exact_mut(STRUCT_PAGE as usize).enumerate() {
        out.copy_from_slice(&encode(layout, seed, cache, first + i as u64));
    }
}
