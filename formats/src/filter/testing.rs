//! `FakeMachine`: a hand-built crashed x86_64 machine in memory for the filter's unit tests —
//! physical memory, page tables, the kernel image, the direct map, `mem_section` and `struct page`s.

use std::collections::HashMap;
use std::ops::Range;

use super::error::MemoryError;
use super::memory::PhysicalMemory;
use crate::elf::LoadSegment;
use crate::vmcoreinfo::VmcoreInfo;
use crate::X86_64_START_KERNEL_MAP;

pub const PAGE: u64 = 4096;
/// Where the kernel image sits physically (`phys_base`).
pub const PHYS_BASE: u64 = 0x100_0000;
/// Direct-map base (`PAGE_OFFSET`), KASLR-shifted like the fixture's.
pub const PAGE_OFFSET: u64 = 0xffff_8aa9_8000_0000;
/// `vmemmap_base`.
pub const VMEMMAP: u64 = 0xffff_ea00_0000_0000;
/// `init_top_pgt` (kernel image).
pub const PGD_VA: u64 = X86_64_START_KERNEL_MAP + 0x10_0000;
/// The mem_section root array (direct map, as since 4.15).
pub const MEM_SECTION_VA: u64 = PAGE_OFFSET + 0x40_0000;
/// Pfns per section with `SECTION_SIZE_BITS=27`.
pub const PAGES_PER_SECTION: u64 = 1 << 15;
/// Where section `n`'s struct pages are, physically: 2 MiB each from here.
pub const MEMMAP_PHYS: u64 = 0x800_0000;

/// Physical memory: `ram` reads as zero unless written; anything else is not in the dump.
#[derive(Default)]
pub struct FakeMemory {
    pages: HashMap<u64, Box<[u8; PAGE as usize]>>,
    ram: Range<u64>,
}

impl FakeMemory {
    fn in_ram(&self, paddr: u64) -> bool {
        self.ram.contains(&paddr)
    }

    pub fn write(&mut self, paddr: u64, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            let at = paddr + i as u64;
            let page = self
                .pages
                .entry(at & !(PAGE - 1))
                .or_insert_with(|| Box::new([0; PAGE as usize]));
            page[(at % PAGE) as usize] = *b;
        }
    }

    pub fn write_u64(&mut self, paddr: u64, value: u64) {
        self.write(paddr, &value.to_le_bytes());
    }

    pub fn read_u64(&self, paddr: u64) -> u64 {
        let mut b = [0u8; 8];
        self.read(paddr, &mut b).expect("fake read");
        u64::from_le_bytes(b)
    }
}

impl PhysicalMemory for FakeMemory {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let len = buf.len() as u64;
        let mut done = 0u64;
        while done < len {
            let at = paddr + done;
            let n = (PAGE - at % PAGE).min(len - done);
            if !self.in_ram(at) || !self.in_ram(at + n - 1) {
                return Err(MemoryError::NotInDump { paddr, len });
            }
            let dst = &mut buf[done as usize..(done + n) as usize];
            match self.pages.get(&(at & !(PAGE - 1))) {
                Some(page) => dst.copy_from_slice(&page[(at % PAGE) as usize..][..n as usize]),
                None => dst.fill(0),
            }
            done += n;
        }
        Ok(())
    }
}

/// A 64-byte struct page of the 6.1 layout (see [`FakeMachine::info_text`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Page {
    pub flags: u64,
    pub compound_head: u64,
    pub dtor: u8,
    pub order: u8,
    pub mapping: u64,
    pub private: u64,
    pub mapcount: u32,
    /// `lru.prev` (offset 16 overlaps dtor/order; only free-list tests use it).
    pub lru_prev: Option<u64>,
}

impl Page {
    /// An in-use page with nothing special: `_mapcount` -1.
    pub fn plain() -> Page {
        Page {
            mapcount: u32::MAX,
            ..Page::default()
        }
    }
}

/// A machine of `max_mapnr` pfns with two or more sections, 4-level paging, the direct map in
/// 1 GiB pages and vmemmap in 2 MiB pages.
pub struct FakeMachine {
    pub memory: FakeMemory,
    pub max_mapnr: u64,
    pub five_level: bool,
    next_table: u64,
    /// Extra VMCOREINFO lines (they come first, so they win over the defaults), and keys to drop.
    pub extra: String,
    pub drop: Vec<&'static str>,
}

impl FakeMachine {
    /// `max_mapnr` pfns of RAM, every section present with its vmemmap mapped.
    pub fn new(max_mapnr: u64, five_level: bool) -> FakeMachine {
        let mut m = FakeMachine {
            memory: FakeMemory {
                pages: HashMap::new(),
                ram: 0..max_mapnr * PAGE,
            },
            max_mapnr,
            five_level,
            next_table: 0x20_0000,
            extra: String::new(),
            drop: Vec::new(),
        };
        m.map(PAGE_OFFSET, 0, 1 << 30);
        let sections = max_mapnr.div_ceil(PAGES_PER_SECTION);
        for nr in 0..sections {
            let va = VMEMMAP + nr * PAGES_PER_SECTION * 64;
            m.map(va, MEMMAP_PHYS + nr * (2 << 20), 2 << 20);
            m.set_section(nr, Some(VMEMMAP | 0x7));
        }
        m
    }

