//! `SectionMap`: where each memory section's `struct page` array is (formats.md 4.4), for
//! SPARSEMEM (EXTREME or classic; VMEMMAP or not) and FLATMEM kernels.

use super::error::FilterError;
use super::memory::PhysicalMemory;
use super::translate::Translator;
use crate::vmcoreinfo::VmcoreInfo;

/// `section_mem_map` flag: the section is present.
pub const SECTION_PRESENT: u64 = 0x1;
/// The low bits of `section_mem_map` that hold flags (at most 6 in current kernels).
pub const SECTION_FLAG_MASK: u64 = 0x3f;

const PAGE_SHIFT: u64 = 12;
const NEEDED: &str = "finding struct pages (SPARSEMEM)";

/// One section (or, on FLATMEM, all of memory) that has a `struct page` array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section {
    /// Section number.
    pub nr: u64,
    /// First pfn.
    pub start_pfn: u64,
    /// End pfn (exclusive), clipped to `max_mapnr`.
    pub end_pfn: u64,
    /// The decoded `section_mem_map`: pfn `p`'s `struct page` is at `base + p * SIZE(page)`
    /// (modulo 2^64, as the kernel encodes it).
    pub base: u64,
}

/// The sections with a `struct page` array, in ascending order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionMap {
    sections: Vec<Section>,
    struct_page_size: u64,
}

/// SPARSEMEM parameters from VMCOREINFO.
struct Sparse {
    symbol: u64,
    ms_size: u64,
    map_offset: u64,
    pfn_shift: u64,
    per_root: u64,
    extreme: bool,
    num_section: u64,
}

impl SectionMap {
    /// Finds the sections of pfns `0..max_mapnr`. `kernel_floor` is the lowest kernel address
    /// (1.7's `PAGE_OFFSET`, or its constant fallback): pointers below it are not kernel pointers.
    pub fn locate<M: PhysicalMemory + ?Sized>(
        tr: &mut Translator<'_, M>,
        info: &VmcoreInfo,
        max_mapnr: u64,
        kernel_floor: u64,
        struct_page_size: u64,
    ) -> Result<SectionMap, FilterError> {
        let sparse_keys = info.size("mem_section").is_some()
            && info.offset("mem_section.section_mem_map").is_some();
        let sections = match info.symbol("mem_section") {
            Some(symbol) if sparse_keys => {
                let sparse = Sparse::from_info(info, symbol, max_mapnr)?;
                let first = sparse.attempt(tr, symbol, max_mapnr, kernel_floor, struct_page_size);
                match first {
                    Ok(sections) => sections,
                    Err(why) => {
                        // makedumpfile retries once with the pointer's value as the root array
                        // (needed only when the symbol came from a vmlinux).
                        let retry = match tr.read_u64(symbol, "the mem_section pointer") {
                            Ok(ptr) if sparse.extreme => sparse
                                .attempt(tr, ptr, max_mapnr, kernel_floor, struct_page_size)
                                .ok(),
                            _ => None,
                        };
                        retry.ok_or(FilterError::InvalidMemSection { addr: symbol, why })?
                    }
                }
            }
            _ => match info.symbol("mem_map") {
                Some(symbol) => {
                    let base = tr.read_u64(symbol, "mem_map (FLATMEM)")?;
                    if base < kernel_floor {
                        return Err(FilterError::bad(
                            "SYMBOL(mem_map)",
                            format!("{symbol:x}"),
                            "it points below the kernel's address space",
                        ));
                    }
                    vec![Section {
                        nr: 0,
                        start_pfn: 0,
                        end_pfn: max_mapnr,
                        base,
                    }]
                }
                None if info.symbol("mem_section").is_none() => {
                    return Err(FilterError::missing("SYMBOL(mem_section)", NEEDED))
                }
                None if info.size("mem_section").is_none() => {
                    return Err(FilterError::missing("SIZE(mem_section)", NEEDED))
                }
                None => {
                    return Err(FilterError::missing(
                        "OFFSET(mem_section.section_mem_map)",
                        NEEDED,
                    ))
                }
            },
        };
        Ok(SectionMap {
            sections,
            struct_page_size,
        })
    }

    /// The sections, ascending.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// Virtual address of pfn `pfn`'s `struct page` in `section`.
    pub fn struct_page(&self, section: &Section, pfn: u64) -> u64 {
        section
            .base
            .wrapping_add(pfn.wrapping_mul(self.struct_page_size))
    }

