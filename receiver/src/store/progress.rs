//! The `progress` journal: what of a dump in transfer is durably on disk.
//!
//! Created once both bitmaps are durable, atomically (a temp file, fsync, rename, directory
//! fsync), so a `progress` file either holds a whole header or does not exist. The header names
//! the bitmaps' digests and the digest of the whole `Offer` it belongs to. One fixed-size record
//! is appended per durable chunk. A record is only appended after the chunk's page data and
//! descriptors were fsynced, so after any crash the journal never claims more than the `vmcore`
//! file holds. A torn last record (a crash mid-append) is ignored and cut off on reopen.
//!
//! Two record formats, told apart by the magic: a *sequential* journal (protocol version 1,
//! chunks in index order, so a record's index is its position: 40-byte records) and an
//! *indexed* one (protocol version 2, chunks in any order: each 48-byte record starts with its
//! chunk index, so the durable set is exactly the indices of the whole records).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::StoreError;

/// Version 2 added the offer digest; a version-1 journal reads as "bad magic" (nothing durable).
const MAGIC: &[u8; 32] = b"crashdrop-progress-v2\n\0\0\0\0\0\0\0\0\0\0";
/// Version 3: the same header, records carrying their chunk index (protocol-version-2 dumps).
const MAGIC_INDEXED: &[u8; 32] = b"crashdrop-progress-v3\n\0\0\0\0\0\0\0\0\0\0";
const HEADER_LEN: u64 = 32 + 32 + 32 + 32;
const RECORD_LEN: u64 = 32 + 8;
const INDEXED_RECORD_LEN: u64 = 8 + RECORD_LEN;
/// The longest record, for buffers.
const MAX_RECORD_LEN: usize = INDEXED_RECORD_LEN as usize;

/// How a journal's records say which chunk they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalFormat {
    /// Chunks in index order; a record's index is its position (protocol version 1).
    Sequential,
    /// Chunks in any order; each record names its index (protocol version 2).
    Indexed,
}

impl JournalFormat {
    fn magic(self) -> &'static [u8; 32] {
        match self {
            JournalFormat::Sequential => MAGIC,
            JournalFormat::Indexed => MAGIC_INDEXED,
        }
    }

    fn record_len(self) -> u64 {
        match self {
            JournalFormat::Sequential => RECORD_LEN,
            JournalFormat::Indexed => INDEXED_RECORD_LEN,
        }
    }
}

/// One durable chunk: its index, its digest and where page data ended after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRecord {
    pub index: u64,
    pub digest: [u8; 32],
    pub data_end: u64,
}

/// An existing journal as found on disk.
pub struct OpenedJournal {
    pub journal: ProgressJournal,
    /// SHA-256 of the 1st and 2nd bitmaps.
    pub bitmap_shas: [[u8; 32]; 2],
    /// The digest of the `Offer` this journal belongs to (see `writer::offer_digest`).
    pub offer_digest: [u8; 32],
    /// Whole records: chunks durably stored.
    pub chunks: u64,
    /// The last whole record.
    pub last: Option<ChunkRecord>,
    /// How the records name their chunks.
    pub format: JournalFormat,
}

/// The journal file, open for appending.
pub struct ProgressJournal {
    file: File,
    path: PathBuf,
    len: u64,
    format: JournalFormat,
}

