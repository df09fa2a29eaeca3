//! The `progress` journal: what of a dump in transfer is durably on disk.
//!
//! Created once both bitmaps are durable; one fixed-size record is appended per durable chunk.
//! A record is only appended after the chunk's page data and descriptors were fsynced, so after
//! any crash the journal never claims more than the `vmcore` file holds. A torn last record (a
//! crash mid-append) is ignored and cut off on reopen.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::StoreError;

const MAGIC: &[u8; 32] = b"crashdrop-progress-v1\n\0\0\0\0\0\0\0\0\0\0";
const HEADER_LEN: u64 = 32 + 32 + 32;
const RECORD_LEN: u64 = 32 + 8;

/// One durable chunk: its digest and where page data ended after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRecord {
    pub digest: [u8; 32],
    pub data_end: u64,
}

/// An existing journal as found on disk.
pub struct OpenedJournal {
    pub journal: ProgressJournal,
    /// SHA-256 of the 1st and 2nd bitmaps.
    pub bitmap_shas: [[u8; 32]; 2],
    /// Whole records: chunks durably stored.
    pub chunks: u64,
    /// The last whole record.
    pub last: Option<ChunkRecord>,
}

/// The journal file, open for appending.
pub struct ProgressJournal {
    file: File,
    path: PathBuf,
    len: u64,
}

impl ProgressJournal {
    /// Creates a fresh journal recording the bitmaps' digests, durably.
    pub fn create(
        path: &Path,
        bitmap1_sha256: &[u8; 32],
        bitmap2_sha256: &[u8; 32],
    ) -> Result<ProgressJournal, StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = super::open_private(path, true)?;
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(bitmap1_sha256);
        header.extend_from_slice(bitmap2_sha256);
        file.write_all(&header).map_err(io)?;
        file.sync_all().map_err(io)?;
        if let Some(dir) = path.parent() {
            super::sync_dir(dir)?;
        }
        Ok(ProgressJournal {
            file,
            path: path.to_owned(),
            len: HEADER_LEN,
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
        let bitmap_shas = read_header(&file, path)?;
        let file_len = file.metadata().map_err(io)?.len();
        let chunks = file_len.saturating_sub(HEADER_LEN) / RECORD_LEN;
        let len = HEADER_LEN + RECORD_LEN * chunks;
        if len != file_len {
            // A torn record from a crash mid-append: it was never acknowledged, drop it.
            file.set_len(len).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let last = match chunks {
            0 => None,
            n => {
                let mut bytes = [0u8; RECORD_LEN as usize];
                file.read_exact_at(&mut bytes, HEADER_LEN + RECORD_LEN * (n - 1))
                    .map_err(io)?;
                Some(decode_record(&bytes))
            }
        };
        Ok(OpenedJournal {
            journal: ProgressJournal {
                file,
                path: path.to_owned(),
                len,
            },
            bitmap_shas,
            chunks,
            last,
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
        read_header(&file, path)?;
        file.seek(SeekFrom::Start(HEADER_LEN)).map_err(io)?;
        let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
        let mut bytes = [0u8; RECORD_LEN as usize];
        let mut count = 0u64;
        loop {
            match reader.read_exact(&mut bytes) {
                Ok(()) => {
                    f(&decode_record(&bytes));
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
        let mut bytes = Vec::with_capacity(records.len() * RECORD_LEN as usize);
        for r in records {
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

/// Checks the magic; returns the bitmaps' digests.
fn read_header(file: &File, path: &Path) -> Result<[[u8; 32]; 2], StoreError> {
    let corrupt = |why: &str| StoreError::Corrupt {
        path: path.to_owned(),
        why: why.to_owned(),
    };
    let mut header = [0u8; HEADER_LEN as usize];
    file.read_exact_at(&mut header, 0)
        .map_err(|_| corrupt("shorter than its header"))?;
    if &header[..32] != MAGIC {
        return Err(corrupt("not a crashdrop progress journal (bad magic)"));
    }
    let mut shas = [[0u8; 32]; 2];
    shas[0].copy_from_slice(&header[32..64]);
    shas[1].copy_from_slice(&header[64..96]);
    Ok(shas)
}

fn decode_record(bytes: &[u8; RECORD_LEN as usize]) -> ChunkRecord {
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&bytes[..32]);
    let mut end = [0u8; 8];
    end.copy_from_slice(&bytes[32..40]);
    ChunkRecord {
        digest,
        data_end: u64::from_le_bytes(end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u8) -> ChunkRecord {
        ChunkRecord {
            digest: [n; 32],
            data_end: 1000 + u64::from(n),
        }
    }

    #[test]
    fn journal_round_trips_and_drops_a_torn_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("progress");
        let mut journal = ProgressJournal::create(&path, &[1; 32], &[2; 32]).expect("create");
        journal.append(&[record(1), record(2)]).expect("append");
        drop(journal);
        // Simulate a crash in the middle of appending a third record.
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(&[9; 17]).expect("torn write");
        drop(f);

        let mut opened = ProgressJournal::open(&path).expect("open");
        assert_eq!(opened.bitmap_shas, [[1; 32], [2; 32]]);
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
    fn a_foreign_file_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("progress");
        std::fs::write(&path, vec![0u8; 200]).expect("write");
        let err = ProgressJournal::open(&path).err().expect("must refuse");
        assert!(err.to_string().contains("progress"), "{err}");
    }
}
