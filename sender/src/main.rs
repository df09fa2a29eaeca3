//! `crashdrop-send`: stream this machine's crash dump to crashdropd.

mod config;
mod error;
mod network;
mod pages;
mod progress;
mod retry;
mod source;
#[cfg(feature = "ssh")]
mod ssh;
mod tls;
mod tls_explain;
mod transport;
mod upload;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser};

use crate::error::SendError;
use crate::source::DumpSource;
use crate::tls::TlsFiles;
use crate::transport::{ReceiverUrl, Transport};
use crate::upload::{Sent, Uploader};

/// Streams a Linux kernel crash dump (/proc/vmcore in a kdump capture kernel) to crashdropd over
/// mutual TLS or SSH. Pages are filtered by dump level, compressed with zstd, checksummed, and
/// acknowledged by the receiver only once they are on its disk.
///
/// Exit codes: 0 dump complete on the receiver; 1 unexpected failure; 2 bad command line
/// (including a malformed --receiver, a --dump-level outside 0..=31, or a bad --config file);
/// 3 the vmcore is unreadable or unsupported, or lacks a VMCOREINFO key the dump level needs;
/// 4 the receiver refused (certificate, protocol version, invalid dump, digest mismatch, SSH
/// host key not the pinned one, SSH key not authorized); 5 no route to the receiver for all of
/// --wait-network, or it was unreachable or the transfer kept failing for all of --retry-for;
/// 6 unusable credentials (TLS files, --identity, --server-key, --known-hosts).
///
/// Settings can come from a TOML file instead (--config /etc/crashdrop/sender.toml, what the
/// dracut module and the kdump-tools hook install): each key is named after its flag
/// (server_name for --server-name), except `receivers`, a list tried in order (a fallback
/// receiver follows the main one). Flags on the command line win over the file. Example:
///
///   receivers = ["tls://10.0.0.5:7420", "tls://10.0.1.5:7420"]
///   server_name = "dumps.example"
///   ca = "/etc/crashdrop/ca.pem"        # relative paths are relative to the file
///   cert = "/etc/crashdrop/host.pem"
///   key = "/etc/crashdrop/host.key"
///   dump_level = 31
///   retry_for = "30m"
///   io_timeout = 30
///   wait_network = "2m"
///
/// Other keys: identity, server_key, known_hosts, ssh_command (true/false), vmcore. A key not
/// listed here is an error naming it (exit 2).
#[derive(Parser, Debug)]
#[command(name = "crashdrop-send", version, about, long_about)]
struct Args {
    /// The receiver, as tls://HOST:PORT or ssh://[USER@]HOST[:PORT] (HOST may be a name, an
    /// IPv4 address or [IPv6]; the SSH port defaults to 7422, crashdropd's SSH listener).
    #[arg(
        long,
        value_name = "URL",
        required_unless_present_any = ["synthesize", "config"],
        value_parser = check_receiver_url
    )]
    receiver: Option<String>,
    /// Read settings from this TOML file (see above); flags given as well win over it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Fallback receivers, tried in order after --receiver (from the config file's `receivers`).
    #[arg(skip)]
    fallback_receivers: Vec<String>,
    /// TLS: CA certificate (PEM) that the receiver's certificate must chain to.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// TLS: this host's certificate (PEM), from `crashdrop-certs host`: the host's identity.
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// TLS: this host's private key (PEM).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// SSH: this host's private key (OpenSSH format, no passphrase), from
    /// `crashdrop-certs ssh-client-key`: the host's identity.
    #[arg(long, value_name = "KEY_FILE")]
    identity: Option<PathBuf>,
    /// SSH: the receiver's host key, e.g. 'ssh-ed25519 AAAAC3Nza...' (printed by
    /// `crashdrop-certs ssh-host-key`). Any other key is refused.
    #[arg(long, value_name = "KEY", conflicts_with = "known_hosts")]
    server_key: Option<String>,
    /// SSH: an OpenSSH known_hosts file holding the receiver's host key (hashed entries and
    /// [HOST]:PORT entries included), instead of --server-key.
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
    /// SSH: run the receiver through a command (an OpenSSH authorized_keys line with
    /// command="crashdropd stdio ...") instead of crashdropd's `crashdrop` subsystem.
    #[arg(long)]
    ssh_command: bool,
    /// Name to verify the receiver's certificate against, when it differs from the HOST in
    /// --receiver (capture kernels often dial an IP address without DNS).
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
    /// The ELF crash dump to send.
    #[arg(long, value_name = "FILE", default_value = "/proc/vmcore")]
    vmcore: PathBuf,
    /// makedumpfile's dump level (-d), 0..=31: the sum of 1 (zero pages), 2 (page cache
    /// without private data), 4 (all page cache), 8 (user process data) and 16 (free pages) to
    /// leave out. Pages are selected exactly as makedumpfile selects them; 31 keeps only kernel
    /// data, 0 sends every page.
    // A level out of range is a bad command line (exit 2, clap's), like any other bad flag.
    #[arg(long, short = 'd', value_name = "N", default_value_t = 31,
          value_parser = clap::value_parser!(u8).range(0..=31))]
    dump_level: u8,
    /// Keep reconnecting (and resuming where the receiver's durable copy ends) after resets,
    /// timeouts, refused connections and receiver restarts, for this long: e.g. 30m, 2h, 90s, or
    /// 0 for a single attempt. Refusals that retrying cannot fix end it at once.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = retry::parse_duration)]
    retry_for: std::time::Duration,
    /// Abandon a connection whose receiver has not taken or answered anything for this many
    /// seconds (a peer that vanished without closing), then retry.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    io_timeout: u64,
    /// Before the first attempt, wait this long (e.g. 2m, 30s; 0 not at all) for the network:
    /// the receiver's name resolving and a route to it, checked once a second with one line
    /// per check. A capture kernel often starts the sender while its link or DHCP is still
    /// coming up. A routable receiver that does not answer yet is --retry-for's to wait for.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = retry::parse_duration)]
    wait_network: std::time::Duration,
    /// Instead of sending, write a synthetic ELF vmcore of --size bytes of "RAM" to FILE (a
    /// realistic mix of zero, text-like and random pages), for trying crashdrop out.
    #[arg(long, value_name = "FILE")]
    synthesize: Option<PathBuf>,
    /// Memory size of the synthetic machine, e.g. 256MiB or 4GiB (with --synthesize).
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_size)]
    size: u64,
    /// Seed for --synthesize (the same seed gives the same dump).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> ExitCode {
    let matches = Args::command().get_matches();
    let mut args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Err(message) = apply_config(&mut args, &matches) {
        Args::command()
            .error(ErrorKind::InvalidValue, message)
            .exit();
    }
    if let Some((kind, message)) = transport_flag_problem(&args) {
        Args::command().error(kind, message).exit();
    }
    let result = match &args.synthesize {
        Some(path) => synthesize(path, args.size, args.seed),
        None => send(&args),
    };
    match result {
        Ok(()) => ExitCode::from(error::exit::COMPLETE),
        Err(e) => {
            eprintln!("crashdrop-send: error: {e}");
            e.exit_code()
        }
    }
}

