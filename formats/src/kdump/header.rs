//! The main header `disk_dump_header` (2.2) and the sub header `kdump_sub_header` (2.4).

use super::SUB_HEADER_LEN;
use super::{KdumpError, KdumpLayout, KdumpMeta, DISK_DUMP_HEADER_LEN, HEADER_VERSION, SIGNATURE};
use crate::le::{i32_at, i64_at, put, u32_at, u64_at};
use crate::notes::parse_notes;
use crate::UTSNAME_LEN;

/// Offset of `utsname` in the main header.
const UTSNAME_OFFSET: usize = 12;

/// `struct disk_dump_header` (x86_64, 464 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MainHeader {
    pub signature: [u8; 8],
    pub header_version: i32,
    pub utsname: [u8; UTSNAME_LEN],
    pub tv_sec: i64,
    pub tv_usec: i64,
    pub status: u32,
    pub block_size: i32,
    pub sub_hdr_size: i32,
    pub bitmap_blocks: u32,
    /// `min(max_mapnr, u32::MAX)`; the full value is in the sub header.
    pub max_mapnr: u32,
    pub total_ram_blocks: u32,
    pub device_blocks: u32,
    pub written_blocks: u32,
    pub current_cpu: u32,
    pub nr_cpus: i32,
}

impl MainHeader {
    /// Decodes the first 464 bytes of a file (short input reads as zeros).
    pub fn decode(b: &[u8]) -> MainHeader {
        let mut signature = [0u8; 8];
        let mut utsname = [0u8; UTSNAME_LEN];
        if let Some(src) = b.get(..8) {
            signature.copy_from_slice(src);
        }
        if let Some(src) = b.get(UTSNAME_OFFSET..UTSNAME_OFFSET + UTSNAME_LEN) {
            utsname.copy_from_slice(src);
        }
        MainHeader {
            signature,
            header_version: i32_at(b, 8),
            utsname,
            tv_sec: i64_at(b, 408),
            tv_usec: i64_at(b, 416),
            status: u32_at(b, 424),
            block_size: i32_at(b, 428),
            sub_hdr_size: i32_at(b, 432),
            bitmap_blocks: u32_at(b, 436),
            max_mapnr: u32_at(b, 440),
            total_ram_blocks: u32_at(b, 444),
            device_blocks: u32_at(b, 448),
            written_blocks: u32_at(b, 452),
            current_cpu: u32_at(b, 456),
            nr_cpus: i32_at(b, 460),
        }
    }

    /// Encodes to 464 bytes.
    pub fn encode(&self) -> [u8; DISK_DUMP_HEADER_LEN] {
        let mut b = [0u8; DISK_DUMP_HEADER_LEN];
        put(&mut b, 0, &self.signature);
        put(&mut b, 8, &self.header_version.to_le_bytes());
        put(&mut b, UTSNAME_OFFSET, &self.utsname);
        put(&mut b, 408, &self.tv_sec.to_le_bytes());
        put(&mut b, 416, &self.tv_usec.to_le_bytes());
        put(&mut b, 424, &self.status.to_le_bytes());
        put(&mut b, 428, &self.block_size.to_le_bytes());
        put(&mut b, 432, &self.sub_hdr_size.to_le_bytes());
        put(&mut b, 436, &self.bitmap_blocks.to_le_bytes());
        put(&mut b, 440, &self.max_mapnr.to_le_bytes());
        put(&mut b, 444, &self.total_ram_blocks.to_le_bytes());
        put(&mut b, 448, &self.device_blocks.to_le_bytes());
        put(&mut b, 452, &self.written_blocks.to_le_bytes());
        put(&mut b, 456, &self.current_cpu.to_le_bytes());
        put(&mut b, 460, &self.nr_cpus.to_le_bytes());
        b
    }
}

/// `struct kdump_sub_header` (x86_64, 104 bytes, version-6 fields).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubHeader {
    pub phys_base: u64,
    pub dump_level: i32,
    pub split: i32,
    pub start_pfn: u64,
    pub end_pfn: u64,
    pub offset_vmcoreinfo: i64,
    pub size_vmcoreinfo: u64,
    pub offset_note: i64,
    pub size_note: u64,
    pub offset_eraseinfo: i64,
    pub size_eraseinfo: u64,
    pub start_pfn_64: u64,
    pub end_pfn_64: u64,
    pub max_mapnr_64: u64,
}

impl SubHeader {
    /// Decodes 104 bytes (short input reads as zeros).
    pub fn decode(b: &[u8]) -> SubHeader {
        SubHeader {
            phys_base: u64_at(b, 0),
            dump_level: i32_at(b, 8),
            split: i32_at(b, 12),
            start_pfn: u64_at(b, 16),
            end_pfn: u64_at(b, 24),
            offset_vmcoreinfo: i64_at(b, 32),
            size_vmcoreinfo: u64_at(b, 40),
            offset_note: i64_at(b, 48),
            size_note: u64_at(b, 56),
            offset_eraseinfo: i64_at(b, 64),
            size_eraseinfo: u64_at(b, 72),
            start_pfn_64: u64_at(b, 80),
            end_pfn_64: u64_at(b, 88),
            max_mapnr_64: u64_at(b, 96),
        }
    }

