//! `DumpSource`: the vmcore to send, the pages the dump level keeps, and the manifest that
//! describes them to the receiver.

use std::path::Path;

use bytes::Bytes;
use crashdrop_formats::digest::{dump_id, sha256};
use crashdrop_formats::{Bitmap, ElfVmcore};
use crashdrop_proto::limits::MAX_NOTES_LEN;
use crashdrop_proto::{DumpId, DumpManifest};

use crate::error::SendError;

/// Dump-level bits this version can honour: 1 = exclude zero pages (done while sending).
pub const SUPPORTED_LEVEL_BITS: u8 = 1;

/// Refuses dump levels outside 0..=31 and bits this version cannot honour yet.
pub fn check_dump_level(dump_level: u8) -> Result<(), SendError> {
    if dump_level > 31 {
        return Err(SendError::Vmcore(format!(
            "--dump-level {dump_level}: must be 0..=31 (makedumpfile's -d)"
        )));
    }
    let unsupported = dump_level & !SUPPORTED_LEVEL_BITS;
    if unsupported != 0 {
        return Err(SendError::Vmcore(format!(
            "--dump-level {dump_level}: excluding cache, user or free pages (bits 2, 4, 8, 16; \
         here {unsupported}) is not implemented yet; use --dump-level 1 (exclude zero \
         pages) or 0 (everything)"
        )));
    }
    Ok(())
}

pub struct DumpSource {
    pub vmcore: ElfVmcore,
    pub dump_level: u8,
    /// Pfns that exist in the dump (the kdump 1st bitmap).
    pub ram: Bitmap,
    /// Pfns whose pages are sent (the kdump 2nd bitmap).
    pub dumpable: Bitmap,
    pub dump_id: DumpId,
}

impl DumpSource {
    pub fn open(path: &Path, dump_level: u8) -> Result<DumpSource, SendError> {
        check_dump_level(dump_level)?;
        let vmcore = ElfVmcore::open(path).map_err(|e| SendError::Vmcore(e.to_string()))?;
        if vmcore.page_size() != 4096 {
            return Err(SendError::Vmcore(format!(
                "{}: page size {} is not supported (x86_64 uses 4096)",
                path.display(),
                vmcore.page_size()
            )));
        }
        if vmcore.notes().len() > MAX_NOTES_LEN {
            return Err(SendError::Vmcore(format!(
                "{}: note segment of {} bytes exceeds the protocol's {MAX_NOTES_LEN}",
                path.display(),
                vmcore.notes().len()
            )));
        }
        let ram = vmcore.ram_bitmap();
        let dumpable = vmcore.file_backed_bitmap();
        let dump_id = DumpId(dump_id(
            vmcore.elf_header_bytes(),
            vmcore.program_header_bytes(),
            vmcore.notes(),
            dump_level,
        ));
        Ok(DumpSource {
            vmcore,
            dump_level,
            ram,
            dumpable,
            dump_id,
        })
    }

    pub fn page_size(&self) -> usize {
        self.vmcore.page_size() as usize
    }

    pub fn num_dumpable(&self) -> u64 {
        self.dumpable.count_ones()
    }

    pub fn bitmap_digests(&self) -> ([u8; 32], [u8; 32]) {
        (
            sha256(self.ram.as_bytes()),
            sha256(self.dumpable.as_bytes()),
        )
    }

    pub fn manifest(&self, pages_per_chunk: u16) -> DumpManifest {
        let utsname = self
            .vmcore
            .utsname()
            .unwrap_or_else(|_| self.vmcore.fallback_utsname());
        DumpManifest {
            dump_id: self.dump_id,
            dump_level: self.dump_level,
            page_size: self.vmcore.page_size() as u32,
            max_mapnr: self.vmcore.max_mapnr(),
            phys_base: self.vmcore.phys_base(),
            crash_time: self.vmcore.crash_time().unwrap_or(0),
            nr_cpus: self.vmcore.nr_cpus(),
            utsname: Box::new(utsname),
            num_dumpable: self.num_dumpable(),
            pages_per_chunk,
            notes: Bytes::copy_from_slice(self.vmcore.notes()),
        }
    }
}
