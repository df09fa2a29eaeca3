//! An ELF vmcore (formats.md section 1) of a stored dump, laid out as `/proc/vmcore` is and read
//! by `crash` as a kdump ELF (5.2).
//!
//! Filtered-out pages are represented honestly: there is one PT_LOAD per maximal run of pfns whose
//! data the dump holds, so an excluded page (dump level) or a page that never arrived (incomplete
//! dump) lies in no segment, and `crash` reports it unreadable instead of inventing zeros (with
//! `--zero_excluded` it reads zeros, as for a kdump file). Zero pages the dump holds are real
//! zeros and are in their segments (a file output leaves them as holes).
//!
//! Program headers: the PT_NOTE first (crash requires it, 5.2), then one page of the kernel
//! image at `SYMBOL(_stext)`'s virtual address (what `/proc/vmcore`'s kernel-image segment gives
//! readers that derive `phys_base` from it, 1.7), then the RAM runs in ascending order with
//! `p_vaddr` the direct-map address (0 when the direct-map base cannot be found), `p_align = 0`.
//! More than 65534 segments use extended numbering (PN_XNUM, 1.3).
//!
//! Every offset only grows, so the output can go down a pipe. The descriptor table is read three
//! times (count the runs, write their headers, write their pages); nothing is kept per run.

use super::{source_page, ExportError, ExportReport, PositionedSink};
use crate::elf::header::{
    encode_elf_header, encode_xnum_section_header, ProgramHeader, ELF_HEADER_LEN, PHDR_LEN,
    PN_XNUM, PT_LOAD, PT_NOTE, SHDR_LEN,
};
use crate::filter::{Translator, DIRECT_MAP_FLOOR};
use crate::kdump::{is_zero_page, KdumpError, KdumpReader};
use crate::X86_64_START_KERNEL_MAP;

/// `e_flags` bit makedumpfile sets in an ELF dump that was cut short (1.3).
pub const EF_INCOMPLETE: u32 = 1;

/// Program headers buffered before a write.
const PHDR_BATCH: usize = 1024;

/// A run of consecutive pfns whose pages are in the dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    start: u64,
    pages: u64,
}

/// The runs of pages the dump holds (descriptor offset non-zero), in pfn order.
fn runs(reader: &KdumpReader) -> impl Iterator<Item = Result<Run, KdumpError>> + '_ {
    let mut pages = reader.pages();
    let mut current: Option<Run> = None;
    let mut done = false;
    std::iter::from_fn(move || loop {
        if done {
            return None;
        }
        match pages.next() {
            Some(Err(e)) => {
                done = true;
                return Some(Err(e));
            }
            Some(Ok((_, desc))) if desc.offset == 0 => {
                if let Some(run) = current.take() {
                    return Some(Ok(run));
                }
            }
            Some(Ok((pfn, _))) => match current {
                Some(ref mut run) if run.start + run.pages == pfn => run.pages += 1,
                _ => {
                    if let Some(run) = current.replace(Run {
                        start: pfn,
                        pages: 1,
                    }) {
                        return Some(Ok(run));
                    }
                }
            },
            None => {
                done = true;
                return current.take().map(Ok);
            }
        }
    })
}

/// Where the ELF file puts things.
struct ElfLayout {
    page: u64,
    phnum: u64,
    notes_offset: u64,
    data_offset: u64,
    /// The kernel-image page: (pfn, virtual address), when `_stext`'s page is in the dump.
    image: Option<(u64, u64)>,
    direct_map: Option<u64>,
}

/// Writes `reader`'s dump as an ELF vmcore to `sink` and finishes the sink.
pub fn write_elf<S: PositionedSink>(
    reader: &KdumpReader,
    mut sink: S,
) -> Result<ExportReport, ExportError> {
    let page = reader.layout().block_size;
    let mut report = ExportReport {
        incomplete: reader.is_incomplete(),
        ..ExportReport::default()
    };
    let mut run_count = 0u64;
    let mut present = 0u64;
    for run in runs(reader) {
        let run = run?;
        run_count += 1;
        present += run.pages;
    }
    report.pages_lost = reader.layout().num_dumpable - present;
    let image = kernel_image_page(reader, page);
    let phnum = 1 + u64::from(image.is_some()) + run_count;
    let phdrs_end = ELF_HEADER_LEN as u64 + phnum * PHDR_LEN as u64;
    let xnum = phnum >= u64::from(PN_XNUM);
    let shoff = xnum.then_some(phdrs_end);
    let notes_offset = phdrs_end + if xnum { SHDR_LEN as u64 } else { 0 };
    let notes = &reader.meta().notes;
    let layout = ElfLayout {
        page,
        phnum,
        notes_offset,
        data_offset: (notes_offset + notes.len() as u64).next_multiple_of(page),
        image,
        direct_map: direct_map_base(reader),
    };
    let phnum32 = u32::try_from(phnum).map_err(|_| ExportError::Layout {
        path: reader.path().to_path_buf(),
        format: "elf",
        detail: format!("{phnum} program headers do not fit the ELF header"),
    })?;
    let mut ehdr = encode_elf_header(ELF_HEADER_LEN as u64, phnum32, shoff.unwrap_or(0));
    if report.incomplete || report.pages_lost > 0 {
        ehdr[48..52].copy_from_slice(&EF_INCOMPLETE.to_le_bytes());
    }
    sink.write_at(0, &ehdr)?;
    let segments = write_program_headers(reader, &layout, notes.len() as u64, &mut sink)?;
    if let Some(shoff) = shoff {
        sink.write_at(shoff, &encode_xnum_section_header(phnum32))?;
    }
    sink.write_at(notes_offset, notes)?;
    report.segments = segments;

    let mut at = layout.data_offset;
    if let Some((pfn, _)) = image {
        let index = reader.descriptor_index(pfn);
        let desc = reader.descriptor(index)?;
        if let Some(data) = source_page(reader, pfn, index, &desc)? {
            sink.write_at(at, &data)?;
        }
        at += page;
    }
    for (index, entry) in reader.pages().enumerate() {
        let (pfn, desc) = entry?;
        if let Some(data) = source_page(reader, pfn, index as u64, &desc)? {
            report.pages_written += 1;
            if is_zero_page(&data) {
                // Left to the sink: a hole in a file, zeros down a pipe.
                report.zero_pages += 1;
            } else {
                sink.write_at(at, &data)?;
            }
            at += page;
        }
    }
    report.bytes = sink.finish(at)?;
    Ok(report)
}

