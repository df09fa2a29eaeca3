//! The ELF `/proc/vmcore` (section 1): headers, notes, VMCOREINFO, and reads of physical memory.

mod error;
pub mod header;
mod kernel;
pub mod pfns;
mod physmem;

use std::fs::File;
use std::path::{Path, PathBuf};

pub use error::ElfError;
pub use kernel::{encode_utsname, kernel_image_to_physical, DEFAULT_KERNEL_IMAGE_SIZE};

use crate::notes::{parse_notes, NoteSummary};
use crate::vmcoreinfo::VmcoreInfo;
use crate::X86_64_START_KERNEL_MAP;
use header::{ElfHeader, ProgramHeader, ELF_HEADER_LEN, ELF_MAGIC, EM_X86_64, ET_CORE, PHDR_LEN};
use header::{PN_XNUM, PT_LOAD, PT_NOTE, SHDR_LEN};
use physmem::{read_at, PieceMap};

/// Cap on the program header table and on the note segments together, checked before allocating.
pub const MAX_HEADER_BYTES: u64 = 64 << 20;
/// Cap on `max_mapnr` (the protocol's `MAX_MAPNR`: 4 PiB of 4 KiB pages).
pub const MAX_MAPNR: u64 = 1 << 40;
/// Page size assumed when VMCOREINFO has no `PAGESIZE`.
pub const DEFAULT_PAGE_SIZE: u64 = 4096;

/// One PT_LOAD program header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadSegment {
    /// `p_offset`: file offset of the segment's first byte.
    pub offset: u64,
    /// `p_vaddr`.
    pub vaddr: u64,
    /// `p_paddr`: first physical byte.
    pub paddr: u64,
    /// `p_filesz`: bytes stored in the file.
    pub filesz: u64,
    /// `p_memsz`: bytes of memory described (the tail past `filesz` reads as zero).
    pub memsz: u64,
}

/// An opened ELF vmcore. Reads use positional I/O, so `&self` methods may run concurrently.
pub struct ElfVmcore {
    path: PathBuf,
    file: File,
    file_len: u64,
    elf_header: [u8; ELF_HEADER_LEN],
    program_headers: Vec<u8>,
    notes: Vec<u8>,
    note_summary: NoteSummary,
    vmcoreinfo: VmcoreInfo,
    loads: Vec<LoadSegment>,
    pieces: PieceMap,
    page_size: u64,
    max_mapnr: u64,
    phys_base: u64,
}

impl std::fmt::Debug for ElfVmcore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElfVmcore")
            .field("path", &self.path)
            .field("file_len", &self.file_len)
            .field("loads", &self.loads)
            .field("page_size", &self.page_size)
            .field("max_mapnr", &self.max_mapnr)
            .field("phys_base", &format_args!("{:#x}", self.phys_base))
            .field("nr_cpus", &self.note_summary.nr_cpus)
            .finish_non_exhaustive()
    }
}

