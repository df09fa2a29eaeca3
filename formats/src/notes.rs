//! ELF note segments (1.5): iterate notes, count CPU notes, find the VMCOREINFO text.
//!
//! Used by the receiver on bytes a peer sent, so every length is checked and nothing panics.

use std::ops::Range;

/// `n_type` of a CPU register note.
pub const NT_PRSTATUS: u32 = 1;
/// `n_type` of a device-dump note.
pub const NT_VMCOREDD: u32 = 0x700;
/// Name field (including its NUL) of a CPU note.
pub const NAME_CORE: &[u8] = b"CORE\0";
/// Name field (including its NUL) of the VMCOREINFO note (`n_type` 0).
pub const NAME_VMCOREINFO: &[u8] = b"VMCOREINFO\0";
/// Size of a note header: `n_namesz`, `n_descsz`, `n_type`.
pub const NOTE_HEADER_LEN: usize = 12;
/// Size of x86_64 `struct elf_prstatus`, the descriptor of a `CORE` note.
pub const PRSTATUS_LEN: usize = 336;

/// What a note segment says that the dump headers need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoteSummary {
    /// Number of notes named `"CORE"` with type NT_PRSTATUS.
    pub nr_cpus: u32,
    /// Byte range of the first VMCOREINFO note's text inside the segment.
    pub vmcoreinfo: Option<Range<usize>>,
}

/// A defect in a note segment.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    /// Fewer than 12 bytes remain but they are not zero padding.
    #[error("note segment: truncated note header at byte {offset} ({remaining} bytes left)")]
    TruncatedHeader { offset: usize, remaining: usize },
    /// The note's name runs past the end of the segment.
    #[error("note segment: note at byte {offset}: name (n_namesz {namesz}) runs past the end of the segment ({len} bytes)")]
    NamePastEnd {
        offset: usize,
        namesz: u32,
        len: usize,
    },
    /// The note's descriptor runs past the end of the segment.
    #[error("note segment: note at byte {offset}: descriptor (n_descsz {descsz}) runs past the end of the segment ({len} bytes)")]
    DescPastEnd {
        offset: usize,
        descsz: u32,
        len: usize,
    },
}

/// One note of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note<'a> {
    /// Byte offset of the note header in the segment.
    pub offset: usize,
    /// The name field, `n_namesz` bytes (normally including the terminating NUL).
    pub name: &'a [u8],
    /// `n_type`.
    pub n_type: u32,
    /// Byte range of the descriptor in the segment.
    pub desc: Range<usize>,
}

/// Iterator over the notes of a segment. Stops after the last whole note, at a header whose
/// `n_namesz` is 0, or after the first error.
#[derive(Clone, Debug)]
pub struct NoteIter<'a> {
    segment: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> NoteIter<'a> {
    /// Iterates over the notes of `segment`.
    pub fn new(segment: &'a [u8]) -> NoteIter<'a> {
        NoteIter {
            segment,
            pos: 0,
            done: false,
        }
    }

    fn next_note(&mut self) -> Result<Option<Note<'a>>, NoteError> {
        let len = self.segment.len();
        let offset = self.pos;
        let rest = self.segment.get(offset..).unwrap_or_default();
        if rest.is_empty() {
            return Ok(None);
        }
        let Some(header) = rest.get(..NOTE_HEADER_LEN) else {
            if rest.iter().all(|&b| b == 0) {
                return Ok(None);
            }
            return Err(NoteError::TruncatedHeader {
                offset,
                remaining: rest.len(),
            });
        };
        let word = |i: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&header[i * 4..i * 4 + 4]);
            u32::from_le_bytes(b)
        };
        let (namesz, descsz, n_type) = (word(0), word(1), word(2));
        if namesz == 0 {
            return Ok(None);
        }
        let name_start = offset + NOTE_HEADER_LEN;
        let name_end = name_start
            .checked_add(namesz as usize)
            .filter(|&end| end <= len)
            .ok_or(NoteError::NamePastEnd {
                offset,
                namesz,
                len,
            })?;
        let desc_start = align4(name_end)
            .filter(|&s| s <= len)
            .ok_or(NoteError::NamePastEnd {
                offset,
                namesz,
                len,
            })?;
        let desc_end = desc_start
            .checked_add(descsz as usize)
            .filter(|&end| end <= len)
            .ok_or(NoteError::DescPastEnd {
                offset,
                descsz,
                len,
            })?;
        // The last note's padding may be missing from the segment.
        self.pos = align4(desc_end).unwrap_or(len).min(len);
        Ok(Some(Note {
            offset,
            name: &self.segment[name_start..name_end],
            n_type,
            desc: desc_start..desc_end,
        }))
    }
}

impl<'a> Iterator for NoteIter<'a> {
    type Item = Result<Note<'a>, NoteError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.next_note().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

/// Rounds up to a multiple of 4, `None` on overflow.
fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|n| n & !3)
}

