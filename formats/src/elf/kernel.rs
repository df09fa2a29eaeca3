//! Kernel-image addresses (4.3 method 1) and the crashed kernel's `utsname` (1.7).

use super::{ElfError, ElfVmcore};
use crate::X86_64_START_KERNEL_MAP;
use crate::{UTSNAME_FIELD_LEN, UTSNAME_LEN, UTSNAME_MACHINE_OFFSET, UTSNAME_RELEASE_OFFSET};

/// Size of the kernel-image region when VMCOREINFO has no `NUMBER(KERNEL_IMAGE_SIZE)`: 1 GiB.
pub const DEFAULT_KERNEL_IMAGE_SIZE: u64 = 1 << 30;

/// Translates the kernel-image range `vaddr .. vaddr + len` (4.3 method 1):
/// `pa = va - __START_KERNEL_map + phys_base`, modulo 2^64. `None` if the range is not inside
/// `__START_KERNEL_map .. __START_KERNEL_map + image_size`.
pub fn kernel_image_to_physical(
    vaddr: u64,
    len: u64,
    phys_base: u64,
    image_size: u64,
) -> Option<u64> {
    let region_end = X86_64_START_KERNEL_MAP.checked_add(image_size)?;
    let end = vaddr.checked_add(len)?;
    if vaddr < X86_64_START_KERNEL_MAP || end > region_end {
        return None;
    }
    Some((vaddr - X86_64_START_KERNEL_MAP).wrapping_add(phys_base))
}

/// Writes `text` (truncated to 64 bytes so a NUL remains) into utsname field `index`.
fn put_field(uts: &mut [u8; UTSNAME_LEN], index: usize, text: &str) {
    let start = index * UTSNAME_FIELD_LEN;
    let n = text.len().min(UTSNAME_FIELD_LEN - 1);
    uts[start..start + n].copy_from_slice(&text.as_bytes()[..n]);
}

/// The `release` field up to its NUL.
fn release_of(uts: &[u8; UTSNAME_LEN]) -> &[u8] {
    let field = &uts[UTSNAME_RELEASE_OFFSET..UTSNAME_RELEASE_OFFSET + UTSNAME_FIELD_LEN];
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..len]
}

impl ElfVmcore {
    /// `NUMBER(KERNEL_IMAGE_SIZE)` if present and in 1..=2 GiB, else 1 GiB.
    pub fn kernel_image_size(&self) -> u64 {
        match self.vmcoreinfo.number("KERNEL_IMAGE_SIZE") {
            Some(n) if n > 0 && n <= 1 << 31 => n as u64,
            _ => DEFAULT_KERNEL_IMAGE_SIZE,
        }
    }

    /// Reads kernel-image virtual memory (4.3 method 1 only: symbols such as `init_uts_ns`,
    /// `prb`, `init_top_pgt`). Errors if the range is outside the kernel-image region or no byte
    /// of it is in the dump.
    pub fn read_kernel_virtual(&self, vaddr: u64, buf: &mut [u8]) -> Result<(), ElfError> {
        let len = buf.len() as u64;
        let paddr = kernel_image_to_physical(vaddr, len, self.phys_base, self.kernel_image_size())
            .ok_or(ElfError::NotKernelImage {
                path: self.path.clone(),
                vaddr,
                len,
            })?;
        if !self.covers_physical(paddr, len) {
            return Err(ElfError::NotInDump {
                path: self.path.clone(),
                paddr,
                len,
            });
        }
        self.read_physical(paddr, buf)
    }

    /// Kernel virtual address of the crashed kernel's `struct new_utsname` (1.7):
    /// `SYMBOL(system_utsname)` on old kernels, else `SYMBOL(init_uts_ns)` plus
    /// `OFFSET(uts_namespace.name)` (4 if absent).
    pub fn utsname_address(&self) -> Result<u64, ElfError> {
        let info = &self.vmcoreinfo;
        if let Some(addr) = info.symbol("system_utsname") {
            return Ok(addr);
        }
        let base = info
            .symbol("init_uts_ns")
            .ok_or(ElfError::NoUtsnameSymbol {
                path: self.path.clone(),
            })?;
        let offset = info.offset("uts_namespace.name").unwrap_or(4);
        base.checked_add(offset).ok_or(ElfError::NotKernelImage {
            path: self.path.clone(),
            vaddr: base,
            len: offset,
        })
    }

    /// The 390-byte `new_utsname` read from the dump (1.7). Its `release` must equal
    /// `OSRELEASE` when both exist: a mismatch means a wrong `phys_base` or symbol.
    pub fn utsname(&self) -> Result<[u8; UTSNAME_LEN], ElfError> {
        let vaddr = self.utsname_address()?;
        let mut uts = [0u8; UTSNAME_LEN];
        self.read_kernel_virtual(vaddr, &mut uts)?;
        if let Some(osrelease) = self.vmcoreinfo.osrelease() {
            let found = release_of(&uts);
            if found != osrelease.as_bytes() {
                return Err(ElfError::UtsnameMismatch {
                    path: self.path.clone(),
                    vaddr,
                    found: String::from_utf8_lossy(found).into_owned(),
                    osrelease: osrelease.to_owned(),
                });
            }
        }
        Ok(uts)
    }

    /// A `new_utsname` for when [`Self::utsname`] fails: sysname `Linux`, release `OSRELEASE`,
    /// machine `x86_64`, the other fields empty.
    pub fn fallback_utsname(&self) -> [u8; UTSNAME_LEN] {
        let mut uts = [0u8; UTSNAME_LEN];
        put_field(&mut uts, 0, "Linux");
        put_field(&mut uts, 2, self.vmcoreinfo.osrelease().unwrap_or_default());
        put_field(
            &mut uts,
            UTSNAME_MACHINE_OFFSET / UTSNAME_FIELD_LEN,
            "x86_64",
        );
        uts
    }
}

/// Builds a `new_utsname` from its six fields (each truncated to 64 bytes).
pub fn encode_utsname(fields: [&str; 6]) -> [u8; UTSNAME_LEN] {
    let mut uts = [0u8; UTSNAME_LEN];
    for (i, f) in fields.iter().enumerate() {
        put_field(&mut uts, i, f);
    }
    uts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_one_translation() {
        let phys_base = (-534_773_760i64) as u64;
        let pa = kernel_image_to_physical(0xffff_ffff_a880_0000, 8, phys_base, 1 << 30);
        assert_eq!(pa, Some(0x8a0_0000));
        assert_eq!(
            kernel_image_to_physical(0xffff_8880_0000_0000, 8, 0, 1 << 30),
            None
        );
        assert_eq!(
            kernel_image_to_physical(0xffff_ffff_c000_0000, 1, 0, 1 << 30),
            None
        );
        assert_eq!(
            kernel_image_to_physical(0xffff_ffff_bfff_fff8, 8, 0, 1 << 30),
            Some(0x3fff_fff8)
        );
        assert_eq!(kernel_image_to_physical(u64::MAX, 2, 0, 1 << 31), None);
    }

    #[test]
    fn utsname_fields() {
        let uts = encode_utsname(["Linux", "host", "6.1.0", "#1 SMP", "x86_64", "(none)"]);
        assert_eq!(crate::utsname_field(&uts, 2), "6.1.0");
        assert_eq!(crate::utsname_field(&uts, 4), "x86_64");
        assert_eq!(release_of(&uts), b"6.1.0");
        let long = "x".repeat(100);
        let uts = encode_utsname([&long, "", "", "", "", ""]);
        assert_eq!(crate::utsname_field(&uts, 0).len(), 64);
    }
}
