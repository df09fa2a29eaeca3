//! Why the page filter could not compute a dump level's 2nd bitmap.

use super::translate::Unmapped;
use crate::elf::ElfError;
use crate::kdump::KdumpError;

/// A failure to read physical memory through [`super::PhysicalMemory`].
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// Some page of the range lies in no PT_LOAD: the dump does not describe it.
    #[error("physical range {paddr:#x} (+{len}) is not in the dump")]
    NotInDump { paddr: u64, len: u64 },
    /// Reading the vmcore file failed.
    #[error(transparent)]
    Elf(#[from] ElfError),
    /// A kdump-compressed file describes the page as RAM but the dump level excluded it.
    #[error("physical page {pfn:#x} was excluded from the dump (dump level)")]
    Excluded { pfn: u64 },
    /// A kdump-compressed file's descriptor for the page was never written (incomplete dump).
    #[error("physical page {pfn:#x} was never written to the dump (incomplete dump)")]
    Lost { pfn: u64 },
    /// Reading or decoding a kdump-compressed file failed.
    #[error(transparent)]
    Kdump(Box<KdumpError>),
}

/// Why a dump level's 2nd bitmap could not be computed. Every variant that comes from missing
/// or unusable VMCOREINFO names the key.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The dump level is not in 0..=31.
    #[error("dump level {0} is not in 0..=31 (makedumpfile's -d)")]
    BadLevel(u8),
    /// VMCOREINFO lacks a key the dump level needs (formats.md 4.2).
    #[error("VMCOREINFO has no {key}, needed for {needed}")]
    MissingKey {
        key: &'static str,
        needed: &'static str,
    },
    /// A VMCOREINFO value is present but unusable.
    #[error("VMCOREINFO {key}={value} is unusable: {why}")]
    BadValue {
        key: &'static str,
        value: String,
        why: &'static str,
    },
    /// A kernel virtual address has no translation (4.3).
    #[error("reading {what}: virtual address {:#x} is not mapped: {} {}", unmapped.vaddr, unmapped.level, unmapped.why)]
    NotMapped {
        what: &'static str,
        unmapped: Unmapped,
    },
    /// Reading physical memory failed.
    #[error("reading {what}: {source}")]
    Memory {
        what: &'static str,
        source: MemoryError,
    },
    /// No usable `mem_section` array was found (makedumpfile: "Could not validate mem_section").
    #[error("could not validate mem_section (SYMBOL(mem_section)={addr:#x}): {why}")]
    InvalidMemSection { addr: u64, why: String },
    /// A free list (4.8) is corrupt: a broken `prev` link or more entries than pages.
    #[error("free list of node {node} zone {zone} order {order} type {migrate_type} is corrupt at {entry:#x}: {why}")]
    CorruptFreeList {
        node: u64,
        zone: u64,
        order: u64,
        migrate_type: u64,
        entry: u64,
        why: &'static str,
    },
}

impl FilterError {
    /// A [`FilterError::MissingKey`].
    pub(crate) fn missing(key: &'static str, needed: &'static str) -> FilterError {
        FilterError::MissingKey { key, needed }
    }

    /// A [`FilterError::BadValue`].
    pub(crate) fn bad(key: &'static str, value: impl ToString, why: &'static str) -> FilterError {
        FilterError::BadValue {
            key,
            value: value.to_string(),
            why,
        }
    }

    /// A [`FilterError::Memory`].
    pub(crate) fn memory(what: &'static str, source: MemoryError) -> FilterError {
        FilterError::Memory { what, source }
    }
}
