//! `crashdropd serve`: configuration (TOML file, overridden by flags) and the daemon's life cycle.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::acceptor::Acceptor;
use crate::handshakes::{HandshakeLimits, HandshakeTable};
use crate::log_limit::LogLimiter;
use crate::refusal::Refusals;
use crate::reload::{reload_on_sighup, Reloadable};
use crate::session::SessionLimits;
use crate::store::space::{parse_bytes, parse_duration, MinFree};
use crate::store::{DumpStore, StoreCompression, StoreLimits};

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML file with the same settings as the flags (keys: store, tls_listen, tls_cert, tls_key,
    /// client_ca, client_crl, revoked_hosts, store_compression, max_sessions,
    /// max_sessions_per_host, max_handshakes, max_handshakes_per_source, idle_timeout_secs,
    /// min_free, host_quota_bytes, host_max_dumps, keep_per_host, max_age, stale_after,
    /// ssh_listen, ssh_host_key, ssh_authorized_keys, on_complete, on_log, hook_timeout_secs,
    /// max_hooks). Flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory that holds the dumps: STORE/<host>/<crash time>-<dump id>/.
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Address to accept TLS senders on, e.g. 0.0.0.0:7420, [::]:7420 or 127.0.0.1:0 (0 picks a
    /// free port). Repeat for several. Each bound address is printed as `listening tls ADDR`.
    /// TLS, SSH or both must be given.
    #[arg(long, value_name = "ADDR")]
    pub tls_listen: Vec<String>,
    /// The receiver's certificate (PEM), e.g. receiver.pem from `crashdrop-certs init`.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The receiver's private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// CA certificate(s) (PEM) that host certificates must chain to; a host's identity is the
    /// DNS name in its certificate.
    #[arg(long, value_name = "FILE")]
    pub client_ca: Option<PathBuf>,
    /// How stored page data is compressed: zstd (default; keeps the sender's pages, crash 8.0+
    /// reads it) or zlib (recompressed; for makedumpfile builds without zstd, e.g. Debian 12's).
    #[arg(long, value_enum, value_name = "ALGO")]
    pub store_compression: Option<StoreCompression>,
    /// Sessions served at once; further senders are told to retry. Default 64.
    #[arg(long, value_name = "N")]
    pub max_sessions: Option<usize>,
    /// Sessions one host may hold at once, so no host can starve the others. Default 4.
    #[arg(long, value_name = "N")]
    pub max_sessions_per_host: Option<usize>,
    /// Drop a sender silent for this many seconds (its dump stays resumable). Default 60.
    #[arg(long, value_name = "SECS")]
    pub idle_timeout_secs: Option<u64>,
    #[command(flatten)]
    pub network: NetworkArgs,
    #[command(flatten)]
    pub disk: StoreLimitArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub hooks: HookArgs,
}

/// Site hooks (README, "Hooks"): shell commands run per dump with `CRASHDROP_*` variables.
#[derive(Args, Debug, Default)]
pub struct HookArgs {
    /// Shell command run when a dump is complete and its kernel log extracted.
    #[arg(long, value_name = "COMMAND")]
    pub on_complete: Option<String>,
    /// Shell command run when a dump's kernel log has been written to dmesg.txt.
    #[arg(long, value_name = "COMMAND")]
    pub on_log: Option<String>,
    /// A hook still running after this many seconds is killed. Default 60.
    #[arg(long, value_name = "SECS")]
    pub hook_timeout_secs: Option<u64>,
    /// Hooks running at once; more wait their turn. Default 4.
    #[arg(long, value_name = "N")]
    pub max_hooks: Option<usize>,
}

/// Disk limits (docs/operations.md, "Disk"); the same flags and config keys serve `prune`.
#[derive(Args, Debug, Default)]
pub struct StoreLimitArgs {
    /// Space kept free on the store's filesystem: new dumps that would eat into it are refused
    /// (NoSpace). A size (2GiB) or a percentage (5%). Default: 5%, at most 2 GiB.
    #[arg(long, value_name = "SIZE|N%")]
    pub min_free: Option<String>,
    /// Bytes one host's dumps may take, e.g. 50GiB. Default: no limit.
    #[arg(long, value_name = "SIZE")]
    pub host_quota_bytes: Option<String>,
    /// Dumps (any state) one host may have. Default: no limit.
    #[arg(long, value_name = "N")]
    pub host_max_dumps: Option<u32>,
    /// Complete dumps kept per host; older ones are removed. Default: all.
    #[arg(long, value_name = "N")]
    pub keep_per_host: Option<u32>,
    /// Complete dumps older than this (e.g. 90d) are removed, except a host's newest. Default:
    /// never.
    #[arg(long, value_name = "DURATION")]
    pub max_age: Option<String>,
    /// Dumps in transfer or failed, untouched this long, are removed. Default 7d.
    #[arg(long, value_name = "DURATION")]
    pub stale_after: Option<String>,
}

/// A size in the config file: a number of bytes or a string like "2GiB".
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
enum ConfigSize {
    Bytes(u64),
    Text(String),
}

impl ConfigSize {
    fn text(self) -> String {
        match self {
            ConfigSize::Bytes(n) => n.to_string(),
            ConfigSize::Text(t) => t,
        }
    }
}

impl StoreLimitArgs {
    /// The store directory and limits for `prune`: flags over the config file over defaults.
    pub fn resolve(
        self,
        config: Option<&Path>,
        store: Option<PathBuf>,
    ) -> anyhow::Result<(PathBuf, StoreLimits)> {
        let file = match config {
            Some(path) => load_config(path)?,
            None => ConfigFile::default(),
        };
        let store = store.or(file.store.clone()).ok_or_else(|| {
            anyhow::anyhow!("--store is required (or `store` in the --config file)")
        })?;
        Ok((store, self.merge(&file)?))
    }

    fn merge(self, file: &ConfigFile) -> anyhow::Result<StoreLimits> {
        let defaults = StoreLimits::default();
        let setting =
            |flag: Option<String>, key: Option<ConfigSize>| flag.or(key.map(ConfigSize::text));
        let bad = |key: &'static str| move |why: String| anyhow::anyhow!("{key}: {why}");
        Ok(StoreLimits {
            min_free: match setting(self.min_free, file.min_free.clone()) {
                Some(t) => MinFree::parse(&t).map_err(bad("min_free"))?,
                None => defaults.min_free,
            },
            host_quota_bytes: setting(self.host_quota_bytes, file.host_quota_bytes.clone())
                .map(|t| parse_bytes(&t).map_err(bad("host_quota_bytes")))
                .transpose()?,
            host_max_dumps: self.host_max_dumps.or(file.host_max_dumps),
            keep_per_host: self.keep_per_host.or(file.keep_per_host),
            max_age: self
                .max_age
                .or(file.max_age.clone())
                .map(|t| parse_duration(&t).map_err(bad("max_age")))
                .transpose()?,
            stale_after: match self.stale_after.or(file.stale_after.clone()) {
                Some(t) => parse_duration(&t).map_err(bad("stale_after"))?,
                None => defaults.stale_after,
            },
        })
    }
}

/// The built-in SSH server (README, "Sending over SSH").
#[derive(Args, Debug, Default)]
pub struct SshArgs {
    /// Address to accept SSH senders on, e.g. 0.0.0.0:7422 (crashdrop-send's default SSH port)
    /// or 127.0.0.1:0. Repeat for several. Each bound address is printed as `listening ssh ADDR`.
    #[arg(long, value_name = "ADDR")]
    pub ssh_listen: Vec<String>,
    /// The receiver's SSH host key (OpenSSH private key, unencrypted), e.g. ssh_host_ed25519_key
    /// from `crashdrop-certs ssh-host-key`.
    #[arg(long, value_name = "FILE")]
    pub ssh_host_key: Option<PathBuf>,
    /// Host keys allowed to send, in authorized_keys syntax, each with a
    /// `crashdrop-host="NAME"` option naming its host. Re-read on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub ssh_authorized_keys: Option<PathBuf>,
}

/// Revocation and handshake limits (docs/operations.md, "Network limits and revocation").
#[derive(Args, Debug, Default)]
pub struct NetworkArgs {
    /// CRL(s) from the client CA (PEM), e.g. crl.pem from `crashdrop-certs revoke`. Re-read on
    /// SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub client_crl: Option<PathBuf>,
    /// Deny-list of host names and `serial HEX` lines, e.g. revoked_hosts from
    /// `crashdrop-certs revoke`; checked after every handshake, resumed ones too. Re-read on
    /// SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub revoked_hosts: Option<PathBuf>,
    /// Unauthenticated connections (TLS handshakes) at once; past this the oldest is closed to
    /// make room. Default 256.
    #[arg(long, value_name = "N")]
    pub max_handshakes: Option<usize>,
    /// Unauthenticated connections at once from one IPv4 address or IPv6 /64. Default 16.
    #[arg(long, value_name = "N")]
    pub max_handshakes_per_source: Option<usize>,
}

/// The `--config` file.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    store: Option<PathBuf>,
    #[serde(default)]
    tls_listen: Vec<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    store_compression: Option<StoreCompression>,
    max_sessions: Option<usize>,
    max_sessions_per_host: Option<usize>,
    idle_timeout_secs: Option<u64>,
    client_crl: Option<PathBuf>,
    revoked_hosts: Option<PathBuf>,
    max_handshakes: Option<usize>,
    max_handshakes_per_source: Option<usize>,
    min_free: Option<ConfigSize>,
    host_quota_bytes: Option<ConfigSize>,
    host_max_dumps: Option<u32>,
    keep_per_host: Option<u32>,
    max_age: Option<String>,
    stale_after: Option<String>,
    #[serde(default)]
    ssh_listen: Vec<String>,
    ssh_host_key: Option<PathBuf>,
    ssh_authorized_keys: Option<PathBuf>,
    on_complete: Option<String>,
    on_log: Option<String>,
    hook_timeout_secs: Option<u64>,
    max_hooks: Option<usize>,
}

