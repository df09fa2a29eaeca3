//! Protocol version 2 after `Welcome {2}`: `ResumeSet` says which chunks the receiver holds and
//! how many may be in flight; the others go as `SparseChunk`s (zero pages as bits), each once,
//! acknowledged as sets by `ChunksAck`; the dump digest is the version-2 one, in index order.

use crashdrop_formats::digest::{DigestVersion, DumpDigest};
use crashdrop_proto::{ChunkRanges, Finish, Frame, ProtocolError, ResumeState, SparseChunk};
use futures_util::{FutureExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{unexpected, KnownDigests, Sent, Uploader, PAGES_PER_CHUNK};
use crate::error::SendError;
use crate::pages::ChunkReader;
use crate::progress::Progress;
use crate::source::DumpSource;

/// Chunks sent in this attempt and those the receiver acknowledged: the window is their
/// difference, and an acknowledgement of a chunk never sent (or twice) is the receiver's bug.
#[derive(Default)]
struct InFlight {
    sent: ChunkRanges,
    acked: ChunkRanges,
}

impl InFlight {
    fn unacked(&self) -> u64 {
        self.sent.len() - self.acked.len()
    }

    /// Adds an acknowledgement; every chunk in it must be sent and not yet acknowledged.
    fn ack(&mut self, ranges: &ChunkRanges) -> Result<(), SendError> {
        for &(first, count) in ranges.ranges() {
            // Each step either fails or matches a chunk we sent: bounded by what is in flight.
            for c in first..first.saturating_add(count) {
                if !self.sent.contains(c) || self.acked.contains(c) {
                    return Err(SendError::Refused(format!(
                        "protocol: the receiver acknowledged chunk {c}, which is not in flight"
                    )));
                }
                self.acked.insert(c);
            }
        }
        Ok(())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Uploader<S> {
    pub(super) async fn run_v2(
        mut self,
        source: &DumpSource,
        known: &mut KnownDigests,
    ) -> Result<Sent, SendError> {
        known.use_version(DigestVersion::V2);
        let manifest = source.manifest(PAGES_PER_CHUNK);
        let total_pages = manifest.num_dumpable;
        let per_chunk = u64::from(PAGES_PER_CHUNK);
        let num_chunks = total_pages.div_ceil(per_chunk);
        self.send(Frame::Offer(manifest)).await?;
        let resume = match self.receive().await? {
            Frame::ResumeSet(r) => r,
            other => return Err(unexpected(&other, "ResumeSet")),
        };
        if resume.state == ResumeState::Complete {
            return Ok(Sent::AlreadyComplete);
        }
        if let Some(&(first, count)) = resume.durable.ranges().last() {
            if first.saturating_add(count) > num_chunks {
                return Err(SendError::Refused(format!(
                    "protocol: the receiver says it holds chunk {} of a dump of {num_chunks} chunks",
                    first.saturating_add(count) - 1
                )));
            }
        }
        if !resume.bitmaps_stored {
            self.send_bitmaps(source).await?;
        }
        let held = resume.durable.len();
        if held > 0 {
            eprintln!(
                "resuming: the receiver holds {held} of {num_chunks} chunks durably; \
                 sending the other {}",
                num_chunks - held
            );
        }
        let (b1, b2) = source.bitmap_digests();
        let mut digest = DumpDigest::with_version(DigestVersion::V2, &source.dump_id.0, &b1, &b2);
        let mut reader = ChunkReader::new(source, PAGES_PER_CHUNK, DigestVersion::V2)?;
        let page_size = source.page_size() as u64;
        let held_pages = (held * per_chunk).min(total_pages);
        let mut progress = Progress::new(total_pages * page_size, held_pages * page_size);
        let window = u64::from(resume.window);
        let mut flight = InFlight::default();
        let mut done_pages = held_pages;
        let mut wire_bytes = 0u64;
        // Ascending order; the chunks the receiver holds are skipped, never resent.
        for chunk in 0..num_chunks {
            let index = chunk as usize;
            if resume.durable.contains(chunk) {
                let known_digest = known.0.get(index).copied();
                let d = match known_digest {
                    Some(d) => reader.skip_chunk_unread().then_some(d),
                    None => reader.skip_chunk()?,
                };
                let Some(d) = d else { break };
                if known_digest.is_none() {
                    known.0.push(d);
                }
                digest.push_chunk(&d);
                continue;
            }
            let Some(read) = reader.next_chunk()? else {
                break;
            };
            while flight.unacked() >= window {
                let frame = self.receive().await?;
                self.on_frame_v2(Ok(frame), &mut flight)?;
            }
            digest.push_chunk(&read.chunk.chunk_digest);
            if known.0.len() == index {
                known.0.push(read.chunk.chunk_digest);
            }
            wire_bytes += read.wire_bytes;
            done_pages += read.chunk.pages.len() as u64;
            flight.sent.insert(chunk);
            self.send(Frame::SparseChunk(SparseChunk {
                first_page: read.chunk.first_page,
                chunk_digest: read.chunk.chunk_digest,
                pages: read.chunk.pages,
            }))
            .await?;
            while let Some(Some(frame)) = self.framed.next().now_or_never() {
                self.on_frame_v2(frame, &mut flight)?;
            }
            progress.update(done_pages * page_size, false);
        }
        progress.update(done_pages * page_size, true);
        self.send(Frame::Finish(Finish {
            dump_digest: digest.finish(),
        }))
        .await?;
        loop {
            match self.receive().await? {
                Frame::ChunksAck(ack) => flight.ack(&ack.durable)?,
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

    /// Takes one frame that arrived while chunks are in flight: only `ChunksAck` belongs here.
    fn on_frame_v2(
        &self,
        frame: Result<Frame, ProtocolError>,
        flight: &mut InFlight,
    ) -> Result<(), SendError> {
        match frame.map_err(|e| super::connection_error(e, &self.peer))? {
            Frame::ChunksAck(ack) => flight.ack(&ack.durable),
            Frame::Error(e) => Err(SendError::from_receiver(e.code, &e.message)),
            Frame::Busy(b) => Err(SendError::from_busy(&b)),
            other => Err(unexpected(&other, "ChunksAck")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_must_match_chunks_in_flight() {
        let mut flight = InFlight::default();
        for c in [0, 1, 5] {
            flight.sent.insert(c);
        }
        assert_eq!(flight.unacked(), 3);
        flight
            .ack(&ChunkRanges::prefix(2))
            .expect("0 and 1 were sent");
        assert_eq!(flight.unacked(), 1);
        assert!(flight.ack(&ChunkRanges::prefix(1)).is_err(), "acked twice");
        let mut never = ChunkRanges::new();
        never.insert(4);
        assert!(flight.ack(&never).is_err(), "never sent");
    }
}
