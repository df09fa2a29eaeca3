//! `DumpWriter`: turns one verified stream of bitmaps and page chunks into a kdump-compressed file.
//!
//! The file is laid out as soon as the offer arrives (the shared docs/formats.md 2.1): headers with the
//! incomplete flag, then both bitmaps as they arrive, then one descriptor per dumpable page and
//! the page data in arrival order. A chunk is checked against its digest before a byte of it is
//! written; it becomes durable (and may be acknowledged) only at [`DumpWriter::commit`].
//!
//! Protocol version 1 sends chunks in index order (`PageChunk`, a sequential journal);
//! version 2 in any order (`SparseChunk`, an indexed journal, the durable state a set):
//! [`sparse`] holds what only version 2 does.

mod sparse;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crashdrop_formats::digest::{ChunkHasher, DigestVersion, DumpDigest};
use crashdrop_formats::kdump::{self, KdumpLayout, KdumpMeta, PageDesc};
use crashdrop_formats::parse_notes;
use crashdrop_proto::{
    BitmapKind, BitmapPiece, ChunkRanges, Complete, DumpId, DumpManifest, ErrorCode, HostName,
    PageChunk, PageData,
};
use sha2::{Digest, Sha256};

use super::progress::JournalFormat;
use super::{
    now_rfc3339, open_private, sync_dir, ChunkRecord, DumpRecord, DumpState, Lease,
    ProgressJournal, StoreCompression, StoreError,
};

