//! The whole filter on hand-built machines: translation, sections, the windowed walk, the
//! exclusion ranges it clears, the free-list fallback, and what it refuses.

use super::testing::{FakeMachine, Page, PAGES_PER_SECTION, VMEMMAP};
use super::*;

const LRU: u64 = 1 << 4;
const PRIVATE: u64 = 1 << 13;
const SLAB: u64 = 1 << 9;
const HEAD: u64 = 1 << 16;
const BUDDY: u32 = 0xffff_ff7f;
const OFFLINE: u32 = 0xffff_feff;
/// A file mapping (no anonymous bit).
const FILE: u64 = 0xffff_8aa9_8123_4560;
/// An anonymous mapping.
const ANON: u64 = 0xffff_8aa9_8765_4321;

/// Filters `m` at `level` from an all-ones bitmap; returns the bitmap and the report.
pub(super) fn run(m: &FakeMachine, level: u8) -> Result<(Bitmap, FilterReport), FilterError> {
    let info = m.info();
    let loads = m.loads();
    let filter = PageFilter::new(&m.memory, &info, &loads, testing::PHYS_BASE, m.max_mapnr);
    let mut bitmap = Bitmap::new(m.max_mapnr);
    bitmap.set_range(0..m.max_mapnr);
    let report = filter.apply(DumpLevel::new(level)?, &mut bitmap)?;
    Ok((bitmap, report))
}

pub(super) fn cleared(b: &Bitmap) -> Vec<u64> {
    (0..b.bits()).filter(|&p| !b.get(p)).collect()
}

pub(super) fn machine() -> FakeMachine {
    FakeMachine::new(2 * PAGES_PER_SECTION, false)
}

#[test]
fn buddy_blocks_are_cleared_with_their_order() {
    let mut m = machine();
    m.set_page(
        0x1008,
        Page {
            mapcount: BUDDY,
            private: 3,
            ..Page::plain()
        },
    );
    // Inside the block: would be kept, and must not be examined on its own.
    m.set_page(
        0x100a,
        Page {
            mapcount: BUDDY,
            private: 10,
            ..Page::plain()
        },
    );
    m.set_page(
        0x9000,
        Page {
            mapcount: BUDDY,
            private: 0,
            ..Page::plain()
        },
    );
    let (b, report) = run(&m, 16).expect("level 16");
    let mut want: Vec<u64> = (0x1008..0x1010).collect();
    want.push(0x9000);
    assert_eq!(cleared(&b), want);
    assert_eq!(report.free, 9);
    assert!(report.walked);
    let (b, _) = run(&m, 15).expect("level 15");
    assert!(cleared(&b).is_empty(), "free pages stay below level 16");
}

#[test]
fn compound_pages_go_as_a_whole_and_tails_alone_never() {
    let mut m = machine();
    let head = 0x2000;
    m.set_page(
        head,
        Page {
            flags: HEAD | LRU,
            mapping: ANON,
            ..Page::plain()
        },
    );
    m.set_page(
        head + 1,
        Page {
            order: 9,
            compound_head: FakeMachine::struct_page(head) | 1,
            ..Page::plain()
        },
    );
    for tail in head + 2..head + 512 {
        m.set_page(
            tail,
            Page {
                compound_head: FakeMachine::struct_page(head) | 1,
                ..Page::plain()
            },
        );
    }
    // A tail whose head is not excluded stays, whatever its own flags say.
    m.set_page(
        0x3001,
        Page {
            flags: LRU,
            mapping: ANON,
            compound_head: 1,
            ..Page::plain()
        },
    );
    let (b, report) = run(&m, 8).expect("level 8");
    assert_eq!(cleared(&b), (head..head + 512).collect::<Vec<_>>());
    assert_eq!(report.user, 512);
}

#[test]
fn hugetlb_pages_are_user_data() {
    let mut m = machine();
    m.set_page(
        0x4000,
        Page {
            flags: HEAD,
            ..Page::plain()
        },
    );
    m.set_page(
        0x4001,
        Page {
            order: 9,
            dtor: 2,
            compound_head: 1,
            ..Page::plain()
        },
    );
    let (b, _) = run(&m, 8).expect("level 8");
    assert_eq!(cleared(&b), (0x4000..0x4200).collect::<Vec<_>>());
    let (b, _) = run(&m, 23).expect("level 23");
    assert!(cleared(&b).is_empty());
}

