//! Opening a kdump-compressed file: every header value is checked before it is used to size
//! or locate anything.

use std::fs::File;
use std::path::Path;

use super::{read_at, KdumpReader};
use crate::bitmap::{Bitmap, BitmapRank};
use crate::elf::{MAX_HEADER_BYTES, MAX_MAPNR};
use crate::kdump::header::{MainHeader, SubHeader};
use crate::kdump::layout::check_block_size;
use crate::kdump::{KdumpError, KdumpLayout, KdumpMeta, DISK_DUMP_HEADER_LEN};
use crate::kdump::{HEADER_VERSION, SIGNATURE, SUB_HEADER_LEN};

impl KdumpReader {
    /// Opens and validates a file: signature, `header_version >= 6`, block size, a non-split sub
    /// header, notes inside the sub header area, both bitmaps and the descriptor table inside
    /// the file, bitmap tails zero, and the 2nd bitmap a subset of the 1st.
    pub fn open(path: &Path) -> Result<KdumpReader, KdumpError> {
        let p = || path.to_path_buf();
        let file = File::open(path).map_err(|source| KdumpError::Open { path: p(), source })?;
        let file_len = file
            .metadata()
            .map_err(|source| KdumpError::Open { path: p(), source })?
            .len();
        if file_len < DISK_DUMP_HEADER_LEN as u64 {
            return Err(KdumpError::TooShort {
                path: p(),
                len: file_len,
            });
        }
        let mut raw = [0u8; DISK_DUMP_HEADER_LEN];
        read_at(&file, path, 0, &mut raw)?;
        let main = MainHeader::decode(&raw);
        if main.signature != SIGNATURE {
            return Err(KdumpError::BadSignature {
                path: p(),
                found: String::from_utf8_lossy(&main.signature).into_owned(),
            });
        }
        if main.header_version < HEADER_VERSION {
            return Err(KdumpError::UnsupportedVersion {
                path: p(),
                version: main.header_version,
            });
        }
        let header_err = |source: KdumpError| KdumpError::Header {
            path: p(),
            source: Box::new(source),
        };
        let block_size = u64::try_from(main.block_size).unwrap_or(0);
        check_block_size(block_size).map_err(header_err)?;
        let mut raw_sub = [0u8; SUB_HEADER_LEN];
        check_within(
            path,
            "sub header",
            block_size,
            SUB_HEADER_LEN as u64,
            file_len,
        )?;
        read_at(&file, path, block_size, &mut raw_sub)?;
        let sub = SubHeader::decode(&raw_sub);
        if sub.split != 0 {
            return Err(KdumpError::Split {
                path: p(),
                split: sub.split,
            });
        }
        let max_mapnr = sub.max_mapnr_64;
        if max_mapnr > MAX_MAPNR {
            return Err(header_err(bad_field(
                "max_mapnr_64",
                format!("{max_mapnr:#x} exceeds the limit of {MAX_MAPNR:#x}"),
            )));
        }
        let sub_blocks = u64::try_from(main.sub_hdr_size).unwrap_or(0);
        let notes = read_notes(&file, path, &sub, block_size, sub_blocks, file_len)?;
        let layout = |num_dumpable| {
            KdumpLayout::from_parts(
                block_size,
                sub_blocks,
                u64::from(main.bitmap_blocks),
                notes.len() as u64,
                max_mapnr,
                num_dumpable,
            )
            .map_err(header_err)
        };
        let probe = layout(0)?;
        let bitmaps_len = probe.descriptors_offset - probe.bitmap1_offset;
        check_within(path, "bitmaps", probe.bitmap1_offset, bitmaps_len, file_len)?;
        let region = probe.bitmap_region_len();
        let bitmap1 = read_bitmap(&file, path, probe.bitmap1_offset, region, max_mapnr, 1)?;
        let bitmap2 = read_bitmap(&file, path, probe.bitmap2_offset, region, max_mapnr, 2)?;
        if let Some(pfn) = bitmap2.iter_ones().find(|&pfn| !bitmap1.get(pfn)) {
            return Err(KdumpError::NotSubset { path: p(), pfn });
        }
        let rank = BitmapRank::new(&bitmap2);
        let layout = layout(rank.total())?;
        let table_len = layout.data_offset - layout.descriptors_offset;
        check_within(
            path,
            "page descriptor table",
            layout.descriptors_offset,
            table_len,
            file_len,
        )?;
        let meta = KdumpMeta {
            utsname: main.utsname,
            crash_time: main.tv_sec,
            status: main.status,
            block_size: block_size as u32,
            max_mapnr,
            nr_cpus: u32::try_from(main.nr_cpus).unwrap_or(0),
            phys_base: sub.phys_base,
            dump_level: u32::try_from(sub.dump_level).unwrap_or(0),
            notes,
            num_dumpable: layout.num_dumpable,
        };
        Ok(KdumpReader {
            path: p(),
            file,
            file_len,
            main,
            sub,
            meta,
            layout,
            bitmap1,
            bitmap2,
            rank,
        })
    }
}

