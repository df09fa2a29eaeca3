//! What each pfn of the synthetic machine is used for ([`SynthClass`]), decided the way a buddy
//! allocator leaves memory: every aligned 4 MiB chunk is either one free order-10 block or split
//! in halves, recursively, down to free blocks of every order, anonymous THPs (order 9), slab
//! pages (orders 0..3) and single pages of page cache, anonymous memory, slab or other kernel
//! use. Pfns the allocator does not own (holes, the first MiB, the kernel image, the memblock
//! area) are reserved. Each chunk depends only on (seed, chunk number), so any pfn's class is
//! found without holding the machine in memory.

use super::layout::Layout;
use super::{mix, XorShift};
use crate::filter::DumpLevel;

/// Pfns per chunk: one maximal buddy block (`LENGTH(zone.free_area)` = 11 orders).
pub(super) const CHUNK: u64 = 1 << MAX_ORDER;
const MAX_ORDER: u8 = 10;

/// What the synthetic kernel uses a pfn for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SynthClass {
    /// `PG_reserved`: holes, the first MiB, the kernel image, vmemmap and other memblock memory.
    Reserved,
    /// In use by the kernel without a flag the filter looks at (stacks, page tables, vmalloc).
    Kernel,
    /// `PG_slab` (single pages and compound heads/tails of order 1..3).
    Slab,
    /// Part of a free buddy block (the head carries the buddy page type and the order).
    Free,
    /// Page cache (`PG_lru`, a file mapping) without `PG_private`.
    Cache,
    /// Page cache with `PG_private` (buffer heads).
    CachePrivate,
    /// Anonymous memory (`PAGE_MAPPING_ANON`): single pages, some in the swap cache, and THPs.
    Anon,
}

impl SynthClass {
    /// Every class, in a fixed order (for counting).
    pub const ALL: [SynthClass; 7] = [
        SynthClass::Reserved,
        SynthClass::Kernel,
        SynthClass::Slab,
        SynthClass::Free,
        SynthClass::Cache,
        SynthClass::CachePrivate,
        SynthClass::Anon,
    ];

    /// Whether makedumpfile's level `level` excludes pages of this class (4.1).
    pub fn excluded_at(self, level: DumpLevel) -> bool {
        match self {
            SynthClass::Free => level.excludes_free(),
            SynthClass::Cache => {
                level.excludes_cache_without_private() || level.excludes_all_cache()
            }
            SynthClass::CachePrivate => level.excludes_all_cache(),
            SynthClass::Anon => level.excludes_user(),
            SynthClass::Reserved | SynthClass::Kernel | SynthClass::Slab => false,
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// One pfn of a chunk: its class and the block (buddy block or compound page) it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Slot {
    pub class: SynthClass,
    /// Offset in the chunk of the block's first pfn (the head).
    pub head: u16,
    /// Order of the block (0 for a single page).
    pub order: u8,
}

/// The classes of the 1024 pfns of chunk `chunk` (pfns `chunk * 1024 ..`).
pub(super) fn plan_chunk(layout: &Layout, seed: u64, chunk: u64) -> Vec<Slot> {
    let first = chunk * CHUNK;
    let free: Vec<bool> = (first..first + CHUNK)
        .map(|pfn| layout.allocatable(pfn))
        .collect();
    let mut prefix = vec![0u32; CHUNK as usize + 1];
    for (i, &ok) in free.iter().enumerate() {
        prefix[i + 1] = prefix[i] + u32::from(ok);
    }
    let mut planner = Planner {
        rng: XorShift(mix(seed ^ mix(chunk ^ 0x05ee_dc1a_55e5)) | 1),
        prefix,
        slots: vec![
            Slot {
                class: SynthClass::Reserved,
                head: 0,
                order: 0,
            };
            CHUNK as usize
        ],
    };
    planner.block(0, MAX_ORDER, false);
    planner.slots
}

struct Planner {
    rng: XorShift,
    /// `prefix[i]`: allocatable pfns among the chunk's first `i`.
    prefix: Vec<u32>,
    slots: Vec<Slot>,
}

impl Planner {
    /// Fills the block of `2^order` pfns at `start`; returns true if it became one free block.
    /// `no_free`: its buddy is free at this order, so it may not be (they would have merged).
    fn block(&mut self, start: u16, order: u8, no_free: bool) -> bool {
        let len = 1u16 << order;
        let (s, e) = (usize::from(start), usize::from(start + len));
        let whole = self.prefix[e] - self.prefix[s] == u32::from(len);
        if !whole && order == 0 {
            return false; // stays Reserved
        }
        if whole {
            let r = self.rng.next() % 1000;
            let choice = match order {
                10 => (r < 180).then_some(SynthClass::Free),
                9 if r < 100 => Some(SynthClass::Free),
                9 if r < 160 => Some(SynthClass::Anon), // a transparent huge page
                4..=8 if r < 40 => Some(SynthClass::Free),
                1..=3 if r < 40 => Some(SynthClass::Free),
                1..=3 if r < 60 => Some(SynthClass::Slab),
                0 => Some(single(r)),
                _ => None,
            };
            if let Some(class) = choice.filter(|&c| !(no_free && c == SynthClass::Free)) {
                for slot in &mut self.slots[s..e] {
                    *slot = Slot {
                        class,
                        head: start,
                        order,
                    };
                }
                return class == SynthClass::Free;
            }
            if order == 0 {
                // A free single page next to its free buddy: the page is in use instead.
                self.slots[s] = Slot {
                    class: SynthClass::Kernel,
                    head: start,
                    order: 0,
                };
                return false;
            }
        }
        let half = len / 2;
        let left_free = self.block(start, order - 1, false);
        self.block(start + half, order - 1, left_free);
        false
    }
}

/// The class of a single page, from `r` in 0..1000.
fn single(r: u64) -> SynthClass {
    match r {
        0..100 => SynthClass::Free,
        100..460 => SynthClass::Cache,
        460..540 => SynthClass::CachePrivate,
        540..790 => SynthClass::Anon,
        790..840 => SynthClass::Slab,
        _ => SynthClass::Kernel,
    }
}

/// Chunks planned one at a time, for walks in ascending pfn order.
pub(super) struct ChunkCache<'l> {
    layout: &'l Layout,
    seed: u64,
    chunk: Option<u64>,
    slots: Vec<Slot>,
}

impl<'l> ChunkCache<'l> {
    pub fn new(layout: &'l Layout, seed: u64) -> Self {
        ChunkCache {
            layout,
            seed,
            chunk: None,
            slots: Vec::new(),
        }
    }

    /// Pfn `pfn`'s slot; `head` is made absolute (a pfn).
    pub fn slot(&mut self, pfn: u64) -> (SynthClass, u64, u8) {
        let chunk = pfn / CHUNK;
        if self.chunk != Some(chunk) {
            self.slots = plan_chunk(self.layout, self.seed, chunk);
            self.chunk = Some(chunk);
        }
        let s = self.slots[(pfn % CHUNK) as usize];
        (s.class, chunk * CHUNK + u64::from(s.head), s.order)
    }
}
