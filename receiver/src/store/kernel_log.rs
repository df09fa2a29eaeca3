//! The crashed kernel's log, extracted from a stored dump's `vmcore` into `dmesg.txt` beside it
//! once the dump is complete (formats.md section 6), and recorded in `dump.json`.
//!
//! Extraction only adds to a complete dump: it runs on one worker thread, a dump at a time, after
//! the sender has been told the dump is complete, and a failure is logged and recorded, never returned. If the
//! receiver stops before it finishes, `dump.json` names no log (and a `dmesg.txt.tmp` may be
//! left); `crashdropd dmesg` still reads the log from the stored file.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Condvar, Mutex, OnceLock};

use crashdrop_formats::dmesg::{kernel_log, DmesgError};
use crashdrop_formats::kdump::{KdumpError, KdumpReader};
use tracing::{info, warn};

use super::{summarize, write_durably, DumpRecord, StoreError};

/// The file the log is written to, beside `vmcore`.
pub const KERNEL_LOG_FILE: &str = "dmesg.txt";

/// Why a stored dump's kernel log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KernelLogError {
    /// The stored file could not be opened as a kdump-compressed file.
    #[error(transparent)]
    Open(#[from] KdumpError),
    /// The stored file carries no VMCOREINFO.
    #[error("{}: no VMCOREINFO in the stored notes", path.display())]
    NoVmcoreinfo { path: PathBuf },
    /// The log's structures could not be read (names the VMCOREINFO key or the read).
    #[error(transparent)]
    Dmesg(#[from] DmesgError),
    /// Writing `dmesg.txt` or `dump.json` failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The kernel log of the kdump-compressed file at `vmcore`, as `vmcore-dmesg` prints it.
pub fn read_kernel_log(vmcore: &Path) -> Result<Vec<u8>, KernelLogError> {
    let reader = KdumpReader::open(vmcore)?;
    let info = reader
        .vmcoreinfo()
        .ok_or_else(|| KernelLogError::NoVmcoreinfo {
            path: vmcore.to_owned(),
        })?;
    Ok(kernel_log(&reader, &info, reader.meta().phys_base)?)
}

/// Complete dumps waiting for their log to be extracted. A crash storm completes hundreds of
/// dumps at once; they are extracted one at a time, in order, by one worker thread, so that the
/// work and memory extraction takes do not grow with the number of dumps.
pub const EXTRACTION_QUEUE: usize = 1024;

/// Queues the complete dump in `dir` for the extraction worker; see [`record_kernel_log`]. With
/// the queue full the dump is left without `dmesg.txt` (logged; `crashdropd dmesg` still reads
/// the log from its `vmcore`).
pub fn extract_in_background(dir: &Path, location: &str) {
    static WORKER: OnceLock<Option<SyncSender<(PathBuf, String)>>> = OnceLock::new();
    let worker = WORKER.get_or_init(|| {
        let (queue, jobs) = sync_channel::<(PathBuf, String)>(EXTRACTION_QUEUE);
        let spawned = std::thread::Builder::new()
            .name("kernel-log".into())
            .spawn(move || {
                for (dir, location) in jobs {
                    record_kernel_log(&dir, &location);
                    PENDING.finished();
                }
            });
        match spawned {
            Ok(_) => Some(queue),
            Err(e) => {
                warn!(error = %e, "cannot start the kernel-log worker: no dmesg.txt will be written");
                None
            }
        }
    });
    let Some(queue) = worker else {
        crate::hooks::dump_finished(dir, location, false);
        return;
    };
    PENDING.started();
    match queue.try_send((dir.to_owned(), location.to_owned())) {
        Ok(()) => {}
        Err(e) => {
            PENDING.finished();
            match e {
                TrySendError::Full(_) => warn!(
                    %location,
                    "kernel log not extracted: {EXTRACTION_QUEUE} dumps already wait for extraction"
                ),
                TrySendError::Disconnected(_) => {
                    warn!(%location, "kernel log not extracted: the extraction worker is gone")
                }
            }
            // The dump is complete all the same: its hooks must not depend on the log.
            crate::hooks::dump_finished(dir, location, false);
        }
    }
}

/// Extractions queued and not finished.
static PENDING: Pending = Pending {
    count: Mutex::new(0),
    idle: Condvar::new(),
};

struct Pending {
    count: Mutex<usize>,
    idle: Condvar,
}

impl Pending {
    fn started(&self) {
        if let Ok(mut count) = self.count.lock() {
            *count += 1;
        }
    }

    fn finished(&self) {
        if let Ok(mut count) = self.count.lock() {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.idle.notify_all();
            }
        }
    }
}

/// Waits for every extraction queued so far (`crashdropd stdio` exits right after its one
/// session; the daemon never needs to).
pub fn wait_for_kernel_logs() {
    let Ok(mut count) = PENDING.count.lock() else {
        return;
    };
    while *count > 0 {
        match PENDING.idle.wait(count) {
            Ok(c) => count = c,
            Err(_) => return,
        }
    }
}

/// Writes `dir/dmesg.txt` from `dir/vmcore` (temp file, fsync, rename) and records the outcome
/// in `dir/dump.json`: `kernel_log` names the file, or `kernel_log_error` says why there is none,
/// and `crash` summarises the log's crash report.
/// Failures are logged as warnings.
pub fn record_kernel_log(dir: &Path, location: &str) {
    let outcome = read_kernel_log(&dir.join("vmcore")).and_then(|log| {
        write_durably(&dir.join(KERNEL_LOG_FILE), &log)?;
        Ok((log.len(), summarize(&String::from_utf8_lossy(&log))))
    });
    let record_path = dir.join("dump.json");
    let saved = DumpRecord::load(&record_path).and_then(|mut record| {
        match &outcome {
            Ok((_, crash)) => {
                record.kernel_log = Some(KERNEL_LOG_FILE.to_owned());
                record.kernel_log_error = None;
                record.crash = crash.clone();
                // VMCOREINFO without OSRELEASE leaves the release empty; the log still names it.
                if record.kernel_release.is_empty() {
                    if let Some(release) = crash.as_ref().and_then(|c| c.kernel_release.clone()) {
                        record.kernel_release = release;
                    }
                }
            }
            Err(e) => {
                record.kernel_log = None;
                record.kernel_log_error = Some(e.to_string());
            }
        }
        record.save(&record_path)
    });
    let log_written = outcome.is_ok();
    match outcome {
        Ok((bytes, Some(crash))) => info!(
            %location,
            bytes,
            title = %crash.title,
            signature = %crash.signature,
            "kernel log extracted"
        ),
        Ok((bytes, None)) => info!(%location, bytes, "kernel log extracted, no crash report in it"),
        Err(e) => warn!(%location, error = %e, "kernel log not extracted"),
    }
    if let Err(e) = saved {
        warn!(%location, error = %e, "could not record the kernel log in dump.json");
    }
    crate::hooks::dump_finished(dir, location, log_written);
}
