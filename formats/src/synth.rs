//! A synthetic ELF vmcore shaped like a real `/proc/vmcore` (1.2), for demos and tests on
//! machines that have not crashed.
//!
//! Layout: ELF header at 0, program headers at 64, the note segment at 4096 (two `CORE` notes and
//! a `VMCOREINFO` note), then one memory chunk per PT_LOAD: the kernel image (which physically
//! overlaps the second RAM range, as on real machines), `0x1000..0x9fc00` (ending off a page
//! boundary), `0x100000..X`, a 16 MiB hole, and the rest of RAM. Page contents are a function of
//! (seed, pfn) only, so the two copies of the kernel image agree. Zero pages are left as holes of
//! a sparse file, and memory use does not grow with `memory_bytes`.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::elf::encode_utsname;
use crate::elf::header::{encode_elf_header, ProgramHeader, PHDR_LEN, PT_LOAD, PT_NOTE};
use crate::notes::{push_note, NT_PRSTATUS, PRSTATUS_LEN};
use crate::{UTSNAME_LEN, X86_64_START_KERNEL_MAP};

const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;
/// Run-time address of `_stext` (a KASLR-shifted kernel-image address).
pub const SYNTH_STEXT: u64 = 0xffff_ffff_a800_0000;
/// Link-time address of `_stext` without KASLR.
const LINK_STEXT: u64 = 0xffff_ffff_8100_0000;
/// Offset of `init_uts_ns` inside its page.
const UTS_PAGE_OFFSET: u64 = 0xb60;
/// Bytes written per positional write at most.
const WRITE_RUN: usize = 1 << 20;

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthSpec {
    /// Bytes of RAM, at least 16 MiB (the PT_LOADs cover about this much).
    pub memory_bytes: u64,
    /// Seed of the page contents.
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
    /// Length of the file.
    pub file_bytes: u64,
}

/// The physical layout derived from a spec.
struct Plan {
    /// `(vaddr, paddr, size)` of the kernel image, then the RAM ranges.
    loads: Vec<(u64, u64, u64)>,
    phys_base: u64,
    init_uts_ns: u64,
    uts_paddr: u64,
}

fn plan(spec: &SynthSpec) -> io::Result<Plan> {
    if !(16 * MIB..=1 << 46).contains(&spec.memory_bytes) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "synthetic vmcore: memory_bytes {} is not in 16 MiB..=64 TiB",
                spec.memory_bytes
            ),
        ));
    }
    let rest = spec.memory_bytes - MIB;
    let low = (rest / 4 * 3) / MIB * MIB; // 0x100000 .. 0x100000 + low
    let high = (rest - low) / PAGE * PAGE;
    let high_start = MIB + low + 16 * MIB;
    let image = (low / 2 / MIB * MIB).min(32 * MIB);
    let text = (MIB + (low - image) / 2).min(0x8a0_0000) / (2 * MIB) * (2 * MIB);
    let text = text.max(2 * MIB);
    let phys_base = text.wrapping_sub(SYNTH_STEXT - X86_64_START_KERNEL_MAP);
    let init_uts_ns = SYNTH_STEXT + image / 2 / PAGE * PAGE + UTS_PAGE_OFFSET;
    let uts_paddr = (init_uts_ns - X86_64_START_KERNEL_MAP).wrapping_add(phys_base);
    let direct = 0xffff_8880_0000_0000u64;
    Ok(Plan {
        loads: vec![
            (SYNTH_STEXT, text, image),
            (direct + 0x1000, 0x1000, 0x9_ec00),
            (direct + MIB, MIB, low),
            (direct + high_start, high_start, high),
        ],
        phys_base,
        init_uts_ns,
        uts_paddr,
    })
}

