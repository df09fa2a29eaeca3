//! One attempt at sending a dump: handshake, offer, bitmaps, windowed chunks, finish — in
//! protocol version 1 (here) or 2 ([`sparse`]), whichever the receiver's `Welcome` names.

mod sparse;

use bytes::Bytes;
use crashdrop_formats::digest::{DigestVersion, DumpDigest};
use crashdrop_proto::limits::{MAX_BITMAP_PIECE, WINDOW};
use crashdrop_proto::{
    BitmapKind, BitmapPiece, Complete, Finish, Frame, FrameCodec, Hello, ProtocolError,
    ResumeState, PROTOCOL_V2, PROTOCOL_VERSION,
};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

use crate::error::SendError;
use crate::pages::ChunkReader;
use crate::progress::Progress;
use crate::source::DumpSource;

/// Pages per chunk: 1 MiB of 4 KiB pages, the protocol's maximum.
pub const PAGES_PER_CHUNK: u16 = 256;

/// What the receiver told us at the end.
pub enum Sent {
    /// Stored and verified; `wire_bytes` of page data crossed the network in this attempt.
    Complete {
        complete: Complete,
        wire_bytes: u64,
    },
    AlreadyComplete,
}

/// Chunk digests computed so far, in chunk index order from chunk 0, kept across attempts so
/// that resuming does not re-read the pages the receiver already holds (32 bytes per chunk of
/// up to 1 MiB). They are digests of one version; speaking the other starts them over.
#[derive(Default)]
pub struct KnownDigests(Vec<[u8; 32]>, DigestVersion);

impl KnownDigests {
    /// Chunks whose digest is known.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Keeps the digests if they are of `version`, else forgets them.
    fn use_version(&mut self, version: DigestVersion) {
        if self.1 != version {
            self.0.clear();
            self.1 = version;
        }
    }
}

