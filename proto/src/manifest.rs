//! `DumpManifest`, the payload of `Offer` (0x03): what the sender is about to send, and the range
//! checks the receiver applies before it stores anything.

use std::fmt;

use bytes::Bytes;

use crate::chunk::PageChunk;
use crate::dump_id::DumpId;
use crate::error::ProtocolError;
use crate::limits::{
    MAX_DUMP_LEVEL, MAX_FRAME_LEN, MAX_MAPNR, MAX_NOTES_LEN, MAX_PAGES_PER_CHUNK, MAX_PAGE_SIZE,
    MIN_PAGE_SIZE,
};
use crate::reader::PayloadReader;
use crate::writer::PayloadWriter;

/// Bytes of a kernel `struct new_utsname`: six fields of [`UTSNAME_FIELD_LEN`] bytes.
pub const UTSNAME_LEN: usize = 390;

/// Bytes of one `new_utsname` field (`__NEW_UTS_LEN + 1`).
pub const UTSNAME_FIELD_LEN: usize = 65;

/// Index of `release` among the six `new_utsname` fields (sysname, nodename, release, version,
/// machine, domainname).
const UTS_RELEASE: usize = 2;
const UTS_NODENAME: usize = 1;
const UTS_MACHINE: usize = 4;

/// Everything the receiver needs to know about a dump before its bitmaps and pages arrive.
#[derive(Clone, PartialEq, Eq)]
pub struct DumpManifest {
    /// The dump's identity, the key for resume.
    pub dump_id: DumpId,
    /// makedumpfile's `-d`, 0..=31.
    pub dump_level: u8,
    /// A power of two in 4096..=`MAX_PAGE_SIZE`.
    pub page_size: u32,
    /// Pfns described by the bitmaps, 1..=`MAX_MAPNR`.
    pub max_mapnr: u64,
    /// x86_64 `phys_base` (two's complement; often "negative").
    pub phys_base: u64,
    /// `CRASHTIME` in seconds since the epoch, 0 if unknown.
    pub crash_time: i64,
    /// CPUs with a `CORE`/`NT_PRSTATUS` note.
    pub nr_cpus: u32,
    /// The crashed kernel's `new_utsname`, NUL padded.
    pub utsname: Box<[u8; UTSNAME_LEN]>,
    /// Set bits of the 2nd bitmap: the number of pages that will be sent (≤ `max_mapnr`).
    pub num_dumpable: u64,
    /// Pages per `PageChunk`, 1..=`MAX_PAGES_PER_CHUNK`; only the last chunk may be shorter.
    pub pages_per_chunk: u16,
    /// The vmcore's PT_NOTE segment, verbatim (≤ `MAX_NOTES_LEN`).
    pub notes: Bytes,
}

