//! `Kernel`: bounded reads of the crashed kernel's virtual memory and of VMCOREINFO values,
//! with errors that name the key or the structure.

use super::error::DmesgError;
use crate::filter::{PhysicalMemory, Translator};
use crate::le;
use crate::vmcoreinfo::VmcoreInfo;

/// The crashed kernel, as the log readers see it.
pub(super) struct Kernel<'m, M: PhysicalMemory + ?Sized> {
    tr: Translator<'m, M>,
    pub(super) info: &'m VmcoreInfo,
}

impl<'m, M: PhysicalMemory + ?Sized> Kernel<'m, M> {
    /// Translation by page-table walk only (4.3 method 3): it works on ELF and kdump files alike.
    pub(super) fn new(
        memory: &'m M,
        info: &'m VmcoreInfo,
        phys_base: u64,
    ) -> Result<Self, DmesgError> {
        Ok(Kernel {
            tr: Translator::new(memory, info, phys_base, None)?,
            info,
        })
    }

    /// `SYMBOL(name)`.
    pub(super) fn symbol(&self, name: &str) -> Result<u64, DmesgError> {
        self.info
            .symbol(name)
            .ok_or_else(|| DmesgError::missing(format!("SYMBOL({name})")))
    }

    /// `SIZE(name)`, which must be in `1..=max`.
    pub(super) fn size(&self, name: &str, max: u64) -> Result<u64, DmesgError> {
        let key = || format!("SIZE({name})");
        let size = self
            .info
            .size(name)
            .ok_or_else(|| DmesgError::missing(key()))?;
        if size == 0 || size > max {
            return Err(DmesgError::bad(key(), size, format!("not in 1..={max}")));
        }
        Ok(size)
    }

    /// `OFFSET(name)`, unchecked (the caller checks it against its structure).
    pub(super) fn offset(&self, name: &str) -> Result<u64, DmesgError> {
        self.info
            .offset(name)
            .ok_or_else(|| DmesgError::missing(format!("OFFSET({name})")))
    }

    /// `len` bytes at kernel virtual address `va`; errs (before allocating) if `len > limit`.
    pub(super) fn read(
        &mut self,
        va: u64,
        len: u64,
        limit: u64,
        what: &'static str,
    ) -> Result<Vec<u8>, DmesgError> {
        if len > limit {
            return Err(DmesgError::corrupt(
                what,
                format!("{len} bytes exceed the limit of {limit}"),
            ));
        }
        let mut buf = vec![0u8; len as usize];
        self.tr.read(va, &mut buf, what)?;
        Ok(buf)
    }

    pub(super) fn read_u64(&mut self, va: u64, what: &'static str) -> Result<u64, DmesgError> {
        Ok(self.tr.read_u64(va, what)?)
    }

    pub(super) fn read_u32(&mut self, va: u64, what: &'static str) -> Result<u32, DmesgError> {
        let mut b = [0u8; 4];
        self.tr.read(va, &mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }
}

/// A field of a structure of `size` bytes: its offset (possibly a sum of VMCOREINFO offsets)
/// checked so that `width` bytes fit. `key` names the VMCOREINFO key at fault.
pub(super) fn field(
    key: &str,
    offset: Option<u64>,
    width: u64,
    size: u64,
) -> Result<usize, DmesgError> {
    match offset {
        Some(off) if off.checked_add(width).is_some_and(|end| end <= size) => Ok(off as usize),
        _ => Err(DmesgError::bad(
            format!("OFFSET({key})"),
            offset.map_or_else(|| "overflow".to_owned(), |o| o.to_string()),
            format!("a {width}-byte field does not fit in its {size}-byte structure"),
        )),
    }
}

pub(super) fn u16_at(b: &[u8], off: usize) -> u16 {
    le::u16_at(b, off)
}

pub(super) fn u32_at(b: &[u8], off: usize) -> u32 {
    le::u32_at(b, off)
}

pub(super) fn u64_at(b: &[u8], off: usize) -> u64 {
    le::u64_at(b, off)
}
