//! The synthetic kernel's own data, as pages that replace the generated contents ([`Overlay`]):
//! page tables (direct map in 1 GiB pages, the kernel image and vmemmap in 2 MiB pages),
//! `mem_section` (SPARSEMEM_EXTREME), `init_uts_ns`, the printk ring — and its VMCOREINFO.

use std::collections::BTreeMap;
use std::io;

use super::layout::{
    Layout, IMAGE_PGD, MAX_PHYSMEM_BITS, MEM_SECTION_ROOTS, PAGE, PAGES_PER_SECTION,
    SECTIONS_PER_ROOT, SECTION_SIZE_BITS, SIZE_1G, SIZE_2M, STRUCT_PAGE, SYNTH_PAGE_OFFSET,
    SYNTH_STEXT, SYNTH_VMEMMAP,
};
use super::printk::{self, RingPlace};
use super::{mix, SynthLogLine, SynthSpec};
use crate::elf::encode_utsname;
use crate::UTSNAME_LEN;

/// Pages of physical memory whose contents the kernel's data decides (all zero unless written).
#[derive(Default)]
pub(super) struct Overlay {
    pages: BTreeMap<u64, Box<[u8; PAGE as usize]>>,
}

impl Overlay {
    pub fn write(&mut self, pa: u64, bytes: &[u8]) {
        let mut done = 0usize;
        while done < bytes.len() {
            let at = pa + done as u64;
            let in_page = (at % PAGE) as usize;
            let n = (PAGE as usize - in_page).min(bytes.len() - done);
            let page = self
                .pages
                .entry(at / PAGE)
                .or_insert_with(|| Box::new([0; PAGE as usize]));
            page[in_page..in_page + n].copy_from_slice(&bytes[done..done + n]);
            done += n;
        }
    }

    pub fn write_u64(&mut self, pa: u64, value: u64) {
        self.write(pa, &value.to_le_bytes());
    }

    fn read_u64(&self, pa: u64) -> u64 {
        let Some(page) = self.pages.get(&(pa / PAGE)) else {
            return 0;
        };
        let at = (pa % PAGE) as usize;
        let mut b = [0u8; 8];
        b.copy_from_slice(&page[at..at + 8]);
        u64::from_le_bytes(b)
    }

    /// Pfn `pfn`'s page, if the kernel's data decides it.
    pub fn page(&self, pfn: u64) -> Option<&[u8; PAGE as usize]> {
        self.pages.get(&pfn).map(|p| &**p)
    }
}

/// Entry flags: present, writable, accessed, dirty (0x63), and PSE for large pages.
const TABLE: u64 = 0x63;
const LARGE: u64 = 0x80;

/// Builds the page tables, allocating tables from `next` upwards.
struct Tables<'o> {
    ov: &'o mut Overlay,
    pgd: u64,
    next: u64,
    limit: u64,
}

impl Tables<'_> {
    /// Maps `va .. va + size` to `pa` with one leaf of `size` (2 MiB or 1 GiB).
    fn map(&mut self, va: u64, pa: u64, size: u64) -> io::Result<()> {
        let mut table = self.pgd;
        for shift in [39u32, 30, 21, 12] {
            let entry = table + 8 * ((va >> shift) & 511);
            if 1u64 << shift == size {
                self.ov.write_u64(entry, pa | TABLE | LARGE);
                return Ok(());
            }
            let existing = self.ov.read_u64(entry);
            table = if existing & 1 == 1 {
                existing & 0x000f_ffff_ffff_f000
            } else {
                if self.next + PAGE > self.limit {
                    return Err(io::Error::other("synthetic vmcore: page-table area full"));
                }
                let t = self.next;
                self.next += PAGE;
                // A table page that exists but is empty still reads as zeros: write one entry.
                self.ov.write_u64(t, 0);
                self.ov.write_u64(entry, t | TABLE);
                t
            };
        }
        Ok(())
    }
}