fn synthesize(path: &std::path::Path, size: u64, seed: u64) -> Result<(), SendError> {
    let spec = crashdrop_formats::synth::SynthSpec {
        memory_bytes: size,
        seed,
        osrelease: "6.1.0-crashdrop-synthetic".into(),
        crash_time: 1_767_225_600,
    };
    let summary = crashdrop_formats::synth::write_synthetic_vmcore(path, &spec).map_err(|e| {
        SendError::Other(format!(
            "cannot write the synthetic vmcore {}: {e}",
            path.display()
        ))
    })?;
    eprint!("{}", synthesis_report(path, size, &summary));
    Ok(())
}

/// What `--synthesize` wrote, in the numbers the sender will print when it sends the file.
fn synthesis_report(
    path: &std::path::Path,
    size: u64,
    s: &crashdrop_formats::SynthSummary,
) -> String {
    use crashdrop_formats::{DumpLevel, SynthClass as C};
    let partial = s.pages - s.file_backed;
    format!(
        "wrote {}: a model kernel's crash on a {} MiB machine, {} pages of RAM ({} zero)\n\
         \x20 by use: {} free, {} page cache, {} page cache with private data, {} anonymous, \
         {} slab, {} other kernel, {} reserved\n\
         \x20 a dump holds {} of them at --dump-level 0 ({partial} only partly RAM, left out as \
         makedumpfile does) and {} at the default level 31\n",
        path.display(),
        size >> 20,
        s.pages,
        s.zero_pages,
        s.pages_of(C::Free),
        s.pages_of(C::Cache),
        s.pages_of(C::CachePrivate),
        s.pages_of(C::Anon),
        s.pages_of(C::Slab),
        s.pages_of(C::Kernel),
        s.pages_of(C::Reserved),
        s.file_backed,
        s.dumpable_at(DumpLevel::ALL),
    )
}

