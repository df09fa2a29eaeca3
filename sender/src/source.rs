//! `DumpSource`: the vmcore to send, the pages the dump level keeps, and the manifest that
//! describes them to the receiver.

use std::path::Path;

use bytes::Bytes;
use crashdrop_formats::digest::{dump_id, sha256};
use crashdrop_formats::{Bitmap, DumpLevel, ElfVmcore, PageFilter, PageSelection};
use crashdrop_proto::limits::MAX_NOTES_LEN;
use crashdrop_proto::{DumpId, DumpManifest};

use crate::error::SendError;

/// Refuses dump levels outside 0..=31 (makedumpfile's `-d`).
pub fn check_dump_level(dump_level: u8) -> Result<DumpLevel, SendError> {
    DumpLevel::new(dump_level).map_err(|e| SendError::Vmcore(format!("--dump-level: {e}")))
}

pub struct DumpSource {
    pub vmcore: ElfVmcore,
    pub dump_level: u8,
    /// The dump's `max_mapnr`: the vmcore's, lowered to the end of the last memory section
    /// with a mem_map (formats.md 1.7, 4.4 step 5), as makedumpfile does.
    pub max_mapnr: u64,
    /// Pfns that exist in the dump (the kdump 1st bitmap).
    pub ram: Bitmap,
    /// Pfns whose pages are sent (the kdump 2nd bitmap).
    pub dumpable: Bitmap,
    pub dump_id: DumpId,
}

impl DumpSource {
    pub fn open(path: &Path, dump_level: u8) -> Result<DumpSource, SendError> {
        let level = check_dump_level(dump_level)?;
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
        // max_mapnr lowered to the last section with a mem_map; the 1st bitmap from the
        // PT_LOADs; the 2nd: RAM minus the pfns past each PT_LOAD's file part, minus what the
        // level excludes (zero pages stay: they are found while sending).
        let selection = PageFilter::for_vmcore(&vmcore)
            .select(level)
            .map_err(|e| {
                SendError::Vmcore(format!(
                    "{}: dump level {dump_level}: {e} (--dump-level 0 or 1 sends without page filtering)",
                    path.display()
                ))
            })?;
        report_filter(path, dump_level, &selection);
        let dump_id = DumpId(dump_id(
            vmcore.elf_header_bytes(),
            vmcore.program_header_bytes(),
            vmcore.notes(),
            dump_level,
        ));
        Ok(DumpSource {
            vmcore,
            dump_level,
            max_mapnr: selection.max_mapnr,
            ram: selection.ram,
            dumpable: selection.dumpable,
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
            max_mapnr: self.max_mapnr,
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

/// Says on stderr what the page filter left out, and what it had to keep against makedumpfile's
/// rules (it never drops a page it cannot justify; makedumpfile would refuse the whole dump when a
/// struct page is unreadable).
fn report_filter(path: &Path, dump_level: u8, selection: &PageSelection) {
    let path = path.display();
    let report = &selection.report;
    if selection.max_mapnr < selection.elf_max_mapnr {
        eprintln!(
            "max_mapnr {:#x} (the vmcore's {:#x} ends past the last memory section with a mem_map)",
            selection.max_mapnr, selection.elf_max_mapnr
        );
    }
    if let Some(why) = &selection.not_lowered {
        eprintln!(
            "crashdrop-send: warning: {path}: max_mapnr not lowered to the last section with a mem_map \
             (makedumpfile would refuse this dump): {why}"
        );
    }
    if report.walked || report.free_lists {
        eprintln!(
            "dump level {dump_level}: leaving out {} pages (free {}, cache {}, user {}, \
             hwpoison {}, offline {}, unaccepted {})",
            report.excluded(),
            report.free,
            report.cache,
            report.user,
            report.hwpoison,
            report.offline,
            report.unaccepted
        );
    }
    if report.unreadable > 0 {
        eprintln!(
            "crashdrop-send: warning: {path}: {} pages kept unfiltered: their struct page is not in the dump",
            report.unreadable
        );
    }
    if report.bad_buddy_orders > 0 {
        eprintln!(
            "crashdrop-send: warning: {path}: {} free pages kept: buddy order not below LENGTH(zone.free_area)",
            report.bad_buddy_orders
        );
    }
    if let Some(why) = &report.skipped_walk {
        eprintln!("crashdrop-send: warning: {path}: hwpoison/offline pages not looked for: {why}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crashdrop_formats::synth::{write_synthetic_vmcore, SynthClass, SynthSpec, SynthSummary};

    fn synthetic(dir: &Path) -> (std::path::PathBuf, SynthSummary) {
        let path = dir.join("vmcore");
        let spec = SynthSpec {
            memory_bytes: 24 << 20,
            seed: 1,
            osrelease: "6.1.0-test".into(),
            crash_time: 1_700_000_000,
        };
        let summary = write_synthetic_vmcore(&path, &spec).expect("synthetic vmcore");
        (path, summary)
    }

    #[test]
    fn a_level_needing_missing_vmcoreinfo_is_refused_by_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, _) = synthetic(dir.path());
        // Rename the VMCOREINFO key SIZE(page) in place: no struct page layout any more.
        let mut bytes = std::fs::read(&path).expect("read");
        let at = bytes
            .windows(11)
            .position(|w| w == b"SIZE(page)=")
            .expect("SIZE(page) in the note");
        bytes[at..at + 11].copy_from_slice(b"SIZE(pXge)=");
        std::fs::write(&path, &bytes).expect("write");
        let Err(SendError::Vmcore(message)) = DumpSource::open(&path, 31) else {
            panic!("level 31 accepted without a struct page layout");
        };
        assert!(message.contains("SIZE(page)"), "{message}");
        // Levels 0 and 1 need none of it.
        let source = DumpSource::open(&path, 1).expect("level 1");
        assert_eq!(source.dumpable, source.vmcore.file_backed_bitmap());
        assert_eq!(
            source.max_mapnr,
            source.vmcore.max_mapnr(),
            "no sections: kept"
        );
        assert!(check_dump_level(32).is_err());
    }

    #[test]
    fn a_synthetic_vmcore_sends_at_every_level_the_pages_the_generator_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, summary) = synthetic(dir.path());
        for n in [0u8, 1, 2, 4, 8, 16, 17, 31] {
            let source = DumpSource::open(&path, n).expect("open");
            let level = DumpLevel::new(n).expect("level");
            assert_eq!(
                source.num_dumpable(),
                summary.dumpable_at(level),
                "level {n}"
            );
        }
        let free = summary.pages_of(SynthClass::Free);
        assert!(free > 0 && summary.dumpable_at(DumpLevel::ALL) + free <= summary.file_backed);
    }
}
