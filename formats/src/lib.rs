//! Crash-dump formats shared by `crashdrop-send` and `crashdropd`: the ELF `/proc/vmcore`, its notes
//! and VMCOREINFO, page bitmaps, the kdump-compressed file, and crashdrop's digests.
//!
//! Everything here follows `docs/formats.md` of the shared documentation (section numbers in the
//! comments refer to it). Nothing in this crate panics on bad input: every defect in a file is an
//! error that names the file and the field at fault.

#![forbid(unsafe_code)]

pub mod bitmap;
pub mod digest;
pub mod dmesg;
pub mod elf;
pub mod export;
pub mod filter;
pub mod kdump;
mod le;
pub mod notes;
pub mod synth;
pub mod vmcoreinfo;

pub use bitmap::{bitmap_byte_len, Bitmap, BitmapError, BitmapRank};
pub use digest::{dump_id, sha256, ChunkHasher, DumpDigest};
pub use elf::{ElfError, ElfVmcore, LoadSegment};
pub use filter::{DumpLevel, FilterError, FilterReport, PageFilter, PageSelection};
pub use notes::{parse_notes, Note, NoteError, NoteIter, NoteSummary};
pub use synth::{write_synthetic_vmcore, SynthClass, SynthMachine, SynthSpec, SynthSummary};
pub use vmcoreinfo::VmcoreInfo;

/// x86_64 `__START_KERNEL_map`: the start of the kernel-image virtual region (4.3).
pub const X86_64_START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;

/// Size of `struct new_utsname`: six NUL-padded 65-byte fields (1.7).
pub const UTSNAME_LEN: usize = 390;

/// Length of one field of `struct new_utsname`.
pub const UTSNAME_FIELD_LEN: usize = 65;

/// Byte offset of the `release` field inside `struct new_utsname` (the third field).
pub const UTSNAME_RELEASE_OFFSET: usize = 2 * UTSNAME_FIELD_LEN;

/// Byte offset of the `machine` field inside `struct new_utsname` (the fifth field).
pub const UTSNAME_MACHINE_OFFSET: usize = 4 * UTSNAME_FIELD_LEN;

/// Field `index` (0 = sysname, 1 = nodename, 2 = release, 3 = version, 4 = machine,
/// 5 = domainname) of a `new_utsname`, up to its first NUL, lossily decoded as UTF-8.
/// An index above 5 gives an empty string.
pub fn utsname_field(utsname: &[u8; UTSNAME_LEN], index: usize) -> String {
    let start = index.saturating_mul(UTSNAME_FIELD_LEN).min(UTSNAME_LEN);
    let end = start.saturating_add(UTSNAME_FIELD_LEN).min(UTSNAME_LEN);
    let field = &utsname[start..end];
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..len]).into_owned()
}