fn send(args: &Args) -> Result<(), SendError> {
    source::check_dump_level(args.dump_level)?;
    let receiver = args
        .receiver
        .as_deref()
        .ok_or_else(|| SendError::Other("--receiver is required".into()))?;
    let mut transports = vec![transport_for(args, ReceiverUrl::parse(receiver)?)?];
    for url in &args.fallback_receivers {
        transports.push(transport_for(args, ReceiverUrl::parse(url)?)?);
    }
    let address = transports
        .iter()
        .map(Transport::address)
        .collect::<Vec<_>>()
        .join(", then ");
    let source = DumpSource::open(&args.vmcore, args.dump_level)?;
    eprintln!(
        "sending {} (dump {}, level {}, {} pages) to {address}",
        args.vmcore.display(),
        source.dump_id.short(),
        args.dump_level,
        source.num_dumpable()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SendError::Other(format!("cannot start the async runtime: {e}")))?;
    let io_timeout = std::time::Duration::from_secs(args.io_timeout.max(1));
    let addresses: Vec<&str> = transports.iter().map(Transport::address).collect();
    runtime.block_on(network::wait_for_route(&addresses, args.wait_network))?;
    let sent = runtime.block_on(send_with_retry(
        &source,
        &transports,
        args.retry_for,
        io_timeout,
    ))?;
    match sent {
        Sent::Complete {
            complete,
            wire_bytes,
        } => eprintln!(
            "dump complete on the receiver: {} ({} bytes stored; {wire_bytes} bytes of page data sent)",
            complete.location, complete.stored_bytes
        ),
        Sent::AlreadyComplete => eprintln!("the receiver already holds this dump complete"),
    }
    Ok(())
}

/// Attempts until a receiver confirms the dump, a refusal that retrying cannot fix, or the
/// end of `retry_for`. Each attempt resumes where that receiver's durable copy ends. With
/// several receivers (a fallback), an attempt that moved nothing forward passes on to the
/// next one, in order and round again; one that made progress stays with its receiver.
async fn send_with_retry(
    source: &DumpSource,
    transports: &[Transport],
    retry_for: std::time::Duration,
    io_timeout: std::time::Duration,
) -> Result<Sent, SendError> {
    let mut backoff = retry::Backoff::new(retry_for);
    let mut knowns: Vec<upload::KnownDigests> =
        transports.iter().map(|_| Default::default()).collect();
    let mut current = 0usize;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let transport = &transports[current];
        let known = &mut knowns[current];
        let chunks_before = known.len();
        let outcome = async {
            let stream = transport.connect(io_timeout).await?;
            Uploader::new(stream, transport.address(), io_timeout)
                .run(source, known)
                .await
        }
        .await;
        let error = match outcome {
            Ok(sent) => return Ok(sent),
            Err(e) if e.is_retryable() => e,
            Err(e) => return Err(e),
        };
        let progressed = known.len() > chunks_before;
        if progressed {
            // That attempt moved the dump forward: the link works, come back quickly.
            backoff.reset();
        }
        let Some(delay) = backoff.next_delay_after(error.retry_after()) else {
            return Err(SendError::Retryable(format!(
                "{error} (gave up after {}, --retry-for {})",
                attempts(attempt),
                retry::format_duration(retry_for)
            )));
        };
        if transports.len() > 1 && !progressed {
            current = (current + 1) % transports.len();
            eprintln!(
                "attempt {attempt} failed: {error}; trying {} in {:.1}s",
                transports[current].address(),
                delay.as_secs_f64()
            );
        } else {
            eprintln!(
                "attempt {attempt} failed: {error}; retrying in {:.1}s",
                delay.as_secs_f64()
            );
        }
        tokio::time::sleep(delay).await;
    }
}