#[test]
fn head_at_the_end_of_a_short_section_has_order_zero() {
    // max_mapnr cuts the second section: its last pfn's page[1] is past the range.
    let mut m = FakeMachine::new(PAGES_PER_SECTION + 1024, false);
    let last = PAGES_PER_SECTION + 1023;
    m.set_page(
        last,
        Page {
            flags: HEAD | LRU,
            mapping: ANON,
            ..Page::plain()
        },
    );
    m.set_page(
        last + 1,
        Page {
            order: 1,
            ..Page::plain()
        },
    ); // garbage beyond the range
    let (b, _) = run(&m, 8).expect("level 8");
    assert_eq!(cleared(&b), vec![last]);
}

#[test]
fn offline_and_hwpoison_go_at_every_level_once_the_walk_runs() {
    let mut m = machine();
    m.set_page(
        0x10,
        Page {
            mapcount: OFFLINE,
            ..Page::plain()
        },
    );
    m.set_page(
        0x11,
        Page {
            flags: 1 << 22,
            ..Page::plain()
        },
    );
    // The 6.1 cloud kernel has no NUMBER(PG_hwpoison): levels 0 and 1 do not walk at all.
    let (b, report) = run(&m, 1).expect("level 1");
    assert!(cleared(&b).is_empty() && !report.walked);
    let (b, _) = run(&m, 2).expect("level 2");
    assert_eq!(
        cleared(&b),
        vec![0x10],
        "offline goes whenever the walk runs"
    );
    m.extra.push_str("NUMBER(PG_hwpoison)=22\n");
    let (b, report) = run(&m, 0).expect("level 0");
    assert_eq!(cleared(&b), vec![0x10, 0x11]);
    assert_eq!((report.offline, report.hwpoison), (1, 1));
}

#[test]
fn slab_cache_and_anonymous_pages() {
    let mut m = machine();
    m.set_page(
        0x20,
        Page {
            flags: SLAB,
            mapping: ANON,
            ..Page::plain()
        },
    );
    m.set_page(
        0x21,
        Page {
            flags: LRU,
            mapping: FILE,
            ..Page::plain()
        },
    );
    m.set_page(
        0x22,
        Page {
            flags: LRU | PRIVATE,
            mapping: FILE,
            ..Page::plain()
        },
    );
    m.set_page(
        0x23,
        Page {
            flags: LRU,
            mapping: ANON,
            ..Page::plain()
        },
    );
    let level = |n| cleared(&run(&m, n).expect("level").0);
    assert_eq!(level(2), vec![0x21]);
    assert_eq!(level(4), vec![0x21, 0x22]);
    assert_eq!(level(8), vec![0x23]);
    assert_eq!(level(31), vec![0x21, 0x22, 0x23]);
}

#[test]
fn five_level_paging_and_no_direct_map_hint() {
    let mut m = FakeMachine::new(2 * PAGES_PER_SECTION, true);
    m.set_page(
        0x30,
        Page {
            flags: LRU,
            mapping: ANON,
            ..Page::plain()
        },
    );
    let info = m.info();
    let mut loads = m.loads();
    loads[0].vaddr = 0; // a QEMU-style dump: PAGE_OFFSET unknown, everything walks
    let filter = PageFilter::new(&m.memory, &info, &loads, testing::PHYS_BASE, m.max_mapnr);
    let mut b = Bitmap::new(m.max_mapnr);
    b.set_range(0..m.max_mapnr);
    filter
        .apply(DumpLevel::new(8).expect("8"), &mut b)
        .expect("walk");
    assert_eq!(cleared(&b), vec![0x30]);
}

