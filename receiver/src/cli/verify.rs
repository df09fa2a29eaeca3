//! `crashdropd verify`: recompute a stored dump's whole-dump digest from the file on disk, in the
//! digest version `dump.json` records (version 2 hashes zero pages as one tag byte).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use crashdrop_formats::digest::{sha256, ChunkHasher, DumpDigest};
use crashdrop_formats::kdump::{KdumpReader, PageRead};

use crate::store::{to_hex, DumpRecord, DumpState};

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The store directory given to `crashdropd serve --store`.
    #[arg(long, value_name = "DIR")]
    pub store: PathBuf,
    /// The dump, as `crashdropd list` shows it: HOST/DUMP.
    #[arg(value_name = "HOST/DUMP")]
    pub dump: String,
}

pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let dir = super::dump_dir(&args.store, &args.dump)?;
    match verify_dir(&dir)? {
        Verdict::Match { pages, digest } => {
            println!("OK {}: {pages} pages, digest {digest}", args.dump);
            Ok(ExitCode::SUCCESS)
        }
        Verdict::Mismatch { why } => {
            println!("FAILED {}: {why}", args.dump);
            Ok(ExitCode::FAILURE)
        }
    }
}

pub enum Verdict {
    Match { pages: u64, digest: String },
    Mismatch { why: String },
}

/// Re-reads `dir/vmcore` page by page and compares its digest with `dir/dump.json`'s.
pub fn verify_dir(dir: &Path) -> anyhow::Result<Verdict> {
    let record = DumpRecord::load(&dir.join("dump.json"))?;
    if record.state != DumpState::Complete {
        return Ok(Verdict::Mismatch {
            why: format!("dump is {}, not complete", record.state.as_str()),
        });
    }
    let Some(expected) = record.digest.clone() else {
        return Ok(Verdict::Mismatch {
            why: "dump.json records no digest".into(),
        });
    };
    let vmcore = dir.join("vmcore");
    let reader =
        KdumpReader::open(&vmcore).with_context(|| format!("cannot read {}", vmcore.display()))?;
    if reader.is_incomplete() {
        return Ok(Verdict::Mismatch {
            why: format!("{} still carries the incomplete flag", vmcore.display()),
        });
    }
    let dump_id = parse_hex32(&record.dump_id)
        .with_context(|| format!("{}: bad dump_id", dir.join("dump.json").display()))?;
    let version = record.digest_version();
    let mut digest = DumpDigest::with_version(
        version,
        &dump_id,
        &sha256(reader.bitmap1().as_bytes()),
        &sha256(reader.bitmap2().as_bytes()),
    );
    let per_chunk = u64::from(record.pages_per_chunk.max(1));
    let mut chunk = ChunkHasher::with_version(version);
    let mut in_chunk = 0u64;
    let mut pages = 0u64;
    for entry in reader.pages() {
        let (pfn, _) = entry.with_context(|| format!("{}", vmcore.display()))?;
        match reader.read_page(pfn) {
            Ok(PageRead::Data(page)) => chunk.update(&page),
            Ok(other) => {
                return Ok(Verdict::Mismatch {
                    why: format!("pfn {pfn:#x}: {}", describe(&other)),
                })
            }
            Err(e) => {
                return Ok(Verdict::Mismatch {
                    why: format!("pfn {pfn:#x}: {e}"),
                })
            }
        }
        pages += 1;
        in_chunk += 1;
        if in_chunk == per_chunk {
            let done = std::mem::replace(&mut chunk, ChunkHasher::with_version(version));
            digest.push_chunk(&done.finish());
            in_chunk = 0;
        }
    }
    if in_chunk > 0 {
        digest.push_chunk(&chunk.finish());
    }
    let actual = to_hex(&digest.finish());
    if actual != expected {
        return Ok(Verdict::Mismatch {
            why: format!("digest {actual} does not match the recorded {expected}"),
        });
    }
    Ok(Verdict::Match {
        pages,
        digest: actual,
    })
}

fn describe(read: &PageRead) -> &'static str {
    match read {
        PageRead::NotInDump => "not in dump",
        PageRead::Excluded => "excluded",
        PageRead::Lost => "descriptor never written (page lost)",
        PageRead::Data(_) => "data",
    }
}

fn parse_hex32(hex: &str) -> anyhow::Result<[u8; 32]> {
    let mut out = [0u8; 32];
    if hex.len() != 64 || !hex.is_ascii() {
        bail!("expected 64 hex digits");
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).context("not hex")?;
    }
    Ok(out)
}