impl ElfVmcore {
    /// Opens and validates an ELF vmcore: 64-bit little-endian x86_64 ET_CORE, program headers
    /// from `e_phoff` (PN_XNUM honoured), at least one PT_NOTE (several are concatenated) holding
    /// a VMCOREINFO note, at least one PT_LOAD, every segment inside the file.
    pub fn open(path: &Path) -> Result<ElfVmcore, ElfError> {
        let p = || path.to_path_buf();
        let file = File::open(path).map_err(|source| ElfError::Open { path: p(), source })?;
        let file_len = file
            .metadata()
            .map_err(|source| ElfError::Open { path: p(), source })?
            .len();
        if file_len < ELF_HEADER_LEN as u64 {
            return Err(ElfError::TooShort {
                path: p(),
                len: file_len,
            });
        }
        let mut elf_header = [0u8; ELF_HEADER_LEN];
        read_at(&file, path, 0, &mut elf_header)?;
        let eh = ElfHeader::decode(&elf_header);
        check_ident(path, &eh)?;

        let phnum = program_header_count(&file, path, file_len, &eh)?;
        let table_len = phnum
            .checked_mul(PHDR_LEN as u64)
            .filter(|&len| len <= MAX_HEADER_BYTES)
            .ok_or(ElfError::TooManyPhdrs {
                path: p(),
                phnum,
                max: MAX_HEADER_BYTES / PHDR_LEN as u64,
            })?;
        if eh
            .e_phoff
            .checked_add(table_len)
            .is_none_or(|end| end > file_len)
        {
            return Err(ElfError::PhdrsPastEnd {
                path: p(),
                phoff: eh.e_phoff,
                phnum,
                file_len,
            });
        }
        let mut program_headers = vec![0u8; table_len as usize];
        read_at(&file, path, eh.e_phoff, &mut program_headers)?;

        let mut note_segments = Vec::new();
        let mut notes_len = 0u64;
        let mut loads = Vec::new();
        for (index, raw) in program_headers.chunks_exact(PHDR_LEN).enumerate() {
            let ph = ProgramHeader::decode(raw);
            let index = index as u64;
            if ph.p_type != PT_NOTE && ph.p_type != PT_LOAD {
                continue;
            }
            if ph
                .p_offset
                .checked_add(ph.p_filesz)
                .is_none_or(|end| end > file_len)
            {
                return Err(ElfError::SegmentPastEnd {
                    path: p(),
                    index,
                    offset: ph.p_offset,
                    filesz: ph.p_filesz,
                    file_len,
                });
            }
            if ph.p_type == PT_NOTE {
                notes_len = notes_len.saturating_add(ph.p_filesz);
                note_segments.push(ph);
                continue;
            }
            if ph.p_filesz > ph.p_memsz || ph.p_paddr.checked_add(ph.p_memsz).is_none() {
                return Err(ElfError::BadLoad {
                    path: p(),
                    index,
                    paddr: ph.p_paddr,
                    filesz: ph.p_filesz,
                    memsz: ph.p_memsz,
                });
            }
            loads.push(LoadSegment {
                offset: ph.p_offset,
                vaddr: ph.p_vaddr,
                paddr: ph.p_paddr,
                filesz: ph.p_filesz,
                memsz: ph.p_memsz,
            });
        }
        if note_segments.is_empty() {
            return Err(ElfError::NoNote { path: p() });
        }
        if loads.is_empty() {
            return Err(ElfError::NoLoad { path: p() });
        }
        if notes_len > MAX_HEADER_BYTES {
            return Err(ElfError::NotesTooLarge {
                path: p(),
                len: notes_len,
                max: MAX_HEADER_BYTES,
            });
        }
        let mut notes = vec![0u8; notes_len as usize];
        let mut at = 0usize;
        for ph in &note_segments {
            let len = ph.p_filesz as usize;
            read_at(&file, path, ph.p_offset, &mut notes[at..at + len])?;
            at += len;
        }
        let note_summary =
            parse_notes(&notes).map_err(|source| ElfError::Notes { path: p(), source })?;
        let text = note_summary
            .vmcoreinfo
            .clone()
            .and_then(|r| notes.get(r))
            .ok_or(ElfError::NoVmcoreinfo { path: p() })?;
        let vmcoreinfo = VmcoreInfo::parse(text);

        let page_size = page_size_of(path, &vmcoreinfo)?;
        let end = loads.iter().map(|l| l.paddr + l.memsz).max().unwrap_or(0);
        let max_mapnr = end.div_ceil(page_size);
        if max_mapnr > MAX_MAPNR {
            return Err(ElfError::TooManyPfns {
                path: p(),
                max_mapnr,
                max: MAX_MAPNR,
            });
        }
        let phys_base = vmcoreinfo.phys_base().unwrap_or_else(|| {
            loads
                .iter()
                .find(|l| l.vaddr >= X86_64_START_KERNEL_MAP)
                .map_or(0, |l| {
                    l.paddr.wrapping_sub(l.vaddr - X86_64_START_KERNEL_MAP)
                })
        });
        let pieces = PieceMap::new(&loads);
        Ok(ElfVmcore {
            path: p(),
            file,
            file_len,
            elf_header,
            program_headers,
            notes,
            note_summary,
            vmcoreinfo,
            loads,
            pieces,
            page_size,
            max_mapnr,
            phys_base,
        })
    }

    /// The path the vmcore was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Length of the file in bytes.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The 64-byte ELF header as stored.
    pub fn elf_header_bytes(&self) -> &[u8] {
        &self.elf_header
    }

    /// The program header table as stored: `e_phnum * 56` bytes from `e_phoff`.
    pub fn program_header_bytes(&self) -> &[u8] {
        &self.program_headers
    }

