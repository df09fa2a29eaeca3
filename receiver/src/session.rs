//! One sender's conversation, over any authenticated byte stream (TLS, SSH, or stdio under
//! OpenSSH), in protocol version 1 or 2 (the highest both speak; docs/protocol.md
//! "Negotiation").
//!
//! The session owns at most one [`DumpWriter`]; file operations run under
//! `tokio::task::block_in_place`, so a slow disk never stalls other sessions' I/O. That requires
//! the multi-thread runtime (`crashdropd serve` builds one; tests use `flavor = "multi_thread"`).
//! The host identity comes from the transport.

use std::time::Duration;

use crashdrop_formats::digest::DigestVersion;
use crashdrop_proto::{
    Busy, ChunkAck, ChunkRanges, ChunksAck, ErrorCode, ErrorFrame, Frame, FrameCodec, Hello,
    HostName, ProtocolError, ResumeFrom, ResumeSet, ResumeState, Welcome, PROTOCOL_V2,
    PROTOCOL_VERSION, WINDOW_V2,
};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::store::{Begin, DumpStore, DumpWriter, WriteError};

/// Chunks processed before an acknowledgement is forced even if more are already queued, so the
/// sender's window never runs dry (version 1: a window of 8).
const ACK_EVERY_CHUNKS: u32 = 4;
/// The same for version 2, whose window is `WINDOW_V2` (64): a quarter of it per fsync.
const ACK_EVERY_CHUNKS_V2: u32 = 16;

/// The protocol versions this receiver speaks.
const OLDEST_VERSION: u16 = PROTOCOL_VERSION;
const NEWEST_VERSION: u16 = PROTOCOL_V2;
/// The same, newest first: the TLS ALPN list (`crashdrop/2`, `crashdrop/1`).
pub const SPOKEN_VERSIONS: [u16; 2] = [NEWEST_VERSION, OLDEST_VERSION];

/// How long a session that answered an error keeps reading the peer's frames before closing.
const ERROR_LINGER: Duration = Duration::from_secs(2);

#[derive(Clone, Debug)]
pub struct SessionLimits {
    /// A peer silent for this long is dropped (its dump stays resumable).
    pub idle_timeout: Duration,
}

/// How a session ended, for the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Completed {
        location: String,
    },
    AlreadyComplete {
        location: String,
    },
    Interrupted {
        location: Option<String>,
        durable_pages: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("connection: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("sender silent for {0:?}; dropped (the dump can resume)")]
    Timeout(Duration),
    #[error("refused the sender: {code:?}: {message}")]
    Refused { code: ErrorCode, message: String },
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("sender reported {code:?}: {message}")]
    Peer { code: ErrorCode, message: String },
    /// Answered `Busy` (version 2) already; nothing more to say to the peer.
    #[error("told the sender to come back later: {0}")]
    Busy(String),
}

struct Session<S> {
    framed: Framed<S, FrameCodec>,
    host: HostName,
    limits: SessionLimits,
    shutdown: CancellationToken,
    /// The version TLS ALPN selected (`crashdrop/N`), which `Welcome` must name.
    alpn: Option<u16>,
    /// The version agreed in `Welcome` (1 until then).
    version: u16,
}

/// Runs one session to its end. Errors are also reported to the peer when possible.
pub async fn run<S>(
    stream: S,
    host: HostName,
    store: DumpStore,
    limits: SessionLimits,
    shutdown: CancellationToken,
) -> Result<Outcome, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    run_with_alpn(stream, host, store, limits, shutdown, None).await
}

