//! `crashdropd dmesg`: print the crashed kernel's log, read from a stored dump's `vmcore`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::dump_dir;
use crate::store::read_kernel_log;

#[derive(Args, Debug)]
pub struct DmesgArgs {
    /// The store directory given to `crashdropd serve --store`.
    #[arg(long, value_name = "DIR")]
    pub store: PathBuf,
    /// The dump, as `crashdropd list` shows it: HOST/DUMP.
    #[arg(value_name = "HOST/DUMP")]
    pub dump: String,
}

/// Prints the log as kexec-tools' `vmcore-dmesg` would from the original vmcore.
pub fn run(args: DmesgArgs) -> anyhow::Result<ExitCode> {
    let vmcore = dump_dir(&args.store, &args.dump)?.join("vmcore");
    let log = read_kernel_log(&vmcore)
        .with_context(|| format!("no kernel log from {}", vmcore.display()))?;
    let mut out = std::io::stdout().lock();
    out.write_all(&log)
        .and_then(|()| out.flush())
        .context("writing the log to stdout")?;
    Ok(ExitCode::SUCCESS)
}
