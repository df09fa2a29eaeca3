//! `PhysicalMemory`: where the page filter reads the crashed kernel's memory from.
//!
//! A trait because two real sources exist: the ELF `/proc/vmcore` ([`ElfVmcore`]) and the
//! in-memory machine images the unit tests build by hand.

use super::error::MemoryError;
use crate::elf::ElfVmcore;

/// Physical memory of the crashed machine.
pub trait PhysicalMemory {
    /// Fills `buf` with the bytes at `paddr`. Errs if some page of the range is not in the dump
    /// (as makedumpfile's reads do); bytes a dump describes but does not store read as zero.
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), MemoryError>;
}

impl PhysicalMemory for ElfVmcore {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let len = buf.len() as u64;
        let page = self.page_size();
        let end = paddr
            .checked_add(len)
            .ok_or(MemoryError::NotInDump { paddr, len })?;
        // Every page the range touches must lie in some PT_LOAD (1.4).
        let mut at = paddr - paddr % page;
        while at < end {
            if !self.covers_physical(at, page) {
                return Err(MemoryError::NotInDump { paddr, len });
            }
            at = at.saturating_add(page);
        }
        Ok(self.read_physical(paddr, buf)?)
    }
}
