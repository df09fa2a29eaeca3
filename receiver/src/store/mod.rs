//! The dump store: one directory per host, one directory per dump, and the rules that keep a
//! stored dump safe from every other session.
//!
//! Layout: `STORE/<host>/<UTC crash time>-<first 12 hex of DumpId>/` holding `vmcore` (the
//! kdump-compressed file), `dump.json` (its [`DumpRecord`]), once complete `dmesg.txt` (the
//! crashed kernel's log) and, while in transfer, `progress` (the [`ProgressJournal`]). The host directory comes only from the authenticated transport
//! identity, never from anything the peer says.

pub mod admission;
mod kernel_log;
pub mod lock;
mod progress;
mod record;
pub mod retention;
pub mod space;
mod summary;
mod writer;

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crashdrop_proto::{DumpManifest, HostName};

pub use admission::StoreLimits;

pub use kernel_log::{
    extract_in_background, read_kernel_log, record_kernel_log, wait_for_kernel_logs,
    KernelLogError, KERNEL_LOG_FILE,
};
pub use progress::{ChunkRecord, ProgressJournal};
pub use record::{crash_time_dir_name, now_rfc3339, DumpRecord, DumpState};
pub use summary::{summarize, CrashSummary};
pub use writer::{to_hex, DumpWriter, WriteError};

/// How page data is compressed in stored files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreCompression {
    /// Keep the sender's zstd pages as they are (crash 8.0+ reads them; Debian 12's makedumpfile
    /// does not).
    Zstd,
    /// Recompress every page with zlib: every crash and makedumpfile build reads it.
    Zlib,
}

impl StoreCompression {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreCompression::Zstd => "zstd",
            StoreCompression::Zlib => "zlib",
        }
    }
}

/// Errors of the store itself (as opposed to a peer's faults).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a valid dump record: {source}", path.display())]
    BadRecord {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {why}", path.display())]
    Corrupt { path: PathBuf, why: String },
    #[error("{}: {why}", path.display())]
    Format { path: PathBuf, why: String },
}

/// Creates `root` and any missing parents mode 0700 (dumps hold kernel memory, keys included);
/// a path that exists but is not a directory is named as such, not as "File exists".
fn create_private_dir_all(root: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    if root.exists() && !root.is_dir() {
        return Err(StoreError::Corrupt {
            path: root.to_owned(),
            why: "exists and is not a directory; give --store a directory (it is created if \
                  missing)"
                .into(),
        });
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .map_err(|source| StoreError::Io {
            path: root.to_owned(),
            source,
        })
}

/// Checks at start-up that the receiver can really write `root` (a file is created, written,
/// fsynced and removed), so that a read-only or foreign-owned store is found now and not when
/// the first host crashes.
pub fn probe_writable(root: &Path) -> Result<(), StoreError> {
    let probe = root.join(format!(".crashdrop-write-probe-{}", std::process::id()));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|mut f| {
            f.write_all(b"crashdrop")?;
            f.sync_all()
        });
    let removed = fs::remove_file(&probe);
    written.and(removed).map_err(|source| StoreError::Io {
        path: root.to_owned(),
        source: std::io::Error::new(
            source.kind(),
            format!("the store is not writable by this process: {source}"),
        ),
    })
}

impl StoreError {
    /// Whether the store's filesystem is out of space (or the receiver's user out of its disk
    /// quota): retrying helps once space is freed, and the sender should be told so.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ),
            _ => false,
        }
    }

    /// What the sender is told (the paths and OS errors are for the receiver's log only).
    pub fn peer_message(&self) -> &'static str {
        if self.is_disk_full() {
            "the receiver's disk is full; what it already holds of this dump stays durable and \
             the transfer resumes once space is freed (its operator: `crashdropd prune`)"
        } else {
            "the receiver could not store the dump (an I/O error; see its log)"
        }
    }
}

/// Creates a directory (and missing parents) accessible to its owner only.
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StoreError::Io {
            path: dir.to_owned(),
            source,
        })
}

