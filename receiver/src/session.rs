//! One sender's conversation, over any authenticated byte stream (TLS, SSH, or stdio under
//! OpenSSH).
//!
//! The session owns at most one [`DumpWriter`]; file operations run under
//! `tokio::task::block_in_place`, so a slow disk never stalls other sessions' I/O. That requires
//! the multi-thread runtime (`crashdropd serve` builds one; tests use `flavor = "multi_thread"`).
//! The host identity comes from the transport.

use std::time::Duration;

use crashdrop_proto::{
    ChunkAck, ErrorCode, ErrorFrame, Frame, FrameCodec, HostName, ProtocolError, ResumeFrom,
    ResumeState, Welcome, PROTOCOL_VERSION,
};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::store::{Begin, DumpStore, DumpWriter, WriteError};

/// Chunks processed before an acknowledgement is forced even if more are already queued, so the
/// sender's window never runs dry.
const ACK_EVERY_CHUNKS: u32 = 4;

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
}

struct Session<S> {
    framed: Framed<S, FrameCodec>,
    host: HostName,
    limits: SessionLimits,
    shutdown: CancellationToken,
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
    let mut session = Session {
        framed: Framed::new(stream, FrameCodec),
        host,
        limits,
        shutdown,
    };
    let result = session.converse(&store).await;
    if let Err(e) = &result {
        let reply = match e {
            SessionError::Refused { code, message } => Some((*code, message.clone())),
            SessionError::Protocol(ProtocolError::Io(_))
            | SessionError::Timeout(_)
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
        if hello.min_version > PROTOCOL_VERSION || hello.max_version < PROTOCOL_VERSION {
            return Err(SessionError::Refused {
                code: ErrorCode::UnsupportedVersion,
                message: format!(
                    "sender speaks protocol versions {}..={}, this receiver speaks {PROTOCOL_VERSION}",
                    hello.min_version, hello.max_version
                ),
            });
        }
        self.send(Frame::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            software: concat!("crashdropd ", env!("CARGO_PKG_VERSION")).into(),
        }))
        .await?;
        let manifest = match self.expect_frame().await? {
            Frame::Offer(m) => m,
            other => return Err(unexpected(&other, "Offer")),
        };
        let begin = on_disk(|| store.begin(&self.host, &manifest));
        let mut writer = match begin.map_err(refused)? {
            Begin::Complete {
                location,
                stored_bytes,
            } => {
                info!(dump = %manifest.dump_id, %location, stored_bytes, "dump already complete");
                self.send(Frame::ResumeFrom(ResumeFrom {
                    state: ResumeState::Complete,
                    bitmaps_stored: true,
                    next_page: manifest.num_dumpable,
                }))
                .await?;
                return Ok(Outcome::AlreadyComplete { location });
            }
            Begin::Busy { location } => {
                return Err(SessionError::Refused {
                    code: ErrorCode::Busy,
                    message: format!(
                        "another session is receiving {location} right now; retry when it ends"
                    ),
                })
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
            "receiving dump"
        );
        self.send(Frame::ResumeFrom(ResumeFrom {
            state: ResumeState::Send,
            bitmaps_stored: writer.bitmaps_stored(),
            next_page: writer.durable_pages(),
        }))
        .await?;
        let result = self.receive(&mut writer).await;
        if !matches!(result, Ok(Outcome::Completed { .. })) {
            let durable = writer.durable_pages();
            let location = writer.location().to_owned();
            if let Err(e) = on_disk(|| writer.suspend()) {
                warn!(%location, error = %e, "could not record progress of an interrupted dump");
            }
            if let Err(e) = &result {
                warn!(%location, durable_pages = durable, error = %e, "session ended before the dump was complete");
            }
        }
        result
    }

    /// Receives bitmaps and chunks until `Finish`, acknowledging durable chunks.
    async fn receive(&mut self, writer: &mut DumpWriter) -> Result<Outcome, SessionError> {
        let mut unacked = 0u32;
        loop {
            let ready = if unacked >= ACK_EVERY_CHUNKS {
                None
            } else {
                self.framed.next().now_or_never()
            };
            let frame = match ready {
                Some(Some(frame)) => frame?,
                Some(None) => return Err(eof()),
                None => {
                    if unacked > 0 {
                        let durable = on_disk(|| writer.commit()).map_err(refused)?;
                        self.send(Frame::ChunkAck(ChunkAck {
                            durable_pages: durable,
                        }))
                        .await?;
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
                Frame::PageChunk(chunk) => {
                    on_disk(|| writer.write_chunk(&chunk)).map_err(refused)?;
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
                    return Err(unexpected(
                        &other,
                        "BitmapPiece, BitmapsDone, PageChunk or Finish",
                    ))
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