    /// Encodes to 104 bytes.
    pub fn encode(&self) -> [u8; SUB_HEADER_LEN] {
        let mut b = [0u8; SUB_HEADER_LEN];
        put(&mut b, 0, &self.phys_base.to_le_bytes());
        put(&mut b, 8, &self.dump_level.to_le_bytes());
        put(&mut b, 12, &self.split.to_le_bytes());
        put(&mut b, 16, &self.start_pfn.to_le_bytes());
        put(&mut b, 24, &self.end_pfn.to_le_bytes());
        put(&mut b, 32, &self.offset_vmcoreinfo.to_le_bytes());
        put(&mut b, 40, &self.size_vmcoreinfo.to_le_bytes());
        put(&mut b, 48, &self.offset_note.to_le_bytes());
        put(&mut b, 56, &self.size_note.to_le_bytes());
        put(&mut b, 64, &self.offset_eraseinfo.to_le_bytes());
        put(&mut b, 72, &self.size_eraseinfo.to_le_bytes());
        put(&mut b, 80, &self.start_pfn_64.to_le_bytes());
        put(&mut b, 88, &self.end_pfn_64.to_le_bytes());
        put(&mut b, 96, &self.max_mapnr_64.to_le_bytes());
        b
    }
}

/// The main header block (2.2): exactly `layout.block_size` bytes, the header then zeros.
/// `timestamp` is `meta.crash_time`, `status` is `meta.status`; sizes come from `layout`.
pub fn encode_main_header(meta: &KdumpMeta, layout: &KdumpLayout) -> Vec<u8> {
    let header = MainHeader {
        signature: SIGNATURE,
        header_version: HEADER_VERSION,
        utsname: meta.utsname,
        tv_sec: meta.crash_time,
        tv_usec: 0,
        status: meta.status,
        // KdumpLayout guarantees these fit (block size ≤ 1 MiB, sub_hdr_size ≤ i32::MAX,
        // bitmap_blocks ≤ u32::MAX); saturate rather than wrap all the same.
        block_size: i32::try_from(layout.block_size).unwrap_or(i32::MAX),
        sub_hdr_size: i32::try_from(layout.sub_header_blocks).unwrap_or(i32::MAX),
        bitmap_blocks: u32::try_from(layout.bitmap_blocks).unwrap_or(u32::MAX),
        max_mapnr: u32::try_from(layout.max_mapnr).unwrap_or(u32::MAX),
        total_ram_blocks: 0,
        device_blocks: 0,
        written_blocks: 0,
        current_cpu: 0,
        nr_cpus: i32::try_from(meta.nr_cpus).unwrap_or(i32::MAX),
    };
    let mut block = vec![0u8; layout.block_size as usize];
    put(&mut block, 0, &header.encode());
    block
}

/// The sub header area (2.4, 2.5): `sub_header_blocks * block_size` bytes meant for file offset
/// `block_size`: the 104-byte sub header (version-6 fields, `split = 0`, no eraseinfo,
/// `offset_note = block_size + 104`, `offset_vmcoreinfo` pointing into the copy), then
/// `meta.notes` verbatim, then zeros. Without notes, the note and VMCOREINFO fields are 0.
pub fn encode_sub_header_area(
    meta: &KdumpMeta,
    layout: &KdumpLayout,
) -> Result<Vec<u8>, KdumpError> {
    let notes_len = meta.notes.len() as u64;
    if notes_len != layout.notes_len {
        return Err(KdumpError::NotesLength {
            expected: layout.notes_len,
            actual: notes_len,
        });
    }
    let area_len = layout
        .sub_header_blocks
        .checked_mul(layout.block_size)
        .filter(|&n| n >= SUB_HEADER_LEN as u64 + notes_len)
        .ok_or(KdumpError::BadField {
            field: "sub_hdr_size",
            detail: format!(
                "{} blocks cannot hold {notes_len} bytes of notes",
                layout.sub_header_blocks
            ),
        })?;
    let mut sub = SubHeader {
        phys_base: meta.phys_base,
        dump_level: i32::try_from(meta.dump_level).unwrap_or(i32::MAX),
        max_mapnr_64: layout.max_mapnr,
        ..SubHeader::default()
    };
    if !meta.notes.is_empty() {
        let offset_note = layout.notes_offset();
        sub.offset_note = offset_note as i64;
        sub.size_note = notes_len;
        if let Some(r) = parse_notes(&meta.notes)?.vmcoreinfo {
            sub.offset_vmcoreinfo = (offset_note + r.start as u64) as i64;
            sub.size_vmcoreinfo = r.len() as u64;
        }
    }
    let mut area = vec![0u8; area_len as usize];
    put(&mut area, 0, &sub.encode());
    put(&mut area, SUB_HEADER_LEN, &meta.notes);
    Ok(area)
}
