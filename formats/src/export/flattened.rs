//! The flattened format (formats.md section 3): every positioned write of a kdump-compressed
//! file becomes a record `(offset, size, bytes)` appended to a stream, so the file can go down a
//! pipe; `makedumpfile -R FILE` (or crash itself) replays the records into the seekable file.

use super::{ExportError, PositionedSink};

/// Length of the start header.
pub const START_HEADER_LEN: usize = 4096;
/// Length of a record header and of the end marker.
pub const RECORD_HEADER_LEN: usize = 16;
/// `signature`: "makedumpfile" and four NULs.
pub const SIGNATURE: [u8; 16] = *b"makedumpfile\0\0\0\0";
/// `type`: TYPE_FLAT_HEADER.
pub const FLAT_TYPE: i64 = 1;
/// `version`: VERSION_FLAT_HEADER.
pub const FLAT_VERSION: i64 = 1;
/// Largest payload of one record. The rebuild counts with a 32-bit int (3.6); makedumpfile's
/// own records are at most 64 KiB plus a page, and readers may buffer a whole record.
pub const MAX_RECORD: usize = 1 << 20;

/// The 4096-byte start header (3.3): signature, big-endian type and version, zeros.
pub fn start_header() -> [u8; START_HEADER_LEN] {
    let mut h = [0u8; START_HEADER_LEN];
    h[..16].copy_from_slice(&SIGNATURE);
    h[16..24].copy_from_slice(&FLAT_TYPE.to_be_bytes());
    h[24..32].copy_from_slice(&FLAT_VERSION.to_be_bytes());
    h
}

/// A record header (3.4): destination offset and payload size, both big-endian i64.
pub fn record_header(offset: u64, size: u64) -> [u8; RECORD_HEADER_LEN] {
    let mut h = [0u8; RECORD_HEADER_LEN];
    h[..8].copy_from_slice(&offset.to_be_bytes());
    h[8..].copy_from_slice(&size.to_be_bytes());
    h
}

/// The end marker (3.5): offset and size both -1.
pub const END_MARKER: [u8; RECORD_HEADER_LEN] = [0xff; RECORD_HEADER_LEN];

/// Turns positioned writes into flattened records appended to `inner` (any sink: records are
/// written at growing offsets only, so a pipe will do).
pub struct FlattenedSink<S: PositionedSink> {
    inner: S,
    /// Where the next record goes in the stream.
    position: u64,
    /// The end of the furthest record: the rebuilt file's length so far.
    rebuilt_len: u64,
}

impl<S: PositionedSink> FlattenedSink<S> {
    /// Writes the start header to `inner`.
    pub fn new(mut inner: S) -> Result<FlattenedSink<S>, ExportError> {
        inner.write_at(0, &start_header())?;
        Ok(FlattenedSink {
            inner,
            position: START_HEADER_LEN as u64,
            rebuilt_len: 0,
        })
    }

    fn record(&mut self, offset: u64, bytes: &[u8]) -> Result<(), ExportError> {
        let header = record_header(offset, bytes.len() as u64);
        self.inner.write_at(self.position, &header)?;
        self.inner
            .write_at(self.position + RECORD_HEADER_LEN as u64, bytes)?;
        self.position += (RECORD_HEADER_LEN + bytes.len()) as u64;
        self.rebuilt_len = self.rebuilt_len.max(offset + bytes.len() as u64);
        Ok(())
    }
}

impl<S: PositionedSink> PositionedSink for FlattenedSink<S> {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), ExportError> {
        // A zero-length record would end the rebuild with an error (3.6): `chunks` yields none
        // for empty input. Offsets fit an i64: the kdump layout checks its data offset does.
        let mut at = offset;
        for piece in bytes.chunks(MAX_RECORD) {
            self.record(at, piece)?;
            at += piece.len() as u64;
        }
        Ok(())
    }

    fn finish(mut self, len: u64) -> Result<u64, ExportError> {
        // The rebuilt file ends at its furthest record; a trailing hole needs its last byte sent.
        if len > self.rebuilt_len {
            self.record(len - 1, &[0])?;
        }
        self.inner.write_at(self.position, &END_MARKER)?;
        self.inner.finish(self.position + RECORD_HEADER_LEN as u64)
    }
}

/// Replays a flattened stream into a byte vector, as `makedumpfile -R` does (3.6); for tests.
/// Errors (as text) on a bad header, a truncated record or a missing end marker.
#[cfg(test)]
pub(crate) fn rebuild(stream: &[u8]) -> Result<Vec<u8>, String> {
    let header = stream.get(..START_HEADER_LEN).ok_or("short start header")?;
    if header[..13] != *b"makedumpfile\0" || header[16..24] != FLAT_TYPE.to_be_bytes() {
        return Err("bad start header".into());
    }
    let mut out = Vec::new();
    let mut at = START_HEADER_LEN;
    loop {
        let h = stream
            .get(at..at + RECORD_HEADER_LEN)
            .ok_or("no end marker")?;
        let offset = i64::from_be_bytes(h[..8].try_into().map_err(|_| "header")?);
        let size = i64::from_be_bytes(h[8..].try_into().map_err(|_| "header")?);
        at += RECORD_HEADER_LEN;
        if offset < 0 || size <= 0 {
            return if offset == -1 && size == -1 && at == stream.len() {
                Ok(out)
            } else {
                Err(format!("bad record header {offset} {size} at {at}"))
            };
        }
        let (offset, size) = (offset as usize, size as usize);
        let payload = stream.get(at..at + size).ok_or("truncated record")?;
        if out.len() < offset + size {
            out.resize(offset + size, 0);
        }
        out[offset..offset + size].copy_from_slice(payload);
        at += size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::StreamSink;

    #[test]
    fn records_replay_into_the_file() {
        let mut stream = Vec::new();
        let mut sink = FlattenedSink::new(StreamSink::new(&mut stream, "pipe")).expect("start");
        sink.write_at(8, b"later").expect("write");
        sink.write_at(0, b"first").expect("write back");
        sink.write_at(3, b"").expect("empty writes emit nothing");
        let big = vec![7u8; MAX_RECORD + 10];
        sink.write_at(100, &big).expect("split");
        let len = sink.finish(100 + big.len() as u64 + 50).expect("finish");
        assert_eq!(len, stream.len() as u64);
        assert_eq!(&stream[..16], b"makedumpfile\0\0\0\0");
        assert_eq!(stream[16..24], 1i64.to_be_bytes());
        assert_eq!(stream[4096..4104], 8u64.to_be_bytes());
        assert_eq!(stream[4104..4112], 5u64.to_be_bytes());
        assert_eq!(stream[stream.len() - 16..], [0xff; 16]);
        let file = rebuild(&stream).expect("rebuild");
        assert_eq!(file.len(), 100 + big.len() + 50);
        assert_eq!(&file[..13], b"first\0\0\0later");
        assert!(file[100..100 + big.len()].iter().all(|&b| b == 7));
        assert!(file[100 + big.len()..].iter().all(|&b| b == 0));
        // A record of the split payload is at most MAX_RECORD; 5 data records + 1 tail byte.
        let truncated = &stream[..stream.len() - 16];
        assert!(rebuild(truncated).is_err());
    }
}