    /// The pfn whose `struct page` is at `addr`, if it lies in some section's array.
    /// `hint` is the index of the section the previous lookup found, and is updated.
    pub fn pfn_of(&self, addr: u64, hint: &mut usize) -> Option<u64> {
        let size = self.struct_page_size;
        let lookup = |base: u64| -> Option<(usize, u64)> {
            let off = addr.wrapping_sub(base);
            if !off.is_multiple_of(size) {
                return None;
            }
            let pfn = off / size;
            let i = self.sections.partition_point(|s| s.end_pfn <= pfn);
            let s = self.sections.get(i)?;
            (s.start_pfn <= pfn && s.base == base).then_some((i, pfn))
        };
        // VMEMMAP kernels share one base: try the last section's first, then every other.
        let last = self.sections.get(*hint).map(|s| s.base);
        let found = last.and_then(lookup).or_else(|| {
            self.sections
                .iter()
                .map(|s| s.base)
                .filter(|&b| Some(b) != last)
                .find_map(lookup)
        });
        let (i, pfn) = found?;
        *hint = i;
        Some(pfn)
    }
}

impl Sparse {
    fn from_info(info: &VmcoreInfo, symbol: u64, max_mapnr: u64) -> Result<Sparse, FilterError> {
        let ssb = info
            .number("SECTION_SIZE_BITS")
            .ok_or(FilterError::missing("NUMBER(SECTION_SIZE_BITS)", NEEDED))?;
        let mpb = info
            .number("MAX_PHYSMEM_BITS")
            .ok_or(FilterError::missing("NUMBER(MAX_PHYSMEM_BITS)", NEEDED))?;
        if !(PAGE_SHIFT as i64..=40).contains(&ssb) {
            return Err(FilterError::bad(
                "NUMBER(SECTION_SIZE_BITS)",
                ssb,
                "not in 12..=40",
            ));
        }
        if !(ssb..=ssb + 32).contains(&mpb) || mpb > 64 {
            return Err(FilterError::bad(
                "NUMBER(MAX_PHYSMEM_BITS)",
                mpb,
                "not in SECTION_SIZE_BITS..=min(64, SECTION_SIZE_BITS + 32)",
            ));
        }
        let ms_size = info.size("mem_section").unwrap_or(0);
        if !(8..=4096).contains(&ms_size) {
            return Err(FilterError::bad(
                "SIZE(mem_section)",
                ms_size,
                "not in 8..=4096",
            ));
        }
        let map_offset = info.offset("mem_section.section_mem_map").unwrap_or(0);
        if map_offset + 8 > ms_size {
            return Err(FilterError::bad(
                "OFFSET(mem_section.section_mem_map)",
                map_offset,
                "field lies outside SIZE(mem_section)",
            ));
        }
        let pfn_shift = ssb as u64 - PAGE_SHIFT;
        let nr_mem_sections = 1u64 << (mpb - ssb);
        let per_root = 4096 / ms_size;
        let extreme = info
            .length("mem_section")
            .is_none_or(|len| len == nr_mem_sections.div_ceil(per_root));
        let num_section = max_mapnr.div_ceil(1 << pfn_shift).min(nr_mem_sections);
        Ok(Sparse {
            symbol,
            ms_size,
            map_offset,
            pfn_shift,
            per_root: if extreme { per_root } else { 1 },
            extreme,
            num_section,
        })
    }