/// "1 attempt", "3 attempts".
fn attempts(n: u32) -> String {
    if n == 1 {
        "1 attempt".to_owned()
    } else {
        format!("{n} attempts")
    }
}

/// Merges `--config`'s file into `args` (flags on the command line win). Any problem names the
/// file, and the key when one is at fault.
fn apply_config(args: &mut Args, matches: &clap::ArgMatches) -> Result<(), String> {
    let Some(path) = args.config.clone() else {
        return Ok(());
    };
    let file = config::load(&path)?;
    let on_cli = config::GivenFlags(matches);
    let given = |id: &str| on_cli.given(id);
    if args.receiver.is_none() {
        let mut receivers = file.receivers.into_iter();
        args.receiver = receivers.next();
        args.fallback_receivers = receivers.collect();
    }
    if args.receiver.is_none() && args.synthesize.is_none() {
        return Err(format!(
            "no receiver: give --receiver URL or `receivers = [\"tls://HOST:PORT\"]` in {}",
            path.display()
        ));
    }
    // A flag named on the command line keeps its value; the file fills the rest.
    let some = |v: Option<PathBuf>| v.map(Some);
    config::fill(
        &mut args.server_name,
        file.server_name.map(Some),
        given("server_name"),
    );
    config::fill(&mut args.ca, some(file.ca), given("ca"));
    config::fill(&mut args.cert, some(file.cert), given("cert"));
    config::fill(&mut args.key, some(file.key), given("key"));
    config::fill(&mut args.identity, some(file.identity), given("identity"));
    config::fill(
        &mut args.server_key,
        file.server_key.map(Some),
        given("server_key"),
    );
    config::fill(
        &mut args.known_hosts,
        some(file.known_hosts),
        given("known_hosts"),
    );
    config::fill(
        &mut args.ssh_command,
        file.ssh_command,
        given("ssh_command"),
    );
    config::fill(&mut args.vmcore, file.vmcore, given("vmcore"));
    config::fill(&mut args.dump_level, file.dump_level, given("dump_level"));
    config::fill(&mut args.retry_for, file.retry_for, given("retry_for"));
    config::fill(&mut args.io_timeout, file.io_timeout, given("io_timeout"));
    config::fill(
        &mut args.wait_network,
        file.wait_network,
        given("wait_network"),
    );
    // The file's server key and known_hosts give way to the other given on the command line.
    if given("known_hosts") && !given("server_key") {
        args.server_key = None;
    }
    if given("server_key") && !given("known_hosts") {
        args.known_hosts = None;
    }
    Ok(())
}

/// `--receiver` checked while the command line is parsed, so a malformed URL is a bad command
/// line (exit 2) with clap's usage line, not a failure found later.
fn check_receiver_url(url: &str) -> Result<String, String> {
    ReceiverUrl::parse(url)
        .map(|_| url.to_owned())
        .map_err(|e| e.to_string())
}

/// Which transport's flags the command line mixes up, checked right after parsing so that it is
/// a bad command line (exit 2, with clap's usage line): a flag the named transport needs is
/// missing, or one of the other transport is given (refused rather than ignored).
/// With fallback receivers every one is checked; the foreign-flag check only applies when they
/// all share a scheme (a TLS receiver with an SSH fallback needs both kinds of flag).
fn transport_flag_problem(args: &Args) -> Option<(ErrorKind, String)> {
    let urls: Vec<ReceiverUrl> = std::iter::once(args.receiver.as_deref()?)
        .chain(args.fallback_receivers.iter().map(String::as_str))
        .filter_map(|u| ReceiverUrl::parse(u).ok())
        .collect();
    let mixed = urls
        .iter()
        .any(|u| std::mem::discriminant(u) != std::mem::discriminant(&urls[0]));
    urls.into_iter()
        .find_map(|url| flag_problem_for(args, url, !mixed))
}

