//! A synthetic ELF vmcore shaped like a real `/proc/vmcore` (1.2) of a *model kernel*, for demos,
//! tests and benchmarks on machines that have not crashed.
//!
//! File layout: ELF header at 0, program headers at 64, the note segment at 4096 (two `CORE`
//! notes and a `VMCOREINFO` note), then one memory chunk per PT_LOAD: the kernel image (which
//! physically overlaps the second RAM range, as on real machines), `0x1000..0x9fc00` (ending off
//! a page boundary), `0x100000..X`, a 16 MiB hole, and the rest of RAM.
//!
//! The kernel in it is modelled on the fixture's Debian 6.1 kernel: its VMCOREINFO has the keys
//! page filtering (section 4) and log extraction (section 6) need, with that kernel's offsets;
//! page tables map the direct map (1 GiB pages), the kernel image and vmemmap (2 MiB pages);
//! `mem_section`s point at `struct page`s whose flags say what each pfn holds ([`SynthClass`]:
//! free buddy blocks, page cache with and without private data, anonymous pages and THPs, slab,
//! reserved); and a printk ring holds a boot log ending in a panic ([`SynthMachine::kernel_log`]).
//!
//! Everything is a function of the spec, computed 4 MiB at a time: memory use does not grow with
//! `memory_bytes`, and zero pages are left as holes of a sparse file.

mod boot_log;
mod classes;
mod content;
mod kernel;
mod layout;
mod printk;
mod struct_page;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub use boot_log::SynthLogLine;
pub use classes::SynthClass;
pub use layout::{SYNTH_PAGE_OFFSET, SYNTH_STEXT, SYNTH_VMEMMAP};

use crate::elf::header::{encode_elf_header, ProgramHeader, PHDR_LEN, PT_LOAD, PT_NOTE};
use crate::filter::DumpLevel;
use crate::notes::{push_note, NT_PRSTATUS, PRSTATUS_LEN};
use classes::{ChunkCache, CHUNK};
use layout::{Layout, PAGE};

/// Bytes written per positional write at most.
const WRITE_RUN: usize = 1 << 20;

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthSpec {
    /// Bytes of RAM, at least 16 MiB (the PT_LOADs cover about this much).
    pub memory_bytes: u64,
    /// Seed of the page contents and of the page classes.
    pub seed: u64,
    /// `OSRELEASE` and `utsname.release`.
    pub osrelease: String,
    /// `CRASHTIME`.
    pub crash_time: i64,
}

/// What was generated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynthSummary {
    /// Pfns in the RAM PT_LOADs (the 1st bitmap's count).
    pub pages: u64,
    /// Of those, pages whose bytes are all zero.
    pub zero_pages: u64,
    /// Of `pages`, those wholly backed by the file: a dump at level 0 holds these. The others
    /// are RAM ranges' partial last pages (`0x9f` of `0x1000..0x9fc00`), which makedumpfile
    /// 1.7.2 leaves out (formats.md 4.7).
    pub file_backed: u64,
    /// Length of the file.
    pub file_bytes: u64,
    /// File-backed pfns per class, in [`SynthClass::ALL`] order.
    class_pages: [u64; 7],
}

impl SynthSummary {
    /// File-backed pfns of class `class`.
    pub fn pages_of(&self, class: SynthClass) -> u64 {
        self.class_pages[class.index()]
    }

    /// The pfns a dump at `level` holds (its 2nd bitmap; zero pages, found while sending, are
    /// still in it).
    pub fn dumpable_at(&self, level: DumpLevel) -> u64 {
        let excluded: u64 = SynthClass::ALL
            .iter()
            .filter(|c| c.excluded_at(level))
            .map(|&c| self.pages_of(c))
            .sum();
        self.file_backed - excluded
    }
}

/// The synthetic machine of a spec: its layout, page classes and kernel log.
pub struct SynthMachine {
    spec: SynthSpec,
    layout: Layout,
    log: Vec<SynthLogLine>,
}

impl SynthMachine {
    /// The machine `spec` describes; errs (InvalidInput) on a size out of 16 MiB..=64 TiB.
    pub fn new(spec: &SynthSpec) -> io::Result<SynthMachine> {
        let layout = Layout::new(spec.memory_bytes)?;
        let log = boot_log::boot_log(spec, &layout);
        Ok(SynthMachine {
            spec: spec.clone(),
            layout,
            log,
        })
    }

    /// The kernel log in its ring buffer, oldest record first.
    pub fn kernel_log(&self) -> &[SynthLogLine] {
        &self.log
    }

    /// One past the highest pfn (`max_mapnr`).
    pub fn end_pfn(&self) -> u64 {
        self.layout.end_pfn
    }

    /// Calls `f(first_pfn, classes)` for every 1024-pfn chunk of the machine in ascending
    /// order (the last one may be cut short at [`Self::end_pfn`]).
    pub fn for_each_chunk(&self, mut f: impl FnMut(u64, &[SynthClass])) {
        let mut classes = Vec::with_capacity(CHUNK as usize);
        for chunk in 0..self.layout.end_pfn.div_ceil(CHUNK) {
            let first = chunk * CHUNK;
            let len = CHUNK.min(self.layout.end_pfn - first) as usize;
            classes.clear();
            classes.extend(
                classes::plan_chunk(&self.layout, self.spec.seed, chunk)
                    .iter()
                    .take(len)
                    .map(|s| s.class),
            );
            f(first, &classes);
        }
    }

