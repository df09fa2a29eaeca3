//! `crashdropd export`: write a stored dump in a format other tools read — ELF for gdb/drgn,
//! kdump-compressed with zlib or raw pages for makedumpfile builds without zstd (Debian 12's),
//! or a flattened stream for a pipe (`| ssh host makedumpfile -R FILE`).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use crashdrop_formats::export::{
    export, ExportError, ExportFormat, ExportReport, FileSink, StreamSink,
};
use crashdrop_formats::kdump::KdumpReader;

use super::dump_dir;
use crate::store::{DumpRecord, DumpState};

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The store directory given to `crashdropd serve --store`.
    #[arg(long, value_name = "DIR")]
    pub store: PathBuf,
    /// The dump, as `crashdropd list` shows it: HOST/DUMP.
    #[arg(value_name = "HOST/DUMP")]
    pub dump: String,
    /// Output format: `elf` (ELF vmcore), `kdump-zlib`, `kdump-none` (raw pages), or
    /// `flattened` (kdump-zlib as a stream; rebuild with `makedumpfile -R FILE`).
    #[arg(long, value_name = "FORMAT",
          value_parser = ["elf", "kdump-zlib", "kdump-none", "flattened"])]
    pub format: String,
    /// Where to write: a file (must not exist unless --force), or `-` for standard output
    /// (elf and flattened; kdump-* only when standard output is a regular file).
    #[arg(short = 'o', long = "output", value_name = "FILE|-")]
    pub output: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let format: ExportFormat = args.format.parse().map_err(anyhow::Error::msg)?;
    let dir = dump_dir(&args.store, &args.dump)?;
    let record_path = dir.join("dump.json");
    let record = DumpRecord::load(&record_path)
        .with_context(|| format!("{}: not a stored dump", args.dump))?;
    if record.state != DumpState::Complete {
        eprintln!(
            "crashdropd: warning: {} is {} ({} of {} pages stored): exporting what has arrived; \
             the output carries the incomplete flag and pages that never arrived are missing \
             from it",
            args.dump,
            record.state.as_str(),
            record.pages_stored,
            record.pages
        );
    }
    let vmcore = dir.join("vmcore");
    let reader =
        KdumpReader::open(&vmcore).with_context(|| format!("cannot read {}", vmcore.display()))?;
    let (report, shown) = if args.output.as_os_str() == "-" {
        (to_stdout(&reader, format)?, "standard output".to_string())
    } else {
        (
            to_file(&reader, format, &args.output, args.force)?,
            args.output.display().to_string(),
        )
    };
    let segments = if format == ExportFormat::Elf {
        format!(", {} PT_LOAD segments", report.segments)
    } else {
        String::new()
    };
    eprintln!(
        "exported {} as {format} to {shown}: {} pages ({} zero), {} bytes{segments}",
        args.dump, report.pages_written, report.zero_pages, report.bytes
    );
    if report.pages_lost > 0 || report.incomplete {
        eprintln!(
            "crashdropd: warning: the export is incomplete: {} dumpable pages never arrived",
            report.pages_lost
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes to standard output. ELF and flattened stream; the kdump formats go back to fill in
/// descriptors, so they need standard output to be a regular file opened at offset 0 without
/// O_APPEND (`> FILE`), and are refused on a pipe or terminal.
fn to_stdout(reader: &KdumpReader, format: ExportFormat) -> anyhow::Result<ExportReport> {
    let stdout = std::io::stdout();
    if format.needs_seekable_output() {
        let file = File::from(
            stdout
                .as_fd()
                .try_clone_to_owned()
                .context("duplicating standard output")?,
        );
        let regular = file.metadata().is_ok_and(|m| m.is_file());
        let appending = rustix::fs::fcntl_getfl(&file)
            .is_ok_and(|flags| flags.contains(rustix::fs::OFlags::APPEND));
        let at_start = (&file).stream_position().is_ok_and(|p| p == 0);
        if !regular || appending || !at_start {
            bail!(
                "--format {format} needs a seekable output (its page descriptors precede the \
                 page data and are filled in as pages are compressed); standard output is not \
                 a regular file at offset 0: use -o FILE, or --format flattened for a pipe and \
                 `makedumpfile -R FILE` on the other end"
            );
        }
        file.set_len(0).context("truncating standard output")?;
        return Ok(export(
            reader,
            format,
            FileSink::new(file, "standard output"),
        )?);
    }
    let out = BufWriter::with_capacity(1 << 20, stdout.lock());
    Ok(export(
        reader,
        format,
        StreamSink::new(out, "standard output"),
    )?)
}

/// Writes `path` via `path.partial` (mode 0600: a dump holds kernel memory, keys included),
/// renamed into place only once complete, so a failed export never leaves a plausible file.
fn to_file(
    reader: &KdumpReader,
    format: ExportFormat,
    path: &Path,
    force: bool,
) -> anyhow::Result<ExportReport> {
    if !force && path.symlink_metadata().is_ok() {
        bail!("{} exists (use --force to replace it)", path.display());
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let written = export(
        reader,
        format,
        FileSink::new(file, partial.display().to_string()),
    )
    .map_err(|e: ExportError| anyhow::Error::new(e))
    .and_then(|report| {
        std::fs::rename(&partial, path)
            .with_context(|| format!("renaming {} to {}", partial.display(), path.display()))?;
        Ok(report)
    });
    if written.is_err() {
        // Best effort: the error being reported matters more than a failed clean-up.
        let _ = std::fs::remove_file(&partial);
    }
    written
}
