//! Refusing an authenticated sender (at capacity, or revoked) cheaply: the refusal holds no
//! session permit, only one of a few refusal slots, reads at most a Hello-sized first frame and
//! gives each step one second. With every slot taken, the connection is simply closed — the
//! sender retries either way, and a crowd of retrying senders costs the receiver little.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use crashdrop_proto::{ErrorCode, ErrorFrame, Frame, FrameCodec, MAX_STRING};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Refusals in progress at once, per receiver.
pub const REFUSAL_SLOTS: usize = 32;
/// Each step of a refusal (read the Hello, write the Error, close) gets this long.
pub const REFUSAL_STEP_TIMEOUT: Duration = Duration::from_secs(1);
/// The largest first frame a refusal reads: a `Hello` (magic, two versions, a string of at most
/// `MAX_STRING` bytes) with room to spare. A longer one is left unread.
pub const REFUSAL_READ_MAX: usize = 64 + MAX_STRING;

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
/// Every step is bounded by [`REFUSAL_STEP_TIMEOUT`]; errors are the peer's problem and ignored.
pub async fn refuse<S>(mut stream: S, code: ErrorCode, message: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(REFUSAL_STEP_TIMEOUT, skip_first_frame(&mut stream)).await;
    let mut out = BytesMut::new();
    if FrameCodec::encode_frame(&Frame::Error(ErrorFrame::new(code, message)), &mut out).is_ok() {
        let write = async {
            stream.write_all(&out).await?;
            stream.flush().await
        };
        let _ = tokio::time::timeout(REFUSAL_STEP_TIMEOUT, write).await;
    }
    let _ = tokio::time::timeout(REFUSAL_STEP_TIMEOUT, stream.shutdown()).await;
}

/// Reads one length-prefixed frame of at most [`REFUSAL_READ_MAX`] bytes and discards it.
async fn skip_first_frame<S>(stream: &mut S) -> std::io::Result<()>
where
    S: AsyncRead + Unpin,
{
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).await?;
    let len = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
    if len > REFUSAL_READ_MAX {
        return Ok(());
    }
    let mut body = [0u8; REFUSAL_READ_MAX];
    let body = body.get_mut(..len).unwrap_or_default();
    stream.read_exact(body).await?;
    Ok(())
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