/// Summarises a note segment (1.5): counts `CORE`/NT_PRSTATUS notes and finds the first
/// `VMCOREINFO` note. Notes are selected by name (including the NUL) and type, not position.
pub fn parse_notes(segment: &[u8]) -> Result<NoteSummary, NoteError> {
    let mut summary = NoteSummary::default();
    for note in NoteIter::new(segment) {
        let note = note?;
        if note.name == NAME_CORE && note.n_type == NT_PRSTATUS {
            summary.nr_cpus = summary.nr_cpus.saturating_add(1);
        } else if note.name == NAME_VMCOREINFO && note.n_type == 0 && summary.vmcoreinfo.is_none() {
            summary.vmcoreinfo = Some(note.desc);
        }
    }
    Ok(summary)
}

/// Appends one note (header, name, descriptor, each padded to 4 bytes) to `out`. `name` is
/// given without its NUL. Used by the synthetic vmcore and by tests.
pub fn push_note(out: &mut Vec<u8>, name: &[u8], n_type: u32, desc: &[u8]) {
    let namesz = name.len() + 1;
    out.extend_from_slice(&(namesz as u32).to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&n_type.to_le_bytes());
    out.extend_from_slice(name);
    out.push(0);
    out.resize(out.len().next_multiple_of(4), 0);
    out.extend_from_slice(desc);
    out.resize(out.len().next_multiple_of(4), 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        let mut seg = Vec::new();
        push_note(&mut seg, b"CORE", NT_PRSTATUS, &[1u8; PRSTATUS_LEN]);
        push_note(&mut seg, b"CORE", NT_PRSTATUS, &[2u8; PRSTATUS_LEN]);
        push_note(&mut seg, b"QEMU", 0, &[3u8; 20]);
        push_note(
            &mut seg,
            b"VMCOREINFO",
            0,
            b"OSRELEASE=6.1\nPAGESIZE=4096\n",
        );
        seg
    }

    #[test]
    fn counts_cpus_and_finds_vmcoreinfo() {
        let seg = sample();
        let s = parse_notes(&seg).expect("valid notes");
        assert_eq!(s.nr_cpus, 2);
        let r = s.vmcoreinfo.expect("vmcoreinfo");
        assert_eq!(&seg[r.clone()], b"OSRELEASE=6.1\nPAGESIZE=4096\n");
        // Header at 2 * 356 + 36 (the QEMU note); the text starts 24 bytes after it.
        assert_eq!(r.start, 2 * 356 + 12 + 8 + 20 + 24);
    }

    #[test]
    fn stops_at_zero_namesz_and_zero_tail() {
        let mut seg = sample();
        let end = seg.len();
        seg.extend_from_slice(&[0u8; 40]);
        assert_eq!(parse_notes(&seg).expect("padding").nr_cpus, 2);
        seg.truncate(end);
        seg.extend_from_slice(&[0u8; 5]);
        assert!(parse_notes(&seg).is_ok());
        seg.truncate(end);
        seg.extend_from_slice(&[1u8; 5]);
        assert!(matches!(
            parse_notes(&seg),
            Err(NoteError::TruncatedHeader { remaining: 5, .. })
        ));
    }

    #[test]
    fn name_mismatch_is_not_counted() {
        let mut seg = Vec::new();
        push_note(&mut seg, b"CORES", NT_PRSTATUS, &[0u8; 8]);
        push_note(&mut seg, b"CORE", 2, &[0u8; 8]);
        push_note(&mut seg, b"VMCOREINFO", 1, b"A=1");
        let s = parse_notes(&seg).expect("valid");
        assert_eq!(s, NoteSummary::default());
    }

    #[test]
    fn last_note_without_padding() {
        let mut seg = sample();
        // Text of 28 bytes is already aligned; use an odd one.
        seg.clear();
        push_note(&mut seg, b"VMCOREINFO", 0, b"A=1");
        seg.truncate(seg.len() - 1);
        let s = parse_notes(&seg).expect("unpadded tail");
        assert_eq!(s.vmcoreinfo.map(|r| r.len()), Some(3));
    }

    #[test]
    fn overlong_sizes_are_errors() {
        let mut seg = sample();
        seg[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            parse_notes(&seg),
            Err(NoteError::DescPastEnd { .. })
        ));
        let mut seg = sample();
        seg[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            parse_notes(&seg),
            Err(NoteError::NamePastEnd { .. })
        ));
        let msg = parse_notes(&seg).expect_err("error").to_string();
        assert!(msg.contains("n_namesz"), "{msg}");
    }

    #[test]
    fn mutated_segments_never_panic() {
        let base = sample();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut seg = base.clone();
            let pos = (state % seg.len() as u64) as usize;
            seg[pos] = (state >> 32) as u8;
            let cut = ((state >> 40) % (seg.len() as u64 + 1)) as usize;
            seg.truncate(cut);
            let _ = parse_notes(&seg);
        }
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(s) = parse_notes(&bytes) {
                if let Some(r) = s.vmcoreinfo {
                    prop_assert!(r.start <= r.end && r.end <= bytes.len());
                }
            }
        }

        #[test]
        fn small_headers_never_panic(words in proptest::collection::vec(0u32..64, 0..64)) {
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            let _ = parse_notes(&bytes);
        }
    }
}
