//! crashdrop's wire protocol: every [`Frame`], the [`FrameCodec`] that puts them on a byte stream,
//! and the [`limits`] both ends enforce. No sockets, no files, no clock.
//!
//! The protocol itself is specified in `docs/protocol.md`; this crate and that document describe
//! the same thing and change together.
//!
//! Nothing in this crate panics on bytes from the peer: the decoder bounds every length before it
//! buffers or allocates, reads each payload through a checked reader and rejects trailing bytes.
//! The lints below hold the non-test code to that.
//!
//! ```
//! use bytes::BytesMut;
//! use crashdrop_proto::{ChunkAck, Frame, FrameCodec};
//! use tokio_util::codec::{Decoder, Encoder};
//!
//! let mut buf = BytesMut::new();
//! FrameCodec.encode(Frame::ChunkAck(ChunkAck { durable_pages: 256 }), &mut buf)?;
//! assert_eq!(&buf[..], &[0, 0, 0, 9, 0x08, 0, 0, 0, 0, 0, 0, 1, 0]);
//! let frame = FrameCodec.decode(&mut buf)?;
//! assert_eq!(frame, Some(Frame::ChunkAck(ChunkAck { durable_pages: 256 })));
//! # Ok::<(), crashdrop_proto::ProtocolError>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::panic,
        clippy::expect_used,
        clippy::unwrap_used,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

pub mod limits;

mod bitmap;
mod busy;
mod chunk;
mod chunk_set;
mod codec;
mod dump_id;
mod error;
mod error_frame;
mod finish;
mod frame;
mod handshake;
mod hex;
mod host;
mod manifest;
mod probe;
mod reader;
mod resume;
mod sparse_chunk;
#[cfg(test)]
mod test_frames;
mod writer;

pub use bitmap::{BitmapKind, BitmapPiece};
pub use busy::Busy;
pub use chunk::{ChunkAck, PageChunk, PageData};
pub use chunk_set::{ChunkRanges, ChunksAck, ResumeSet};
pub use codec::FrameCodec;
pub use dump_id::{DumpId, ParseDumpIdError};
pub use error::ProtocolError;
pub use error_frame::{ErrorCode, ErrorFrame};
pub use finish::{Complete, Finish};
pub use frame::Frame;
pub use handshake::{Hello, Welcome};
pub use host::{HostName, HostNameError, HostNameRule, MAX_HOST_LEN, MAX_LABEL_LEN};
pub use manifest::{DumpManifest, ManifestError, UTSNAME_FIELD_LEN, UTSNAME_LEN};
pub use probe::{Probe, ProbeVerdict, Verdict};
pub use resume::{ResumeFrom, ResumeState};
pub use sparse_chunk::SparseChunk;

/// The limits, also reachable as `crashdrop_proto::limits::*`.
pub use limits::*;

/// Protocol version 1, the oldest crashdrop-send and crashdropd speak (both speak 1 and 2 and
/// negotiate the highest in common, docs/protocol.md "Negotiation").
pub const PROTOCOL_VERSION: u16 = 1;

/// Protocol version 2: chunks in any order, the durable state a set (`ResumeSet`, `ChunksAck`),
/// zero pages as bits (`SparseChunk`), a negotiated window, `Busy` with a delay and `Probe`.
pub const PROTOCOL_V2: u16 = 2;

/// The TLS ALPN protocol id for a protocol version: `crashdrop/1`, `crashdrop/2`.
pub fn alpn_id(version: u16) -> Vec<u8> {
    format!("crashdrop/{version}").into_bytes()
}

/// The protocol version an ALPN id names (`crashdrop/N`), or `None` for any other id.
pub fn alpn_version(id: &[u8]) -> Option<u16> {
    let digits = id.strip_prefix(b"crashdrop/")?;
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The 8 bytes that open every `Hello`, so a receiver can tell a crashdrop sender from a stray
/// client before it reads anything else.
pub const MAGIC: [u8; 8] = *b"CRSHDROP";

#[cfg(test)]
mod alpn_tests {
    use super::*;

    #[test]
    fn alpn_ids_round_trip_and_nothing_else_parses() {
        for v in [1, 2, 65535] {
            assert_eq!(alpn_version(&alpn_id(v)), Some(v));
        }
        for bad in [
            &b"crashdrop/"[..],
            b"crashdrop/x",
            b"h2",
            b"crashdrop/99999",
            b"crashdrop/+1",
        ] {
            assert_eq!(alpn_version(bad), None, "{bad:?}");
        }
    }
}
