//! Where an export's bytes go: `(offset, bytes)` writes, as makedumpfile issues them (2.9, 3.1).
//!
//! A [`FileSink`] writes them in place; a [`StreamSink`] accepts only growing offsets and fills
//! gaps with zeros, so a format whose offsets only grow (ELF, flattened) can go down a pipe.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;

use super::ExportError;

/// Zeros written at once when a [`StreamSink`] fills a gap.
static ZEROS: [u8; 64 * 1024] = [0u8; 64 * 1024];

/// A destination for positioned writes.
pub trait PositionedSink {
    /// Writes `bytes` at `offset`. Bytes never written read as zeros.
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), ExportError>;

    /// Ends the output: it is `len` bytes long (zeros after the last write), flushed to its
    /// destination. Returns the bytes of output (for a flattened stream, the stream's length).
    fn finish(self, len: u64) -> Result<u64, ExportError>;
}

/// A regular file, written with `pwrite`; regions never written stay holes.
pub struct FileSink {
    file: File,
    name: String,
}

impl FileSink {
    /// Writes into `file` (which should be empty); `name` names it in errors.
    pub fn new(file: File, name: impl Into<String>) -> FileSink {
        FileSink {
            file,
            name: name.into(),
        }
    }

    fn error(&self, offset: u64, len: u64, source: std::io::Error) -> ExportError {
        ExportError::Write {
            output: self.name.clone(),
            offset,
            len,
            source,
        }
    }
}

impl PositionedSink for FileSink {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), ExportError> {
        self.file
            .write_all_at(bytes, offset)
            .map_err(|e| self.error(offset, bytes.len() as u64, e))
    }

    fn finish(self, len: u64) -> Result<u64, ExportError> {
        // set_len gives the file its full length when it ends in a hole (zero pages of an ELF
        // output are never written); sync so a completed export survives a crash of this box.
        self.file
            .set_len(len)
            .and_then(|()| self.file.sync_all())
            .map_err(|e| self.error(len, 0, e))?;
        Ok(len)
    }
}

/// A sequential writer (a pipe, standard output): offsets must never go back.
pub struct StreamSink<W: Write> {
    out: W,
    name: String,
    position: u64,
}

impl<W: Write> StreamSink<W> {
    /// Writes into `out` from offset 0; `name` names it in errors.
    pub fn new(out: W, name: impl Into<String>) -> StreamSink<W> {
        StreamSink {
            out,
            name: name.into(),
            position: 0,
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), ExportError> {
        self.out
            .write_all(bytes)
            .map_err(|source| ExportError::Write {
                output: self.name.clone(),
                offset: self.position,
                len: bytes.len() as u64,
                source,
            })?;
        self.position += bytes.len() as u64;
        Ok(())
    }

    fn zeros_until(&mut self, offset: u64) -> Result<(), ExportError> {
        while self.position < offset {
            let n = (offset - self.position).min(ZEROS.len() as u64) as usize;
            self.write_all(&ZEROS[..n])?;
        }
        Ok(())
    }
}

impl<W: Write> PositionedSink for StreamSink<W> {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), ExportError> {
        if offset < self.position {
            return Err(ExportError::NotSequential {
                output: self.name.clone(),
                offset,
                position: self.position,
            });
        }
        self.zeros_until(offset)?;
        self.write_all(bytes)
    }

    fn finish(mut self, len: u64) -> Result<u64, ExportError> {
        self.zeros_until(len)?;
        let position = self.position;
        self.out.flush().map_err(|source| ExportError::Write {
            output: self.name.clone(),
            offset: position,
            len: 0,
            source,
        })?;
        Ok(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_sink_fills_gaps_and_refuses_to_go_back() {
        let mut out = Vec::new();
        let mut sink = StreamSink::new(&mut out, "test pipe");
        sink.write_at(0, b"ab").expect("write");
        sink.write_at(5, b"cd").expect("gap");
        let err = sink.write_at(3, b"x").expect_err("backwards");
        assert!(
            err.to_string().contains("test pipe is not seekable"),
            "{err}"
        );
        assert_eq!(sink.finish(10).expect("finish"), 10);
        assert_eq!(out, b"ab\0\0\0cd\0\0\0");
    }

    #[test]
    fn file_sink_writes_in_place_and_sets_the_length() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out");
        let mut sink = FileSink::new(File::create(&path).expect("create"), "out");
        sink.write_at(4, b"late").expect("write");
        sink.write_at(0, b"ab").expect("write back");
        assert_eq!(sink.finish(12).expect("finish"), 12);
        assert_eq!(std::fs::read(&path).expect("read"), b"ab\0\0late\0\0\0\0");
    }
}