/// The SSH listener's settings.
#[derive(Debug)]
pub struct SshSettings {
    pub listen: Vec<String>,
    pub host_key: PathBuf,
    pub authorized_keys: PathBuf,
}

/// Settings after merging file and flags.
#[derive(Debug)]
pub struct ServeConfig {
    pub store: PathBuf,
    /// Empty when only SSH is served (then the TLS files below are not read).
    pub tls_listen: Vec<String>,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub client_ca: PathBuf,
    pub store_compression: StoreCompression,
    pub max_sessions: usize,
    pub max_sessions_per_host: usize,
    pub idle_timeout: Duration,
    pub client_crl: Option<PathBuf>,
    pub revoked_hosts: Option<PathBuf>,
    pub handshakes: HandshakeLimits,
    pub store_limits: StoreLimits,
    pub ssh: Option<SshSettings>,
    pub hooks: crate::hooks::HookSettings,
}

impl ServeConfig {
    pub fn from_args(args: ServeArgs) -> anyhow::Result<ServeConfig> {
        let file = match &args.config {
            Some(path) => load_config(path)?,
            None => ConfigFile::default(),
        };
        let missing = |flag: &str| {
            anyhow::anyhow!(
                "--{flag} is required (or `{}` in the --config file)",
                flag.replace('-', "_")
            )
        };
        let store_limits = args.disk.merge(&file)?;
        let tls_listen = if args.tls_listen.is_empty() {
            file.tls_listen
        } else {
            args.tls_listen
        };
        let ssh_listen = if args.ssh.ssh_listen.is_empty() {
            file.ssh_listen
        } else {
            args.ssh.ssh_listen
        };
        if tls_listen.is_empty() && ssh_listen.is_empty() {
            bail!("--tls-listen or --ssh-listen is required (or `tls_listen` / `ssh_listen` in the --config file)");
        }
        let ssh = if ssh_listen.is_empty() {
            None
        } else {
            Some(SshSettings {
                listen: ssh_listen,
                host_key: args
                    .ssh
                    .ssh_host_key
                    .or(file.ssh_host_key)
                    .ok_or_else(|| missing("ssh-host-key"))?,
                authorized_keys: args
                    .ssh
                    .ssh_authorized_keys
                    .or(file.ssh_authorized_keys)
                    .ok_or_else(|| missing("ssh-authorized-keys"))?,
            })
        };
        let tls = !tls_listen.is_empty();
        // Only TLS needs the certificate files; with SSH alone they stay empty and unread.
        let tls_file = |flag: Option<PathBuf>, name: &str| -> anyhow::Result<PathBuf> {
            match flag {
                Some(path) => Ok(path),
                None if tls => Err(missing(name)),
                None => Ok(PathBuf::new()),
            }
        };
        let max_sessions = args.max_sessions.or(file.max_sessions).unwrap_or(64);
        if max_sessions == 0 {
            bail!("max_sessions must be at least 1");
        }
        Ok(ServeConfig {
            store: args.store.or(file.store).ok_or_else(|| missing("store"))?,
            tls_listen,
            tls_cert: tls_file(args.tls_cert.or(file.tls_cert), "tls-cert")?,
            tls_key: tls_file(args.tls_key.or(file.tls_key), "tls-key")?,
            client_ca: tls_file(args.client_ca.or(file.client_ca), "client-ca")?,
            store_compression: args
                .store_compression
                .or(file.store_compression)
                .unwrap_or(StoreCompression::Zstd),
            max_sessions,
            max_sessions_per_host: args
                .max_sessions_per_host
                .or(file.max_sessions_per_host)
                .unwrap_or(4)
                .max(1),
            idle_timeout: Duration::from_secs(
                args.idle_timeout_secs
                    .or(file.idle_timeout_secs)
                    .unwrap_or(60)
                    .max(1),
            ),
            client_crl: args.network.client_crl.or(file.client_crl),
            revoked_hosts: args.network.revoked_hosts.or(file.revoked_hosts),
            handshakes: HandshakeLimits {
                max: args
                    .network
                    .max_handshakes
                    .or(file.max_handshakes)
                    .unwrap_or(HandshakeLimits::default().max)
                    .max(1),
                per_source: args
                    .network
                    .max_handshakes_per_source
                    .or(file.max_handshakes_per_source)
                    .unwrap_or(HandshakeLimits::default().per_source)
                    .max(1),
            },
            store_limits,
            ssh,
            hooks: crate::hooks::HookSettings {
                on_complete: args.hooks.on_complete.or(file.on_complete),
                on_log: args.hooks.on_log.or(file.on_log),
                timeout: args
                    .hooks
                    .hook_timeout_secs
                    .or(file.hook_timeout_secs)
                    .map_or(crate::hooks::DEFAULT_TIMEOUT, |s| {
                        Duration::from_secs(s.max(1))
                    }),
                concurrency: args
                    .hooks
                    .max_hooks
                    .or(file.max_hooks)
                    .unwrap_or(crate::hooks::DEFAULT_CONCURRENCY)
                    .max(1),
            },
        })
    }
}