fn bad_field(field: &'static str, detail: String) -> KdumpError {
    KdumpError::BadField { field, detail }
}

/// Checks `offset .. offset + len` lies within the file.
fn check_within(
    path: &Path,
    region: &'static str,
    offset: u64,
    len: u64,
    file_len: u64,
) -> Result<(), KdumpError> {
    if offset.checked_add(len).is_none_or(|end| end > file_len) {
        return Err(KdumpError::PastEnd {
            path: path.to_path_buf(),
            region,
            offset,
            len,
            file_len,
        });
    }
    Ok(())
}

/// The note copy named by the sub header; it must lie inside the sub header area after the
/// 104-byte sub header (empty if `size_note` is 0).
fn read_notes(
    file: &File,
    path: &Path,
    sub: &SubHeader,
    block_size: u64,
    sub_blocks: u64,
    file_len: u64,
) -> Result<Vec<u8>, KdumpError> {
    if sub.size_note == 0 {
        return Ok(Vec::new());
    }
    let area_end = sub_blocks.saturating_add(1).saturating_mul(block_size);
    let offset = u64::try_from(sub.offset_note).unwrap_or(0);
    let inside = offset >= block_size + SUB_HEADER_LEN as u64
        && sub.size_note <= MAX_HEADER_BYTES
        && offset
            .checked_add(sub.size_note)
            .is_some_and(|end| end <= area_end);
    if !inside {
        return Err(KdumpError::Header {
            path: path.to_path_buf(),
            source: Box::new(bad_field(
                "offset_note/size_note",
                format!(
                    "{:#x} + {} is not inside the sub header area ({sub_blocks} blocks)",
                    sub.offset_note, sub.size_note
                ),
            )),
        });
    }
    check_within(path, "notes", offset, sub.size_note, file_len)?;
    let mut notes = vec![0u8; sub.size_note as usize];
    read_at(file, path, offset, &mut notes)?;
    Ok(notes)
}

/// One bitmap of `bits` bits at `offset`, from a region of `region_len` bytes whose tail past
/// the meaningful bytes must be zero (the caller checked the region lies within the file).
fn read_bitmap(
    file: &File,
    path: &Path,
    offset: u64,
    region_len: u64,
    bits: u64,
    which: u8,
) -> Result<Bitmap, KdumpError> {
    let mut bytes = vec![0u8; region_len as usize];
    read_at(file, path, offset, &mut bytes)?;
    let len = crate::bitmap::bitmap_byte_len(bits) as usize;
    let error = |source| KdumpError::Bitmap {
        path: path.to_path_buf(),
        which,
        source,
    };
    if let Some(pos) = bytes
        .get(len..)
        .and_then(|tail| tail.iter().position(|&b| b != 0))
    {
        let byte = (len + pos) as u64;
        let bit = byte * 8 + u64::from(bytes[len + pos].trailing_zeros());
        return Err(error(crate::bitmap::BitmapError::BitBeyondEnd {
            bits,
            bit,
        }));
    }
    bytes.truncate(len);
    Bitmap::from_bytes(bytes, bits).map_err(error)
}
