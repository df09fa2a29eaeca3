//! Elf64 header and program header fields (1.3, 1.4), decoded from and encoded to bytes.

use crate::le::{put, u16_at, u32_at, u64_at};

/// Size of `Elf64_Ehdr`.
pub const ELF_HEADER_LEN: usize = 64;
/// Size of `Elf64_Phdr`.
pub const PHDR_LEN: usize = 56;
/// Size of `Elf64_Shdr` (only section header 0 is read, for PN_XNUM).
pub const SHDR_LEN: usize = 64;
/// `e_type` of a core file.
pub const ET_CORE: u16 = 4;
/// `e_machine` of x86_64.
pub const EM_X86_64: u16 = 62;
/// `e_phnum` meaning "the count is in section header 0's `sh_info`".
pub const PN_XNUM: u16 = 0xffff;
/// `p_type` of a loadable segment.
pub const PT_LOAD: u32 = 1;
/// `p_type` of a note segment.
pub const PT_NOTE: u32 = 4;
/// `\x7fELF`.
pub const ELF_MAGIC: [u8; 4] = *b"\x7fELF";

/// The fields of `Elf64_Ehdr` a vmcore reader needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElfHeader {
    pub magic: [u8; 4],
    pub class: u8,
    pub data: u8,
    pub e_type: u16,
    pub e_machine: u16,
    pub e_phoff: u64,
    pub e_shoff: u64,
    pub e_phentsize: u16,
    pub e_phnum: u16,
}

impl ElfHeader {
    /// Decodes the 64-byte header.
    pub fn decode(b: &[u8; ELF_HEADER_LEN]) -> ElfHeader {
        ElfHeader {
            magic: [b[0], b[1], b[2], b[3]],
            class: b[4],
            data: b[5],
            e_type: u16_at(b, 16),
            e_machine: u16_at(b, 18),
            e_phoff: u64_at(b, 32),
            e_shoff: u64_at(b, 40),
            e_phentsize: u16_at(b, 54),
            e_phnum: u16_at(b, 56),
        }
    }
}

/// An x86_64 ET_CORE header as `/proc/vmcore` has it, with program headers at `phoff`.
/// `phnum` of 0xffff or more is written as PN_XNUM with `e_shoff = shoff` (the caller then
/// writes section header 0 there with [`encode_xnum_section_header`]).
pub fn encode_elf_header(phoff: u64, phnum: u32, shoff: u64) -> [u8; ELF_HEADER_LEN] {
    let mut b = [0u8; ELF_HEADER_LEN];
    put(&mut b, 0, &ELF_MAGIC);
    b[4] = 2; // ELFCLASS64
    b[5] = 1; // ELFDATA2LSB
    b[6] = 1; // EV_CURRENT
    put(&mut b, 16, &ET_CORE.to_le_bytes());
    put(&mut b, 18, &EM_X86_64.to_le_bytes());
    put(&mut b, 20, &1u32.to_le_bytes());
    put(&mut b, 32, &phoff.to_le_bytes());
    put(&mut b, 52, &(ELF_HEADER_LEN as u16).to_le_bytes());
    put(&mut b, 54, &(PHDR_LEN as u16).to_le_bytes());
    if phnum >= u32::from(PN_XNUM) {
        put(&mut b, 40, &shoff.to_le_bytes());
        put(&mut b, 56, &PN_XNUM.to_le_bytes());
        put(&mut b, 58, &(SHDR_LEN as u16).to_le_bytes());
        put(&mut b, 60, &1u16.to_le_bytes());
    } else {
        put(&mut b, 56, &(phnum as u16).to_le_bytes());
    }
    b
}

/// Section header 0 carrying the real program header count in `sh_info` (PN_XNUM).
pub fn encode_xnum_section_header(phnum: u32) -> [u8; SHDR_LEN] {
    let mut b = [0u8; SHDR_LEN];
    put(&mut b, 44, &phnum.to_le_bytes());
    b
}

/// `sh_info` of a section header.
pub fn section_header_info(b: &[u8; SHDR_LEN]) -> u32 {
    u32_at(b, 44)
}

/// `Elf64_Phdr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramHeader {
    pub p_type: u32,
    pub p_flags: u32,
    pub p_offset: u64,
    pub p_vaddr: u64,
    pub p_paddr: u64,
    pub p_filesz: u64,
    pub p_memsz: u64,
    pub p_align: u64,
}

impl ProgramHeader {
    /// Decodes 56 bytes (short input reads as zeros).
    pub fn decode(b: &[u8]) -> ProgramHeader {
        ProgramHeader {
            p_type: u32_at(b, 0),
            p_flags: u32_at(b, 4),
            p_offset: u64_at(b, 8),
            p_vaddr: u64_at(b, 16),
            p_paddr: u64_at(b, 24),
            p_filesz: u64_at(b, 32),
            p_memsz: u64_at(b, 40),
            p_align: u64_at(b, 48),
        }
    }

    /// Encodes to 56 bytes.
    pub fn encode(&self) -> [u8; PHDR_LEN] {
        let mut b = [0u8; PHDR_LEN];
        put(&mut b, 0, &self.p_type.to_le_bytes());
        put(&mut b, 4, &self.p_flags.to_le_bytes());
        put(&mut b, 8, &self.p_offset.to_le_bytes());
        put(&mut b, 16, &self.p_vaddr.to_le_bytes());
        put(&mut b, 24, &self.p_paddr.to_le_bytes());
        put(&mut b, 32, &self.p_filesz.to_le_bytes());
        put(&mut b, 40, &self.p_memsz.to_le_bytes());
        put(&mut b, 48, &self.p_align.to_le_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let b = encode_elf_header(192, 5, 0);
        let h = ElfHeader::decode(&b);
        assert_eq!(h.magic, ELF_MAGIC);
        assert_eq!((h.class, h.data), (2, 1));
        assert_eq!((h.e_type, h.e_machine), (ET_CORE, EM_X86_64));
        assert_eq!((h.e_phoff, h.e_phnum, h.e_phentsize), (192, 5, 56));
        let x = ElfHeader::decode(&encode_elf_header(64, 70_000, 4096));
        assert_eq!((x.e_phnum, x.e_shoff), (PN_XNUM, 4096));
        assert_eq!(
            section_header_info(&encode_xnum_section_header(70_000)),
            70_000
        );
    }

    #[test]
    fn phdr_round_trip() {
        let p = ProgramHeader {
            p_type: PT_LOAD,
            p_flags: 7,
            p_offset: 0x2000,
            p_vaddr: 0xffff_ffff_a880_0000,
            p_paddr: 0x8a0_0000,
            p_filesz: 0x283_0000,
            p_memsz: 0x283_0000,
            p_align: 0,
        };
        assert_eq!(ProgramHeader::decode(&p.encode()), p);
        assert_eq!(
            ProgramHeader::decode(&[1, 0]).p_type,
            0,
            "short input reads as zeros"
        );
    }
}
