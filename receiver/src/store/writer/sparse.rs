//! What only protocol version 2 does to a dump in transfer: chunks in any order, each written
//! at most once (`SparseChunk`), the durable state a set of chunk indices read back from an
//! indexed journal, and the dump digest over chunk digests in index order.

use crashdrop_formats::digest::{DigestVersion, DumpDigest};
use crashdrop_proto::{ChunkRanges, ErrorCode, SparseChunk};

use super::{DumpWriter, WriteError};
use crate::store::ProgressJournal;

impl DumpWriter {
    /// The chunks durably stored: what `ResumeSet.durable` says.
    pub fn durable_set(&self) -> &ChunkRanges {
        &self.durable_set
    }

    /// Verifies one version-2 chunk and writes it (not yet durable): descriptors at their fixed
    /// slots, page data appended at the data end. A chunk already durable, sent twice in this
    /// session, out of range or not on a chunk boundary is a protocol error and nothing of it is
    /// written. Returns its page-data bytes on the wire.
    pub fn write_sparse_chunk(&mut self, chunk: &SparseChunk) -> Result<u64, WriteError> {
        let protocol = |m: String| WriteError::rejected(ErrorCode::Protocol, m);
        if self.journal.is_none() {
            return Err(protocol("SparseChunk before BitmapsDone".into()));
        }
        if self.digest_version != DigestVersion::V2 {
            return Err(protocol(
                "SparseChunk in a protocol version 1 session (send PageChunk)".into(),
            ));
        }
        let first = chunk.first_page;
        if !first.is_multiple_of(self.pages_per_chunk) {
            return Err(protocol(format!(
                "SparseChunk starts at page {first}, not a multiple of pages_per_chunk {}",
                self.pages_per_chunk
            )));
        }
        let index = first / self.pages_per_chunk;
        if index >= self.num_chunks {
            return Err(protocol(format!(
                "SparseChunk {index} (page {first}) is past the dump's last chunk {}",
                self.num_chunks.saturating_sub(1)
            )));
        }
        if self.durable_set.contains(index) {
            return Err(protocol(format!(
                "SparseChunk {index} is already durable (ResumeSet said so); it is never rewritten"
            )));
        }
        if self.seen.contains(index) {
            return Err(protocol(format!(
                "SparseChunk {index} sent twice in one session"
            )));
        }
        let expected = self.pages_per_chunk.min(self.meta.num_dumpable - first);
        if chunk.pages.len() as u64 != expected {
            return Err(protocol(format!(
                "SparseChunk {index} has {} pages, expected {expected}",
                chunk.pages.len()
            )));
        }
        let wire = self.store_chunk(first, &chunk.pages, &chunk.chunk_digest)?;
        self.seen.insert(index);
        Ok(wire)
    }

    /// Makes every written chunk durable; returns the chunks made durable by this call (what
    /// `ChunksAck` lists; empty when nothing was pending).
    pub fn commit_chunks(&mut self) -> Result<ChunkRanges, WriteError> {
        self.commit_pending()
    }

    /// The durable set from an indexed journal, checking every record against this dump: an
    /// index out of range, a duplicate, or page data ends that do not grow from `data_start`
    /// mean the journal does not describe this dump (`None`: start over; logged).
    pub(in crate::store) fn read_durable_set(
        &self,
        data_start: u64,
    ) -> Result<Option<ChunkRanges>, WriteError> {
        let mut set = ChunkRanges::new();
        let mut end = data_start;
        let mut bad: Option<String> = None;
        ProgressJournal::for_each_record(&self.progress_path, |r| {
            if bad.is_some() {
                return;
            }
            if r.index >= self.num_chunks {
                bad = Some(format!("record for chunk {} past the last", r.index));
            } else if set.contains(r.index) {
                bad = Some(format!("two records for chunk {}", r.index));
            } else if r.data_end < end {
                bad = Some(format!("chunk {}'s data end goes backwards", r.index));
            } else {
                set.insert(r.index);
                end = r.data_end;
            }
        })?;
        if let Some(why) = bad {
            tracing::warn!(
                location = %self.location,
                path = %self.progress_path.display(),
                %why,
                "progress journal does not describe this dump; receiving it again from the start"
            );
            return Ok(None);
        }
        Ok(Some(set))
    }

    /// The version-2 dump digest at `Finish`: every chunk durable (after a last commit), their
    /// digests taken from the journal and pushed in chunk *index* order.
    pub(super) fn finish_digest_v2(
        &mut self,
        shas: &[[u8; 32]; 2],
    ) -> Result<[u8; 32], WriteError> {
        self.commit_pending()?;
        let missing = self.num_chunks - self.durable_set.len().min(self.num_chunks);
        if missing > 0 {
            let first = self.durable_set.first_missing(self.num_chunks).unwrap_or(0);
            return Err(WriteError::rejected(
                ErrorCode::Protocol,
                format!(
                    "Finish with {missing} of {} chunks never sent (the first is chunk {first})",
                    self.num_chunks
                ),
            ));
        }
        // One entry per record we wrote ourselves, so bounded by the chunks actually received.
        let mut digests: Vec<(u64, [u8; 32])> = Vec::new();
        ProgressJournal::for_each_record(&self.progress_path, |r| {
            digests.push((r.index, r.digest))
        })?;
        digests.sort_unstable_by_key(|&(index, _)| index);
        let in_order = digests.len() as u64 == self.num_chunks
            && digests
                .iter()
                .enumerate()
                .all(|(i, &(index, _))| index == i as u64);
        if !in_order {
            return Err(WriteError::internal(format!(
                "{}: the journal's records are not exactly chunks 0..{}",
                self.progress_path.display(),
                self.num_chunks
            )));
        }
        let mut digest =
            DumpDigest::with_version(DigestVersion::V2, &self.dump_id.0, &shas[0], &shas[1]);
        for (_, d) in &digests {
            digest.push_chunk(d);
        }
        Ok(digest.finish())
    }
}
