//! A copy of a QEMU `dump-guest-memory` ELF that makedumpfile 1.7.2 reads: it takes program
//! header `i` from byte `64 + 56 * i` whatever `e_phoff` says (formats.md 1.3), and QEMU puts them
//! at 192 behind two section headers.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

const EHDR: u64 = 64;
const PHDR: u64 = 56;

/// Copies `from` to `to` with the program header table moved to byte 64 (`e_phoff = 64`), the
/// section headers dropped (`e_shoff = e_shnum = e_shentsize = e_shstrndx = 0`),
/// `e_ehsize = 64`, and the bytes the old tables used zeroed. Segment offsets are unchanged:
/// the new table ends before the old one did. Errs for PN_XNUM files (QEMU does not write them
/// below 65535 segments) and tables past the end.
pub fn move_program_headers_to_64(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::copy(from, to)?;
    let mut f = OpenOptions::new().read(true).write(true).open(to)?;
    let mut eh = [0u8; EHDR as usize];
    f.read_exact(&mut eh)?;
    let phoff = u64::from_le_bytes(eh[32..40].try_into().expect("8 bytes"));
    let phnum = u64::from(u16::from_le_bytes([eh[56], eh[57]]));
    if &eh[..4] != b"\x7fELF" || phnum == 0xffff || phoff < EHDR {
        return Err(io::Error::other(format!(
            "{}: not an ELF with e_phoff >= 64 and e_phnum < 0xffff",
            from.display()
        )));
    }
    let len = phnum * PHDR;
    let mut table = vec![0u8; len as usize];
    f.seek(SeekFrom::Start(phoff))?;
    f.read_exact(&mut table)?;
    f.seek(SeekFrom::Start(EHDR))?;
    f.write_all(&vec![0u8; (phoff + len - EHDR) as usize])?;
    f.seek(SeekFrom::Start(EHDR))?;
    f.write_all(&table)?;
    eh[32..40].copy_from_slice(&EHDR.to_le_bytes()); // e_phoff
    eh[40..48].fill(0); // e_shoff
    eh[52..54].copy_from_slice(&(EHDR as u16).to_le_bytes()); // e_ehsize
    eh[58..64].fill(0); // e_shentsize, e_shnum, e_shstrndx
    f.seek(SeekFrom::Start(0))?;
    f.write_all(&eh)?;
    f.sync_all()
}