impl ProgressJournal {
    /// Creates a fresh journal recording the bitmaps' and the offer's digests, durably and
    /// atomically: a crash leaves either no journal or one with its whole header.
    pub fn create(
        path: &Path,
        bitmap_shas: &[[u8; 32]; 2],
        offer_digest: &[u8; 32],
        format: JournalFormat,
    ) -> Result<ProgressJournal, StoreError> {
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(format.magic());
        header.extend_from_slice(&bitmap_shas[0]);
        header.extend_from_slice(&bitmap_shas[1]);
        header.extend_from_slice(offer_digest);
        super::write_durably(path, &header)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| StoreError::Io {
                path: path.to_owned(),
                source,
            })?;
        Ok(ProgressJournal {
            file,
            path: path.to_owned(),
            len: HEADER_LEN,
            format,
        })
    }

    /// Opens an existing journal: its header and last record only, so that reopening costs the
    /// same for any size of dump. A torn last record is cut off.
    pub fn open(path: &Path) -> Result<OpenedJournal, StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_owned(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        let (bitmap_shas, offer_digest, format) = read_header(&file, path)?;
        let record_len = format.record_len();
        let file_len = file.metadata().map_err(io)?.len();
        let chunks = file_len.saturating_sub(HEADER_LEN) / record_len;
        let len = HEADER_LEN + record_len * chunks;
        if len != file_len {
            // A torn record from a crash mid-append: it was never acknowledged, drop it.
            file.set_len(len).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let last = match chunks {
            0 => None,
            n => {
                let mut bytes = [0u8; MAX_RECORD_LEN];
                let bytes = &mut bytes[..record_len as usize];
                file.read_exact_at(bytes, HEADER_LEN + record_len * (n - 1))
                    .map_err(io)?;
                Some(decode_record(format, bytes, n - 1))
            }
        };
        Ok(OpenedJournal {
            journal: ProgressJournal {
                file,
                path: path.to_owned(),
                len,
                format,
            },
            bitmap_shas,
            offer_digest,
            chunks,
            last,
            format,
        })
    }

    /// Calls `f` on every whole record in order, reading the file in bounded windows.
    pub fn for_each_record(
        path: &Path,
        mut f: impl FnMut(&ChunkRecord),
    ) -> Result<u64, StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let (_, _, format) = read_header(&file, path)?;
        file.seek(SeekFrom::Start(HEADER_LEN)).map_err(io)?;
        let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
        let mut bytes = [0u8; MAX_RECORD_LEN];
        let bytes = &mut bytes[..format.record_len() as usize];
        let mut count = 0u64;
        loop {
            match reader.read_exact(bytes) {
                Ok(()) => {
                    f(&decode_record(format, bytes, count));
                    count += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(count),
                Err(e) => return Err(io(e)),
            }
        }
    }

    /// Appends records and makes them durable.
    pub fn append(&mut self, records: &[ChunkRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(records.len() * MAX_RECORD_LEN);
        for r in records {
            if self.format == JournalFormat::Indexed {
                bytes.extend_from_slice(&r.index.to_le_bytes());
            }
            bytes.extend_from_slice(&r.digest);
            bytes.extend_from_slice(&r.data_end.to_le_bytes());
        }
        let io = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all_at(&bytes, self.len).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.len += bytes.len() as u64;
        Ok(())
    }
}

/// A journal's header: both bitmaps' digests, the offer digest and the record format.
type Header = ([[u8; 32]; 2], [u8; 32], JournalFormat);

/// Checks the magic; returns the bitmaps' digests, the offer digest and the record format. A
/// short header or a bad magic is `StoreError::Corrupt`: the caller treats it as "nothing
/// durable".
fn read_header(file: &File, path: &Path) -> Result<Header, StoreError> {
    let corrupt = |why: &str| StoreError::Corrupt {
        path: path.to_owned(),
        why: why.to_owned(),
    };
    let mut header = [0u8; HEADER_LEN as usize];
    file.read_exact_at(&mut header, 0)
        .map_err(|_| corrupt("shorter than its header"))?;
    let format = match &header[..32] {
        m if m == MAGIC => JournalFormat::Sequential,
        m if m == MAGIC_INDEXED => JournalFormat::Indexed,
        _ => return Err(corrupt("not a crashdrop progress journal (bad magic)")),
    };
    let mut shas = [[0u8; 32]; 2];
    shas[0].copy_from_slice(&header[32..64]);
    shas[1].copy_from_slice(&header[64..96]);
    let mut offer = [0u8; 32];
    offer.copy_from_slice(&header[96..128]);
    Ok((shas, offer, format))
}

/// One record of `format` (`bytes` is exactly its length); `position` is its place in the
/// journal, the index of a sequential record.
fn decode_record(format: JournalFormat, bytes: &[u8], position: u64) -> ChunkRecord {
    let le = |b: &[u8]| {
        let mut n = [0u8; 8];
        n.copy_from_slice(b);
        u64::from_le_bytes(n)
    };
    let (index, rest) = match format {
        JournalFormat::Sequential => (position, bytes),
        JournalFormat::Indexed => (le(&bytes[..8]), &bytes[8..]),
    };
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&rest[..32]);
    ChunkRecord {
        index,
        digest,
        data_end: le(&rest[32..40]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u8) -> ChunkRecord {
        ChunkRecord {
            index: u64::from(n) - 1,
            digest: [n; 32],
            data_end: 1000 + u64::from(n),
        }
    }

    #[test]
    fn journal_round_trips_and_drops_a_torn_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("progress");
        let mut journal = ProgressJournal::create(
            &path,
            &[[1; 32], [2; 32]],
            &[3; 32],
            JournalFormat::Sequential,
        )
        .expect("create");
        journal.append(&[record(1), record(2)]).expect("append");
        drop(journal);
        // Simulate a crash in the middle of appending a third record.
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        use std::io::Write;
        f.write_all(&[9; 17]).expect("torn write");
        drop(f);

        let mut opened = ProgressJournal::open(&path).expect("open");
        assert_eq!(opened.bitmap_shas, [[1; 32], [2; 32]]);
        assert_eq!(opened.offer_digest, [3; 32]);
        assert_eq!((opened.chunks, opened.last), (2, Some(record(2))));
        opened
            .journal
            .append(&[record(3)])
            .expect("append after reopen");
        let mut all = Vec::new();
        let count = ProgressJournal::for_each_record(&path, |r| all.push(*r)).expect("read all");
        assert_eq!(count, 3);
        assert_eq!(all, vec![record(1), record(2), record(3)]);
    }

    #[test]
    fn indexed_records_keep_their_chunk_index_and_a_torn_one_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("progress");
        let mut journal =
            ProgressJournal::create(&path, &[[1; 32], [2; 32]], &[3; 32], JournalFormat::Indexed)
                .expect("create");
        let out_of_order = [
            ChunkRecord {
                index: 7,
                digest: [1; 32],
                data_end: 10,
            },
            ChunkRecord {
                index: 0,
                digest: [2; 32],
                data_end: 20,
            },
            ChunkRecord {
                index: 3,
                digest: [3; 32],
                data_end: 30,
            },
        ];
        journal.append(&out_of_order).expect("append");
        drop(journal);
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        use std::io::Write;
        f.write_all(&[9; 47]).expect("torn write");
        drop(f);
        let opened = ProgressJournal::open(&path).expect("open");
        assert_eq!(opened.format, JournalFormat::Indexed);
        assert_eq!((opened.chunks, opened.last), (3, Some(out_of_order[2])));
        let mut all = Vec::new();
        ProgressJournal::for_each_record(&path, |r| all.push(*r)).expect("read all");
        assert_eq!(all, out_of_order.to_vec());
    }

    #[test]
    fn a_foreign_file_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("progress");
        std::fs::write(&path, vec![0u8; 200]).expect("write");
        let err = ProgressJournal::open(&path).err().expect("must refuse");
        assert!(err.to_string().contains("progress"), "{err}");
    }

    #[test]
    fn create_leaves_no_temp_file_and_a_whole_header() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("progress");
        // A torn journal from an earlier power cut is replaced, not appended to.
        std::fs::write(&path, b"").expect("empty journal");
        ProgressJournal::create(&path, &[[4; 32], [5; 32]], &[6; 32], JournalFormat::Indexed)
            .expect("create");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("progress")]);
        assert_eq!(
            std::fs::metadata(&path).expect("stat").len(),
            HEADER_LEN,
            "exactly one whole header"
        );
        let opened = ProgressJournal::open(&path).expect("open");
        assert_eq!((opened.chunks, opened.offer_digest), (0, [6; 32]));
    }

    #[test]
    fn a_short_or_version_1_journal_is_corrupt_not_an_io_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("progress");
        let mut v1 = b"crashdrop-progress-v1\n".to_vec();
        v1.resize(96, 0);
        for bytes in [Vec::new(), vec![0u8; 50], v1] {
            std::fs::write(&path, &bytes).expect("write");
            let err = ProgressJournal::open(&path).err().expect("must refuse");
            assert!(
                matches!(err, StoreError::Corrupt { .. }),
                "{} bytes: {err}",
                bytes.len()
            );
        }
    }
}
