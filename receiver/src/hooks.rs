//! Site hooks: commands from the config run when a dump completes (`on_complete`) and when its
//! kernel log has been extracted (`on_log`), with the dump's facts in `CRASHDROP_*` environment
//! variables. They run on their own threads, a few at a time, each killed (with everything it
//! started) at its timeout, so a slow or hanging hook never delays a session or another hook's
//! dump. Exit status and the start of their output are logged.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::store::DumpRecord;

/// What the site configured.
#[derive(Debug, Clone, Default)]
pub struct HookSettings {
    /// Shell command run when a dump is complete (after its kernel log was extracted).
    pub on_complete: Option<String>,
    /// Shell command run when a dump's kernel log has been written to `dmesg.txt`.
    pub on_log: Option<String>,
    /// A hook still running after this is killed.
    pub timeout: Duration,
    /// Hooks running at once; more wait in a queue.
    pub concurrency: usize,
}

/// Default [`HookSettings::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default [`HookSettings::concurrency`].
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Hooks waiting to run; past this, new ones are dropped with a warning.
const QUEUE: usize = 1024;
/// Bytes of a hook's stdout and stderr (each) that are logged.
const OUTPUT_LOGGED: usize = 2048;

struct Job {
    event: &'static str,
    command: String,
    env: Vec<(&'static str, String)>,
    location: String,
}

struct Hooks {
    settings: HookSettings,
    queue: SyncSender<Job>,
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();

/// Starts the hook workers; without a call (or with no command configured) no hook runs.
pub fn install(settings: HookSettings) {
    if settings.on_complete.is_none() && settings.on_log.is_none() {
        return;
    }
    let (queue, jobs) = sync_channel::<Job>(QUEUE);
    let jobs = Arc::new(Mutex::new(jobs));
    for n in 0..settings.concurrency.max(1) {
        let jobs = jobs.clone();
        let timeout = settings.timeout;
        let spawned = std::thread::Builder::new()
            .name(format!("hook-{n}"))
            .spawn(move || worker(&jobs, timeout));
        if let Err(e) = spawned {
            warn!(error = %e, "cannot start a hook worker");
        }
    }
    let _ = HOOKS.set(Hooks { settings, queue });
}

fn worker(jobs: &Mutex<Receiver<Job>>, timeout: Duration) {
    loop {
        let job = match jobs.lock() {
            Ok(jobs) => match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Err(_) => return,
        };
        run(&job, timeout);
    }
}

/// Queues the hooks for a dump whose kernel-log extraction just ended (`log_written`: it wrote
/// `dmesg.txt`).
pub fn dump_finished(dir: &Path, location: &str, log_written: bool) {
    let Some(hooks) = HOOKS.get() else { return };
    let record = match DumpRecord::load(&dir.join("dump.json")) {
        Ok(record) => record,
        Err(e) => {
            warn!(%location, error = %e, "hooks not run: cannot read dump.json");
            return;
        }
    };
    let env = environment(dir, location, &record);
    let events = [
        (
            "on_log",
            hooks.settings.on_log.as_ref().filter(|_| log_written),
        ),
        ("on_complete", hooks.settings.on_complete.as_ref()),
    ];
    for (event, command) in events {
        let Some(command) = command else { continue };
        let job = Job {
            event,
            command: command.clone(),
            env: env.clone(),
            location: location.to_owned(),
        };
        if let Err(e) = hooks.queue.try_send(job) {
            let why = match e {
                TrySendError::Full(_) => "too many hooks waiting",
                TrySendError::Disconnected(_) => "the hook workers are gone",
            };
            warn!(%location, event, "hook not run: {why}");
        }
    }
}

/// The variables a hook sees.
fn environment(dir: &Path, location: &str, r: &DumpRecord) -> Vec<(&'static str, String)> {
    let crash = r.crash.as_ref();
    let text = |v: Option<&String>| v.cloned().unwrap_or_default();
    vec![
        ("CRASHDROP_HOST", r.host.clone()),
        ("CRASHDROP_DUMP", location.to_owned()),
        ("CRASHDROP_DUMP_DIR", dir.display().to_string()),
        ("CRASHDROP_DUMP_ID", r.dump_id.clone()),
        ("CRASHDROP_STATE", r.state.as_str().to_owned()),
        ("CRASHDROP_KERNEL", r.kernel_release.clone()),
        ("CRASHDROP_DUMP_LEVEL", r.dump_level.to_string()),
        ("CRASHDROP_CRASH_TIME", text(r.crash_time_utc.as_ref())),
        ("CRASHDROP_KIND", text(crash.map(|c| &c.kind))),
        ("CRASHDROP_TITLE", text(crash.map(|c| &c.title))),
        ("CRASHDROP_SIGNATURE", text(crash.map(|c| &c.signature))),
        (
            "CRASHDROP_KERNEL_LOG",
            r.kernel_log
                .as_ref()
                .map(|f| dir.join(f).display().to_string())
                .unwrap_or_default(),
        ),
    ]
}

fn run(job: &Job, timeout: Duration) {
    let started = Instant::now();
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(&job.command)
        .envs(job.env.iter().map(|(k, v)| (k, v)))
        .env("CRASHDROP_EVENT", job.event)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a timeout kills whatever the hook started too.
        .process_group(0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            warn!(location = %job.location, event = job.event, error = %e, "hook could not start");
            return;
        }
    };
    let stdout = child.stdout.take().map(capture);
    let stderr = child.stderr.take().map(capture);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= timeout => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                warn!(location = %job.location, event = job.event, error = %e, "hook lost");
                break None;
            }
        }
    };
    if status.is_none() {
        let group = rustix::process::Pid::from_child(&child);
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        let _ = child.wait();
    }
    let out = stdout.and_then(|h| h.join().ok()).unwrap_or_default();
    let err = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
    let secs = started.elapsed().as_secs_f64();
    match status {
        Some(status) if status.success() => info!(
            location = %job.location, event = job.event, secs, stdout = %out, stderr = %err,
            "hook succeeded"
        ),
        Some(status) => warn!(
            location = %job.location, event = job.event, secs, %status, stdout = %out,
            stderr = %err, "hook failed"
        ),
        None => warn!(
            location = %job.location, event = job.event, secs, stdout = %out, stderr = %err,
            "hook killed: still running after its timeout of {}s", timeout.as_secs()
        ),
    }
}

/// Reads a hook's output to its end (so it never blocks on a full pipe), keeping the start.
fn capture(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = OUTPUT_LOGGED.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        String::from_utf8_lossy(&kept).trim_end().to_string()
    })
}
