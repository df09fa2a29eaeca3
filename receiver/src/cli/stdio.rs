//! `crashdropd stdio --store DIR --host NAME`: one session on stdin/stdout, for a site that keeps
//! its own OpenSSH server. An `authorized_keys` line pins the host to its key:
//!
//! ```text
//! restrict,command="crashdropd stdio --store /var/crash/crashdrop --host web01.example.com" ssh-ed25519 AAAA...
//! ```
//!
//! The host name comes from that line (sshd chose it by the key), never from the client. The
//! store, its disk limits and its per-dump locks are the daemon's: a daemon and any number of
//! `stdio` processes can write one store at once, and never one dump at once.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use crashdrop_proto::HostName;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::serve::{stdio_settings, StoreLimitArgs};
use crate::session::{self, Outcome, SessionLimits};
use crate::store::{DumpStore, StoreCompression};

#[derive(Args, Debug)]
pub struct StdioArgs {
    /// The receiver's TOML config (as for `serve --config`): its store, compression, idle
    /// timeout and disk limits apply; flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The store directory (the daemon's `--store`, if one runs too).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// The host this login sends as: the name in the authorized_keys line of its key, checked
    /// like a certificate's DNS name.
    #[arg(long, value_name = "NAME")]
    pub host: String,
    /// How stored page data is compressed (as for `serve`). Default zstd.
    #[arg(long, value_enum, value_name = "ALGO")]
    pub store_compression: Option<StoreCompression>,
    /// End the session when the sender is silent for this many seconds. Default 60.
    #[arg(long, value_name = "SECS")]
    pub idle_timeout_secs: Option<u64>,
    #[command(flatten)]
    pub limits: StoreLimitArgs,
}

/// Exit 0 when the dump is complete on disk (now or before), 1 otherwise (the reason is logged
/// on stderr, which sshd hands to the client).
pub fn run(args: StdioArgs) -> anyhow::Result<ExitCode> {
    let host =
        HostName::parse(&args.host).map_err(|e| anyhow::anyhow!("--host {:?}: {e}", args.host))?;
    let (compression, idle) = match &args.config {
        Some(path) => stdio_settings(path)?,
        None => (None, None),
    };
    let (store_dir, limits) = args.limits.resolve(args.config.as_deref(), args.store)?;
    let compression = args
        .store_compression
        .or(compression)
        .unwrap_or(StoreCompression::Zstd);
    let idle_timeout = Duration::from_secs(args.idle_timeout_secs.or(idle).unwrap_or(60).max(1));
    // stdout carries the protocol: logs go to stderr only, warnings unless RUST_LOG says more.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let store = DumpStore::open(&store_dir, compression)
        .with_context(|| format!("cannot open the store {}", store_dir.display()))?
        .with_limits(limits);
    // The session writes under block_in_place, which needs the multi-thread runtime.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot install the SIGTERM handler")?;
        tokio::spawn(async move {
            term.recv().await;
            stop.cancel();
        });
        let stream = tokio::io::join(tokio::io::stdin(), tokio::io::stdout());
        let span = tracing::info_span!("stdio", host = host.as_str());
        let limits = SessionLimits { idle_timeout };
        anyhow::Ok(
            tracing::Instrument::instrument(
                session::run(stream, host, store, limits, shutdown),
                span,
            )
            .await,
        )
    })?;
    // The kernel log is extracted after the dump is acknowledged: let it finish before exiting.
    crate::store::wait_for_kernel_logs();
    match outcome {
        Ok(Outcome::Completed { location }) => {
            info!(%location, "session done: dump complete");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Outcome::AlreadyComplete { location }) => {
            info!(%location, "session done: dump already complete");
            Ok(ExitCode::SUCCESS)
        }
        Ok(outcome) => {
            warn!(
                ?outcome,
                "session ended before the dump was complete (it can resume)"
            );
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            warn!(error = %e, "session failed");
            Ok(ExitCode::FAILURE)
        }
    }
}