impl DumpManifest {
    /// Checks the ranges in `docs/protocol.md`. The error names the field; the receiver answers it
    /// with `Error InvalidManifest`. (Whether the notes parse is for the formats crate to say.)
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.dump_level > MAX_DUMP_LEVEL {
            return Err(ManifestError::DumpLevel(self.dump_level));
        }
        if !self.page_size.is_power_of_two()
            || !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&self.page_size)
        {
            return Err(ManifestError::PageSize(self.page_size));
        }
        if !(1..=MAX_MAPNR).contains(&self.max_mapnr) {
            return Err(ManifestError::MaxMapnr(self.max_mapnr));
        }
        if self.num_dumpable > self.max_mapnr {
            return Err(ManifestError::NumDumpable {
                num_dumpable: self.num_dumpable,
                max_mapnr: self.max_mapnr,
            });
        }
        if !(1..=MAX_PAGES_PER_CHUNK).contains(&self.pages_per_chunk) {
            return Err(ManifestError::PagesPerChunk(self.pages_per_chunk));
        }
        let worst = PageChunk::max_encoded_len(self.pages_per_chunk, self.page_size);
        if worst > MAX_FRAME_LEN {
            return Err(ManifestError::ChunkTooLarge {
                pages_per_chunk: self.pages_per_chunk,
                page_size: self.page_size,
            });
        }
        if self.notes.is_empty() {
            return Err(ManifestError::NotesEmpty);
        }
        if self.notes.len() > MAX_NOTES_LEN {
            return Err(ManifestError::NotesTooLong(self.notes.len()));
        }
        if !uts_bytes(&self.utsname, UTS_RELEASE)
            .iter()
            .all(|b| (0x20..=0x7e).contains(b))
        {
            return Err(ManifestError::Release(self.release()));
        }
        Ok(())
    }

    /// The crashed kernel's release (`uname -r`), up to its NUL, lossily decoded.
    pub fn release(&self) -> String {
        uts_string(&self.utsname, UTS_RELEASE)
    }

    /// The crashed kernel's own idea of its host name (`uname -n`): for logs only, never an
    /// identity.
    pub fn nodename(&self) -> String {
        uts_string(&self.utsname, UTS_NODENAME)
    }

    /// The crashed kernel's machine (`uname -m`), e.g. `x86_64`.
    pub fn machine(&self) -> String {
        uts_string(&self.utsname, UTS_MACHINE)
    }

    /// Chunks in the dump: `ceil(num_dumpable / pages_per_chunk)` (0 if `pages_per_chunk` is 0).
    pub fn chunk_count(&self) -> u64 {
        let per = u64::from(self.pages_per_chunk);
        match (
            self.num_dumpable.checked_div(per),
            self.num_dumpable.checked_rem(per),
        ) {
            (Some(full), Some(0)) => full,
            (Some(full), Some(_)) => full.saturating_add(1),
            _ => 0,
        }
    }

    /// Pages in the chunk that starts at index `first_page`: `pages_per_chunk`, fewer for the last
    /// chunk, 0 at or past `num_dumpable`.
    pub fn chunk_len(&self, first_page: u64) -> u64 {
        u64::from(self.pages_per_chunk).min(self.num_dumpable.saturating_sub(first_page))
    }

    /// Bytes in each bitmap: `ceil(max_mapnr / 8)`.
    pub fn bitmap_len(&self) -> u64 {
        self.max_mapnr.div_ceil(8)
    }

    pub(crate) fn decode(r: &mut PayloadReader) -> Result<Self, ProtocolError> {
        Ok(DumpManifest {
            dump_id: DumpId(r.array("dump_id")?),
            dump_level: r.u8("dump_level")?,
            page_size: r.u32("page_size")?,
            max_mapnr: r.u64("max_mapnr")?,
            phys_base: r.u64("phys_base")?,
            crash_time: r.i64("crash_time")?,
            nr_cpus: r.u32("nr_cpus")?,
            utsname: Box::new(r.array("utsname")?),
            num_dumpable: r.u64("num_dumpable")?,
            pages_per_chunk: r.u16("pages_per_chunk")?,
            notes: r.blob("notes", MAX_NOTES_LEN)?,
        })
    }

    pub(crate) fn encode(&self, w: &mut PayloadWriter) -> Result<(), ProtocolError> {
        w.bytes(&self.dump_id.0);
        w.u8(self.dump_level);
        w.u32(self.page_size);
        w.u64(self.max_mapnr);
        w.u64(self.phys_base);
        w.i64(self.crash_time);
        w.u32(self.nr_cpus);
        w.bytes(self.utsname.as_slice());
        w.u64(self.num_dumpable);
        w.u16(self.pages_per_chunk);
        w.blob("notes", &self.notes, MAX_NOTES_LEN)
    }
}

/// Field `index` of a `new_utsname`, up to (not including) its first NUL.
fn uts_bytes(utsname: &[u8; UTSNAME_LEN], index: usize) -> &[u8] {
    let field = utsname
        .chunks_exact(UTSNAME_FIELD_LEN)
        .nth(index)
        .unwrap_or_default();
    field.split(|&b| b == 0).next().unwrap_or_default()
}

fn uts_string(utsname: &[u8; UTSNAME_LEN], index: usize) -> String {
    String::from_utf8_lossy(uts_bytes(utsname, index)).into_owned()
}