    /// Sets section `nr`'s `section_mem_map` (`None`: no root/absent section).
    pub fn set_section(&mut self, nr: u64, value: Option<u64>) {
        let root_pa = MEM_SECTION_VA - PAGE_OFFSET;
        let root_va = PAGE_OFFSET + 0x41_0000 + (nr / 256) * PAGE;
        self.memory.write_u64(root_pa + (nr / 256) * 8, root_va);
        let ms = root_va - PAGE_OFFSET + (nr % 256) * 16;
        self.memory.write_u64(ms, value.unwrap_or(0));
    }

    /// Maps `va .. va + size` to `pa` with one leaf of `size` (4 KiB, 2 MiB or 1 GiB).
    pub fn map(&mut self, va: u64, pa: u64, size: u64) {
        let pgd = PGD_VA - X86_64_START_KERNEL_MAP + PHYS_BASE;
        let mut table = pgd;
        let mut shifts = vec![39, 30, 21, 12];
        if self.five_level {
            shifts.insert(0, 48);
        }
        for shift in shifts {
            let entry = table + 8 * ((va >> shift) & 511);
            if 1u64 << shift == size {
                let large = if size > PAGE { 0x80 } else { 0 };
                self.memory.write_u64(entry, pa | 0x63 | large);
                return;
            }
            let existing = self.memory.read_u64(entry);
            table = if existing & 1 == 1 {
                existing & 0x000f_ffff_ffff_f000
            } else {
                let t = self.next_table;
                self.next_table += PAGE;
                self.memory.write_u64(entry, t | 0x63);
                t
            };
        }
    }

    /// Writes pfn `pfn`'s struct page.
    pub fn set_page(&mut self, pfn: u64, page: Page) {
        let nr = pfn / PAGES_PER_SECTION;
        let pa = MEMMAP_PHYS + nr * (2 << 20) + (pfn % PAGES_PER_SECTION) * 64;
        let mut b = [0u8; 64];
        b[0..8].copy_from_slice(&page.flags.to_le_bytes());
        b[8..16].copy_from_slice(&page.compound_head.to_le_bytes());
        b[16] = page.dtor;
        b[17] = page.order;
        if let Some(prev) = page.lru_prev {
            b[16..24].copy_from_slice(&prev.to_le_bytes());
        }
        b[24..32].copy_from_slice(&page.mapping.to_le_bytes());
        b[40..48].copy_from_slice(&page.private.to_le_bytes());
        b[48..52].copy_from_slice(&page.mapcount.to_le_bytes());
        self.memory.write(pa, &b);
    }

    /// Virtual address of pfn `pfn`'s struct page.
    pub fn struct_page(pfn: u64) -> u64 {
        VMEMMAP + pfn * 64
    }

    /// The VMCOREINFO of the fixture's 6.1 kernel, adapted to this machine.
    pub fn info_text(&self) -> String {
        let text = format!(
            "{}OSRELEASE=6.1.0-56-cloud-amd64\nPAGESIZE=4096\n\
             SYMBOL(mem_section)={MEM_SECTION_VA:x}\nLENGTH(mem_section)={}\nSIZE(mem_section)=16\n\
             OFFSET(mem_section.section_mem_map)=0\nNUMBER(SECTION_SIZE_BITS)=27\n\
             NUMBER(MAX_PHYSMEM_BITS)={}\nSIZE(page)=64\nOFFSET(page.flags)=0\n\
             OFFSET(page._refcount)=52\nOFFSET(page.mapping)=24\nOFFSET(page.lru)=8\n\
             OFFSET(page._mapcount)=48\nOFFSET(page.private)=40\nOFFSET(page.compound_dtor)=16\n\
             OFFSET(page.compound_order)=17\nOFFSET(page.compound_head)=8\n\
             LENGTH(zone.free_area)=11\nNUMBER(PG_lru)=4\nNUMBER(PG_private)=13\n\
             NUMBER(PG_swapcache)=10\nNUMBER(PG_swapbacked)=19\nNUMBER(PG_slab)=9\n\
             NUMBER(PG_head_mask)=65536\nNUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129\n\
             NUMBER(HUGETLB_PAGE_DTOR)=2\nNUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=-257\n\
             NUMBER(phys_base)={PHYS_BASE}\nSYMBOL(init_top_pgt)={PGD_VA:x}\n\
             NUMBER(pgtable_l5_enabled)={}\nNUMBER(KERNEL_IMAGE_SIZE)=1073741824\n\
             NUMBER(sme_mask)=0\n",
            self.extra,
            if self.five_level { 131072 } else { 2048 },
            if self.five_level { 52 } else { 46 },
            u8::from(self.five_level),
        );
        text.lines()
            .filter(|l| !self.drop.iter().any(|d| l.starts_with(&format!("{d}="))))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    pub fn info(&self) -> VmcoreInfo {
        VmcoreInfo::parse(self.info_text().as_bytes())
    }

    /// One RAM PT_LOAD over all pfns, in the direct map.
    pub fn loads(&self) -> Vec<LoadSegment> {
        vec![LoadSegment {
            offset: 0,
            vaddr: PAGE_OFFSET,
            paddr: 0,
            filesz: self.max_mapnr * PAGE,
            memsz: self.max_mapnr * PAGE,
        }]
    }
}
