//! `Frame`: every message of the protocol, and the mapping between frames and type bytes.

use bytes::Bytes;

use crate::bitmap::BitmapPiece;
use crate::busy::Busy;
use crate::chunk::{ChunkAck, PageChunk};
use crate::chunk_set::{ChunksAck, ResumeSet};
use crate::error::ProtocolError;
use crate::error_frame::ErrorFrame;
use crate::finish::{Complete, Finish};
use crate::handshake::{Hello, Welcome};
use crate::manifest::DumpManifest;
use crate::probe::{Probe, ProbeVerdict};
use crate::reader::PayloadReader;
use crate::resume::ResumeFrom;
use crate::sparse_chunk::SparseChunk;
use crate::writer::PayloadWriter;

/// Type bytes (`docs/protocol.md`, Frames).
mod ty {
    pub(super) const HELLO: u8 = 0x01;
    pub(super) const WELCOME: u8 = 0x02;
    pub(super) const OFFER: u8 = 0x03;
    pub(super) const RESUME_FROM: u8 = 0x04;
    pub(super) const BITMAP_PIECE: u8 = 0x05;
    pub(super) const BITMAPS_DONE: u8 = 0x06;
    pub(super) const PAGE_CHUNK: u8 = 0x07;
    pub(super) const CHUNK_ACK: u8 = 0x08;
    pub(super) const FINISH: u8 = 0x09;
    pub(super) const COMPLETE: u8 = 0x0a;
    pub(super) const ERROR: u8 = 0x0f;
    pub(super) const BUSY: u8 = 0x10;
    pub(super) const PROBE: u8 = 0x11;
    pub(super) const PROBE_VERDICT: u8 = 0x12;
    pub(super) const RESUME_SET: u8 = 0x13;
    pub(super) const CHUNKS_ACK: u8 = 0x14;
    pub(super) const SPARSE_CHUNK: u8 = 0x15;
}

/// One message of the protocol. S → R: sender to receiver; R → S: receiver to sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// 0x01, S → R: the versions the sender speaks.
    Hello(Hello),
    /// 0x02, R → S: the version both will use.
    Welcome(Welcome),
    /// 0x03, S → R: the dump about to be sent.
    Offer(DumpManifest),
    /// 0x04, R → S: where to start (or that there is nothing to send).
    ResumeFrom(ResumeFrom),
    /// 0x05, S → R: a slice of one bitmap.
    BitmapPiece(BitmapPiece),
    /// 0x06, S → R: both bitmaps sent. No payload.
    BitmapsDone,
    /// 0x07, S → R: consecutive pages and their digest.
    PageChunk(PageChunk),
    /// 0x08, R → S: pages below `durable_pages` are on disk.
    ChunkAck(ChunkAck),
    /// 0x09, S → R: all chunks sent; the whole-dump digest.
    Finish(Finish),
    /// 0x0a, R → S: the dump is stored and complete.
    Complete(Complete),
    /// 0x0f, either way: giving up, and why.
    Error(ErrorFrame),
    /// 0x10, R → S, v2: not now; retry after the given delay.
    Busy(Busy),
    /// 0x11, S → R, v2: would a dump of this size be accepted now?
    Probe(Probe),
    /// 0x12, R → S, v2: the answer to a `Probe`.
    ProbeVerdict(ProbeVerdict),
    /// 0x13, R → S, v2: the answer to an `Offer`: the window and the set of durable chunks.
    ResumeSet(ResumeSet),
    /// 0x14, R → S, v2: these chunks are now durable.
    ChunksAck(ChunksAck),
    /// 0x15, S → R, v2: a chunk, in any order, zero pages as bits.
    SparseChunk(SparseChunk),
}