/// [`run`] on a stream whose TLS handshake selected ALPN `crashdrop/N` (`alpn` = `Some(N)`):
/// the session then speaks version N or refuses the `Hello` as a protocol error.
pub async fn run_with_alpn<S>(
    stream: S,
    host: HostName,
    store: DumpStore,
    limits: SessionLimits,
    shutdown: CancellationToken,
    alpn: Option<u16>,
) -> Result<Outcome, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut session = Session {
        framed: Framed::new(stream, FrameCodec),
        host,
        limits,
        shutdown,
        alpn,
        version: PROTOCOL_VERSION,
    };
    let result = session.converse(&store).await;
    if let Err(e) = &result {
        let reply = match e {
            SessionError::Refused { code, message } => Some((*code, message.clone())),
            SessionError::Protocol(ProtocolError::Io(_))
            | SessionError::Timeout(_)
            | SessionError::Busy(_)
            | SessionError::Peer { .. } => None,
            SessionError::Protocol(p) => Some((ErrorCode::Protocol, p.to_string())),
            // The details (paths, OS errors) are for our log, not for the peer.
            SessionError::Store(e) => Some((ErrorCode::Storage, e.peer_message().to_owned())),
        };
        if let Some((code, message)) = reply {
            // Best effort: the peer may already be gone.
            let _ = session
                .send(Frame::Error(ErrorFrame::new(code, message)))
                .await;
            session.drain_briefly().await;
        }
    }
    // Close cleanly (TLS close_notify) so the peer reads everything we sent.
    let idle = session.limits.idle_timeout;
    let _ = tokio::time::timeout(idle, session.framed.close()).await;
    result
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn converse(&mut self, store: &DumpStore) -> Result<Outcome, SessionError> {
        let hello = match self.expect_frame().await? {
            Frame::Hello(h) => h,
            other => return Err(unexpected(&other, "Hello")),
        };
        self.version = self.negotiate(&hello)?;
        self.send(Frame::Welcome(Welcome {
            version: self.version,
            software: concat!("crashdropd ", env!("CARGO_PKG_VERSION")).into(),
        }))
        .await?;
        let v2 = self.version == PROTOCOL_V2;
        let manifest = match self.expect_frame().await? {
            Frame::Offer(m) => m,
            other => return Err(unexpected(&other, "Offer")),
        };
        let digests = if v2 {
            DigestVersion::V2
        } else {
            DigestVersion::V1
        };
        let begin = on_disk(|| store.begin_version(&self.host, &manifest, digests));
        let mut writer = match begin.map_err(refused)? {
            Begin::Complete {
                location,
                stored_bytes,
            } => {
                info!(dump = %manifest.dump_id, %location, stored_bytes, "dump already complete");
                let answer = if v2 {
                    let chunks = manifest
                        .num_dumpable
                        .div_ceil(u64::from(manifest.pages_per_chunk.max(1)));
                    Frame::ResumeSet(ResumeSet {
                        state: ResumeState::Complete,
                        bitmaps_stored: true,
                        window: WINDOW_V2,
                        durable: ChunkRanges::prefix(chunks),
                    })
                } else {
                    Frame::ResumeFrom(ResumeFrom {
                        state: ResumeState::Complete,
                        bitmaps_stored: true,
                        next_page: manifest.num_dumpable,
                    })
                };
                self.send(answer).await?;
                return Ok(Outcome::AlreadyComplete { location });
            }
            Begin::Busy { location } => {
                let message = format!(
                    "another session is receiving {location} right now; retry when it ends"
                );
                if v2 {
                    // Version 2 says how long to wait; the sender treats it as retryable.
                    let busy = Busy::new(crate::refusal::BUSY_RETRY_AFTER, message.clone());
                    let _ = self.send(Frame::Busy(busy)).await;
                    return Err(SessionError::Busy(message));
                }
                return Err(SessionError::Refused {
                    code: ErrorCode::Busy,
                    message,
                });
            }
            Begin::Receive(writer) => writer,
        };
        info!(
            dump = %manifest.dump_id,
            location = writer.location(),
            kernel = %manifest.release(),
            level = manifest.dump_level,
            pages = manifest.num_dumpable,
            resumed_at = writer.durable_pages(),
            version = self.version,
            "receiving dump"
        );
        let answer = if v2 {
            Frame::ResumeSet(ResumeSet {
                state: ResumeState::Send,
                bitmaps_stored: writer.bitmaps_stored(),
                window: WINDOW_V2,
                durable: writer.durable_set().clone(),
            })
        } else {
            Frame::ResumeFrom(ResumeFrom {
                state: ResumeState::Send,
                bitmaps_stored: writer.bitmaps_stored(),
                next_page: writer.durable_pages(),
            })
        };
        self.send(answer).await?;
        let result = self.receive(&mut writer).await;
        if !matches!(result, Ok(Outcome::Completed { .. })) {
            let durable = writer.durable_pages();
            let location = writer.location().to_owned();
            let why = match &result {
                Err(e) => Some(e.to_string()),
                // The connection ended cleanly between frames (a cut, or a shutdown).
                Ok(_) => Some("the connection ended before the dump was complete".to_owned()),
            };
            if let Err(e) = on_disk(|| writer.suspend(why)) {
                warn!(%location, error = %e, "could not record progress of an interrupted dump");
            }
            if let Err(e) = &result {
                warn!(%location, durable_pages = durable, error = %e, "session ended before the dump was complete");
            }
        }
        result
    }

    /// The version to speak: the one TLS ALPN chose if it did (the `Hello` must include it),
    /// else the highest both speak.
    fn negotiate(&self, hello: &Hello) -> Result<u16, SessionError> {
        let (min, max) = (hello.min_version, hello.max_version);
        if let Some(n) = self.alpn {
            if (OLDEST_VERSION..=NEWEST_VERSION).contains(&n) && (min..=max).contains(&n) {
                return Ok(n);
            }
            return Err(SessionError::Refused {
                code: ErrorCode::Protocol,
                message: format!(
                    "TLS ALPN selected crashdrop/{n} but the Hello offers versions {min}..={max}"
                ),
            });
        }
        hello
            .common_version(OLDEST_VERSION, NEWEST_VERSION)
            .ok_or_else(|| SessionError::Refused {
                code: ErrorCode::UnsupportedVersion,
                message: format!(
                    "sender speaks protocol versions {min}..={max}, this receiver speaks \
                     {OLDEST_VERSION}..={NEWEST_VERSION}"
                ),
            })
    }

    /// Makes the written chunks durable and acknowledges them in this session's version.
    async fn acknowledge(&mut self, writer: &mut DumpWriter) -> Result<(), SessionError> {
        if self.version == PROTOCOL_V2 {
            let made = on_disk(|| writer.commit_chunks()).map_err(refused)?;
            if !made.is_empty() {
                self.send(Frame::ChunksAck(ChunksAck { durable: made }))
                    .await?;
            }
        } else {
            let durable = on_disk(|| writer.commit()).map_err(refused)?;
            self.send(Frame::ChunkAck(ChunkAck {
                durable_pages: durable,
            }))
            .await?;
        }
        Ok(())
    }

    /// Receives bitmaps and chunks until `Finish`, acknowledging durable chunks.
    async fn receive(&mut self, writer: &mut DumpWriter) -> Result<Outcome, SessionError> {
        let v2 = self.version == PROTOCOL_V2;
        let ack_every = if v2 {
            ACK_EVERY_CHUNKS_V2
        } else {
            ACK_EVERY_CHUNKS
        };
        let mut unacked = 0u32;
        loop {
            let ready = if unacked >= ack_every {
                None
            } else {
                self.framed.next().now_or_never()
            };
            let frame = match ready {
                Some(Some(frame)) => frame?,
                Some(None) => return Err(eof()),
                None => {
                    if unacked > 0 {
                        self.acknowledge(writer).await?;
                        unacked = 0;
                    }
                    self.expect_frame().await?
                }
            };
            match frame {
                Frame::BitmapPiece(piece) => {
                    on_disk(|| writer.write_bitmap_piece(&piece)).map_err(refused)?
                }
                Frame::BitmapsDone => on_disk(|| writer.finish_bitmaps()).map_err(refused)?,
                Frame::PageChunk(chunk) if !v2 => {
                    on_disk(|| writer.write_chunk(&chunk)).map_err(refused)?;
                    unacked += 1;
                }
                Frame::SparseChunk(chunk) if v2 => {
                    on_disk(|| writer.write_sparse_chunk(&chunk)).map_err(refused)?;
                    unacked += 1;
                }
                Frame::Finish(finish) => {
                    let complete =
                        on_disk(|| writer.finish(&finish.dump_digest)).map_err(refused)?;
                    info!(location = %complete.location, stored_bytes = complete.stored_bytes, "dump complete");
                    let location = complete.location.clone();
                    self.send(Frame::Complete(complete)).await?;
                    return Ok(Outcome::Completed { location });
                }
                Frame::Error(e) => {
                    return Err(SessionError::Peer {
                        code: e.code,
                        message: e.message,
                    })
                }
                other => {
                    let chunk = if v2 { "SparseChunk" } else { "PageChunk" };
                    return Err(unexpected(
                        &other,
                        &format!("BitmapPiece, BitmapsDone, {chunk} or Finish"),
                    ));
                }
            }
        }
    }

    /// Reads and drops what the peer still sends, until it closes or for [`ERROR_LINGER`]: a
    /// sender in the middle of its window is still writing when we answer an error, and closing
    /// with its bytes unread makes the kernel send a reset that destroys our answer before the
    /// sender reads it (it would see only "broken pipe", not why).
    async fn drain_briefly(&mut self) {
        let drain = async { while let Some(Ok(_)) = self.framed.next().await {} };
        let _ = tokio::time::timeout(ERROR_LINGER.min(self.limits.idle_timeout), drain).await;
    }

    /// Sends a frame; a peer that takes nothing for the idle timeout is abandoned.
    async fn send(&mut self, frame: Frame) -> Result<(), SessionError> {
        let idle = self.limits.idle_timeout;
        match tokio::time::timeout(idle, self.framed.send(frame)).await {
            Err(_) => Err(SessionError::Timeout(idle)),
            Ok(sent) => Ok(sent?),
        }
    }

    /// The next frame; end of stream, silence past the idle timeout and shutdown are errors.
    async fn expect_frame(&mut self) -> Result<Frame, SessionError> {
        let idle = self.limits.idle_timeout;
        tokio::select! {
            next = tokio::time::timeout(idle, self.framed.next()) => match next {
                Err(_) => Err(SessionError::Timeout(idle)),
                Ok(None) => Err(eof()),
                Ok(Some(frame)) => Ok(frame?),
            },
            _ = self.shutdown.cancelled() => Err(SessionError::Refused {
                code: ErrorCode::Busy,
                message: "receiver is shutting down; retry shortly".into(),
            }),
        }
    }
}

fn eof() -> SessionError {
    SessionError::Protocol(ProtocolError::Io(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "sender closed the connection",
    )))
}

fn unexpected(frame: &Frame, wanted: &str) -> SessionError {
    SessionError::Refused {
        code: ErrorCode::Protocol,
        message: format!("expected {wanted}, got {}", frame.name()),
    }
}

fn refused(e: WriteError) -> SessionError {
    match e {
        WriteError::Rejected { code, message } => SessionError::Refused { code, message },
        WriteError::Store(s) => SessionError::Store(s),
    }
}

/// Runs file I/O and hashing without stalling the other sessions on this worker thread
/// (the receiver runs a multi-thread runtime).
fn on_disk<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Tells a peer we cannot take it now (retryable) and closes.
pub async fn refuse_busy<S>(stream: S, message: &str) -> Result<(), ProtocolError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut framed = Framed::new(stream, FrameCodec);
    // Take the sender's Hello first (briefly): closing with its bytes unread would make the
    // kernel answer with a reset that can swallow our message.
    let _ = tokio::time::timeout(Duration::from_secs(5), framed.next()).await;
    let answer = framed
        .send(Frame::Error(ErrorFrame::new(ErrorCode::Busy, message)))
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(5), framed.close()).await;
    answer
}