#[test]
fn only_pfns_in_a_file_part_are_examined() {
    let mut m = machine();
    m.set_page(
        0x40,
        Page {
            flags: LRU,
            mapping: ANON,
            ..Page::plain()
        },
    );
    m.set_page(
        0x50,
        Page {
            flags: LRU,
            mapping: ANON,
            ..Page::plain()
        },
    );
    let info = m.info();
    let mut loads = m.loads();
    loads[0].filesz = 0x50 * 4096; // pfn 0x50 onwards is not in the file
    let filter = PageFilter::new(&m.memory, &info, &loads, testing::PHYS_BASE, m.max_mapnr);
    let mut b = Bitmap::new(m.max_mapnr);
    b.set_range(0..m.max_mapnr);
    filter
        .apply(DumpLevel::new(8).expect("8"), &mut b)
        .expect("walk");
    assert_eq!(cleared(&b), vec![0x40]);
}

#[test]
fn unreadable_struct_pages_are_kept_and_counted() {
    let mut m = machine();
    m.set_page(
        PAGES_PER_SECTION + 5,
        Page {
            flags: LRU,
            mapping: ANON,
            ..Page::plain()
        },
    );
    m.set_page(
        5,
        Page {
            flags: LRU,
            mapping: ANON,
            ..Page::plain()
        },
    );
    // Unmap the second section's vmemmap.
    let pmd_entry_va = VMEMMAP + PAGES_PER_SECTION * 64;
    let pgd = testing::PGD_VA - crate::X86_64_START_KERNEL_MAP + testing::PHYS_BASE;
    let pud = m.memory.read_u64(pgd + 8 * ((pmd_entry_va >> 39) & 511)) & !0xfff;
    let pmd = m.memory.read_u64(pud + 8 * ((pmd_entry_va >> 30) & 511)) & !0xfff;
    m.memory
        .write_u64(pmd + 8 * ((pmd_entry_va >> 21) & 511), 0);
    let (b, report) = run(&m, 8).expect("level 8");
    assert_eq!(cleared(&b), vec![5]);
    assert_eq!(report.unreadable, PAGES_PER_SECTION);
}

#[test]
fn absent_sections_are_not_walked() {
    let mut m = machine();
    m.set_page(
        PAGES_PER_SECTION + 5,
        Page {
            flags: LRU,
            mapping: ANON,
            ..Page::plain()
        },
    );
    m.set_section(1, Some(VMEMMAP)); // PRESENT clear
    let (b, _) = run(&m, 8).expect("level 8");
    assert!(cleared(&b).is_empty());
}

#[test]
fn a_mem_map_outside_the_kernel_invalidates_mem_section() {
    let mut m = machine();
    m.set_section(1, Some(0x1000 | 1));
    let err = run(&m, 31).expect_err("invalid");
    assert!(
        matches!(err, FilterError::InvalidMemSection { .. }),
        "{err}"
    );
    // Level 1 on a kernel without PG_hwpoison never looks.
    assert!(run(&m, 1).is_ok());
}

#[test]
fn missing_keys_are_refused_by_name() {
    let mut m = machine();
    m.drop = vec!["SYMBOL(mem_section)", "NUMBER(PG_lru)"];
    let err = run(&m, 8).expect_err("no mem_section");
    assert!(err.to_string().contains("SYMBOL(mem_section)"), "{err}");
    let err = run(&m, 4).expect_err("no PG_lru");
    assert!(err.to_string().contains("NUMBER(PG_lru)"), "{err}");
    m.drop = vec!["NUMBER(PG_private)"];
    let err = run(&m, 2).expect_err("no PG_private");
    assert!(err.to_string().contains("NUMBER(PG_private)"), "{err}");
    assert!(run(&m, 6).is_ok(), "level 4 covers private pages anyway");
    m.drop = vec!["SYMBOL(init_top_pgt)"];
    let err = run(&m, 16).expect_err("no page tables");
    assert!(err.to_string().contains("SYMBOL(init_top_pgt)"), "{err}");
    m.extra.push_str("NUMBER(PG_hwpoison)=22\n");
    let (_, report) = run(&m, 1).expect("hwpoison alone does not refuse");
    assert!(report.skipped_walk.is_some());
    assert!(matches!(DumpLevel::new(32), Err(FilterError::BadLevel(32))));
}
