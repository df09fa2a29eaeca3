//! A dump directory's lock between processes ([`DirLock`]): `flock(2)` on the directory itself,
//! so that a daemon and any number of `crashdropd stdio` processes (one per OpenSSH login) on one
//! store never write one dump at once, and `prune` never removes a dump being written. The
//! in-process lease ([`Lease`](super::Lease)) stays: it says which dumps this process holds.
//!
//! The lock is taken without waiting: a dump held elsewhere is `Busy` (the sender retries). A
//! lock taken on a directory that was removed (or replaced) meanwhile is worthless, so after
//! locking, the path must still name the locked directory.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::{flock, FlockOperation};

/// An exclusive lock on a directory, released when dropped (the file is closed).
#[derive(Debug)]
pub struct DirLock {
    _dir: File,
}

impl DirLock {
    /// Locks `dir` (which must exist); `Ok(None)` if another open of it holds the lock, or it was
    /// removed or replaced while we locked it.
    pub fn try_lock(dir: &Path) -> io::Result<Option<DirLock>> {
        let file = File::open(dir)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let locked = file.metadata()?;
        let named = match std::fs::metadata(dir) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if (locked.dev(), locked.ino()) != (named.dev(), named.ino()) {
            return Ok(None);
        }
        Ok(Some(DirLock { _dir: file }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_directory_is_busy_for_every_other_open_until_released() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = DirLock::try_lock(dir.path()).expect("lock").expect("free");
        // A second open, as another process would make, is refused at once.
        assert!(DirLock::try_lock(dir.path()).expect("try").is_none());
        drop(first);
        assert!(DirLock::try_lock(dir.path()).expect("try").is_some());
    }

    #[test]
    fn a_lock_on_a_removed_directory_does_not_count() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("d");
        std::fs::create_dir(&dir).expect("mkdir");
        let file = File::open(&dir).expect("open");
        std::fs::remove_dir(&dir).expect("rmdir");
        std::fs::create_dir(&dir).expect("mkdir again");
        drop(file);
        // The new directory locks; a missing one is an error from open.
        assert!(DirLock::try_lock(&dir).expect("lock").is_some());
        std::fs::remove_dir(&dir).expect("rmdir");
        assert!(DirLock::try_lock(&dir).is_err());
    }
}