/// The note segment: two `CORE` NT_PRSTATUS notes and the VMCOREINFO note.
fn notes(spec: &SynthSpec, plan: &Plan) -> Vec<u8> {
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
    let text = format!(
        "OSRELEASE={}\nBUILD-ID={:016x}{:016x}{:08x}\nPAGESIZE=4096\nSYMBOL(init_uts_ns)={:x}\n\
         OFFSET(uts_namespace.name)=0\nSYMBOL(_stext)={:x}\nNUMBER(phys_base)={}\n\
         KERNELOFFSET={:x}\nNUMBER(KERNEL_IMAGE_SIZE)=1073741824\nCRASHTIME={}\n",
        spec.osrelease,
        mix(spec.seed),
        mix(spec.seed ^ 1),
        mix(spec.seed ^ 2) as u32,
        plan.init_uts_ns,
        SYNTH_STEXT,
        plan.phys_base as i64,
        SYNTH_STEXT - LINK_STEXT,
        spec.crash_time,
    );
    push_note(&mut seg, b"VMCOREINFO", 0, text.as_bytes());
    seg
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

const WORDS: &[&[u8]] = &[
    b"kernel",
    b"page",
    b"struct",
    b"mutex",
    b"irq",
    b"sched",
    b"task",
    b"memory",
    b"0x0000",
    b"ffff888",
    b"return",
    b"static",
    b"int",
    b"void",
    b"NULL",
    b"list_head",
    b"spin_lock",
    b"error",
    b"debug",
    b"the",
    b"of",
    b"to",
    b"a",
    b"in",
    b"and",
    b"device",
    b"driver",
];

/// Bytes of text from which text-like pages are cut.
const CORPUS_LEN: usize = 64 << 10;

/// Pseudo-source text, deterministic from the seed (built once per file).
fn corpus(seed: u64) -> Vec<u8> {
    let mut rng = XorShift(mix(seed) | 1);
    let mut text = Vec::with_capacity(CORPUS_LEN + 16);
    while text.len() < CORPUS_LEN {
        let r = rng.next();
        text.extend_from_slice(WORDS[(r % WORDS.len() as u64) as usize]);
        text.push(if r & 0x700 == 0 { b'\n' } else { b' ' });
    }
    text.truncate(CORPUS_LEN);
    text
}

/// Fills `page` with the contents of `pfn`: about 45% zero, 35% text-like, 20% random.
/// Returns true if the page is all zero.
fn fill_page(seed: u64, corpus: &[u8], pfn: u64, page: &mut [u8; PAGE as usize]) -> bool {
    let h = mix(seed ^ mix(pfn));
    let mut rng = XorShift(h | 1);
    match h % 100 {
        0..45 => {
            page.fill(0);
            true
        }
        45..80 => {
            // A slice of the corpus, stamped with the pfn so no two pages are identical.
            let start = (rng.next() % (CORPUS_LEN - page.len()) as u64) as usize;
            if let Some(src) = corpus.get(start..start + page.len()) {
                page.copy_from_slice(src);
            }
            let stamp = format!("pfn={pfn:x};");
            let n = stamp.len().min(page.len());
            page[..n].copy_from_slice(&stamp.as_bytes()[..n]);
            false
        }
        _ => {
            for chunk in page.chunks_exact_mut(8) {
                chunk.copy_from_slice(&rng.next().to_le_bytes());
            }
            false
        }
    }
}

/// Writes a synthetic vmcore to `path` (replacing it) and says what it holds.
pub fn write_synthetic_vmcore(path: &Path, spec: &SynthSpec) -> io::Result<SynthSummary> {
    let plan = plan(spec)?;
    let notes = notes(spec, &plan);
    let phnum = 1 + plan.loads.len() as u64;
    let note_offset = (64 + PHDR_LEN as u64 * phnum).next_multiple_of(PAGE);
    let mut cursor = note_offset + (notes.len() as u64).next_multiple_of(PAGE);
    let mut phdrs = vec![ProgramHeader {
        p_type: PT_NOTE,
        p_offset: note_offset,
        p_filesz: notes.len() as u64,
        p_memsz: notes.len() as u64,
        ..ProgramHeader::default()
    }];
    let mut chunks = Vec::new(); // (file offset, first pfn, end pfn)
    for &(vaddr, paddr, size) in &plan.loads {
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
        chunks.push((cursor, first, end));
        cursor += (end - first) * PAGE;
    }

    let file = File::create(path)?;
    file.set_len(cursor)?;
    file.write_all_at(&encode_elf_header(64, phnum as u32, 0), 0)?;
    let table: Vec<u8> = phdrs.iter().flat_map(|p| p.encode()).collect();
    file.write_all_at(&table, 64)?;
    file.write_all_at(&notes, note_offset)?;

    let uts = encode_utsname([
        "Linux",
        "synthetic",
        &spec.osrelease,
        "#1 SMP PREEMPT_DYNAMIC crashdrop synthetic",
        "x86_64",
        "(none)",
    ]);
    let uts_pfn = plan.uts_paddr / PAGE;
    let uts_at = (plan.uts_paddr % PAGE) as usize;
    let mut summary = SynthSummary {
        pages: 0,
        zero_pages: 0,
        file_bytes: cursor,
    };
    let corpus = corpus(spec.seed);
    let mut page = [0u8; PAGE as usize];
    let mut run: Vec<u8> = Vec::with_capacity(WRITE_RUN);
    for (i, &(offset, first, end)) in chunks.iter().enumerate() {
        let is_ram = i > 0;
        let mut run_offset = offset;
        for pfn in first..end {
            let mut zero = fill_page(spec.seed, &corpus, pfn, &mut page);
            if pfn == uts_pfn {
                page[uts_at..uts_at + UTSNAME_LEN].copy_from_slice(&uts);
                zero = false;
            }
            if is_ram {
                summary.pages += 1;
                summary.zero_pages += u64::from(zero);
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
mod tests;