    /// One validation attempt with `array` as the root array (EXTREME) or the section array.
    fn attempt<M: PhysicalMemory + ?Sized>(
        &self,
        tr: &mut Translator<'_, M>,
        array: u64,
        max_mapnr: u64,
        floor: u64,
        struct_page_size: u64,
    ) -> Result<Vec<Section>, String> {
        let mut sections = Vec::new();
        let mut root = (u64::MAX, 0u64); // (root index, root pointer)
        for nr in 0..self.num_section {
            let ms = if self.extreme {
                let index = nr / self.per_root;
                if root.0 != index {
                    let at = array.wrapping_add(index * 8);
                    let ptr = tr
                        .read_u64(at, "the mem_section root array")
                        .map_err(|e| format!("root {index}: {e}"))?;
                    root = (index, ptr);
                }
                if root.1 == 0 {
                    continue;
                }
                root.1.wrapping_add((nr % self.per_root) * self.ms_size)
            } else {
                array.wrapping_add(nr.wrapping_mul(self.ms_size))
            };
            if ms < floor {
                continue; // not a kernel address: no memmap
            }
            let Ok(value) = tr.read_u64(ms.wrapping_add(self.map_offset), "a mem_section") else {
                continue;
            };
            if value & SECTION_PRESENT == 0 {
                continue;
            }
            let base = value & !SECTION_FLAG_MASK;
            let start_pfn = nr << self.pfn_shift;
            let mem_map = base.wrapping_add(start_pfn.wrapping_mul(struct_page_size));
            if mem_map < floor {
                return Err(format!(
                    "section {nr}: mem_map {mem_map:#x} is not a kernel address"
                ));
            }
            sections.push(Section {
                nr,
                start_pfn,
                end_pfn: (start_pfn + (1 << self.pfn_shift)).min(max_mapnr),
                base,
            });
        }
        if sections.is_empty() {
            return Err(format!(
                "no present section among the first {} (array at {:#x}, symbol {:#x})",
                self.num_section, array, self.symbol
            ));
        }
        Ok(sections)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{FakeMachine, FakeMemory, PAGE_OFFSET, PHYS_BASE, VMEMMAP};
    use super::*;

    fn locate(m: &FakeMachine) -> Result<SectionMap, FilterError> {
        let info = m.info();
        let mut tr = Translator::new(&m.memory, &info, PHYS_BASE, Some(PAGE_OFFSET))?;
        SectionMap::locate(&mut tr, &info, m.max_mapnr, PAGE_OFFSET, 64)
    }

    fn section(nr: u64, base: u64, max_mapnr: u64) -> Section {
        let start_pfn = nr << 15;
        Section {
            nr,
            start_pfn,
            end_pfn: (start_pfn + (1 << 15)).min(max_mapnr),
            base,
        }
    }

    #[test]
    fn extreme_sections_with_an_absent_one() {
        let mut m = FakeMachine::new(3 << 15, false);
        m.set_section(1, Some(VMEMMAP | 0x6)); // not PRESENT
        let map = locate(&m).expect("sections");
        let want = [section(0, VMEMMAP, 3 << 15), section(2, VMEMMAP, 3 << 15)];
        assert_eq!(map.sections(), &want[..]);
        let mut hint = 0;
        assert_eq!(
            map.pfn_of(VMEMMAP + (2 << 15) * 64 + 64, &mut hint),
            Some((2 << 15) + 1)
        );
        assert_eq!(hint, 1);
        assert_eq!(
            map.pfn_of(VMEMMAP + 64 * 5 + 8, &mut hint),
            None,
            "not a struct page"
        );
        assert_eq!(
            map.pfn_of(VMEMMAP + (1 << 15) * 64, &mut hint),
            None,
            "absent section"
        );
    }

    #[test]
    fn classic_sparsemem_is_a_flat_array() {
        // LENGTH(mem_section) is not ceil(NR_MEM_SECTIONS / 256): classic SPARSEMEM, where
        // SYMBOL(mem_section) is an array of struct mem_section, without VMEMMAP (per-section
        // arrays, encoded as "mem_map minus the section's first pfn").
        let mut m = FakeMachine::new(2 << 15, false);
        m.extra.push_str("LENGTH(mem_section)=524288\n");
        let array = 0x60_0000u64;
        let own = |nr: u64| 0xffff_8aa9_9000_0000 + nr * (2 << 20);
        for nr in 0..2u64 {
            let encoded = own(nr).wrapping_sub((nr << 15) * 64);
            m.memory.write_u64(array + nr * 16, encoded | 0x3);
        }
        let info_text = m.info_text().replace(
            &format!(
                "SYMBOL(mem_section)={:x}",
                super::super::testing::MEM_SECTION_VA
            ),
            &format!("SYMBOL(mem_section)={:x}", PAGE_OFFSET + array),
        );
        let info = VmcoreInfo::parse(info_text.as_bytes());
        let memory: &FakeMemory = &m.memory;
        let mut tr = Translator::new(memory, &info, PHYS_BASE, Some(PAGE_OFFSET)).expect("tr");
        let map = SectionMap::locate(&mut tr, &info, m.max_mapnr, PAGE_OFFSET, 64).expect("map");
        assert_eq!(map.sections().len(), 2);
        let s1 = map.sections()[1];
        assert_eq!(
            map.struct_page(&s1, 1 << 15),
            own(1),
            "first struct page of section 1"
        );
    }

    #[test]
    fn no_present_section_is_invalid() {
        let mut m = FakeMachine::new(2 << 15, false);
        m.set_section(0, Some(0));
        m.set_section(1, None);
        let err = locate(&m).expect_err("nothing present");
        assert!(
            matches!(err, FilterError::InvalidMemSection { .. }),
            "{err}"
        );
    }

    #[test]
    fn missing_sparsemem_keys_are_named() {
        let mut m = FakeMachine::new(2 << 15, false);
        m.drop = vec!["NUMBER(SECTION_SIZE_BITS)"];
        let err = locate(&m).expect_err("no SECTION_SIZE_BITS");
        assert!(
            err.to_string().contains("NUMBER(SECTION_SIZE_BITS)"),
            "{err}"
        );
        m.drop = vec!["SIZE(mem_section)"];
        let err = locate(&m).expect_err("no SIZE(mem_section)");
        assert!(err.to_string().contains("SIZE(mem_section)"), "{err}");
    }
}
