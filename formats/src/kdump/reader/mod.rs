//! Reading a kdump-compressed file: for tests, `crashdropd verify`, and resuming a dump.

mod open;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::header::{MainHeader, SubHeader};
use super::page::{decompress_page, PageDesc};
use super::{KdumpError, KdumpLayout, KdumpMeta, FLAG_INCOMPLETE, PAGE_DESC_LEN};
use crate::bitmap::{Bitmap, BitmapRank};
use crate::notes::parse_notes;
use crate::vmcoreinfo::VmcoreInfo;

/// Descriptors read at once by [`KdumpReader::pages`] (64 KiB).
const DESC_BATCH: u64 = 2730;

/// What reading one pfn gives (2.7 reader algorithm).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageRead {
    /// `pfn >= max_mapnr` or its 1st-bitmap bit is clear: not memory the dump describes.
    NotInDump,
    /// RAM whose 2nd-bitmap bit is clear: excluded by the dump level.
    Excluded,
    /// The descriptor's offset is 0: the page was never written (incomplete dump, 2.10).
    Lost,
    /// The page's `block_size` bytes.
    Data(Vec<u8>),
}

/// An opened kdump-compressed file with both bitmaps in memory.
pub struct KdumpReader {
    path: PathBuf,
    file: File,
    file_len: u64,
    main: MainHeader,
    sub: SubHeader,
    meta: KdumpMeta,
    layout: KdumpLayout,
    bitmap1: Bitmap,
    bitmap2: Bitmap,
    rank: BitmapRank,
}

impl std::fmt::Debug for KdumpReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KdumpReader")
            .field("path", &self.path)
            .field("file_len", &self.file_len)
            .field("layout", &self.layout)
            .field("status", &self.meta.status)
            .finish_non_exhaustive()
    }
}

impl KdumpReader {
    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Length of the file in bytes.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The decoded main header.
    pub fn main_header(&self) -> &MainHeader {
        &self.main
    }

    /// The decoded sub header.
    pub fn sub_header(&self) -> &SubHeader {
        &self.sub
    }

    /// Header values and notes.
    pub fn meta(&self) -> &KdumpMeta {
        &self.meta
    }

    /// Where everything is.
    pub fn layout(&self) -> &KdumpLayout {
        &self.layout
    }

    /// `disk_dump_header.status`.
    pub fn status(&self) -> u32 {
        self.meta.status
    }

    /// True if `status` has `FLAG_INCOMPLETE`.
    pub fn is_incomplete(&self) -> bool {
        self.meta.status & FLAG_INCOMPLETE != 0
    }