impl fmt::Debug for DumpManifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DumpManifest")
            .field("dump_id", &self.dump_id)
            .field("dump_level", &self.dump_level)
            .field("page_size", &self.page_size)
            .field("max_mapnr", &self.max_mapnr)
            .field("phys_base", &format_args!("{:#x}", self.phys_base))
            .field("crash_time", &self.crash_time)
            .field("nr_cpus", &self.nr_cpus)
            .field("release", &self.release())
            .field("num_dumpable", &self.num_dumpable)
            .field("pages_per_chunk", &self.pages_per_chunk)
            .field("notes_len", &self.notes.len())
            .finish()
    }
}

/// A manifest value out of range; each variant names its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// `dump_level` above 31.
    #[error("dump_level {0} is out of range 0..={MAX_DUMP_LEVEL}")]
    DumpLevel(u8),
    /// `page_size` not a power of two in `MIN_PAGE_SIZE..=MAX_PAGE_SIZE`.
    #[error("page_size {0} is not a power of two in {MIN_PAGE_SIZE}..={MAX_PAGE_SIZE}")]
    PageSize(u32),
    /// `max_mapnr` outside `1..=MAX_MAPNR`.
    #[error("max_mapnr {0} is out of range 1..={MAX_MAPNR}")]
    MaxMapnr(u64),
    /// `num_dumpable` above `max_mapnr`.
    #[error("num_dumpable {num_dumpable} exceeds max_mapnr {max_mapnr}")]
    NumDumpable {
        /// The offered `num_dumpable`.
        num_dumpable: u64,
        /// The offered `max_mapnr`.
        max_mapnr: u64,
    },
    /// `pages_per_chunk` outside `1..=MAX_PAGES_PER_CHUNK`.
    #[error("pages_per_chunk {0} is out of range 1..={MAX_PAGES_PER_CHUNK}")]
    PagesPerChunk(u16),
    /// A chunk of `pages_per_chunk` raw pages of `page_size` would not fit in one frame.
    #[error(
        "pages_per_chunk {pages_per_chunk} raw pages of {page_size} bytes do not fit in a \
         {MAX_FRAME_LEN}-byte frame"
    )]
    ChunkTooLarge {
        /// The offered `pages_per_chunk`.
        pages_per_chunk: u16,
        /// The offered `page_size`.
        page_size: u32,
    },
    /// `notes` is empty.
    #[error("notes is empty")]
    NotesEmpty,
    /// `notes` is longer than `MAX_NOTES_LEN`.
    #[error("notes is {0} bytes, more than {MAX_NOTES_LEN}")]
    NotesTooLong(usize),
    /// The utsname `release` is not printable ASCII.
    #[error("utsname release {0:?} is not printable ASCII")]
    Release(String),
}