    /// Writes the vmcore to `path` (replacing it) and says what it holds.
    pub fn write(&self, path: &Path) -> io::Result<SynthSummary> {
        write(self, path)
    }
}

/// SplitMix64 finaliser: a well-mixed hash of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A tiny xorshift64 generator.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The note segment: two `CORE` NT_PRSTATUS notes and the VMCOREINFO note.
fn notes(spec: &SynthSpec, layout: &Layout) -> Vec<u8> {
    let mut seg = Vec::new();
    for cpu in 0..2u64 {
        let mut prstatus = [0u8; PRSTATUS_LEN];
        prstatus[32..36].copy_from_slice(&(cpu as u32 + 1).to_le_bytes()); // pr_pid
        let reg = |i: usize| 112 + 8 * i;
        prstatus[reg(16)..reg(16) + 8].copy_from_slice(&(SYNTH_STEXT + 0x1234 + cpu).to_le_bytes()); // rip
        prstatus[reg(17)..reg(17) + 8].copy_from_slice(&0x10u64.to_le_bytes()); // cs
        prstatus[reg(19)..reg(19) + 8]
            .copy_from_slice(&(0xffff_c900_0000_3f00 + (cpu << 14)).to_le_bytes()); // rsp
        push_note(&mut seg, b"CORE", NT_PRSTATUS, &prstatus);
    }
    let text = kernel::vmcoreinfo(spec, layout);
    push_note(&mut seg, b"VMCOREINFO", 0, text.as_bytes());
    seg
}

/// Writes a synthetic vmcore to `path` (replacing it) and says what it holds.
pub fn write_synthetic_vmcore(path: &Path, spec: &SynthSpec) -> io::Result<SynthSummary> {
    SynthMachine::new(spec)?.write(path)
}

fn write(machine: &SynthMachine, path: &Path) -> io::Result<SynthSummary> {
    let (spec, layout) = (&machine.spec, &machine.layout);
    let overlay = kernel::build(spec, layout, &machine.log)?;
    let notes = notes(spec, layout);
    let loads = layout.loads();
    let phnum = 1 + loads.len() as u64;
    let note_offset = (64 + PHDR_LEN as u64 * phnum).next_multiple_of(PAGE);
    let mut cursor = note_offset + (notes.len() as u64).next_multiple_of(PAGE);
    let mut phdrs = vec![ProgramHeader {
        p_type: PT_NOTE,
        p_offset: note_offset,
        p_filesz: notes.len() as u64,
        p_memsz: notes.len() as u64,
        ..ProgramHeader::default()
    }];
    let mut chunks = Vec::new(); // (file offset, first pfn, end pfn, first non-file-backed pfn)
    for &(vaddr, paddr, size) in &loads {
        let (first, end) = (paddr / PAGE, (paddr + size).div_ceil(PAGE));
        phdrs.push(ProgramHeader {
            p_type: PT_LOAD,
            p_flags: 7,
            p_offset: cursor + paddr % PAGE,
            p_vaddr: vaddr,
            p_paddr: paddr,
            p_filesz: size,
            p_memsz: size,
            p_align: 0,
        });
        chunks.push((cursor, first, end, (paddr + size) / PAGE));
        cursor += (end - first) * PAGE;
    }

    let file = File::create(path)?;
    file.set_len(cursor)?;
    file.write_all_at(&encode_elf_header(64, phnum as u32, 0), 0)?;
    let table: Vec<u8> = phdrs.iter().flat_map(|p| p.encode()).collect();
    file.write_all_at(&table, 64)?;
    file.write_all_at(&notes, note_offset)?;

    let mut summary = SynthSummary {
        pages: 0,
        zero_pages: 0,
        file_backed: 0,
        file_bytes: cursor,
        class_pages: [0; 7],
    };
    let corpus = content::corpus(spec.seed);
    let mut classes = ChunkCache::new(layout, spec.seed);
    let mut described = ChunkCache::new(layout, spec.seed);
    let mut page = [0u8; PAGE as usize];
    let mut run: Vec<u8> = Vec::with_capacity(WRITE_RUN);
    for (i, &(offset, first, end, backed_end)) in chunks.iter().enumerate() {
        let is_ram = i > 0;
        let mut run_offset = offset;
        for pfn in first..end {
            let (class, _, _) = classes.slot(pfn);
            let zero = if let Some(bytes) = overlay.page(pfn) {
                page.copy_from_slice(bytes);
                page.iter().all(|&b| b == 0)
            } else if let Some(from) = layout.described_by_vmemmap_page(pfn) {
                struct_page::vmemmap_page(layout, spec.seed, &mut described, from, &mut page);
                false
            } else {
                content::fill_page(spec.seed, &corpus, pfn, class, &mut page)
            };
            if is_ram {
                summary.pages += 1;
                summary.zero_pages += u64::from(zero);
                if pfn < backed_end {
                    summary.file_backed += 1;
                    summary.class_pages[class.index()] += 1;
                }
            }
            let page_offset = offset + (pfn - first) * PAGE;
            if zero || run.len() == WRITE_RUN {
                file.write_all_at(&run, run_offset)?;
                run.clear();
            }
            if !zero {
                if run.is_empty() {
                    run_offset = page_offset;
                }
                run.extend_from_slice(&page);
            }
        }
        file.write_all_at(&run, run_offset)?;
        run.clear();
    }
    Ok(summary)
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
