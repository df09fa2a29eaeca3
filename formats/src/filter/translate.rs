//! x86_64 kernel virtual-to-physical translation (formats.md 4.3): the kernel image, the direct
//! map, and the 4- or 5-level page-table walk with the last large-page or PTE table cached.

use super::error::FilterError;
use super::memory::PhysicalMemory;
use crate::elf::kernel_image_to_physical;
use crate::vmcoreinfo::VmcoreInfo;

/// Page-table entry: present.
pub const PTE_PRESENT: u64 = 0x1;
/// Page-table entry at PUD or PMD level: a 1 GiB or 2 MiB page (PSE).
pub const PTE_LARGE: u64 = 0x80;
/// Physical-address field of a page-table entry: bits 12..51.
pub const PTE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Size of the kernel-image region when VMCOREINFO has no `NUMBER(KERNEL_IMAGE_SIZE)`.
const DEFAULT_IMAGE_SIZE: u64 = 1 << 30;

/// Below every x86_64 direct-map base: a `PAGE_OFFSET` from the PT_LOADs that is lower is not
/// one (QEMU dumps give 0), 1.7.
pub const DIRECT_MAP_FLOOR: u64 = 0xff00_0000_0000_0000;

const PAGE: u64 = 4096;
const SIZE_2M: u64 = 1 << 21;
const SIZE_1G: u64 = 1 << 30;

/// Why a virtual address has no translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unmapped {
    /// The address.
    pub vaddr: u64,
    /// The table level where the walk stopped (`PGD`, `P4D`, `PUD`, `PMD`, `PTE`).
    pub level: &'static str,
    /// What was wrong with the entry.
    pub why: &'static str,
}

/// A cached leaf: `va .. va + size` maps to `pa .. pa + size`.
#[derive(Clone, Copy, Debug)]
struct Leaf {
    va: u64,
    pa: u64,
    size: u64,
}

/// Translates and reads kernel virtual addresses of the crashed kernel.
pub struct Translator<'m, M: PhysicalMemory + ?Sized> {
    memory: &'m M,
    phys_base: u64,
    image_size: u64,
    /// Physical address of the top-level table (`init_top_pgt`).
    pgd: u64,
    five_level: bool,
    /// [`PTE_ADDR_MASK`] without `NUMBER(sme_mask)`.
    addr_mask: u64,
    /// `PAGE_OFFSET` and the size of the direct map, once verified against the walk.
    direct_map: Option<(u64, u64)>,
    /// The last large page found by the walk.
    leaf: Option<Leaf>,
    /// The last PTE table found: (2 MiB-aligned va, physical address of the table).
    pte_table: Option<(u64, u64)>,
}

impl<'m, M: PhysicalMemory + ?Sized> Translator<'m, M> {
    /// Sets up translation from VMCOREINFO: `SYMBOL(init_top_pgt)` (`init_level4_pgt` before
    /// 4.13), `phys_base`, `NUMBER(pgtable_l5_enabled)`, `NUMBER(sme_mask)`,
    /// `NUMBER(KERNEL_IMAGE_SIZE)`. `page_offset` is the direct-map base the PT_LOADs suggest
    /// (1.7); it is used only if the walk confirms it.
    pub fn new(
        memory: &'m M,
        info: &VmcoreInfo,
        phys_base: u64,
        page_offset: Option<u64>,
    ) -> Result<Self, FilterError> {
        let pgd_va = info
            .symbol("init_top_pgt")
            .or_else(|| info.symbol("init_level4_pgt"))
            .ok_or(FilterError::missing(
                "SYMBOL(init_top_pgt)",
                "translating kernel virtual addresses",
            ))?;
        let image_size = match info.number("KERNEL_IMAGE_SIZE") {
            Some(n) if n > 0 && n <= 1 << 31 => n as u64,
            _ => DEFAULT_IMAGE_SIZE,
        };
        let pgd = kernel_image_to_physical(pgd_va, PAGE, phys_base, image_size).ok_or(
            FilterError::bad(
                "SYMBOL(init_top_pgt)",
                format!("{pgd_va:x}"),
                "not in the kernel-image region",
            ),
        )?;
        let five_level = info.number("pgtable_l5_enabled").is_some_and(|n| n != 0);
        let sme_mask = info.number("sme_mask").map_or(0, |n| n as u64);
        let mut translator = Translator {
            memory,
            phys_base,
            image_size,
            pgd,
            five_level,
            addr_mask: PTE_ADDR_MASK & !sme_mask,
            direct_map: None,
            leaf: None,
            pte_table: None,
        };
        let physmem_bits = info
            .number("MAX_PHYSMEM_BITS")
            .filter(|&b| (32..=52).contains(&b))
            .map_or(if five_level { 52 } else { 46 }, |b| b as u32);
        if let Some(base) = page_offset.filter(|&b| b >= DIRECT_MAP_FLOOR) {
            // Verify once: the top-level table's direct-map alias must walk to the table itself.
            let alias = base.checked_add(pgd);
            if alias.is_some_and(|va| translator.walk(va).ok() == Some(pgd)) {
                translator.direct_map = Some((base, 1u64 << physmem_bits));
            }
        }
        Ok(translator)
    }

