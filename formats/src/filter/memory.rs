//! `PhysicalMemory`: where the page filter reads the crashed kernel's memory from.
//!
//! A trait because real sources differ: the ELF `/proc/vmcore` ([`ElfVmcore`]), a stored
//! kdump-compressed file ([`KdumpReader`], for the kernel log) and the in-memory machine images
//! the unit tests build by hand.

use super::error::MemoryError;
use crate::elf::ElfVmcore;
use crate::kdump::{KdumpReader, PageRead};

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

impl PhysicalMemory for KdumpReader {
    /// Reads page by page (2.7): a page the dump does not describe, excluded by the dump level, or
    /// never written is an error for the whole read.
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let len = buf.len() as u64;
        let page = u64::from(self.meta().block_size);
        if page == 0 || paddr.checked_add(len).is_none() {
            return Err(MemoryError::NotInDump { paddr, len });
        }
        let mut done = 0usize;
        while done < buf.len() {
            let at = paddr + done as u64;
            let pfn = at / page;
            let in_page = (at % page) as usize;
            let n = (page as usize - in_page).min(buf.len() - done);
            let data = match self
                .read_page(pfn)
                .map_err(|e| MemoryError::Kdump(Box::new(e)))?
            {
                PageRead::Data(data) => data,
                PageRead::NotInDump => return Err(MemoryError::NotInDump { paddr, len }),
                PageRead::Excluded => return Err(MemoryError::Excluded { pfn }),
                PageRead::Lost => return Err(MemoryError::Lost { pfn }),
            };
            let src = data
                .get(in_page..in_page + n)
                .ok_or(MemoryError::NotInDump { paddr, len })?;
            buf[done..done + n].copy_from_slice(src);
            done += n;
        }
        Ok(())
    }
}