fn flag_problem_for(
    args: &Args,
    url: ReceiverUrl,
    check_foreign: bool,
) -> Option<(ErrorKind, String)> {
    // (whether given, flag) pairs: all of `needed` must be given, none of `foreign`.
    type Flags<'a> = &'a [(bool, &'a str)];
    let (scheme, needed, foreign): (_, Flags, Flags) = match url {
        ReceiverUrl::Tls { .. } => (
            "tls://",
            &[
                (args.ca.is_some(), "--ca FILE"),
                (args.cert.is_some(), "--cert FILE"),
                (args.key.is_some(), "--key FILE"),
            ],
            &[
                (args.identity.is_some(), "--identity"),
                (args.server_key.is_some(), "--server-key"),
                (args.known_hosts.is_some(), "--known-hosts"),
                (args.ssh_command, "--ssh-command"),
            ],
        ),
        ReceiverUrl::Ssh { .. } => (
            "ssh://",
            &[
                (args.identity.is_some(), "--identity KEY_FILE"),
                (
                    args.server_key.is_some() || args.known_hosts.is_some(),
                    "--server-key 'ssh-ed25519 AAAA...' or --known-hosts FILE (the receiver's host key is pinned, never learnt)",
                ),
            ],
            &[
                (args.ca.is_some(), "--ca"),
                (args.cert.is_some(), "--cert"),
                (args.key.is_some(), "--key"),
                (args.server_name.is_some(), "--server-name"),
            ],
        ),
    };
    if let Some((_, flag)) = needed.iter().find(|(given, _)| !given) {
        return Some((
            ErrorKind::MissingRequiredArgument,
            format!("{flag} is required with a {scheme} receiver"),
        ));
    }
    if !check_foreign {
        return None;
    }
    foreign.iter().find(|(given, _)| *given).map(|(_, flag)| {
        (
            ErrorKind::ArgumentConflict,
            format!("{flag} does not apply to a {scheme} receiver"),
        )
    })
}

/// The transport `--receiver` names, with its credentials loaded (so a bad file fails at once,
/// before any connection). [`transport_flag_problem`] has checked the flags.
fn transport_for(args: &Args, url: ReceiverUrl) -> Result<Transport, SendError> {
    match url {
        ReceiverUrl::Tls { address, host } => {
            let required = |v: &Option<PathBuf>, flag: &str| {
                v.clone()
                    .ok_or_else(|| SendError::Other(format!("{flag} is required")))
            };
            let (ca, cert, key) = (
                required(&args.ca, "--ca")?,
                required(&args.cert, "--cert")?,
                required(&args.key, "--key")?,
            );
            let config = tls::client_config(&TlsFiles {
                ca: &ca,
                cert: &cert,
                key: &key,
            })?;
            Ok(Transport::Tls {
                config,
                address,
                server_name: args.server_name.clone().unwrap_or(host),
            })
        }
        ReceiverUrl::Ssh { user, host, port } => ssh_transport(args, user, host, port),
    }
}

#[cfg(feature = "ssh")]
fn ssh_transport(
    args: &Args,
    user: Option<String>,
    host: String,
    port: u16,
) -> Result<Transport, SendError> {
    let identity = args
        .identity
        .as_deref()
        .ok_or_else(|| SendError::Other("--identity is required".into()))?;
    let identity = ssh::load_identity(identity)?;
    let pin = match (&args.server_key, &args.known_hosts) {
        (Some(line), _) => ssh::ServerKeyPin::from_line(line)?,
        (None, Some(path)) => ssh::ServerKeyPin::from_known_hosts(path, &host, port)?,
        (None, None) => {
            return Err(SendError::Other(
                "--server-key or --known-hosts is required".into(),
            ))
        }
    };
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let request = if args.ssh_command {
        ssh::Request::Command
    } else {
        ssh::Request::Subsystem
    };
    Ok(Transport::Ssh(ssh::SshTarget::new(
        address,
        user.unwrap_or_else(|| ssh::DEFAULT_USER.to_owned()),
        identity,
        pin,
        request,
    )))
}

#[cfg(not(feature = "ssh"))]
fn ssh_transport(
    _args: &Args,
    _user: Option<String>,
    _host: String,
    _port: u16,
) -> Result<Transport, SendError> {
    Err(SendError::Other(
        "this crashdrop-send was built without SSH (cargo feature `ssh`); use a tls:// receiver or a build with the feature".into(),
    ))
}

/// "256MiB", "4G", "1048576" → bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("{text}: not a size"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        "t" | "tib" => 40,
        other => {
            return Err(format!(
                "{text}: unknown unit {other:?} (use KiB, MiB, GiB)"
            ))
        }
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text}: too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_binary_units() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("12 parsecs").is_err());
    }
}
