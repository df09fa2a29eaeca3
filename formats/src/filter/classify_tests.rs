//! One test per rule of 4.6 on hand-built `struct page`s (the 6.1 layout of the fixtures, and the
//! other kernels' compound schemes); each fails if its rule is removed.

use super::*;
use crate::filter::layout::PageTypes;
use crate::vmcoreinfo::VmcoreInfo;

/// The fixture kernel's (Debian 6.1 cloud) VMCOREINFO page keys, plus PG_hwpoison.
const INFO_6_1: &str = "OSRELEASE=6.1.0-56-cloud-amd64\nSIZE(page)=64\nOFFSET(page.flags)=0\n\
    OFFSET(page._refcount)=52\nOFFSET(page.mapping)=24\nOFFSET(page.lru)=8\n\
    OFFSET(page._mapcount)=48\nOFFSET(page.private)=40\nOFFSET(page.compound_dtor)=16\n\
    OFFSET(page.compound_order)=17\nOFFSET(page.compound_head)=8\nLENGTH(zone.free_area)=11\n\
    NUMBER(PG_lru)=4\nNUMBER(PG_private)=13\nNUMBER(PG_swapcache)=10\nNUMBER(PG_swapbacked)=19\n\
    NUMBER(PG_slab)=9\nNUMBER(PG_hwpoison)=22\nNUMBER(PG_head_mask)=65536\n\
    NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129\nNUMBER(HUGETLB_PAGE_DTOR)=2\n\
    NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=-257\n";

const LRU: u64 = 1 << 4;
const PRIVATE: u64 = 1 << 13;
const SWAPCACHE: u64 = 1 << 10;
const SWAPBACKED: u64 = 1 << 19;
const SLAB: u64 = 1 << 9;
const HWPOISON: u64 = 1 << 22;
const HEAD: u64 = 1 << 16;
const BUDDY: u32 = 0xffff_ff7f;
const OFFLINE: u32 = 0xffff_feff;

fn layout_6_1() -> PageLayout {
    PageLayout::from_info(&VmcoreInfo::parse(INFO_6_1.as_bytes())).expect("6.1 layout")
}

/// A 64-byte struct page of the 6.1 layout.
#[derive(Clone, Copy, Default)]
struct Page {
    flags: u64,
    head: u64,
    dtor: u8,
    order: u8,
    mapping: u64,
    private: u64,
    mapcount: u32,
}

impl Page {
    fn bytes(self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..16].copy_from_slice(&self.head.to_le_bytes());
        b[16] = self.dtor;
        b[17] = self.order;
        b[24..32].copy_from_slice(&self.mapping.to_le_bytes());
        b[40..48].copy_from_slice(&self.private.to_le_bytes());
        b[48..52].copy_from_slice(&self.mapcount.to_le_bytes());
        b
    }
}

/// An ordinary in-use kernel page: `_mapcount` -1, no flags.
fn plain() -> Page {
    Page {
        mapcount: u32::MAX,
        ..Page::default()
    }
}

fn level(n: u8) -> DumpLevel {
    DumpLevel::new(n).expect("level")
}

fn decide(n: u8, pfn: u64, page: Page, next: Option<Page>) -> Verdict {
    let next = next.map(Page::bytes);
    classify(
        &layout_6_1(),
        level(n),
        pfn,
        &page.bytes(),
        next.as_ref().map(|b| &b[..]),
    )
}

fn excluded(class: Class, pfns: u64) -> Verdict {
    Verdict::Exclude { class, pfns }
}

#[test]
fn free_buddy_block_of_its_order() {
    let buddy = Page {
        mapcount: BUDDY,
        private: 3,
        ..plain()
    };
    assert_eq!(decide(16, 8, buddy, None), excluded(Class::Free, 8));
    assert_eq!(decide(31, 8, buddy, None), excluded(Class::Free, 8));
    assert_eq!(
        decide(15, 8, buddy, None),
        Verdict::Keep,
        "only level 16 drops free pages"
    );
    let huge = Page {
        private: 11,
        ..buddy
    };
    assert_eq!(decide(16, 0, huge, None), Verdict::BadBuddyOrder(11));
    let slab = Page {
        flags: SLAB,
        ..buddy
    };
    assert_eq!(
        decide(16, 8, slab, None),
        Verdict::Keep,
        "a slab page is never buddy"
    );
}