/// Opens a store file readable by its owner only: crash dumps hold kernel memory, keys included.
pub(super) fn open_private(path: &Path, truncate: bool) -> Result<File, StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .truncate(truncate)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| StoreError::Io {
            path: path.to_owned(),
            source,
        })
}

/// Replaces `path` with `bytes` atomically and durably: a private temp file beside it, fsync,
/// rename, fsync the directory.
pub(super) fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_owned(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = open_private(&tmp, true).and_then(|mut file| {
        file.write_all(bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        fs::rename(&tmp, path).map_err(io)
    });
    if let Err(e) = written {
        // On a full disk the temp file would hold a torn copy and the last free blocks.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// fsyncs a directory so that a rename or a new file in it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Io {
            path: dir.to_owned(),
            source,
        })
}

/// The store root, shared by all sessions.
#[derive(Clone)]
pub struct DumpStore {
    root: PathBuf,
    compression: StoreCompression,
    limits: StoreLimits,
    /// Dump directories a session is writing (or retention is removing) right now.
    active: Arc<Mutex<HashSet<PathBuf>>>,
}

/// What `DumpStore::begin` found for an offered dump.
pub enum Begin {
    /// The dump is already stored and verified: nothing to send.
    Complete { location: String, stored_bytes: u64 },
    /// Write (or continue writing) the dump.
    Receive(Box<DumpWriter>),
    /// Another session holds this dump right now.
    Busy { location: String },
}

/// Marks a dump directory as owned by one session of this process and, once it exists, locked
/// against every other process ([`lock::DirLock`]); both released on drop.
pub struct Lease {
    dir: PathBuf,
    active: Arc<Mutex<HashSet<PathBuf>>>,
    lock: Option<lock::DirLock>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Ok(mut active) = self.active.lock() {
            active.remove(&self.dir);
        }
    }
}