/// Writes the PT_NOTE, the kernel-image PT_LOAD and one PT_LOAD per run; returns the PT_LOADs.
fn write_program_headers<S: PositionedSink>(
    reader: &KdumpReader,
    layout: &ElfLayout,
    notes_len: u64,
    sink: &mut S,
) -> Result<u64, ExportError> {
    let mut batch: Vec<u8> = Vec::with_capacity(PHDR_BATCH * PHDR_LEN);
    let mut batch_at = ELF_HEADER_LEN as u64;
    let note = ProgramHeader {
        p_type: PT_NOTE,
        p_offset: layout.notes_offset,
        p_filesz: notes_len,
        p_memsz: notes_len,
        ..ProgramHeader::default()
    };
    batch.extend_from_slice(&note.encode());
    let mut data_at = layout.data_offset;
    let mut loads = 0u64;
    let mut push = |batch: &mut Vec<u8>, vaddr: u64, pfn: u64, pages: u64, data_at: &mut u64| {
        let len = pages * layout.page;
        let load = ProgramHeader {
            p_type: PT_LOAD,
            p_flags: 7,
            p_offset: *data_at,
            p_vaddr: vaddr,
            p_paddr: pfn * layout.page,
            p_filesz: len,
            p_memsz: len,
            p_align: 0,
        };
        batch.extend_from_slice(&load.encode());
        *data_at += len;
        loads += 1;
    };
    if let Some((pfn, vaddr)) = layout.image {
        push(&mut batch, vaddr, pfn, 1, &mut data_at);
    }
    for run in runs(reader) {
        let run = run?;
        let vaddr = layout
            .direct_map
            .map_or(0, |base| base.wrapping_add(run.start * layout.page));
        push(&mut batch, vaddr, run.start, run.pages, &mut data_at);
        if batch.len() >= PHDR_BATCH * PHDR_LEN {
            sink.write_at(batch_at, &batch)?;
            batch_at += batch.len() as u64;
            batch.clear();
        }
    }
    sink.write_at(batch_at, &batch)?;
    debug_assert_eq!(loads + 1, layout.phnum);
    Ok(loads)
}

/// `_stext`'s pfn and virtual address, if VMCOREINFO names it and its page is in the dump.
fn kernel_image_page(reader: &KdumpReader, page: u64) -> Option<(u64, u64)> {
    let info = reader.vmcoreinfo()?;
    let stext = info.symbol("_stext")?;
    if stext < X86_64_START_KERNEL_MAP {
        return None;
    }
    let vaddr = stext - stext % page;
    let paddr = vaddr
        .wrapping_sub(X86_64_START_KERNEL_MAP)
        .wrapping_add(reader.meta().phys_base);
    let pfn = paddr / page;
    let present = reader.bitmap2().get(pfn)
        && reader
            .descriptor(reader.descriptor_index(pfn))
            .is_ok_and(|d| d.offset != 0);
    present.then_some((pfn, vaddr))
}

/// The direct-map base (`PAGE_OFFSET`, randomised by KASLR): `SYMBOL(mem_section)` is a
/// direct-map address on SPARSEMEM_EXTREME kernels, so its virtual minus its physical address
/// (by the page-table walk, 4.3) is the base. Accepted only if 1 GiB aligned, as the kernel
/// places it; `None` otherwise.
fn direct_map_base(reader: &KdumpReader) -> Option<u64> {
    let info = reader.vmcoreinfo()?;
    let va = info
        .symbol("mem_section")
        .filter(|&va| (DIRECT_MAP_FLOOR..X86_64_START_KERNEL_MAP).contains(&va))?;
    let mut tr = Translator::new(reader, &info, reader.meta().phys_base, None).ok()?;
    let pa = tr.walk(va).ok()?;
    let base = va.wrapping_sub(pa);
    (base >= DIRECT_MAP_FLOOR && base % (1 << 30) == 0).then_some(base)
}
