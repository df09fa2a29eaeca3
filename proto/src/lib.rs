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
mod chunk;
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
mod reader;
mod resume;
#[cfg(test)]
mod test_frames;
mod writer;

pub use bitmap::{BitmapKind, BitmapPiece};
pub use chunk::{ChunkAck, PageChunk, PageData};
pub use codec::FrameCodec;
pub use dump_id::{DumpId, ParseDumpIdError};
pub use error::ProtocolError;
pub use error_frame::{ErrorCode, ErrorFrame};
pub use finish::{Complete, Finish};
pub use frame::Frame;
pub use handshake::{Hello, Welcome};
pub use host::{HostName, HostNameError, HostNameRule, MAX_HOST_LEN, MAX_LABEL_LEN};
pub use manifest::{DumpManifest, ManifestError, UTSNAME_FIELD_LEN, UTSNAME_LEN};
pub use resume::{ResumeFrom, ResumeState};

/// The limits, also reachable as `crashdrop_proto::limits::*`.
pub use limits::*;

/// The protocol version this crate speaks (`docs/protocol.md` describes version 1).
pub const PROTOCOL_VERSION: u16 = 1;

/// The 8 bytes that open every `Hello`, so a receiver can tell a crashdrop sender from a stray
/// client before it reads anything else.
pub const MAGIC: [u8; 8] = *b"CRSHDROP";
