//! Refusing an authenticated sender (at capacity, or revoked) cheaply: the refusal holds no
//! session permit, only one of a few refusal slots, reads at most a Hello-sized first frame and
//! gives each step one second. With every slot taken, the connection is simply closed — the
//! sender retries either way, and a crowd of retrying senders costs the receiver little.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use crashdrop_proto::{Busy, ErrorCode, ErrorFrame, Frame, FrameCodec, MAX_STRING, PROTOCOL_V2};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::codec::Decoder;

/// Refusals in progress at once, per receiver.
pub const REFUSAL_SLOTS: usize = 32;
/// Each step of a refusal (read the Hello, write the Error, close) gets this long.
pub const REFUSAL_STEP_TIMEOUT: Duration = Duration::from_secs(1);
/// The largest first frame a refusal reads: a `Hello` (magic, two versions, a string of at most
/// `MAX_STRING` bytes) with room to spare. A longer one is left unread.
pub const REFUSAL_READ_MAX: usize = 64 + MAX_STRING;
/// The delay a `Busy` refusal asks a version-2-capable sender to wait (docs/protocol.md, `Busy`).
pub const BUSY_RETRY_AFTER: Duration = Duration::from_secs(2);

/// The refusal slots; cheap to clone.
#[derive(Clone)]
pub struct Refusals {
    slots: Arc<Semaphore>,
}

impl Default for Refusals {
    fn default() -> Self {
        Refusals::new(REFUSAL_SLOTS)
    }
}

impl Refusals {
    pub fn new(slots: usize) -> Refusals {
        Refusals {
            slots: Arc::new(Semaphore::new(slots.max(1))),
        }
    }

    /// A slot, or `None` if every slot is taken (then just close the connection).
    pub fn try_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }
}

/// Reads the sender's first frame if it is Hello-sized (closing with unread bytes would make the
/// kernel send a reset that can swallow our answer), answers `Error(code, message)` and closes.
/// A `Busy` refusal of a sender whose `Hello` offers protocol version 2 is answered with the v2
/// `Busy` frame instead, asking it to wait [`BUSY_RETRY_AFTER`].
/// Every step is bounded by [`REFUSAL_STEP_TIMEOUT`]; errors are the peer's problem and ignored.
pub async fn refuse<S>(mut stream: S, code: ErrorCode, message: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let first = tokio::time::timeout(REFUSAL_STEP_TIMEOUT, read_first_frame(&mut stream))
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
    let speaks_v2 = matches!(first, Some(Frame::Hello(ref h)) if h.max_version >= PROTOCOL_V2);
    let answer = if code == ErrorCode::Busy && speaks_v2 {
        Frame::Busy(Busy::new(BUSY_RETRY_AFTER, message))
    } else {
        Frame::Error(ErrorFrame::new(code, message))
    };
    let mut out = BytesMut::new();
    if FrameCodec::encode_frame(&answer, &mut out).is_ok() {
        let write = async {
            stream.write_all(&out).await?;
            stream.flush().await
        };
        let _ = tokio::time::timeout(REFUSAL_STEP_TIMEOUT, write).await;
    }
    let _ = tokio::time::timeout(REFUSAL_STEP_TIMEOUT, stream.shutdown()).await;
}

/// Reads one length-prefixed frame of at most [`REFUSAL_READ_MAX`] bytes and decodes it
/// (`None` if it is longer, left unread, or does not decode).
async fn read_first_frame<S>(stream: &mut S) -> std::io::Result<Option<Frame>>
where
    S: AsyncRead + Unpin,
{
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).await?;
    let len = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
    if len > REFUSAL_READ_MAX {
        return Ok(None);
    }
    let mut body = [0u8; REFUSAL_READ_MAX];
    let body = body.get_mut(..len).unwrap_or_default();
    stream.read_exact(body).await?;
    let mut whole = BytesMut::with_capacity(4 + len);
    whole.extend_from_slice(&prefix);
    whole.extend_from_slice(body);
    Ok(FrameCodec.decode(&mut whole).ok().flatten())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crashdrop_proto::Hello;
    use futures_util::{SinkExt, StreamExt};
    use tokio_util::codec::Framed;

    #[tokio::test]
    async fn a_hello_is_read_and_answered_with_the_error() {
        let (ours, theirs) = tokio::io::duplex(8);
        let refusing = tokio::spawn(refuse(ours, ErrorCode::Busy, "at capacity"));
        let mut peer = Framed::new(theirs, FrameCodec);
        peer.send(Frame::Hello(Hello::new("test")))
            .await
            .expect("send");
        match peer.next().await {
            Some(Ok(Frame::Error(e))) => {
                assert_eq!(e.code, ErrorCode::Busy);
                assert_eq!(e.message, "at capacity");
            }
            other => panic!("expected Error, got {other:?}"),
        }
        assert!(peer.next().await.is_none(), "then closed");
        refusing.await.expect("refusal task");
    }

    #[tokio::test]
    async fn a_sender_offering_version_2_gets_busy_with_a_retry_delay() {
        let (ours, theirs) = tokio::io::duplex(8);
        let refusing = tokio::spawn(refuse(ours, ErrorCode::Busy, "at capacity"));
        let mut peer = Framed::new(theirs, FrameCodec);
        let hello = Hello {
            min_version: 1,
            max_version: PROTOCOL_V2,
            software: "test".into(),
        };
        peer.send(Frame::Hello(hello)).await.expect("send");
        match peer.next().await {
            Some(Ok(Frame::Busy(b))) => {
                assert_eq!(b.retry_after(), BUSY_RETRY_AFTER);
                assert_eq!(b.message, "at capacity");
            }
            other => panic!("expected Busy, got {other:?}"),
        }
        refusing.await.expect("refusal task");

        // Any other refusal stays an Error, even for a version-2 sender.
        let (ours, theirs) = tokio::io::duplex(8);
        let refusing = tokio::spawn(refuse(ours, ErrorCode::Protocol, "revoked"));
        let mut peer = Framed::new(theirs, FrameCodec);
        let hello = Hello {
            min_version: 1,
            max_version: PROTOCOL_V2,
            software: "test".into(),
        };
        peer.send(Frame::Hello(hello)).await.expect("send");
        assert!(matches!(peer.next().await, Some(Ok(Frame::Error(_)))));
        refusing.await.expect("refusal task");
    }

    #[tokio::test]
    async fn a_silent_or_oversized_peer_costs_at_most_a_few_seconds_and_no_big_buffer() {
        // Silent: the read step times out, the answer is still written.
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let started = tokio::time::Instant::now();
        refuse(ours, ErrorCode::Busy, "busy").await;
        assert!(started.elapsed() <= 3 * REFUSAL_STEP_TIMEOUT);
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).await.expect("read");
        assert!(!got.is_empty(), "the Error frame was written");

        // A 4 MiB first frame is not read at all.
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        theirs
            .write_all(&(4u32 << 20).to_be_bytes())
            .await
            .expect("write");
        refuse(ours, ErrorCode::Busy, "busy").await;
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).await.expect("read");
        assert!(!got.is_empty());
    }
}