pub struct Uploader<S> {
    framed: Framed<S, FrameCodec>,
    /// Receiver address, for messages.
    peer: String,
    /// Longest wait for the receiver to take or answer anything: a vanished peer (no FIN, no
    /// RST) is abandoned after this.
    io_timeout: Duration,
    /// The newest protocol version offered (1 forces version 1).
    max_version: u16,
    /// The version TLS ALPN selected, which the receiver's `Welcome` must name.
    alpn: Option<u16>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Uploader<S> {
    pub fn new(stream: S, peer: &str, io_timeout: Duration) -> Uploader<S> {
        Uploader {
            framed: Framed::new(stream, FrameCodec),
            peer: peer.to_owned(),
            io_timeout,
            max_version: PROTOCOL_V2,
            alpn: None,
        }
    }

    /// Offers protocol versions 1..=`max_version` (1 or 2), and expects `Welcome` to name
    /// `alpn` when TLS ALPN selected a version.
    pub fn versions(mut self, max_version: u16, alpn: Option<u16>) -> Uploader<S> {
        self.max_version = max_version.clamp(PROTOCOL_VERSION, PROTOCOL_V2);
        self.alpn = alpn;
        self
    }

    fn silent(&self) -> SendError {
        SendError::Retryable(format!(
            "{} did not respond for {}s; abandoning the connection",
            self.peer,
            self.io_timeout.as_secs()
        ))
    }

    async fn send(&mut self, frame: Frame) -> Result<(), SendError> {
        let peer = self.peer.clone();
        match tokio::time::timeout(self.io_timeout, self.framed.send(frame)).await {
            Err(_) => Err(self.silent()),
            Ok(sent) => sent.map_err(|e| connection_error(e, &peer)),
        }
    }

    /// The next frame; an `Error` frame from the receiver becomes a `SendError`.
    async fn receive(&mut self) -> Result<Frame, SendError> {
        let peer = self.peer.clone();
        let Ok(next) = tokio::time::timeout(self.io_timeout, self.framed.next()).await else {
            return Err(self.silent());
        };
        match next {
            None => Err(SendError::Retryable(format!(
                "{peer} closed the connection unexpectedly"
            ))),
            Some(Err(e)) => Err(connection_error(e, &peer)),
            Some(Ok(Frame::Error(e))) => Err(SendError::from_receiver(e.code, &e.message)),
            Some(Ok(Frame::Busy(b))) => Err(SendError::from_busy(&b)),
            Some(Ok(frame)) => Ok(frame),
        }
    }

    pub async fn run(
        mut self,
        source: &DumpSource,
        known: &mut KnownDigests,
    ) -> Result<Sent, SendError> {
        let max = self.max_version;
        self.send(Frame::Hello(Hello {
            min_version: PROTOCOL_VERSION,
            max_version: max,
            software: concat!("crashdrop-send ", env!("CARGO_PKG_VERSION")).into(),
        }))
        .await?;
        // A receiver at capacity answers `Busy` here (receive() makes it a retryable error).
        let version = match self.receive().await? {
            Frame::Welcome(w) if self.alpn.is_some_and(|n| n != w.version) => {
                return Err(SendError::Refused(format!(
                    "protocol: TLS ALPN selected crashdrop/{} but the receiver's Welcome names \
                     version {}",
                    self.alpn.unwrap_or_default(),
                    w.version
                )))
            }
            Frame::Welcome(w) if (PROTOCOL_VERSION..=max).contains(&w.version) => w.version,
            Frame::Welcome(w) => {
                return Err(SendError::Refused(format!(
                    "the receiver chose protocol version {}, which this sender never offered \
                     (it speaks {PROTOCOL_VERSION}..={max})",
                    w.version
                )))
            }
            other => return Err(unexpected(&other, "Welcome")),
        };
        if version == PROTOCOL_V2 {
            return self.run_v2(source, known).await;
        }
        known.use_version(DigestVersion::V1);
        let manifest = source.manifest(PAGES_PER_CHUNK);
        let total_pages = manifest.num_dumpable;
        self.send(Frame::Offer(manifest)).await?;
        let resume = match self.receive().await? {
            Frame::ResumeFrom(r) => r,
            other => return Err(unexpected(&other, "ResumeFrom")),
        };
        if resume.state == ResumeState::Complete {
            return Ok(Sent::AlreadyComplete);
        }
        if resume.next_page > total_pages
            || (resume.next_page % u64::from(PAGES_PER_CHUNK) != 0
                && resume.next_page != total_pages)
        {
            return Err(SendError::Refused(format!(
                "receiver asked to resume at page {} of {total_pages}, which is not a chunk boundary",
                resume.next_page
            )));
        }
        if !resume.bitmaps_stored {
            self.send_bitmaps(source).await?;
        }
        let (b1, b2) = source.bitmap_digests();
        let mut digest = DumpDigest::new(&source.dump_id.0, &b1, &b2);
        let mut reader = ChunkReader::new(source, PAGES_PER_CHUNK, DigestVersion::V1)?;
        let mut chunk = 0usize;
        while reader.next_index() < resume.next_page {
            // Chunks the receiver holds: their digests, from memory or by re-reading the pages.
            let known_digest = known.0.get(chunk).copied();
            let d = match known_digest {
                Some(d) => reader.skip_chunk_unread().then_some(d),
                None => reader.skip_chunk()?,
            };
            let Some(d) = d else { break };
            if known_digest.is_none() {
                known.0.push(d);
            }
            digest.push_chunk(&d);
            chunk += 1;
        }
        if resume.next_page > 0 {
            eprintln!(
                "resuming at page {} of {total_pages} (the receiver holds the rest durably)",
                resume.next_page
            );
        }
        let page_size = source.page_size() as u64;
        let mut progress = Progress::new(total_pages * page_size, resume.next_page * page_size);
        let mut sent_pages = resume.next_page;
        let mut durable = resume.next_page;
        let mut wire_bytes = 0u64;
        let window_pages = WINDOW as u64 * u64::from(PAGES_PER_CHUNK);
        while let Some(read) = reader.next_chunk()? {
            // Keep at most WINDOW chunks unacknowledged.
            while sent_pages - durable >= window_pages {
                durable = self.await_ack(durable, sent_pages).await?;
            }
            digest.push_chunk(&read.chunk.chunk_digest);
            if known.0.len() == chunk {
                known.0.push(read.chunk.chunk_digest);
            }
            chunk += 1;
            wire_bytes += read.wire_bytes;
            sent_pages += read.chunk.pages.len() as u64;
            self.send(Frame::PageChunk(read.chunk)).await?;
            while let Some(Some(frame)) = self.framed.next().now_or_never() {
                durable = self.on_frame(frame, durable, sent_pages)?;
            }
            progress.update(sent_pages * page_size, false);
        }
        progress.update(sent_pages * page_size, true);
        self.send(Frame::Finish(Finish {
            dump_digest: digest.finish(),
        }))
        .await?;
        loop {
            match self.receive().await? {
                Frame::ChunkAck(_) => {}
                Frame::Complete(complete) => {
                    return Ok(Sent::Complete {
                        complete,
                        wire_bytes,
                    })
                }
                other => return Err(unexpected(&other, "Complete")),
            }
        }
    }

    async fn await_ack(&mut self, durable: u64, sent_pages: u64) -> Result<u64, SendError> {
        let frame = self.receive().await?;
        self.on_frame(Ok(frame), durable, sent_pages)
    }

    /// The durable page count after `frame`, which must acknowledge only pages sent.
    fn on_frame(
        &self,
        frame: Result<Frame, ProtocolError>,
        durable: u64,
        sent_pages: u64,
    ) -> Result<u64, SendError> {
        match frame.map_err(|e| connection_error(e, &self.peer))? {
            Frame::ChunkAck(ack) if ack.durable_pages > sent_pages => {
                Err(SendError::Refused(format!(
                    "protocol: the receiver acknowledged {} pages but only {sent_pages} were sent",
                    ack.durable_pages
                )))
            }
            Frame::ChunkAck(ack) => Ok(ack.durable_pages.max(durable)),
            Frame::Error(e) => Err(SendError::from_receiver(e.code, &e.message)),
            Frame::Busy(b) => Err(SendError::from_busy(&b)),
            other => Err(unexpected(&other, "ChunkAck")),
        }
    }

    async fn send_bitmaps(&mut self, source: &DumpSource) -> Result<(), SendError> {
        for (kind, bitmap) in [
            (BitmapKind::First, &source.ram),
            (BitmapKind::Second, &source.dumpable),
        ] {
            let bytes = bitmap.as_bytes();
            for (i, piece) in bytes.chunks(MAX_BITMAP_PIECE).enumerate() {
                self.send(Frame::BitmapPiece(BitmapPiece {
                    bitmap: kind,
                    offset: (i * MAX_BITMAP_PIECE) as u64,
                    bytes: Bytes::copy_from_slice(piece),
                }))
                .await?;
            }
        }
        self.send(Frame::BitmapsDone).await
    }
}

fn unexpected(frame: &Frame, wanted: &str) -> SendError {
    SendError::Refused(format!(
        "protocol: expected {wanted} from the receiver, got {}",
        frame.name()
    ))
}

fn connection_error(e: ProtocolError, peer: &str) -> SendError {
    match e {
        ProtocolError::Io(io) => crate::tls::explain_tls_error(&io, peer, peer),
        other => SendError::Refused(format!("protocol error from {peer}: {other}")),
    }
}