impl DumpStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: &Path, compression: StoreCompression) -> Result<DumpStore, StoreError> {
        create_private_dir_all(root)?;
        Ok(DumpStore {
            root: root.to_owned(),
            compression,
            limits: StoreLimits::default(),
            active: Arc::default(),
        })
    }

    /// The same store with these disk limits (admission and retention).
    pub fn with_limits(mut self, limits: StoreLimits) -> DumpStore {
        self.limits = limits;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn limits(&self) -> &StoreLimits {
        &self.limits
    }

    /// The dump directories sessions hold right now.
    pub fn held(&self) -> HashSet<PathBuf> {
        self.active.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Removes a dump unless a session holds it (then `Ok(false)`); no session can begin on it
    /// while it is being removed.
    pub fn remove(&self, dump: &retention::StoredDump) -> Result<bool, StoreError> {
        let lease = {
            let Ok(mut active) = self.active.lock() else {
                return Ok(false);
            };
            if !active.insert(dump.dir.clone()) {
                return Ok(false);
            }
            Lease {
                dir: dump.dir.clone(),
                active: self.active.clone(),
                lock: None,
            }
        };
        // Another process (a daemon, `crashdropd stdio`) writing it: not ours to remove.
        match lock::DirLock::try_lock(&dump.dir) {
            Ok(Some(_locked)) => {
                let removed = retention::remove(dump);
                drop(lease);
                removed.map(|()| true)
            }
            Ok(None) => Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(StoreError::Io {
                path: dump.dir.clone(),
                source,
            }),
        }
    }

    /// The directory name of a dump, relative to its host directory.
    pub fn dump_dir_name(manifest: &DumpManifest) -> String {
        let time = if manifest.crash_time > 0 {
            crash_time_dir_name(manifest.crash_time)
        } else {
            None
        };
        format!(
            "{}-{}",
            time.as_deref().unwrap_or("unknown-time"),
            manifest.dump_id.short()
        )
    }

    /// Starts or continues receiving `manifest` from `host`. The manifest must be validated.
    pub fn begin(&self, host: &HostName, manifest: &DumpManifest) -> Result<Begin, WriteError> {
        // Refuse a bad offer before anything exists on disk for it.
        let layout = writer::check_offer(manifest)?;
        let relative = PathBuf::from(host.as_str()).join(Self::dump_dir_name(manifest));
        let location = relative.display().to_string();
        let dir = self.root.join(&relative);
        let lease = {
            let mut active = self
                .active
                .lock()
                .map_err(|_| WriteError::internal("store lock poisoned"))?;
            if !active.insert(dir.clone()) {
                return Ok(Begin::Busy { location });
            }
            Lease {
                dir: dir.clone(),
                active: self.active.clone(),
                lock: None,
            }
        };
        // The directory exists from here on, locked by us, or another process holds it. A new
        // one is removed again if admission refuses it (with its host directory, if new too).
        let host_dir = dir.parent().map(Path::to_owned).unwrap_or_default();
        let (fresh, fresh_host) = (!dir.exists(), !host_dir.exists());
        create_private_dir(&dir)?;
        let undo = |dir: &Path| {
            if fresh {
                let _ = fs::remove_dir_all(dir);
                if fresh_host {
                    let _ = fs::remove_dir(&host_dir);
                }
            }
        };
        let mut lease = lease;
        match lock::DirLock::try_lock(&dir) {
            Ok(Some(locked)) => lease.lock = Some(locked),
            Ok(None) => return Ok(Begin::Busy { location }),
            Err(source) => {
                return Err(StoreError::Io {
                    path: dir.clone(),
                    source,
                }
                .into())
            }
        }
        let record_path = dir.join("dump.json");
        if record_path.exists() {
            let record = DumpRecord::load(&record_path)?;
            if record.dump_id != manifest.dump_id.to_hex() {
                // Permanent until an operator acts: not a retryable storage error.
                tracing::error!(
                    path = %record_path.display(),
                    stored = %record.dump_id,
                    offered = %manifest.dump_id,
                    "DumpId prefix collision; move the directory aside to receive the new dump"
                );
                return Err(WriteError::rejected(
                    crashdrop_proto::ErrorCode::InvalidManifest,
                    format!(
                        "{location} already holds another dump with the same id prefix; \
                         the receiver's operator must move it aside"
                    ),
                ));
            }
            if record.state == DumpState::Complete {
                return Ok(Begin::Complete {
                    location,
                    stored_bytes: record.bytes_on_disk,
                });
            }
            if record.state == DumpState::Receiving {
                if let Some(writer) = DumpWriter::resume(&dir, &location, record, manifest, layout)?
                {
                    return Ok(Begin::Receive(Box::new(writer.with_lease(lease))));
                }
            }
            // A failed dump, or one whose transfer settings changed: start it over.
        }
        // Only new dumps (and restarts) are admitted; resumes above always proceed.
        if let Err(e) = admission::admit(self, host, &layout, &dir) {
            undo(&dir);
            return Err(e);
        }
        // Both new entries must survive a power cut: the dump directory in its host directory,
        // and a new host directory in the store root.
        if let Some(host_dir) = dir.parent() {
            sync_dir(host_dir)?;
            if let Some(root) = host_dir.parent() {
                sync_dir(root)?;
            }
        }
        match DumpWriter::create(&dir, &location, host, manifest, layout, self.compression) {
            Ok(writer) => Ok(Begin::Receive(Box::new(writer.with_lease(lease)))),
            Err(e) => {
                // Leave no record-less directory behind (we hold the lease on it).
                undo(&dir);
                Err(e)
            }
        }
    }

    /// Every dump in the store, sorted by host then directory name.
    pub fn list(&self) -> Result<Vec<(String, DumpRecord)>, StoreError> {
        let mut dumps = Vec::new();
        for host in read_dir_sorted(&self.root)? {
            if !host.is_dir() {
                continue;
            }
            for dump in read_dir_sorted(&host)? {
                let record_path = dump.join("dump.json");
                if !record_path.is_file() {
                    continue;
                }
                let record = DumpRecord::load(&record_path)?;
                let rel = dump
                    .strip_prefix(&self.root)
                    .unwrap_or(&dump)
                    .display()
                    .to_string();
                dumps.push((rel, record));
            }
        }
        Ok(dumps)
    }
}

pub(crate) fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let io = |source| StoreError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut entries = fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
    entries.sort();
    Ok(entries)
}
