//! The per-pfn decision of formats.md 4.6: from one `struct page` (and the next one, for a
//! compound head), keep the page or exclude a block of pfns starting at it. Zero pages are not
//! decided here: the sender tests their content while sending (4.9).

use super::layout::{CompoundScheme, PageLayout};
use super::DumpLevel;
use crate::le::{u16_at, u32_at, u64_at};

/// Why a block of pfns is excluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// A free buddy block (level 16).
    Free,
    /// Unaccepted memory (level 16).
    Unaccepted,
    /// Page cache (levels 2 and 4).
    Cache,
    /// Anonymous or hugetlbfs pages (level 8).
    User,
    /// Hardware-poisoned (any level).
    Hwpoison,
    /// Logically offline (any level).
    Offline,
}

/// What to do with a pfn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep the page; move on to the next pfn.
    Keep,
    /// A free buddy page whose order (`private`) is not below `LENGTH(zone.free_area)`:
    /// makedumpfile warns and keeps it.
    BadBuddyOrder(u64),
    /// Clear `pfns` pfns from this one and resume after them.
    Exclude { class: Class, pfns: u64 },
}

/// The fields of one `struct page` that classification reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageFields {
    pub flags: u64,
    pub mapping: u64,
    pub mapcount: u32,
    pub private: u64,
    pub compound_head: u64,
}

impl PageFields {
    /// Reads the fields from `page`, one `struct page` (absent offsets read as 0).
    pub fn read(layout: &PageLayout, page: &[u8]) -> PageFields {
        PageFields {
            flags: u64_at(page, layout.flags),
            mapping: u64_at(page, layout.mapping),
            mapcount: layout.mapcount.map_or(0, |o| u32_at(page, o)),
            private: layout.private.map_or(0, |o| u64_at(page, o)),
            compound_head: layout.compound_head.map_or(0, |o| u64_at(page, o)),
        }
    }
}

/// Decides pfn `pfn`. `page` is its `struct page`; `next` is `page[1]` when it is in the same
/// batch (4.5: `pfn % 512 != 511` and `pfn + 1` inside the section), else `None`.
pub fn classify(
    layout: &PageLayout,
    level: DumpLevel,
    pfn: u64,
    page: &[u8],
    next: Option<&[u8]>,
) -> Verdict {
    let f = PageFields::read(layout, page);
    let bit = |n: Option<u32>| n.is_some_and(|n| (f.flags >> n) & 1 == 1);
    let types = &layout.types;
    let is = |value: Option<u32>| value == Some(f.mapcount) && layout.mapcount.is_some();

    // Rule 0: a tail page is only ever excluded as part of its head's block.
    if f.compound_head & 1 != 0 {
        return Verdict::Keep;
    }
    let slab = is(types.slab) || bit(layout.bits.slab);
    if level.excludes_free() && layout.buddy_detection() && !slab && is(types.buddy) {
        let order = f.private;
        if layout.free_area_len.is_some_and(|len| order >= len) || order >= 64 {
            return Verdict::BadBuddyOrder(order);
        }
        return Verdict::Exclude {
            class: Class::Free,
            pfns: 1 << order,
        };
    }
    if level.excludes_free() && is(types.unaccepted) {
        // Always a maximal-order block; without LENGTH(zone.free_area) only this page is known.
        let pfns = match layout.free_area_len {
            Some(len @ 1..=64) => 1u64 << (len - 1),
            _ => 1,
        };
        return Verdict::Exclude {
            class: Class::Unaccepted,
            pfns,
        };
    }

    let head = layout.bits.head_mask.is_some_and(|m| f.flags & m != 0);
    let (order, hugetlb) = match next {
        Some(second) if head => compound(layout, f.mapcount, second),
        _ => (0, false),
    };
    let order = if order >= 64 || !pfn.is_multiple_of(1 << order) {
        0
    } else {
        order
    };
    let pfns = 1u64 << order;
    let exclude = |class| Verdict::Exclude { class, pfns };

    let cache = bit(layout.bits.lru)
        || (bit(layout.bits.swapcache)
            && (layout.bits.swapbacked.is_none() || bit(layout.bits.swapbacked)));
    let private = bit(layout.bits.private);
    let anon = f.mapping & 1 != 0 && !slab;
    if level.excludes_cache_without_private() && cache && !private && !anon {
        return exclude(Class::Cache);
    }
    if level.excludes_all_cache() && cache && !anon {
        return exclude(Class::Cache);
    }
    if level.excludes_user() && (anon || hugetlb) {
        return exclude(Class::User);
    }
    if bit(layout.bits.hwpoison) {
        return exclude(Class::Hwpoison);
    }
    if !slab && is(types.offline) {
        return exclude(Class::Offline);
    }
    Verdict::Keep
}

/// `(order, hugetlb)` of a compound head from its own `_mapcount` word and `page[1]` (4.6 table).
fn compound(layout: &PageLayout, head_mapcount: u32, second: &[u8]) -> (u64, bool) {
    let second_flags = u64_at(second, layout.flags);
    match layout.compound {
        CompoundScheme::HugetlbType { value } => {
            let hugetlb = layout.mapcount.is_some() && head_mapcount == value;
            (second_flags & 0xff, hugetlb)
        }
        CompoundScheme::HugetlbFlag { bit } => {
            (second_flags & 0xff, (second_flags >> bit) & 1 == 1)
        }
        CompoundScheme::Folio {
            order,
            dtor,
            hugetlb_dtor,
        } => {
            let u8_at = |off: usize| u64::from(second.get(off).copied().unwrap_or(0));
            let hugetlb = matches!((dtor, hugetlb_dtor), (Some(d), Some(h)) if u8_at(d) == h);
            (u8_at(order), hugetlb)
        }
        CompoundScheme::Page {
            order,
            dtor,
            wide,
            hugetlb_dtor,
        } => {
            let at = |off: usize| {
                if wide {
                    u64::from(u16_at(second, off))
                } else {
                    u64::from(second.get(off).copied().unwrap_or(0))
                }
            };
            let hugetlb = matches!((dtor, hugetlb_dtor), (Some(d), Some(h)) if at(d) == h);
            (at(order), hugetlb)
        }
        CompoundScheme::Unknown => (0, false),
    }
}

#[cfg(test)]
#[path = "classify_tests.rs"]
mod tests;
