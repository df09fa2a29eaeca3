//! The crashed kernel's log (`dmesg`), read from its memory (formats.md section 6): the lockless
//! ring buffer (5.10+, 6.1), the structured `log_buf` (3.5 – 5.9, 6.2) and the character ring
//! (before 3.5, 6.3), printed the way kexec-tools' `vmcore-dmesg` or makedumpfile 1.7.2 print it
//! (6.4).
//!
//! Every kernel address is translated with the page-table walk (4.3), so the same code reads an
//! ELF `/proc/vmcore` and a stored kdump-compressed file. Nothing is sized by what the dump
//! claims beyond the limits below; a malformed ring is an error, never a panic.

mod chars;
mod error;
mod format;
mod kernel;
mod lockless;
mod structured;

#[cfg(test)]
mod structured_tests;
#[cfg(test)]
mod tests;

pub use error::DmesgError;
pub use format::Flavor;

use crate::filter::PhysicalMemory;
use crate::vmcoreinfo::VmcoreInfo;
use kernel::Kernel;

/// Largest text ring or `log_buf` read (the kernel's `CONFIG_LOG_BUF_SHIFT` maximum is 25).
pub const MAX_LOG_BUF: u64 = 32 << 20;

/// Most descriptors a lockless ring may have (`count_bits` ≤ 22).
pub const MAX_DESCRIPTORS: u64 = 1 << 22;

/// The kernel log as `vmcore-dmesg` prints it ([`Flavor::VmcoreDmesg`]).
///
/// `phys_base` is x86_64's `phys_base` (the kdump sub header's, or `NUMBER(phys_base)`). Errors
/// name the VMCOREINFO key that is missing or unusable, or the read that failed.
pub fn kernel_log<M: PhysicalMemory + ?Sized>(
    memory: &M,
    info: &VmcoreInfo,
    phys_base: u64,
) -> Result<Vec<u8>, DmesgError> {
    kernel_log_as(memory, info, phys_base, Flavor::VmcoreDmesg)
}

/// The kernel log in the given [`Flavor`]. The variant follows both tools' choice (section 6):
/// `SYMBOL(prb)` → lockless ring; else `SYMBOL(log_first_idx)` without `SYMBOL(log_end)` →
/// structured `log_buf`; else, with `SYMBOL(log_end)`, the character ring.
pub fn kernel_log_as<M: PhysicalMemory + ?Sized>(
    memory: &M,
    info: &VmcoreInfo,
    phys_base: u64,
    flavor: Flavor,
) -> Result<Vec<u8>, DmesgError> {
    let mut kernel = Kernel::new(memory, info, phys_base)?;
    if info.symbol("prb").is_some() {
        lockless::read(&mut kernel, flavor)
    } else if info.symbol("log_first_idx").is_some() && info.symbol("log_end").is_none() {
        structured::read(&mut kernel, flavor)
    } else if info.symbol("log_end").is_some() {
        chars::read(&mut kernel)
    } else {
        Err(DmesgError::missing(
            "SYMBOL(prb) (or SYMBOL(log_first_idx) or SYMBOL(log_end) of older kernels)",
        ))
    }
}