/// Every overlay page of the machine: the kernel's page tables, mem_section, utsname and log.
pub(super) fn build(
    spec: &SynthSpec,
    layout: &Layout,
    log: &[SynthLogLine],
) -> io::Result<Overlay> {
    let mut ov = Overlay::default();
    // The kernel image's own tables (init_top_pgt, level3/level2_kernel_pgt) are in its .data.
    let pgd = layout.image.start + IMAGE_PGD;
    ov.write_u64(pgd, 0);
    let mut tables = Tables {
        ov: &mut ov,
        pgd,
        next: pgd + PAGE,
        limit: pgd + 8 * PAGE,
    };
    let image_len = layout.image.end - layout.image.start;
    for off in (0..image_len).step_by(SIZE_2M as usize) {
        tables.map(SYNTH_STEXT + off, layout.image.start + off, SIZE_2M)?;
    }
    // Everything else comes from the memblock area, after the printk ring and the root array.
    let root_array = RingPlace::of(layout).end();
    tables.next = root_array + MEM_SECTION_ROOTS * 8;
    tables.limit = layout.memblock.end;
    let ram_end = layout.end_pfn * PAGE;
    for gib in 0..ram_end.div_ceil(SIZE_1G) {
        tables.map(SYNTH_PAGE_OFFSET + gib * SIZE_1G, gib * SIZE_1G, SIZE_1G)?;
    }
    for (i, &nr) in layout.sections.iter().enumerate() {
        let va = SYNTH_VMEMMAP + nr * PAGES_PER_SECTION * STRUCT_PAGE;
        tables.map(va, layout.vmemmap_phys + i as u64 * SIZE_2M, SIZE_2M)?;
    }
    // mem_section: the root array, one page of 256 `struct mem_section` per root in use.
    let mut roots: BTreeMap<u64, u64> = BTreeMap::new();
    for &nr in &layout.sections {
        let root = nr / SECTIONS_PER_ROOT;
        let next = &mut tables.next;
        let root_pa = *roots.entry(root).or_insert_with(|| {
            let pa = *next;
            *next += PAGE;
            pa
        });
        if tables.next > tables.limit {
            return Err(io::Error::other("synthetic vmcore: memblock area full"));
        }
        // SECTION_MARKED_PRESENT | HAS_MEM_MAP | IS_ONLINE | IS_EARLY; with VMEMMAP the encoded
        // mem_map is vmemmap_base for every section. `usage` (offset 8) is left 0.
        let ms = root_pa + (nr % SECTIONS_PER_ROOT) * 16;
        tables.ov.write_u64(ms, SYNTH_VMEMMAP | 0xf);
    }
    for (&root, &pa) in &roots {
        tables
            .ov
            .write_u64(root_array + root * 8, SYNTH_PAGE_OFFSET + pa);
    }

    let uts = encode_utsname([
        "Linux",
        "synthetic",
        &spec.osrelease,
        "#1 SMP PREEMPT_DYNAMIC crashdrop synthetic",
        "x86_64",
        "(none)",
    ]);
    debug_assert_eq!(uts.len(), UTSNAME_LEN);
    ov.write(layout.image_pa(layout.init_uts_ns()), &uts);
    printk::write_ring(&mut ov, layout, log)?;
    ov.write_u64(
        layout.image_pa(layout.image_va(printk::CLEAR_SEQ_OFFSET)),
        0,
    );
    Ok(ov)
}

/// The VMCOREINFO text: the fixture's 6.1 kernel's keys and offsets, this machine's addresses.
pub(super) fn vmcoreinfo(spec: &SynthSpec, layout: &Layout) -> String {
    let pgd = layout.image_va(IMAGE_PGD);
    let root_array = SYNTH_PAGE_OFFSET + RingPlace::of(layout).end();
    let mut text = format!(
        "OSRELEASE={}\nBUILD-ID={:016x}{:016x}{:08x}\nPAGESIZE=4096\nSYMBOL(init_uts_ns)={:x}\n\
         OFFSET(uts_namespace.name)=0\nSYMBOL(swapper_pg_dir)={pgd:x}\nSYMBOL(_stext)={:x}\n\
         NUMBER(VMALLOC_START)=0xffffb1c2c0000000\nSYMBOL(mem_section)={root_array:x}\n\
         LENGTH(mem_section)={MEM_SECTION_ROOTS}\nSIZE(mem_section)=16\n\
         OFFSET(mem_section.section_mem_map)=0\nNUMBER(SECTION_SIZE_BITS)={SECTION_SIZE_BITS}\n\
         NUMBER(MAX_PHYSMEM_BITS)={MAX_PHYSMEM_BITS}\nSIZE(page)={STRUCT_PAGE}\n\
         SIZE(free_area)=88\nSIZE(list_head)=16\nOFFSET(page.flags)=0\n\
         OFFSET(page._refcount)=52\nOFFSET(page.mapping)=24\nOFFSET(page.lru)=8\n\
         OFFSET(page._mapcount)=48\nOFFSET(page.private)=40\nOFFSET(page.compound_dtor)=16\n\
         OFFSET(page.compound_order)=17\nOFFSET(page.compound_head)=8\n\
         OFFSET(free_area.free_list)=0\nOFFSET(list_head.next)=0\nOFFSET(list_head.prev)=8\n\
         LENGTH(zone.free_area)=11\n",
        spec.osrelease,
        mix(spec.seed),
        mix(spec.seed ^ 1),
        mix(spec.seed ^ 2) as u32,
        layout.init_uts_ns(),
        SYNTH_STEXT,
    );
    text.push_str(&printk::vmcoreinfo(layout));
    text.push_str(&format!(
        "LENGTH(free_area.free_list)=5\nNUMBER(NR_FREE_PAGES)=0\nNUMBER(PG_lru)={}\n\
         NUMBER(PG_private)={}\nNUMBER(PG_swapcache)={}\nNUMBER(PG_swapbacked)={}\n\
         NUMBER(PG_slab)={}\nNUMBER(PG_head_mask)={}\nNUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129\n\
         NUMBER(HUGETLB_PAGE_DTOR)=2\nNUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=-257\n\
         NUMBER(phys_base)={}\nSYMBOL(init_top_pgt)={pgd:x}\nNUMBER(pgtable_l5_enabled)=0\n\
         KERNELOFFSET={:x}\nNUMBER(KERNEL_IMAGE_SIZE)=1073741824\nNUMBER(sme_mask)=0\n\
         CRASHTIME={}\n",
        super::struct_page::PG_LRU,
        super::struct_page::PG_PRIVATE,
        super::struct_page::PG_SWAPCACHE,
        super::struct_page::PG_SWAPBACKED,
        super::struct_page::PG_SLAB,
        1u64 << super::struct_page::PG_HEAD,
        layout.phys_base as i64,
        SYNTH_STEXT - super::layout::LINK_STEXT,
        spec.crash_time,
    ));
    debug_assert!(text.len() <= 4096, "VMCOREINFO is {} bytes", text.len());
    text
}