impl Frame {
    /// The frame's name as `docs/protocol.md` spells it, for error messages and logs.
    pub fn name(&self) -> &'static str {
        name_of(self.frame_type()).unwrap_or("?")
    }

    /// The frame's type byte.
    pub fn frame_type(&self) -> u8 {
        match self {
            Frame::Hello(_) => ty::HELLO,
            Frame::Welcome(_) => ty::WELCOME,
            Frame::Offer(_) => ty::OFFER,
            Frame::ResumeFrom(_) => ty::RESUME_FROM,
            Frame::BitmapPiece(_) => ty::BITMAP_PIECE,
            Frame::BitmapsDone => ty::BITMAPS_DONE,
            Frame::PageChunk(_) => ty::PAGE_CHUNK,
            Frame::ChunkAck(_) => ty::CHUNK_ACK,
            Frame::Finish(_) => ty::FINISH,
            Frame::Complete(_) => ty::COMPLETE,
            Frame::Error(_) => ty::ERROR,
            Frame::Busy(_) => ty::BUSY,
            Frame::Probe(_) => ty::PROBE,
            Frame::ProbeVerdict(_) => ty::PROBE_VERDICT,
            Frame::ResumeSet(_) => ty::RESUME_SET,
            Frame::ChunksAck(_) => ty::CHUNKS_ACK,
            Frame::SparseChunk(_) => ty::SPARSE_CHUNK,
        }
    }

    /// Parses the payload of a frame of type `frame_type`. The payload must be consumed exactly.
    pub(crate) fn decode(frame_type: u8, payload: Bytes) -> Result<Frame, ProtocolError> {
        let name = name_of(frame_type).ok_or(ProtocolError::UnknownFrameType(frame_type))?;
        let mut r = PayloadReader::new(name, payload);
        let frame = match frame_type {
            ty::HELLO => Frame::Hello(Hello::decode(&mut r)?),
            ty::WELCOME => Frame::Welcome(Welcome::decode(&mut r)?),
            ty::OFFER => Frame::Offer(DumpManifest::decode(&mut r)?),
            ty::RESUME_FROM => Frame::ResumeFrom(ResumeFrom::decode(&mut r)?),
            ty::BITMAP_PIECE => Frame::BitmapPiece(BitmapPiece::decode(&mut r)?),
            ty::BITMAPS_DONE => Frame::BitmapsDone,
            ty::PAGE_CHUNK => Frame::PageChunk(PageChunk::decode(&mut r)?),
            ty::CHUNK_ACK => Frame::ChunkAck(ChunkAck::decode(&mut r)?),
            ty::FINISH => Frame::Finish(Finish::decode(&mut r)?),
            ty::COMPLETE => Frame::Complete(Complete::decode(&mut r)?),
            ty::ERROR => Frame::Error(ErrorFrame::decode(&mut r)?),
            ty::BUSY => Frame::Busy(Busy::decode(&mut r)?),
            ty::PROBE => Frame::Probe(Probe::decode(&mut r)?),
            ty::PROBE_VERDICT => Frame::ProbeVerdict(ProbeVerdict::decode(&mut r)?),
            ty::RESUME_SET => Frame::ResumeSet(ResumeSet::decode(&mut r)?),
            ty::CHUNKS_ACK => Frame::ChunksAck(ChunksAck::decode(&mut r)?),
            ty::SPARSE_CHUNK => Frame::SparseChunk(SparseChunk::decode(&mut r)?),
            other => return Err(ProtocolError::UnknownFrameType(other)),
        };
        r.finish()?;
        Ok(frame)
    }

    /// Appends the frame's payload (not its length or type byte) through `w`.
    pub(crate) fn encode_payload(&self, w: &mut PayloadWriter) -> Result<(), ProtocolError> {
        match self {
            Frame::Hello(f) => f.encode(w),
            Frame::Welcome(f) => f.encode(w),
            Frame::Offer(f) => f.encode(w),
            Frame::ResumeFrom(f) => f.encode(w),
            Frame::BitmapPiece(f) => f.encode(w),
            Frame::BitmapsDone => Ok(()),
            Frame::PageChunk(f) => f.encode(w),
            Frame::ChunkAck(f) => f.encode(w),
            Frame::Finish(f) => f.encode(w),
            Frame::Complete(f) => f.encode(w),
            Frame::Error(f) => f.encode(w),
            Frame::Busy(f) => f.encode(w),
            Frame::Probe(f) => f.encode(w),
            Frame::ProbeVerdict(f) => f.encode(w),
            Frame::ResumeSet(f) => f.encode(w),
            Frame::ChunksAck(f) => f.encode(w),
            Frame::SparseChunk(f) => f.encode(w),
        }
    }
}

/// The name of the frame with type byte `frame_type`, or `None` if there is none.
fn name_of(frame_type: u8) -> Option<&'static str> {
    Some(match frame_type {
        ty::HELLO => "Hello",
        ty::WELCOME => "Welcome",
        ty::OFFER => "Offer",
        ty::RESUME_FROM => "ResumeFrom",
        ty::BITMAP_PIECE => "BitmapPiece",
        ty::BITMAPS_DONE => "BitmapsDone",
        ty::PAGE_CHUNK => "PageChunk",
        ty::CHUNK_ACK => "ChunkAck",
        ty::FINISH => "Finish",
        ty::COMPLETE => "Complete",
        ty::ERROR => "Error",
        ty::BUSY => "Busy",
        ty::PROBE => "Probe",
        ty::PROBE_VERDICT => "ProbeVerdict",
        ty::RESUME_SET => "ResumeSet",
        ty::CHUNKS_ACK => "ChunksAck",
        ty::SPARSE_CHUNK => "SparseChunk",
        _ => return None,
    })
}

impl From<ErrorFrame> for Frame {
    fn from(f: ErrorFrame) -> Frame {
        Frame::Error(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_byte_has_a_name_and_nothing_else_does() {
        let known: Vec<u8> = (0..=u8::MAX).filter(|&t| name_of(t).is_some()).collect();
        assert_eq!(
            known,
            vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 16, 17, 18, 19, 20, 21]
        );
        for t in 0..=u8::MAX {
            if name_of(t).is_none() {
                assert!(matches!(
                    Frame::decode(t, Bytes::new()),
                    Err(ProtocolError::UnknownFrameType(x)) if x == t
                ));
            }
        }
    }

    #[test]
    fn names_match_the_type_bytes() {
        assert_eq!(Frame::BitmapsDone.name(), "BitmapsDone");
        assert_eq!(Frame::BitmapsDone.frame_type(), 0x06);
        let ack = Frame::ChunkAck(ChunkAck { durable_pages: 1 });
        assert_eq!((ack.name(), ack.frame_type()), ("ChunkAck", 0x08));
    }

    #[test]
    fn bitmaps_done_has_no_payload() {
        assert_eq!(
            Frame::decode(ty::BITMAPS_DONE, Bytes::new()).expect("empty"),
            Frame::BitmapsDone
        );
        assert!(matches!(
            Frame::decode(ty::BITMAPS_DONE, Bytes::from_static(&[0])),
            Err(ProtocolError::TrailingBytes {
                frame: "BitmapsDone",
                extra: 1
            })
        ));
    }
}