    /// The note segment (all PT_NOTE segments concatenated, `p_filesz` bytes each).
    pub fn notes(&self) -> &[u8] {
        &self.notes
    }

    /// CPU count and VMCOREINFO location in [`Self::notes`].
    pub fn note_summary(&self) -> &NoteSummary {
        &self.note_summary
    }

    /// The parsed VMCOREINFO.
    pub fn vmcoreinfo(&self) -> &VmcoreInfo {
        &self.vmcoreinfo
    }

    /// The PT_LOADs in program header order.
    pub fn loads(&self) -> &[LoadSegment] {
        &self.loads
    }

    /// `PAGESIZE` from VMCOREINFO, else 4096.
    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// Number of pfns: `roundup(max(p_paddr + p_memsz), page_size) / page_size` (1.7).
    pub fn max_mapnr(&self) -> u64 {
        self.max_mapnr
    }

    /// `NUMBER(phys_base)`, else derived from the kernel-image PT_LOAD, else 0 (1.7); 64-bit
    /// two's complement.
    pub fn phys_base(&self) -> u64 {
        self.phys_base
    }

    /// `CRASHTIME`, absent from dumps not taken through the kernel's crash path.
    pub fn crash_time(&self) -> Option<i64> {
        self.vmcoreinfo.crash_time()
    }

    /// Number of `CORE`/NT_PRSTATUS notes.
    pub fn nr_cpus(&self) -> u32 {
        self.note_summary.nr_cpus
    }

    /// `OSRELEASE`, if present.
    pub fn osrelease(&self) -> Option<&str> {
        self.vmcoreinfo.osrelease()
    }

    /// The protocol's `DumpId` of this vmcore sent at `dump_level` ([`crate::dump_id`]).
    pub fn dump_id(&self, dump_level: u8) -> [u8; 32] {
        crate::digest::dump_id(
            &self.elf_header,
            &self.program_headers,
            &self.notes,
            dump_level,
        )
    }
}

/// Checks `e_ident`, `e_type` and `e_machine`.
fn check_ident(path: &Path, eh: &ElfHeader) -> Result<(), ElfError> {
    let p = || path.to_path_buf();
    if eh.magic != ELF_MAGIC {
        return Err(ElfError::NotElf {
            path: p(),
            magic: eh.magic,
        });
    }
    if eh.class != 2 || eh.data != 1 {
        return Err(ElfError::NotElf64Le {
            path: p(),
            class: eh.class,
            data: eh.data,
        });
    }
    if eh.e_type != ET_CORE {
        return Err(ElfError::NotCore {
            path: p(),
            e_type: eh.e_type,
        });
    }
    if eh.e_machine != EM_X86_64 {
        return Err(ElfError::NotX86_64 {
            path: p(),
            machine: eh.e_machine,
        });
    }
    if eh.e_phnum != 0 && usize::from(eh.e_phentsize) != PHDR_LEN {
        return Err(ElfError::BadPhentsize {
            path: p(),
            phentsize: eh.e_phentsize,
        });
    }
    Ok(())
}

/// `e_phnum`, or with PN_XNUM the `sh_info` of section header 0.
fn program_header_count(
    file: &File,
    path: &Path,
    file_len: u64,
    eh: &ElfHeader,
) -> Result<u64, ElfError> {
    if eh.e_phnum != PN_XNUM {
        return Ok(u64::from(eh.e_phnum));
    }
    if eh
        .e_shoff
        .checked_add(SHDR_LEN as u64)
        .is_none_or(|end| end > file_len)
    {
        return Err(ElfError::NoSectionHeader {
            path: path.to_path_buf(),
            shoff: eh.e_shoff,
        });
    }
    let mut sh = [0u8; SHDR_LEN];
    read_at(file, path, eh.e_shoff, &mut sh)?;
    Ok(u64::from(header::section_header_info(&sh)))
}

/// `PAGESIZE`, defaulting to 4096; a power of two in 512..=65536.
fn page_size_of(path: &Path, info: &VmcoreInfo) -> Result<u64, ElfError> {
    let Some(text) = info.get("PAGESIZE") else {
        return Ok(DEFAULT_PAGE_SIZE);
    };
    match info.page_size() {
        Some(ps) if ps.is_power_of_two() && (512..=65536).contains(&ps) => Ok(ps),
        _ => Err(ElfError::BadPageSize {
            path: path.to_path_buf(),
            value: text.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests;