#[test]
fn compound_tail_is_kept() {
    let tail = Page {
        head: 0xffff_ea00_0000_0001,
        flags: LRU,
        mapping: 1,
        ..plain()
    };
    assert_eq!(decide(31, 5, tail, None), Verdict::Keep);
    let tail_buddy = Page {
        head: 1,
        mapcount: BUDDY,
        ..plain()
    };
    assert_eq!(decide(31, 5, tail_buddy, None), Verdict::Keep);
}

#[test]
fn compound_head_excludes_its_whole_order() {
    let head = Page {
        flags: HEAD | LRU,
        mapping: 1,
        ..plain()
    };
    let second = Page {
        order: 9,
        head: 1,
        ..plain()
    };
    assert_eq!(
        decide(8, 512, head, Some(second)),
        excluded(Class::User, 512)
    );
    // page[1] outside the batch: order 0.
    assert_eq!(decide(8, 512, head, None), excluded(Class::User, 1));
    // A head not aligned to its order: order 0.
    assert_eq!(decide(8, 256, head, Some(second)), excluded(Class::User, 1));
    // Not a head (no PG_head): page[1] is not consulted.
    let nohead = Page { flags: LRU, ..head };
    assert_eq!(
        decide(8, 512, nohead, Some(second)),
        excluded(Class::User, 1)
    );
}

#[test]
fn hugetlb_pages_are_user_data() {
    let head = Page {
        flags: HEAD,
        ..plain()
    };
    let second = Page {
        order: 9,
        dtor: 2,
        head: 1,
        ..plain()
    };
    assert_eq!(
        decide(8, 1024, head, Some(second)),
        excluded(Class::User, 512)
    );
    assert_eq!(decide(7, 1024, head, Some(second)), Verdict::Keep);
    let not_hugetlb = Page { dtor: 1, ..second };
    assert_eq!(decide(8, 1024, head, Some(not_hugetlb)), Verdict::Keep);
}

#[test]
fn hugetlb_schemes_of_newer_kernels() {
    // 6.9+: the head's page type; order in page[1].flags.
    let text = format!("{INFO_6_1}NUMBER(PAGE_HUGETLB_MAPCOUNT_VALUE)=-2049\n");
    let layout = PageLayout::from_info(&VmcoreInfo::parse(text.as_bytes())).expect("6.9");
    let head = Page {
        flags: HEAD,
        mapcount: 0xffff_f7ff,
        ..plain()
    }
    .bytes();
    let second = Page {
        flags: 9,
        head: 1,
        ..plain()
    }
    .bytes();
    let v = classify(&layout, level(8), 512, &head, Some(&second));
    assert_eq!(v, excluded(Class::User, 512));
    let other = Page {
        flags: HEAD,
        ..plain()
    }
    .bytes();
    assert_eq!(
        classify(&layout, level(8), 512, &other, Some(&second)),
        Verdict::Keep
    );
    // 6.6 - 6.8: PG_hugetlb in page[1].flags.
    let text = format!("{INFO_6_1}NUMBER(PG_hugetlb)=30\n");
    let layout = PageLayout::from_info(&VmcoreInfo::parse(text.as_bytes())).expect("6.6");
    let second = Page {
        flags: 9 | 1 << 30,
        head: 1,
        ..plain()
    }
    .bytes();
    let v = classify(&layout, level(8), 512, &other, Some(&second));
    assert_eq!(v, excluded(Class::User, 512));
    // 6.3 - 6.5: folio offsets.
    let text = INFO_6_1
        .replace(
            "OFFSET(page.compound_dtor)=16",
            "OFFSET(folio._folio_dtor)=80",
        )
        .replace(
            "OFFSET(page.compound_order)=17",
            "OFFSET(folio._folio_order)=81",
        );
    let layout = PageLayout::from_info(&VmcoreInfo::parse(text.as_bytes())).expect("6.3");
    let second = Page {
        dtor: 2,
        order: 2,
        head: 1,
        ..plain()
    }
    .bytes();
    let v = classify(&layout, level(8), 4, &other, Some(&second));
    assert_eq!(v, excluded(Class::User, 4));
}

