//! Every bound the protocol puts on a length or a count, in one place (`docs/protocol.md`, Limits).

/// Type byte + payload of any frame (the 4-byte length prefix is not counted): 4 MiB.
pub const MAX_FRAME_LEN: usize = 4 << 20;

/// The ELF note segment carried in `Offer`: 3 MiB (356 B per CPU is room for > 8,000 CPUs).
pub const MAX_NOTES_LEN: usize = 3 << 20;

/// Bytes of one `BitmapPiece`: 1 MiB.
pub const MAX_BITMAP_PIECE: usize = 1 << 20;

/// Pages in one `PageChunk`, and the largest `pages_per_chunk` an `Offer` may ask for.
pub const MAX_PAGES_PER_CHUNK: u16 = 256;

/// The largest `page_size` in an `Offer`; also bounds the data of any one page on the wire.
pub const MAX_PAGE_SIZE: u32 = 65536;

/// The smallest `page_size` in an `Offer`.
pub const MIN_PAGE_SIZE: u32 = 4096;

/// The largest `dump_level` (makedumpfile's `-d` is a 5-bit mask).
pub const MAX_DUMP_LEVEL: u8 = 31;

/// The largest `max_mapnr` in an `Offer`: 2^40 pfns (4 PiB of 4 KiB pages).
pub const MAX_MAPNR: u64 = 1 << 40;

/// Bytes of any `string` field (UTF-8, so at most this many bytes, not characters).
pub const MAX_STRING: usize = 1024;

/// Chunks the sender may have sent but not yet seen acknowledged.
pub const WINDOW: usize = 8;

/// Protocol v2: the largest window a receiver may grant in `ResumeSet` (chunks in flight). 256
/// chunks of 256 compressed 4 KiB pages cover a 10 Gbit/s link at 100 ms RTT at ~2:1 compression.
pub const MAX_WINDOW: u16 = 256;

/// Protocol v2: the window crashdropd grants (64 chunks: 64 MiB of raw pages in flight at 4 KiB
/// × 256, enough for 1 Gbit/s at 500 ms or 10 Gbit/s at 50 ms RTT).
pub const WINDOW_V2: u16 = 64;

/// Protocol v2: ranges in one `ChunkRanges` (16 bytes each: 1 MiB, well within a frame).
pub const MAX_RANGES: usize = 65536;

/// Protocol v2: the longest `retry_after_ms` a `Busy` or `ProbeVerdict` may ask for (10 min).
pub const MAX_RETRY_AFTER_MS: u32 = 600_000;