    /// The VMCOREINFO text the sub header points at inside the note copy (or, failing that, the
    /// VMCOREINFO note found in the copy), parsed.
    pub fn vmcoreinfo(&self) -> Option<VmcoreInfo> {
        let notes = &self.meta.notes;
        let by_offset = self
            .sub
            .offset_vmcoreinfo
            .checked_sub(self.sub.offset_note)
            .and_then(|start| u64::try_from(start).ok())
            .filter(|_| self.sub.size_vmcoreinfo > 0 && self.sub.offset_note > 0)
            .and_then(|start| {
                let end = start.checked_add(self.sub.size_vmcoreinfo)?;
                notes.get(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
            });
        let text = match by_offset {
            Some(text) => text,
            None => notes.get(parse_notes(notes).ok()?.vmcoreinfo?)?,
        };
        Some(VmcoreInfo::parse(text))
    }

    /// The 1st bitmap ("is RAM"), `max_mapnr` bits.
    pub fn bitmap1(&self) -> &Bitmap {
        &self.bitmap1
    }

    /// The 2nd bitmap ("dumpable"), `max_mapnr` bits.
    pub fn bitmap2(&self) -> &Bitmap {
        &self.bitmap2
    }

    /// Index of `pfn`'s descriptor: set 2nd-bitmap bits below `pfn`.
    pub fn descriptor_index(&self, pfn: u64) -> u64 {
        self.rank.rank(&self.bitmap2, pfn)
    }

    /// Page descriptor number `index` (`index < num_dumpable`).
    pub fn descriptor(&self, index: u64) -> Result<PageDesc, KdumpError> {
        if index >= self.layout.num_dumpable {
            return Err(KdumpError::NoSuchDescriptor {
                path: self.path.clone(),
                index,
                num_dumpable: self.layout.num_dumpable,
            });
        }
        let mut raw = [0u8; PAGE_DESC_LEN as usize];
        read_at(
            &self.file,
            &self.path,
            self.layout.descriptor_offset(index),
            &mut raw,
        )?;
        Ok(PageDesc::decode(&raw))
    }

    /// Reads `pfn` the way crash does (2.7): 1st bit, 2nd bit, descriptor by rank, data.
    pub fn read_page(&self, pfn: u64) -> Result<PageRead, KdumpError> {
        if !self.bitmap1.get(pfn) {
            return Ok(PageRead::NotInDump);
        }
        if !self.bitmap2.get(pfn) {
            return Ok(PageRead::Excluded);
        }
        let index = self.descriptor_index(pfn);
        let desc = self.descriptor(index)?;
        self.page_data(pfn, index, &desc)
    }

    /// The data `desc` (descriptor `index`, of `pfn`) points at: `Lost` for offset 0, else the
    /// decoded page. Checks the offset lies in the data area and the size is 1..=block_size.
    pub fn page_data(&self, pfn: u64, index: u64, desc: &PageDesc) -> Result<PageRead, KdumpError> {
        if desc.offset == 0 {
            return Ok(PageRead::Lost);
        }
        let bad = |detail: String| KdumpError::BadDescriptor {
            path: self.path.clone(),
            pfn,
            index,
            detail,
        };
        let offset = u64::try_from(desc.offset)
            .ok()
            .filter(|&o| o >= self.layout.data_offset)
            .ok_or_else(|| {
                bad(format!(
                    "offset {:#x} is outside the page data area",
                    desc.offset
                ))
            })?;
        if desc.size == 0 || u64::from(desc.size) > self.layout.block_size {
            return Err(bad(format!(
                "size {} is not in 1..={}",
                desc.size, self.layout.block_size
            )));
        }
        if offset
            .checked_add(u64::from(desc.size))
            .is_none_or(|end| end > self.file_len)
        {
            return Err(bad(format!(
                "data at {offset:#x} + {} runs past the end of the file ({} bytes)",
                desc.size, self.file_len
            )));
        }
        let mut data = vec![0u8; desc.size as usize];
        read_at(&self.file, &self.path, offset, &mut data)?;
        let page = decompress_page(desc.flags, &data, self.layout.block_size as usize).map_err(
            |source| KdumpError::PageData {
                path: self.path.clone(),
                pfn,
                index,
                source: Box::new(source),
            },
        )?;
        Ok(PageRead::Data(page))
    }

    /// Every dumpable pfn with its descriptor, in ascending pfn (= descriptor) order.
    /// Descriptors are read 64 KiB at a time. Stops after the first error.
    pub fn pages(&self) -> impl Iterator<Item = Result<(u64, PageDesc), KdumpError>> + '_ {
        let mut ones = self.bitmap2.iter_ones();
        let mut index = 0u64;
        let mut buf: Vec<u8> = Vec::new();
        let mut buf_first = 0u64;
        let mut failed = false;
        std::iter::from_fn(move || {
            if failed {
                return None;
            }
            let pfn = ones.next()?;
            let buf_count = buf.len() as u64 / PAGE_DESC_LEN;
            if index < buf_first || index >= buf_first + buf_count {
                let count = DESC_BATCH
                    .min(self.layout.num_dumpable.saturating_sub(index))
                    .max(1);
                buf.resize((count * PAGE_DESC_LEN) as usize, 0);
                buf_first = index;
                if let Err(e) = read_at(
                    &self.file,
                    &self.path,
                    self.layout.descriptor_offset(index),
                    &mut buf,
                ) {
                    failed = true;
                    return Some(Err(e));
                }
            }
            let at = ((index - buf_first) * PAGE_DESC_LEN) as usize;
            let mut raw = [0u8; PAGE_DESC_LEN as usize];
            raw.copy_from_slice(&buf[at..at + PAGE_DESC_LEN as usize]);
            index += 1;
            Some(Ok((pfn, PageDesc::decode(&raw))))
        })
    }
}

/// Fills `buf` from `offset`; errors name the path and offset.
fn read_at(file: &File, path: &Path, offset: u64, buf: &mut [u8]) -> Result<(), KdumpError> {
    file.read_exact_at(buf, offset)
        .map_err(|source| KdumpError::Read {
            path: path.to_path_buf(),
            offset,
            len: buf.len() as u64,
            source,
        })
}
