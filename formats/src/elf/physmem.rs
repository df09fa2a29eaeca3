//! Reads of physical memory from an ELF vmcore (1.4): a map of disjoint file-backed pieces.
//!
//! The kernel-image PT_LOAD covers memory that a RAM PT_LOAD covers too (the same bytes twice in
//! the file), so the segments are flattened once into disjoint, sorted pieces; a read then does a
//! binary search and one positional read per piece it touches.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{ElfError, ElfVmcore, LoadSegment};

/// Physical bytes `start..end` are stored at file offset `file_offset` onwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Piece {
    start: u64,
    end: u64,
    file_offset: u64,
}

/// Disjoint file-backed physical ranges, sorted by address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct PieceMap {
    pieces: Vec<Piece>,
}

impl PieceMap {
    /// Flattens the file parts (`p_paddr .. p_paddr + p_filesz`) of `loads`. Where segments
    /// overlap, the one with the lowest `p_paddr` serves (overlapping segments hold the same bytes).
    pub(super) fn new(loads: &[LoadSegment]) -> PieceMap {
        let mut sorted: Vec<&LoadSegment> = loads.iter().filter(|l| l.filesz > 0).collect();
        sorted.sort_by_key(|l| l.paddr);
        let mut pieces = Vec::with_capacity(sorted.len());
        let mut covered_end = 0u64;
        for l in sorted {
            // `open` checked that paddr + memsz (>= filesz) does not overflow.
            let end = l.paddr.saturating_add(l.filesz);
            let start = l.paddr.max(covered_end);
            if start < end {
                pieces.push(Piece {
                    start,
                    end,
                    file_offset: l.offset.saturating_add(start - l.paddr),
                });
            }
            covered_end = covered_end.max(end);
        }
        PieceMap { pieces }
    }
}

/// Fills `buf` from file offset `offset`; errors name the path and offset.
pub(super) fn read_at(
    file: &File,
    path: &Path,
    offset: u64,
    buf: &mut [u8],
) -> Result<(), ElfError> {
    file.read_exact_at(buf, offset)
        .map_err(|source| ElfError::Read {
            path: path.to_path_buf(),
            offset,
            len: buf.len() as u64,
            source,
        })
}

impl ElfVmcore {
    /// Fills `buf` with physical memory from `paddr`. Bytes not backed by any PT_LOAD's file part
    /// (holes, `p_filesz..p_memsz` tails) read as zero.
    pub fn read_physical(&self, paddr: u64, buf: &mut [u8]) -> Result<(), ElfError> {
        let len = buf.len() as u64;
        let end = paddr.checked_add(len).ok_or(ElfError::PhysicalOverflow {
            path: self.path.clone(),
            paddr,
            len,
        })?;
        let pieces = &self.pieces.pieces;
        let mut i = pieces.partition_point(|p| p.end <= paddr);
        let mut cursor = paddr;
        while let Some(piece) = pieces.get(i).filter(|p| p.start < end) {
            let start = piece.start.max(cursor);
            let stop = piece.end.min(end);
            buf[(cursor - paddr) as usize..(start - paddr) as usize].fill(0);
            let dst = &mut buf[(start - paddr) as usize..(stop - paddr) as usize];
            read_at(
                &self.file,
                &self.path,
                piece.file_offset + (start - piece.start),
                dst,
            )?;
            cursor = stop;
            i += 1;
        }
        buf[(cursor - paddr) as usize..].fill(0);
        Ok(())
    }

    /// True if some byte of `paddr .. paddr + len` lies in a PT_LOAD (`p_memsz`), i.e. the
    /// range is not entirely a memory hole (1.4).
    pub fn covers_physical(&self, paddr: u64, len: u64) -> bool {
        let end = paddr.saturating_add(len.max(1));
        self.loads
            .iter()
            .any(|l| l.paddr < end && paddr < l.paddr.saturating_add(l.memsz))
    }
}