/// Why a write did not happen: the peer's fault (answered with an error frame) or ours.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{message}")]
    Rejected { code: ErrorCode, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl WriteError {
    pub fn rejected(code: ErrorCode, message: impl Into<String>) -> WriteError {
        WriteError::Rejected {
            code,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> WriteError {
        WriteError::rejected(ErrorCode::Internal, message)
    }
}

/// How often `dump.json` is refreshed during a transfer (it is informative; `progress` is the
/// durable truth).
const RECORD_REFRESH: Duration = Duration::from_secs(2);

/// Which bitmap byte the next `BitmapPiece` must start at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BitmapCursor {
    At(BitmapKind, u64),
    Done,
}

/// The digest that identifies a whole `Offer`: SHA-256 of `crashdrop-offer-digest-v1` and the
/// frame's encoding. A resume continues a transfer only for an identical offer (every field,
/// the notes included), because the file's layout follows from all of them.
pub fn offer_digest(manifest: &DumpManifest) -> Result<[u8; 32], WriteError> {
    use tokio_util::codec::Encoder;
    let mut bytes = bytes::BytesMut::new();
    crashdrop_proto::FrameCodec
        .encode(crashdrop_proto::Frame::Offer(manifest.clone()), &mut bytes)
        .map_err(|e| WriteError::rejected(ErrorCode::InvalidManifest, e.to_string()))?;
    let mut sha = Sha256::new();
    sha.update(b"crashdrop-offer-digest-v1");
    sha.update(&bytes);
    Ok(sha.finalize().into())
}

/// Checks everything about an offer that must hold before anything is created on disk.
pub fn check_offer(manifest: &DumpManifest) -> Result<KdumpLayout, WriteError> {
    manifest
        .validate()
        .map_err(|e| WriteError::rejected(ErrorCode::InvalidManifest, e.to_string()))?;
    let notes = parse_notes(&manifest.notes)
        .map_err(|e| WriteError::rejected(ErrorCode::InvalidManifest, format!("notes: {e}")))?;
    if notes.vmcoreinfo.is_none() {
        return Err(WriteError::rejected(
            ErrorCode::InvalidManifest,
            "notes: no VMCOREINFO note (crash needs it to open the dump)",
        ));
    }
    KdumpLayout::new(
        u64::from(manifest.page_size),
        manifest.notes.len() as u64,
        manifest.max_mapnr,
        manifest.num_dumpable,
    )
    .map_err(|e| WriteError::rejected(ErrorCode::InvalidManifest, e.to_string()))
}

pub struct DumpWriter {
    location: String,
    vmcore_path: PathBuf,
    vmcore: File,
    progress_path: PathBuf,
    record_path: PathBuf,
    layout: KdumpLayout,
    meta: KdumpMeta,
    dump_id: DumpId,
    offer_digest: [u8; 32],
    page_size: usize,
    pages_per_chunk: u64,
    compression: StoreCompression,
    /// Stored bytes and flags of a zero page when the dump level keeps zero pages as data.
    zero_page_data: Option<(Vec<u8>, u32)>,
    bitmap_cursor: BitmapCursor,
    bitmap_shas: Option<[[u8; 32]; 2]>,
    journal: Option<ProgressJournal>,
    /// The digests (and so the protocol version) this dump is received with.
    digest_version: DigestVersion,
    /// Chunks in the dump: `ceil(num_dumpable / pages_per_chunk)`.
    num_chunks: u64,
    /// Chunks written but not yet durable.
    pending: Vec<ChunkRecord>,
    /// Chunk indices whose record is in the journal (version 1: always a prefix).
    durable_set: ChunkRanges,
    /// Version 2: chunks durable or written in this session (each may come once).
    seen: ChunkRanges,
    /// Version 1: the next page index expected.
    next_page: u64,
    /// Pages durably stored (version 1: every page below this index).
    durable_pages: u64,
    data_end: u64,
    record: DumpRecord,
    last_record_save: Instant,
    /// Set when an fsync failed: the kernel may have dropped the dirty pages and a second fsync
    /// can succeed without writing them, so nothing written since the last durable point may
    /// ever be journalled. The next session resends from there.
    sync_failed: bool,
    _lease: Option<Lease>,
}

impl DumpWriter {
    /// Creates the dump's files from scratch, for an offer `check_offer` accepted with `layout`.
    pub fn create(
        dir: &Path,
        location: &str,
        host: &HostName,
        manifest: &DumpManifest,
        layout: KdumpLayout,
        compression: StoreCompression,
        digest_version: DigestVersion,
    ) -> Result<DumpWriter, WriteError> {
        // An old journal must be gone (durably) before the file it describes is truncated, or a
        // crash in between would let it vouch for pages the new file does not hold.
        let progress_path = dir.join("progress");
        if progress_path.exists() {
            std::fs::remove_file(&progress_path).map_err(|source| StoreError::Io {
                path: progress_path.clone(),
                source,
            })?;
            sync_dir(dir)?;
        }
        let vmcore_path = dir.join("vmcore");
        let vmcore = open_private(&vmcore_path, true)?;
        let now = now_rfc3339();
        let record = DumpRecord {
            host: host.as_str().to_owned(),
            dump_id: manifest.dump_id.to_hex(),
            kernel_release: manifest.release(),
            crash_time: (manifest.crash_time > 0).then_some(manifest.crash_time),
            crash_time_utc: (manifest.crash_time > 0)
                .then(|| super::crash_time_dir_name(manifest.crash_time))
                .flatten(),
            dump_level: manifest.dump_level,
            page_size: manifest.page_size,
            max_mapnr: manifest.max_mapnr,
            pages: manifest.num_dumpable,
            pages_per_chunk: manifest.pages_per_chunk,
            pages_stored: 0,
            bytes_on_wire: 0,
            bytes_on_disk: 0,
            store_compression: compression.as_str().to_owned(),
            digest: None,
            state: DumpState::Receiving,
            failure: None,
            interrupted: None,
            created: now.clone(),
            updated: now,
            sessions: 1,
            kernel_log: None,
            kernel_log_error: None,
            offer_digest: Some(to_hex(&offer_digest(manifest)?)),
            digest_version: Some(digest_version.as_u8()),
            crash: None,
            unknown: serde_json::Map::new(),
        };
        let writer = DumpWriter::assemble(dir, location, manifest, layout, vmcore, record)?;
        writer.write_layout()?;
        // dump.json only ever describes a file whose headers are on disk.
        writer.sync()?;
        writer.record.save(&writer.record_path)?;
        Ok(writer)
    }

    /// Reopens a dump in transfer. `None` when the new offer is not identical to the one the
    /// dump was started with, or comes in the other protocol version (the caller then starts
    /// it over).
    pub fn resume(
        dir: &Path,
        location: &str,
        mut record: DumpRecord,
        manifest: &DumpManifest,
        layout: KdumpLayout,
        digest_version: DigestVersion,
    ) -> Result<Option<DumpWriter>, WriteError> {
        // The whole offer, not a few fields: the notes' length alone moves the file's layout.
        // A record from before offer digests existed cannot prove it, so it starts over too.
        let offered = to_hex(&offer_digest(manifest)?);
        let vmcore_path = dir.join("vmcore");
        if record.offer_digest.as_deref() != Some(offered.as_str()) || !vmcore_path.is_file() {
            tracing::info!(
                location,
                "offer differs from the one this dump was started with; receiving it again"
            );
            return Ok(None);
        }
        if record.digest_version() != digest_version {
            // Its journal records and digests are those of the other version.
            tracing::info!(
                location,
                stored = record.digest_version().as_u8(),
                offered = digest_version.as_u8(),
                "dump was begun in another protocol version; receiving it again"
            );
            return Ok(None);
        }
        let vmcore = open_private(&vmcore_path, false)?;
        record.sessions = record.sessions.saturating_add(1);
        let mut writer = DumpWriter::assemble(dir, location, manifest, layout, vmcore, record)?;
        let opened = if writer.progress_path.exists() {
            match ProgressJournal::open(&writer.progress_path) {
                Ok(opened)
                    if opened.offer_digest == writer.offer_digest
                        && opened.format == writer.journal_format() =>
                {
                    Some(opened)
                }
                Ok(_) | Err(StoreError::Corrupt { .. }) => {
                    // A torn header (power cut while it was created by an older receiver), a
                    // foreign file, or a journal of another offer: nothing of it is durable.
                    tracing::warn!(
                        location,
                        path = %writer.progress_path.display(),
                        "progress journal unusable; receiving the bitmaps and pages again"
                    );
                    std::fs::remove_file(&writer.progress_path).map_err(|source| {
                        StoreError::Io {
                            path: writer.progress_path.clone(),
                            source,
                        }
                    })?;
                    sync_dir(dir)?;
                    None
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            None
        };
        if let Some(opened) = opened {
            let data_start = writer.data_end;
            let file_len = writer
                .vmcore
                .metadata()
                .map_err(|source| StoreError::Io {
                    path: writer.vmcore_path.clone(),
                    source,
                })?
                .len();
            let data_end = opened.last.map_or(data_start, |r| r.data_end);
            let durable_set = match opened.format {
                JournalFormat::Sequential => Some(ChunkRanges::prefix(opened.chunks)),
                JournalFormat::Indexed => writer.read_durable_set(data_start)?,
            };
            let Some(durable_set) = durable_set else {
                // Logged by read_durable_set: the records cannot describe this dump.
                return Ok(None);
            };
            if data_end < data_start || data_end > file_len {
                // The journal claims data the file does not hold: trust neither, start over.
                tracing::warn!(
                    location,
                    data_end,
                    file_len,
                    "progress journal inconsistent with vmcore; receiving this dump again from the start"
                );
                return Ok(None);
            }
            writer.data_end = data_end;
            writer.next_page = writer.pages_in(&durable_set);
            writer.durable_pages = writer.next_page;
            writer.seen = durable_set.clone();
            writer.durable_set = durable_set;
            writer.bitmap_cursor = BitmapCursor::Done;
            writer.bitmap_shas = Some(opened.bitmap_shas);
            writer.journal = Some(opened.journal);
        }
        // The headers depend only on the manifest and the recorded compression: rewrite them, in
        // case the first session died before they reached the disk.
        writer.write_layout()?;
        // Whatever lies past the durable data was never acknowledged: cut it off, so the file
        // only ever holds acknowledged pages plus what this session writes.
        writer
            .vmcore
            .set_len(writer.data_end)
            .map_err(|source| StoreError::Io {
                path: writer.vmcore_path.clone(),
                source,
            })?;
        writer.record.pages_stored = writer.durable_pages;
        writer.record.save(&writer.record_path)?;
        Ok(Some(writer))
    }

    fn assemble(
        dir: &Path,
        location: &str,
        manifest: &DumpManifest,
        layout: KdumpLayout,
        vmcore: File,
        record: DumpRecord,
    ) -> Result<DumpWriter, WriteError> {
        let compression = match record.store_compression.as_str() {
            "zlib" => StoreCompression::Zlib,
            _ => StoreCompression::Zstd,
        };
        let compression_flag = match compression {
            StoreCompression::Zstd => kdump::FLAG_ZSTD,
            StoreCompression::Zlib => kdump::FLAG_ZLIB,
        };
        let page_size = manifest.page_size as usize;
        let zero_page_data = if manifest.dump_level & 1 == 0 {
            // Without the zero bit makedumpfile stores zero pages compressed like any other.
            let zeros = vec![0u8; page_size];
            Some(compress_for_store(compression, &zeros)?)
        } else {
            None
        };
        let meta = KdumpMeta {
            utsname: *manifest.utsname,
            crash_time: manifest.crash_time,
            status: compression_flag | kdump::FLAG_INCOMPLETE,
            block_size: manifest.page_size,
            max_mapnr: manifest.max_mapnr,
            nr_cpus: manifest.nr_cpus,
            phys_base: manifest.phys_base,
            dump_level: u32::from(manifest.dump_level),
            notes: manifest.notes.to_vec(),
            num_dumpable: manifest.num_dumpable,
        };
        let data_end = layout.data_offset + page_size as u64;
        let digest_version = record.digest_version();
        let pages_per_chunk = u64::from(manifest.pages_per_chunk.max(1));
        Ok(DumpWriter {
            location: location.to_owned(),
            vmcore_path: dir.join("vmcore"),
            vmcore,
            progress_path: dir.join("progress"),
            record_path: dir.join("dump.json"),
            layout,
            meta,
            dump_id: manifest.dump_id,
            offer_digest: offer_digest(manifest)?,
            page_size,
            pages_per_chunk,
            compression,
            zero_page_data,
            bitmap_cursor: BitmapCursor::At(BitmapKind::First, 0),
            bitmap_shas: None,
            journal: None,
            digest_version,
            num_chunks: manifest.num_dumpable.div_ceil(pages_per_chunk),
            pending: Vec::new(),
            durable_set: ChunkRanges::new(),
            seen: ChunkRanges::new(),
            next_page: 0,
            durable_pages: 0,
            data_end,
            record,
            last_record_save: Instant::now(),
            sync_failed: false,
            _lease: None,
        })
    }

    pub(super) fn with_lease(mut self, lease: Lease) -> DumpWriter {
        self._lease = Some(lease);
        self
    }

    /// The dump's directory relative to the store root.
    pub fn location(&self) -> &str {
        &self.location
    }

    pub fn bitmaps_stored(&self) -> bool {
        self.journal.is_some()
    }

    /// Pages durably stored (version 1: the first page index not durably stored).
    pub fn durable_pages(&self) -> u64 {
        self.durable_pages
    }

    /// The digests (and protocol version) this dump is received with.
    pub fn digest_version(&self) -> DigestVersion {
        self.digest_version
    }

    fn journal_format(&self) -> JournalFormat {
        match self.digest_version {
            DigestVersion::V1 => JournalFormat::Sequential,
            DigestVersion::V2 => JournalFormat::Indexed,
        }
    }

    /// Pages in the chunks of `set` (the last chunk may be short).
    fn pages_in(&self, set: &ChunkRanges) -> u64 {
        let last = self.num_chunks.saturating_sub(1);
        let short = self.num_chunks * self.pages_per_chunk - self.meta.num_dumpable;
        let full = set.len().saturating_mul(self.pages_per_chunk);
        if self.num_chunks > 0 && set.contains(last) {
            full - short
        } else {
            full
        }
    }

    fn write_at(&self, bytes: &[u8], offset: u64) -> Result<(), StoreError> {
        self.vmcore
            .write_all_at(bytes, offset)
            .map_err(|source| StoreError::Io {
                path: self.vmcore_path.clone(),
                source,
            })
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.vmcore.sync_data().map_err(|source| StoreError::Io {
            path: self.vmcore_path.clone(),
            source,
        })
    }

    /// Headers (with the incomplete flag), sub header, notes and the shared zero block at the
    /// start of the data area (the shared docs/docs/formats.md 2.7): everything that depends only on the offer.
    fn write_layout(&self) -> Result<(), WriteError> {
        self.write_headers()?;
        let zeros = vec![0u8; self.page_size];
        self.write_at(&zeros, self.layout.data_offset)
            .map_err(too_large_is_invalid)?;
        Ok(())
    }

    fn write_headers(&self) -> Result<(), WriteError> {
        let main = kdump::encode_main_header(&self.meta, &self.layout);
        self.write_at(&main, 0)?;
        let sub = kdump::encode_sub_header_area(&self.meta, &self.layout)
            .map_err(|e| WriteError::rejected(ErrorCode::InvalidManifest, e.to_string()))?;
        self.write_at(&sub, self.layout.block_size)?;
        Ok(())
    }

    /// Stores one piece of a bitmap; pieces must arrive in order (docs/protocol.md).
    pub fn write_bitmap_piece(&mut self, piece: &BitmapPiece) -> Result<(), WriteError> {
        let protocol = |m: String| WriteError::rejected(ErrorCode::Protocol, m);
        let BitmapCursor::At(kind, offset) = self.bitmap_cursor else {
            return Err(protocol(
                "BitmapPiece after the bitmaps were complete".into(),
            ));
        };
        if piece.bitmap != kind || piece.offset != offset {
            return Err(protocol(format!(
                "BitmapPiece out of order: expected {kind:?} bitmap at byte {offset}, got {:?} at {}",
                piece.bitmap, piece.offset
            )));
        }
        let len = self.layout.bitmap_len;
        let end = offset
            .checked_add(piece.bytes.len() as u64)
            .filter(|end| *end <= len)
            .ok_or_else(|| {
                WriteError::rejected(
                    ErrorCode::InvalidManifest,
                    format!(
                        "BitmapPiece runs past the {len}-byte bitmap (offset {offset}, {} bytes)",
                        piece.bytes.len()
                    ),
                )
            })?;
        let base = match kind {
            BitmapKind::First => self.layout.bitmap1_offset,
            BitmapKind::Second => self.layout.bitmap2_offset,
        };
        self.write_at(&piece.bytes, base + offset)?;
        self.bitmap_cursor = match (kind, end == len) {
            (BitmapKind::First, true) => BitmapCursor::At(BitmapKind::Second, 0),
            (BitmapKind::Second, true) => BitmapCursor::At(BitmapKind::Second, len),
            (kind, false) => BitmapCursor::At(kind, end),
        };
        Ok(())
    }

    /// Checks the complete bitmaps against the offer and makes them durable.
    pub fn finish_bitmaps(&mut self) -> Result<(), WriteError> {
        let len = self.layout.bitmap_len;
        if self.bitmap_cursor != BitmapCursor::At(BitmapKind::Second, len) {
            return Err(WriteError::rejected(
                ErrorCode::Protocol,
                format!(
                    "BitmapsDone before both bitmaps were sent ({:?})",
                    self.bitmap_cursor
                ),
            ));
        }
        let shas = self.check_bitmaps()?;
        self.sync()?;
        self.journal = Some(ProgressJournal::create(
            &self.progress_path,
            &shas,
            &self.offer_digest,
            self.journal_format(),
        )?);
        self.bitmap_shas = Some(shas);
        self.bitmap_cursor = BitmapCursor::Done;
        Ok(())
    }

    /// Reads both bitmaps back in windows: 2nd ⊆ 1st, nothing set past `max_mapnr`, and the 2nd
    /// has exactly `num_dumpable` bits. Returns their SHA-256s.
    fn check_bitmaps(&self) -> Result<[[u8; 32]; 2], WriteError> {
        const WINDOW: u64 = 1 << 20;
        let invalid = |m: String| WriteError::rejected(ErrorCode::InvalidManifest, m);
        let len = self.layout.bitmap_len;
        let max_mapnr = self.meta.max_mapnr;
        let (mut sha1, mut sha2) = (Sha256::new(), Sha256::new());
        let mut ones = 0u64;
        let mut buf1 = vec![0u8; WINDOW.min(len) as usize];
        let mut buf2 = buf1.clone();
        let mut at = 0u64;
        while at < len {
            let n = WINDOW.min(len - at) as usize;
            let (b1, b2) = (&mut buf1[..n], &mut buf2[..n]);
            for (buf, base) in [
                (&mut *b1, self.layout.bitmap1_offset),
                (&mut *b2, self.layout.bitmap2_offset),
            ] {
                self.vmcore
                    .read_exact_at(buf, base + at)
                    .map_err(|source| StoreError::Io {
                        path: self.vmcore_path.clone(),
                        source,
                    })?;
            }
            for (i, (x1, x2)) in b1.iter().zip(b2.iter()).enumerate() {
                if x2 & !x1 != 0 {
                    let pfn = (at + i as u64) * 8 + u64::from((x2 & !x1).trailing_zeros());
                    return Err(invalid(format!(
                        "2nd bitmap marks pfn {pfn:#x} dumpable but the 1st bitmap does not have it"
                    )));
                }
                ones += u64::from(x2.count_ones());
            }
            sha1.update(&*b1);
            sha2.update(&*b2);
            at += n as u64;
        }
        // Bits for pfns >= max_mapnr live in the last byte only (bitmap_len = ceil(max_mapnr/8)).
        let tail_bits = max_mapnr % 8;
        if tail_bits != 0 {
            let last = buf1[((len - 1) % WINDOW) as usize] | buf2[((len - 1) % WINDOW) as usize];
            if last >> tail_bits != 0 {
                return Err(invalid(format!(
                    "a bitmap has bits set at or past max_mapnr {max_mapnr}"
                )));
            }
        }
        if ones != self.meta.num_dumpable {
            return Err(invalid(format!(
                "2nd bitmap has {ones} dumpable pages but the offer said num_dumpable = {}",
                self.meta.num_dumpable
            )));
        }
        Ok([sha1.finalize().into(), sha2.finalize().into()])
    }

    /// Verifies one version-1 chunk (the next in index order) and writes it (not yet
    /// durable). Returns its page-data bytes on the wire.
    pub fn write_chunk(&mut self, chunk: &PageChunk) -> Result<u64, WriteError> {
        let protocol = |m: String| WriteError::rejected(ErrorCode::Protocol, m);
        if self.journal.is_none() {
            return Err(protocol("PageChunk before BitmapsDone".into()));
        }
        if self.digest_version != DigestVersion::V1 {
            return Err(protocol(
                "PageChunk in a protocol version 2 session (send SparseChunk)".into(),
            ));
        }
        if chunk.first_page != self.next_page {
            return Err(protocol(format!(
                "PageChunk starts at page {}, expected page {}",
                chunk.first_page, self.next_page
            )));
        }
        let expected = self
            .pages_per_chunk
            .min(self.meta.num_dumpable - self.next_page);
        if chunk.pages.len() as u64 != expected {
            return Err(protocol(format!(
                "PageChunk at page {} has {} pages, expected {expected}",
                chunk.first_page,
                chunk.pages.len()
            )));
        }
        let wire_bytes = self.store_chunk(chunk.first_page, &chunk.pages, &chunk.chunk_digest)?;
        self.next_page += chunk.pages.len() as u64;
        Ok(wire_bytes)
    }

    /// Checks a chunk's pages (they decompress to whole pages and match `chunk_digest`, in this
    /// dump's digest version), then writes its page data at the data end and its descriptors at
    /// their fixed slots, and queues its journal record for the next commit. The caller checked
    /// that `first_page` starts a chunk this session may write and that the page count is right.
    fn store_chunk(
        &mut self,
        first_page: u64,
        pages: &[PageData],
        chunk_digest: &[u8; 32],
    ) -> Result<u64, WriteError> {
        let corrupt = |m: String| WriteError::rejected(ErrorCode::ChunkCorrupt, m);
        let mut hasher = ChunkHasher::with_version(self.digest_version);
        let mut data = Vec::with_capacity(pages.len() * self.page_size / 2);
        let mut descriptors = Vec::with_capacity(pages.len() * kdump::PAGE_DESC_LEN as usize);
        let mut wire_bytes = 0u64;
        for (i, page) in pages.iter().enumerate() {
            let index = first_page + i as u64;
            let (stored, flags): (std::borrow::Cow<'_, [u8]>, u32) = match page {
                PageData::Zero => {
                    hasher.update_zero_page(self.page_size);
                    match &self.zero_page_data {
                        None => {
                            let desc = PageDesc {
                                offset: self.layout.data_offset as i64,
                                size: self.page_size as u32,
                                flags: 0,
                                page_flags: 0,
                            };
                            descriptors.extend_from_slice(&desc.encode());
                            continue;
                        }
                        Some((bytes, flags)) => (bytes.as_slice().into(), *flags),
                    }
                }
                PageData::Raw(bytes) => {
                    wire_bytes += bytes.len() as u64;
                    if bytes.len() != self.page_size {
                        return Err(corrupt(format!(
                            "page {index}: raw page of {} bytes, page size is {}",
                            bytes.len(),
                            self.page_size
                        )));
                    }
                    hasher.update(bytes);
                    (bytes.as_ref().into(), 0)
                }
                PageData::Zstd(bytes) => {
                    wire_bytes += bytes.len() as u64;
                    if bytes.len() >= self.page_size {
                        // Stored as sent, it would break readers' size <= block_size rule.
                        return Err(corrupt(format!(
                            "page {index}: zstd page of {} bytes is not smaller than a page",
                            bytes.len()
                        )));
                    }
                    let page = kdump::decompress_page(kdump::FLAG_ZSTD, bytes, self.page_size)
                        .map_err(|e| corrupt(format!("page {index}: {e}")))?;
                    hasher.update(&page);
                    match self.compression {
                        StoreCompression::Zstd => (bytes.as_ref().into(), kdump::FLAG_ZSTD),
                        StoreCompression::Zlib => {
                            let (bytes, flags) = compress_for_store(self.compression, &page)?;
                            (bytes.into(), flags)
                        }
                    }
                }
            };
            let desc = PageDesc {
                offset: (self.data_end + data.len() as u64) as i64,
                size: stored.len() as u32,
                flags,
                page_flags: 0,
            };
            descriptors.extend_from_slice(&desc.encode());
            data.extend_from_slice(&stored);
        }
        let digest = hasher.finish();
        if &digest != chunk_digest {
            return Err(corrupt(format!(
                "chunk at page {first_page}: pages do not match the chunk digest"
            )));
        }
        self.write_at(&data, self.data_end)?;
        self.write_at(&descriptors, self.layout.descriptor_offset(first_page))?;
        self.data_end += data.len() as u64;
        self.pending.push(ChunkRecord {
            index: first_page / self.pages_per_chunk,
            digest,
            data_end: self.data_end,
        });
        self.record.bytes_on_wire += wire_bytes;
        Ok(wire_bytes)
    }

    /// Makes every written chunk durable; returns the page count now safe to acknowledge
    /// (version 1: every page below it).
    pub fn commit(&mut self) -> Result<u64, WriteError> {
        self.commit_pending()?;
        Ok(self.durable_pages)
    }

    /// Makes every written chunk durable: fsync `vmcore`, then append and fsync their journal
    /// records. Returns the chunks made durable.
    fn commit_pending(&mut self) -> Result<ChunkRanges, WriteError> {
        if self.sync_failed {
            return Err(WriteError::internal(
                "an earlier fsync of this dump failed; reconnect to resume from the last durable chunk",
            ));
        }
        let mut made = ChunkRanges::new();
        if self.pending.is_empty() {
            return Ok(made);
        }
        if let Err(e) = self.sync() {
            self.sync_failed = true;
            self.pending.clear();
            return Err(e.into());
        }
        let journal = self
            .journal
            .as_mut()
            .ok_or_else(|| WriteError::internal("commit without a progress journal"))?;
        journal.append(&self.pending)?;
        for r in self.pending.drain(..) {
            made.insert(r.index);
            self.durable_set.insert(r.index);
        }
        self.durable_pages = match self.digest_version {
            DigestVersion::V1 => self.next_page,
            DigestVersion::V2 => self.pages_in(&self.durable_set),
        };
        if self.last_record_save.elapsed() >= RECORD_REFRESH {
            self.save_record()?;
        }
        Ok(made)
    }

    fn save_record(&mut self) -> Result<(), StoreError> {
        self.record.pages_stored = self.durable_pages;
        self.record.bytes_on_disk = self.data_end;
        self.record.updated = now_rfc3339();
        self.last_record_save = Instant::now();
        self.record.save(&self.record_path)
    }

    /// Checks the whole-dump digest and, if it matches, marks the dump complete.
    pub fn finish(&mut self, dump_digest: &[u8; 32]) -> Result<Complete, WriteError> {
        let shas = self.bitmap_shas.ok_or_else(|| {
            WriteError::rejected(ErrorCode::Protocol, "Finish before the bitmaps")
        })?;
        let ours = match self.digest_version {
            DigestVersion::V1 => {
                if self.next_page != self.meta.num_dumpable {
                    return Err(WriteError::rejected(
                        ErrorCode::Protocol,
                        format!(
                            "Finish after {} of {} pages",
                            self.next_page, self.meta.num_dumpable
                        ),
                    ));
                }
                self.commit()?;
                let mut digest = DumpDigest::new(&self.dump_id.0, &shas[0], &shas[1]);
                ProgressJournal::for_each_record(&self.progress_path, |r| {
                    digest.push_chunk(&r.digest)
                })?;
                digest.finish()
            }
            DigestVersion::V2 => self.finish_digest_v2(&shas)?,
        };
        if &ours != dump_digest {
            let why = "whole-dump digest mismatch: the stored pages are not the sender's";
            self.fail(why)?;
            return Err(WriteError::rejected(ErrorCode::DigestMismatch, why));
        }
        self.meta.status &= !kdump::FLAG_INCOMPLETE;
        let main = kdump::encode_main_header(&self.meta, &self.layout);
        self.write_at(&main, 0)?;
        self.sync()?;
        let stored_bytes = self
            .vmcore
            .metadata()
            .map_err(|source| StoreError::Io {
                path: self.vmcore_path.clone(),
                source,
            })?
            .len();
        self.record.state = DumpState::Complete;
        self.record.interrupted = None;
        self.record.digest = Some(to_hex(&ours));
        self.data_end = stored_bytes;
        self.save_record()?;
        std::fs::remove_file(&self.progress_path).map_err(|source| StoreError::Io {
            path: self.progress_path.clone(),
            source,
        })?;
        if let Some(dir) = self.progress_path.parent() {
            sync_dir(dir)?;
            // The dump is complete and durable; its kernel log can only add to it (off this thread).
            super::extract_in_background(dir, &self.location);
        }
        Ok(Complete {
            stored_bytes,
            location: self.location.clone(),
        })
    }

    /// Records that this dump can never complete as sent (e.g. digest mismatch).
    pub fn fail(&mut self, why: &str) -> Result<(), StoreError> {
        self.record.state = DumpState::Failed;
        self.record.failure = Some(why.to_owned());
        self.save_record()
    }

    /// Makes what was written durable and records it, when a session ends early.
    /// `why`: the reason the session ended, recorded for `list` and `show`.
    pub fn suspend(&mut self, why: Option<String>) -> Result<(), WriteError> {
        if self.journal.is_some() && !self.sync_failed {
            self.commit()?;
        }
        if self.record.state == DumpState::Receiving {
            self.record.interrupted = why;
            self.save_record()?;
        }
        Ok(())
    }
}

/// A dump whose layout the store's filesystem cannot hold will never fit: refuse it for good
/// instead of letting the sender retry a storage error forever.
fn too_large_is_invalid(e: StoreError) -> WriteError {
    match &e {
        StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::FileTooLarge => {
            WriteError::rejected(
                ErrorCode::InvalidManifest,
                "the offered dump is larger than the receiver's filesystem allows for one file",
            )
        }
        _ => WriteError::Store(e),
    }
}

/// Compresses a page for the store; raw when compression does not make it smaller (2.7).
fn compress_for_store(
    compression: StoreCompression,
    page: &[u8],
) -> Result<(Vec<u8>, u32), WriteError> {
    let (bytes, flag) = match compression {
        StoreCompression::Zlib => (kdump::compress_zlib(page), kdump::FLAG_ZLIB),
        StoreCompression::Zstd => (
            zstd::bulk::compress(page, 1)
                .map_err(|e| WriteError::internal(format!("zstd compression failed: {e}")))?,
            kdump::FLAG_ZSTD,
        ),
    };
    if bytes.len() < page.len() {
        Ok((bytes, flag))
    } else {
        Ok((page.to_vec(), 0))
    }
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
