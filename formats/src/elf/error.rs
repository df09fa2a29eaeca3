//! Errors of opening and reading an ELF vmcore; every variant names the file.

use std::path::PathBuf;

use crate::notes::NoteError;

/// A defect in an ELF vmcore, or a failure to read it.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// Opening the file or reading its metadata failed.
    #[error("{path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A positional read failed (including the file being shorter than its headers say).
    #[error("{path}: reading {len} bytes at file offset {offset:#x}: {source}")]
    Read {
        path: PathBuf,
        offset: u64,
        len: u64,
        source: std::io::Error,
    },
    /// The file cannot hold a 64-byte ELF header.
    #[error("{path}: not an ELF file: only {len} bytes long")]
    TooShort { path: PathBuf, len: u64 },
    /// The first four bytes are not `\x7fELF`.
    #[error("{path}: not an ELF file: bad magic {magic:02x?}")]
    NotElf { path: PathBuf, magic: [u8; 4] },
    /// `e_ident[EI_CLASS]`/`e_ident[EI_DATA]` are not 64-bit little-endian.
    #[error("{path}: not a 64-bit little-endian ELF file (EI_CLASS {class}, EI_DATA {data})")]
    NotElf64Le { path: PathBuf, class: u8, data: u8 },
    /// `e_type` is not ET_CORE.
    #[error("{path}: not a core dump: e_type is {e_type}, expected 4 (ET_CORE)")]
    NotCore { path: PathBuf, e_type: u16 },
    /// `e_machine` is not EM_X86_64.
    #[error("{path}: not an x86_64 dump: e_machine is {machine}, expected 62 (EM_X86_64)")]
    NotX86_64 { path: PathBuf, machine: u16 },
    /// `e_phentsize` is not 56.
    #[error("{path}: e_phentsize is {phentsize}, expected 56")]
    BadPhentsize { path: PathBuf, phentsize: u16 },
    /// Too many program headers to read.
    #[error("{path}: {phnum} program headers exceed the limit of {max}")]
    TooManyPhdrs { path: PathBuf, phnum: u64, max: u64 },
    /// The program header table runs past the end of the file.
    #[error("{path}: program headers ({phnum} at e_phoff {phoff:#x}) run past the end of the file ({file_len} bytes)")]
    PhdrsPastEnd {
        path: PathBuf,
        phoff: u64,
        phnum: u64,
        file_len: u64,
    },
    /// PN_XNUM is used but section header 0 is not in the file.
    #[error(
        "{path}: e_phnum is PN_XNUM but section header 0 (e_shoff {shoff:#x}) is not in the file"
    )]
    NoSectionHeader { path: PathBuf, shoff: u64 },
    /// There is no PT_NOTE program header.
    #[error("{path}: no PT_NOTE program header")]
    NoNote { path: PathBuf },
    /// There is no PT_LOAD program header.
    #[error("{path}: no PT_LOAD program header")]
    NoLoad { path: PathBuf },
    /// A segment's file part runs past the end of the file.
    #[error("{path}: program header {index}: segment (p_offset {offset:#x}, p_filesz {filesz:#x}) runs past the end of the file ({file_len} bytes)")]
    SegmentPastEnd {
        path: PathBuf,
        index: u64,
        offset: u64,
        filesz: u64,
        file_len: u64,
    },
    /// A PT_LOAD has `p_filesz > p_memsz`, or its physical range wraps past 2^64.
    #[error("{path}: program header {index}: bad PT_LOAD (p_paddr {paddr:#x}, p_filesz {filesz:#x}, p_memsz {memsz:#x})")]
    BadLoad {
        path: PathBuf,
        index: u64,
        paddr: u64,
        filesz: u64,
        memsz: u64,
    },
    /// The PT_LOADs describe more pfns than crashdrop handles.
    #[error("{path}: PT_LOADs reach pfn {max_mapnr:#x}, beyond the limit of {max:#x}")]
    TooManyPfns {
        path: PathBuf,
        max_mapnr: u64,
        max: u64,
    },
    /// The note segments together are too large.
    #[error("{path}: PT_NOTE segments total {len} bytes, beyond the limit of {max}")]
    NotesTooLarge { path: PathBuf, len: u64, max: u64 },
    /// The note segment is malformed.
    #[error("{path}: {source}")]
    Notes { path: PathBuf, source: NoteError },
    /// No `VMCOREINFO` note.
    #[error("{path}: the note segment has no VMCOREINFO note")]
    NoVmcoreinfo { path: PathBuf },
    /// `PAGESIZE` is not a power of two in 512..=65536.
    #[error("{path}: VMCOREINFO PAGESIZE={value:?} is not a supported page size")]
    BadPageSize { path: PathBuf, value: String },
    /// A physical range wraps past 2^64.
    #[error("{path}: physical range {paddr:#x} + {len} wraps past 2^64")]
    PhysicalOverflow { path: PathBuf, paddr: u64, len: u64 },
    /// A kernel virtual range is outside the kernel-image region.
    #[error("{path}: virtual address {vaddr:#x} (+{len}) is outside the kernel-image region")]
    NotKernelImage { path: PathBuf, vaddr: u64, len: u64 },
    /// No byte of a physical range is in any PT_LOAD.
    #[error("{path}: physical range {paddr:#x} (+{len}) is not in the dump")]
    NotInDump { path: PathBuf, paddr: u64, len: u64 },
    /// VMCOREINFO lacks the symbol needed to find `utsname`.
    #[error("{path}: VMCOREINFO has neither SYMBOL(init_uts_ns) nor SYMBOL(system_utsname)")]
    NoUtsnameSymbol { path: PathBuf },
    /// The `release` read from memory differs from `OSRELEASE`.
    #[error("{path}: utsname.release read at {vaddr:#x} is {found:?}, but VMCOREINFO OSRELEASE is {osrelease:?}")]
    UtsnameMismatch {
        path: PathBuf,
        vaddr: u64,
        found: String,
        osrelease: String,
    },
}