/// The config file's settings `crashdropd stdio` takes besides the store and its limits:
/// (store_compression, idle_timeout_secs).
pub fn stdio_settings(path: &Path) -> anyhow::Result<(Option<StoreCompression>, Option<u64>)> {
    let file = load_config(path)?;
    Ok((file.store_compression, file.idle_timeout_secs))
}

fn load_config(path: &Path) -> anyhow::Result<ConfigFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = ServeConfig::from_args(args)?;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    crate::hooks::install(config.hooks.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let tls_files = crate::tls::TlsFiles {
        cert: config.tls_cert.clone(),
        key: config.tls_key.clone(),
        client_ca: config.client_ca.clone(),
        client_crl: config.client_crl.clone(),
        revoked_hosts: config.revoked_hosts.clone(),
    };
    let tls_sessions = crate::tls::session_cache();
    let tls = if config.tls_listen.is_empty() {
        None
    } else {
        Some(Reloadable::new(
            "TLS policy (certificates, client_crl, revoked_hosts)",
            move || tls_files.load(tls_sessions.clone()),
        )?)
    };
    let ssh = match &config.ssh {
        None => None,
        Some(settings) => {
            let host_key = crate::ssh::load_host_key(&settings.host_key)?;
            let path = settings.authorized_keys.clone();
            let keys = Reloadable::new("SSH authorized keys", move || {
                crate::ssh::AuthorizedKeys::load(&path)
            })?;
            Some((host_key, keys, settings.listen.clone()))
        }
    };
    let store = DumpStore::open(&config.store, config.store_compression)
        .with_context(|| format!("cannot open the store {}", config.store.display()))?
        .with_limits(config.store_limits.clone());
    crate::store::probe_writable(&config.store)
        .with_context(|| format!("cannot use the store {}", config.store.display()))?;
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let sessions = Arc::new(Semaphore::new(config.max_sessions));
    let host_sessions = crate::acceptor::HostSessions::new(config.max_sessions_per_host);
    let limits = SessionLimits {
        idle_timeout: config.idle_timeout,
    };
    let handshakes = HandshakeTable::new(config.handshakes);
    let refusals = Refusals::default();
    let log = Arc::new(LogLimiter::default());
    let mut reloadable: Vec<Arc<dyn crate::reload::Reload>> = Vec::new();
    if let Some(tls) = &tls {
        reloadable.push(tls.clone());
    }
    if let Some((_, keys, _)) = &ssh {
        reloadable.push(keys.clone());
    }
    tracker.spawn(reload_on_sighup(reloadable, shutdown.clone()));
    // Before "listening" is printed: a SIGTERM right after it must stop us cleanly, not kill us
    // with the default disposition.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    let mut stdout = std::io::stdout();
    for addr in &config.tls_listen {
        let addr: SocketAddr = addr.parse().with_context(|| {
            format!("--tls-listen {addr}: not an address like 0.0.0.0:7420 or [::]:7420")
        })?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let bound = listener.local_addr().context("listener address")?;
        writeln!(stdout, "listening tls {bound}").context("stdout")?;
        stdout.flush().context("stdout")?;
        info!(%bound, store = %config.store.display(), compression = config.store_compression.as_str(), "listening for TLS senders");
        let Some(tls) = &tls else { break };
        let acceptor = Acceptor {
            listener,
            tls: tls.clone(),
            store: store.clone(),
            sessions: sessions.clone(),
            host_sessions: host_sessions.clone(),
            limits: limits.clone(),
            handshakes: handshakes.clone(),
            refusals: refusals.clone(),
            log: log.clone(),
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
        };
        tracker.spawn(acceptor.run());
    }
    if let Some((host_key, keys, listen)) = ssh {
        let ssh_config = Arc::new(crate::ssh::server_config(host_key, &limits));
        for addr in &listen {
            let addr: SocketAddr = addr.parse().with_context(|| {
                format!("--ssh-listen {addr}: not an address like 0.0.0.0:7422 or [::]:7422")
            })?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            let bound = listener.local_addr().context("listener address")?;
            writeln!(stdout, "listening ssh {bound}").context("stdout")?;
            stdout.flush().context("stdout")?;
            info!(%bound, store = %config.store.display(), keys = keys.get().len(), "listening for SSH senders");
            let acceptor = crate::ssh::SshAcceptor {
                listener,
                config: ssh_config.clone(),
                keys: keys.clone(),
                store: store.clone(),
                sessions: sessions.clone(),
                host_sessions: host_sessions.clone(),
                limits: limits.clone(),
                handshakes: handshakes.clone(),
                refusals: refusals.clone(),
                log: log.clone(),
                shutdown: shutdown.clone(),
                tracker: tracker.clone(),
            };
            tracker.spawn(acceptor.run());
        }
    }
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    info!("shutting down: no new sessions; letting current ones record their progress");
    shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(30), tracker.wait())
        .await
        .is_err()
    {
        warn!("sessions still busy after 30s; exiting (their dumps stay resumable)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_config_file_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("crashdropd.toml");
        std::fs::write(
            &path,
            "store = \"/srv/a\"\ntls_listen = [\"0.0.0.0:7420\"]\ntls_cert = \"r.pem\"\ntls_key = \"r.key\"\nclient_ca = \"ca.pem\"\nstore_compression = \"zlib\"\n",
        )
        .expect("write");
        let config = ServeConfig::from_args(ServeArgs {
            config: Some(path.clone()),
            store: Some("/srv/b".into()),
            ..ServeArgs::default()
        })
        .expect("config");
        assert_eq!(config.store, PathBuf::from("/srv/b"));
        assert_eq!(config.tls_listen, vec!["0.0.0.0:7420".to_owned()]);
        assert_eq!(config.store_compression, StoreCompression::Zlib);

        std::fs::write(&path, "stor = \"/x\"\n").expect("write");
        let err = ServeConfig::from_args(ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        })
        .expect_err("typo must be refused");
        assert!(format!("{err:#}").contains("stor"), "{err:#}");
    }

    #[test]
    fn a_missing_setting_names_its_flag() {
        let err = ServeConfig::from_args(ServeArgs {
            tls_listen: vec!["127.0.0.1:0".into()],
            ..ServeArgs::default()
        })
        .expect_err("store missing");
        assert!(err.to_string().contains("--store"), "{err}");
    }
}