#[test]
fn offline_pages_go_at_every_level() {
    let offline = Page {
        mapcount: OFFLINE,
        ..plain()
    };
    assert_eq!(decide(0, 3, offline, None), excluded(Class::Offline, 1));
    assert_eq!(decide(31, 3, offline, None), excluded(Class::Offline, 1));
    let slab = Page {
        flags: SLAB,
        ..offline
    };
    assert_eq!(decide(0, 3, slab, None), Verdict::Keep);
}

#[test]
fn hwpoison_pages_go_at_every_level() {
    let poisoned = Page {
        flags: HWPOISON,
        ..plain()
    };
    assert_eq!(decide(0, 3, poisoned, None), excluded(Class::Hwpoison, 1));
    let info = INFO_6_1.replace("NUMBER(PG_hwpoison)=22\n", "");
    let layout = PageLayout::from_info(&VmcoreInfo::parse(info.as_bytes())).expect("layout");
    let v = classify(&layout, level(0), 3, &poisoned.bytes(), None);
    assert_eq!(
        v,
        Verdict::Keep,
        "without NUMBER(PG_hwpoison) nothing is known"
    );
}

#[test]
fn slab_pages_are_kernel_data_not_anonymous() {
    let slab = Page {
        flags: SLAB,
        mapping: 0xffff_8880_0000_1001,
        ..plain()
    };
    assert_eq!(decide(31, 3, slab, None), Verdict::Keep);
    // 6.10+: the slab page type instead of PG_slab.
    let text = INFO_6_1.replace(
        "NUMBER(PG_slab)=9\n",
        "NUMBER(PAGE_SLAB_MAPCOUNT_VALUE)=-4097\n",
    );
    let layout = PageLayout::from_info(&VmcoreInfo::parse(text.as_bytes())).expect("6.10");
    assert_eq!(
        layout.types,
        PageTypes {
            slab: Some(0xffff_efff),
            ..layout.types
        }
    );
    let typed = Page {
        mapcount: 0xffff_efff,
        mapping: 1,
        ..plain()
    }
    .bytes();
    assert_eq!(classify(&layout, level(31), 3, &typed, None), Verdict::Keep);
}

#[test]
fn cache_without_private() {
    let cache = Page {
        flags: LRU,
        mapping: 0xffff_8880_0000_2000,
        ..plain()
    };
    assert_eq!(decide(2, 3, cache, None), excluded(Class::Cache, 1));
    assert_eq!(
        decide(25, 3, cache, None),
        Verdict::Keep,
        "31 without bits 2 and 4"
    );
    let private = Page {
        flags: LRU | PRIVATE,
        ..cache
    };
    assert_eq!(
        decide(2, 3, private, None),
        Verdict::Keep,
        "level 2 keeps private cache"
    );
    let swapcache = Page {
        flags: SWAPCACHE | SWAPBACKED,
        ..cache
    };
    assert_eq!(decide(2, 3, swapcache, None), excluded(Class::Cache, 1));
    let not_backed = Page {
        flags: SWAPCACHE,
        ..cache
    };
    assert_eq!(decide(2, 3, not_backed, None), Verdict::Keep);
}

#[test]
fn cache_with_private() {
    let private = Page {
        flags: LRU | PRIVATE,
        mapping: 0xffff_8880_0000_2000,
        ..plain()
    };
    assert_eq!(decide(4, 3, private, None), excluded(Class::Cache, 1));
    assert_eq!(decide(6, 3, private, None), excluded(Class::Cache, 1));
    assert_eq!(
        decide(27, 3, private, None),
        Verdict::Keep,
        "31 without bit 4"
    );
}

#[test]
fn anonymous_pages() {
    let anon = Page {
        flags: LRU | SWAPBACKED,
        mapping: 0xffff_8880_0000_3001,
        ..plain()
    };
    assert_eq!(decide(8, 3, anon, None), excluded(Class::User, 1));
    assert_eq!(
        decide(6, 3, anon, None),
        Verdict::Keep,
        "anonymous pages are not cache"
    );
    let ksm = Page {
        mapping: 0xffff_8880_0000_3003,
        ..anon
    };
    assert_eq!(decide(8, 3, ksm, None), excluded(Class::User, 1));
    assert_eq!(decide(23, 3, plain(), None), Verdict::Keep);
}