    /// The memory this translator reads.
    pub fn memory(&self) -> &'m M {
        self.memory
    }

    /// Whether the kernel uses 5-level paging.
    pub fn five_level(&self) -> bool {
        self.five_level
    }

    /// The physical address of kernel virtual address `va`.
    pub fn to_physical(&mut self, va: u64) -> Result<u64, Unmapped> {
        if let Some(pa) = kernel_image_to_physical(va, 1, self.phys_base, self.image_size) {
            return Ok(pa);
        }
        if let Some((base, size)) = self.direct_map {
            if let Some(off) = va.checked_sub(base).filter(|&off| off < size) {
                return Ok(off);
            }
        }
        self.walk(va)
    }

    /// Fills `buf` from kernel virtual address `va`, translating page by page and reading
    /// physically contiguous pages at once.
    pub fn read(&mut self, va: u64, buf: &mut [u8], what: &'static str) -> Result<(), FilterError> {
        let mut done = 0usize;
        while done < buf.len() {
            let start_va = va.wrapping_add(done as u64);
            let unmapped = |u: Unmapped| FilterError::NotMapped { what, unmapped: u };
            let start_pa = self.to_physical(start_va).map_err(unmapped)?;
            // Extend the run while the next pages are physically contiguous.
            let mut run = (PAGE - start_va % PAGE).min((buf.len() - done) as u64) as usize;
            while done + run < buf.len() {
                let next_va = va.wrapping_add((done + run) as u64);
                if self.to_physical(next_va).map_err(unmapped)? != start_pa.wrapping_add(run as u64)
                {
                    break;
                }
                run += (PAGE as usize).min(buf.len() - done - run);
            }
            let dst = &mut buf[done..done + run];
            self.memory
                .read(start_pa, dst)
                .map_err(|e| FilterError::memory(what, e))?;
            done += run;
        }
        Ok(())
    }

    /// The u64 at kernel virtual address `va`.
    pub fn read_u64(&mut self, va: u64, what: &'static str) -> Result<u64, FilterError> {
        let mut b = [0u8; 8];
        self.read(va, &mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }

    /// The page-table walk (4.3 method 3), using and refreshing the cache.
    pub fn walk(&mut self, va: u64) -> Result<u64, Unmapped> {
        if let Some(l) = self.leaf.filter(|l| va.wrapping_sub(l.va) < l.size) {
            return Ok(l.pa + (va - l.va));
        }
        if let Some((_, table)) = self.pte_table.filter(|&(b, _)| va & !(SIZE_2M - 1) == b) {
            let pte = self.entry(table, va >> 12, va, "PTE")?;
            return Ok((pte & self.addr_mask) + (va & (PAGE - 1)));
        }
        let mut e = self.entry(
            self.pgd,
            if self.five_level { va >> 48 } else { va >> 39 },
            va,
            "PGD",
        )?;
        if self.five_level {
            e = self.entry(e & self.addr_mask, va >> 39, va, "P4D")?;
        }
        let pud = self.entry(e & self.addr_mask, va >> 30, va, "PUD")?;
        if pud & PTE_LARGE != 0 {
            return Ok(self.remember(va, pud, SIZE_1G));
        }
        let pmd = self.entry(pud & self.addr_mask, va >> 21, va, "PMD")?;
        if pmd & PTE_LARGE != 0 {
            return Ok(self.remember(va, pmd, SIZE_2M));
        }
        let table = pmd & self.addr_mask;
        let pte = self.entry(table, va >> 12, va, "PTE")?;
        self.pte_table = Some((va & !(SIZE_2M - 1), table));
        Ok((pte & self.addr_mask) + (va & (PAGE - 1)))
    }

    /// Caches the large page of entry `e` (size `size`) that maps `va`; returns `va`'s address.
    fn remember(&mut self, va: u64, e: u64, size: u64) -> u64 {
        let pa = e & self.addr_mask & !(size - 1);
        self.leaf = Some(Leaf {
            va: va & !(size - 1),
            pa,
            size,
        });
        pa + (va & (size - 1))
    }

    /// Entry `index % 512` of the table at physical `table`; errs unless present.
    fn entry(&self, table: u64, index: u64, va: u64, level: &'static str) -> Result<u64, Unmapped> {
        let mut b = [0u8; 8];
        let at = table.wrapping_add(8 * (index & 511));
        self.memory.read(at, &mut b).map_err(|_| Unmapped {
            vaddr: va,
            level,
            why: "table not in the dump",
        })?;
        let e = u64::from_le_bytes(b);
        if e & PTE_PRESENT == 0 {
            return Err(Unmapped {
                vaddr: va,
                level,
                why: "entry not present",
            });
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{FakeMachine, PAGE_OFFSET, PGD_VA, PHYS_BASE};
    use super::*;

    const VMALLOC: u64 = 0xffff_c900_0000_0000;

    fn translator(
        m: &FakeMachine,
        page_offset: Option<u64>,
    ) -> Translator<'_, super::super::testing::FakeMemory> {
        let info = m.info();
        Translator::new(&m.memory, &info, PHYS_BASE, page_offset).expect("translator")
    }

    #[test]
    fn four_kib_two_mib_and_one_gib_pages() {
        for five_level in [false, true] {
            let mut m = FakeMachine::new(1 << 15, five_level);
            m.map(VMALLOC, 0x30_5000, PAGE);
            m.map(VMALLOC + PAGE, 0x30_1000, PAGE);
            m.memory.write(0x30_5ff8, b"abcdefgh");
            m.memory.write(0x30_1000, b"ijkl");
            let mut tr = translator(&m, None);
            assert_eq!(tr.to_physical(VMALLOC + 0x10), Ok(0x30_5010));
            let mut buf = [0u8; 12];
            tr.read(VMALLOC + 0xff8, &mut buf, "a test")
                .expect("across pages");
            assert_eq!(&buf, b"abcdefghijkl");
            // vmemmap: 2 MiB pages; the direct map: one 1 GiB page.
            assert_eq!(tr.walk(0xffff_ea00_0000_1040), Ok(0x800_1040));
            assert_eq!(tr.walk(PAGE_OFFSET + 0x1234_5678), Ok(0x1234_5678));
            // The kernel image needs no walk.
            assert_eq!(
                tr.to_physical(PGD_VA + 8),
                Ok(PGD_VA - 0xffff_ffff_8000_0000 + PHYS_BASE + 8)
            );
        }
    }

    #[test]
    fn unmapped_addresses_name_the_level() {
        let m = FakeMachine::new(1 << 15, false);
        let mut tr = translator(&m, None);
        let err = tr.to_physical(VMALLOC).expect_err("not mapped");
        assert_eq!(
            (err.vaddr, err.level, err.why),
            (VMALLOC, "PGD", "entry not present")
        );
        let mut b = [0u8; 8];
        let err = tr
            .read(VMALLOC, &mut b, "the thing")
            .expect_err("not mapped");
        assert!(err.to_string().contains("the thing"), "{err}");
    }

    #[test]
    fn sme_mask_is_stripped_from_entries() {
        let mut m = FakeMachine::new(1 << 15, false);
        let c_bit = 1u64 << 47;
        m.extra.push_str(&format!("NUMBER(sme_mask)={c_bit}\n"));
        m.map(VMALLOC, 0x30_5000 | c_bit, PAGE);
        let info = m.info();
        let mut tr = Translator::new(&m.memory, &info, PHYS_BASE, None).expect("translator");
        assert_eq!(tr.to_physical(VMALLOC + 1), Ok(0x30_5001));
    }

    #[test]
    fn the_direct_map_base_is_used_only_once_verified() {
        let m = FakeMachine::new(1 << 15, false);
        let tr = translator(&m, Some(PAGE_OFFSET));
        assert_eq!(tr.direct_map, Some((PAGE_OFFSET, 1 << 46)));
        let tr = translator(&m, Some(PAGE_OFFSET + (1 << 30)));
        assert_eq!(tr.direct_map, None, "a base the page tables contradict");
        let tr = translator(&m, Some(0x1000));
        assert_eq!(tr.direct_map, None, "QEMU dumps give p_vaddr = p_paddr");
    }
}