impl ManifestError {
    /// The manifest field at fault, as `docs/protocol.md` names it.
    pub fn field(&self) -> &'static str {
        match self {
            ManifestError::DumpLevel(_) => "dump_level",
            ManifestError::PageSize(_) => "page_size",
            ManifestError::MaxMapnr(_) => "max_mapnr",
            ManifestError::NumDumpable { .. } => "num_dumpable",
            ManifestError::PagesPerChunk(_) | ManifestError::ChunkTooLarge { .. } => {
                "pages_per_chunk"
            }
            ManifestError::NotesEmpty | ManifestError::NotesTooLong(_) => "notes",
            ManifestError::Release(_) => "utsname",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> DumpManifest {
        let mut utsname = Box::new([0u8; UTSNAME_LEN]);
        for (i, field) in ["Linux", "web-7", "6.1.0-13-amd64", "#1 SMP", "x86_64"]
            .iter()
            .enumerate()
        {
            let at = i * UTSNAME_FIELD_LEN;
            utsname[at..at + field.len()].copy_from_slice(field.as_bytes());
        }
        DumpManifest {
            dump_id: DumpId([7; 32]),
            dump_level: 31,
            page_size: 4096,
            max_mapnr: 1 << 20,
            phys_base: (-0x1000_0000i64) as u64,
            crash_time: 1_764_165_791,
            nr_cpus: 4,
            utsname,
            num_dumpable: 1000,
            pages_per_chunk: 256,
            notes: Bytes::from_static(b"notes"),
        }
    }

    #[test]
    fn a_typical_manifest_is_valid() {
        let m = manifest();
        m.validate().expect("valid");
        assert_eq!(m.release(), "6.1.0-13-amd64");
        assert_eq!(m.nodename(), "web-7");
        assert_eq!(m.machine(), "x86_64");
        assert_eq!(m.bitmap_len(), 1 << 17);
    }

    #[test]
    fn chunk_arithmetic() {
        let mut m = manifest();
        assert_eq!(m.chunk_count(), 4);
        assert_eq!(m.chunk_len(0), 256);
        assert_eq!(m.chunk_len(768), 232);
        assert_eq!(m.chunk_len(1000), 0);
        assert_eq!(m.chunk_len(u64::MAX), 0);
        m.num_dumpable = 1024;
        assert_eq!(m.chunk_count(), 4);
        m.num_dumpable = 0;
        assert_eq!(m.chunk_count(), 0);
        m.num_dumpable = 10;
        m.pages_per_chunk = 0;
        assert_eq!(m.chunk_count(), 0, "no division by zero");
        assert_eq!(m.chunk_len(0), 0);
    }

    #[test]
    fn each_range_names_its_field() {
        type Breaker = fn(&mut DumpManifest);
        let cases: Vec<(Breaker, &str)> = vec![
            (|m| m.dump_level = 32, "dump_level"),
            (|m| m.page_size = 2048, "page_size"),
            (|m| m.page_size = 4097, "page_size"),
            (|m| m.page_size = 131072, "page_size"),
            (|m| m.max_mapnr = 0, "max_mapnr"),
            (|m| m.max_mapnr = MAX_MAPNR + 1, "max_mapnr"),
            (|m| m.num_dumpable = (1 << 20) + 1, "num_dumpable"),
            (|m| m.pages_per_chunk = 0, "pages_per_chunk"),
            (|m| m.pages_per_chunk = 257, "pages_per_chunk"),
            (|m| m.page_size = 65536, "pages_per_chunk"),
            (|m| m.notes = Bytes::new(), "notes"),
            (
                |m| m.notes = Bytes::from(vec![0; MAX_NOTES_LEN + 1]),
                "notes",
            ),
            (|m| m.utsname[2 * UTSNAME_FIELD_LEN] = b'\n', "utsname"),
        ];
        for (break_it, field) in cases {
            let mut m = manifest();
            break_it(&mut m);
            let err = m.validate().expect_err(field);
            assert_eq!(err.field(), field, "{err}");
            assert!(err.to_string().contains(err.field()), "{err}");
        }
    }

    #[test]
    fn edges_of_the_ranges_are_valid() {
        let mut m = manifest();
        m.max_mapnr = MAX_MAPNR;
        m.num_dumpable = MAX_MAPNR;
        m.page_size = 16384;
        m.pages_per_chunk = 255;
        m.validate().expect("255 raw 16 KiB pages fit a frame");
        m.page_size = 65536;
        m.pages_per_chunk = 63;
        m.validate().expect("63 raw 64 KiB pages fit a frame");
        m.pages_per_chunk = 64;
        assert!(matches!(
            m.validate(),
            Err(ManifestError::ChunkTooLarge { .. })
        ));
    }

    #[test]
    fn release_without_nul_and_non_utf8() {
        let mut m = manifest();
        let at = 2 * UTSNAME_FIELD_LEN;
        m.utsname[at..at + UTSNAME_FIELD_LEN].fill(b'r');
        assert_eq!(m.release(), "r".repeat(UTSNAME_FIELD_LEN));
        m.validate().expect("65 printable bytes are fine");
        m.utsname[at] = 0xff;
        assert!(m.release().starts_with('\u{fffd}'));
        assert!(matches!(m.validate(), Err(ManifestError::Release(_))));
    }

    #[test]
    fn debug_is_short() {
        let mut m = manifest();
        m.notes = Bytes::from(vec![0; 100_000]);
        let shown = format!("{m:?}");
        assert!(shown.len() < 500, "{shown}");
        assert!(shown.contains("notes_len: 100000"));
        assert!(shown.contains("6.1.0-13-amd64"));
    }
}
