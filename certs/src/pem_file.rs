//! Writes certificate and key files atomically, with their final mode from the first byte on.
//!
//! Each file is written to a temporary file in the same directory (created with mode 0600 for a
//! key, 0644 for a certificate), flushed to disk, then moved into place: by a rename when the
//! file may be replaced, by a hard link, which fails if the name exists, when it may not. Either
//! way a reader sees the old file, or no file, or the whole new one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::CertError;

/// Who may read the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A private key: owner only (0600).
    Secret,
    /// A certificate: anyone (0644, less whatever the umask removes).
    Public,
}

impl Mode {
    fn bits(self) -> u32 {
        match self {
            Mode::Secret => 0o600,
            Mode::Public => 0o644,
        }
    }
}

/// What to do when the file already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existing {
    /// Replace it.
    Replace,
    /// Fail with [`CertError::AlreadyExists`], giving this reason.
    Refuse(&'static str),
}

/// Writes `contents` to `path` atomically; see the module documentation.
pub(crate) fn write(
    path: &Path,
    contents: &[u8],
    mode: Mode,
    existing: Existing,
) -> Result<(), CertError> {
    let write_err = |source| CertError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let tmp = TempFile::create(dir, mode).map_err(write_err)?;
    (&tmp.file)
        .write_all(contents)
        .and_then(|()| tmp.file.sync_all())
        .map_err(write_err)?;
    match existing {
        Existing::Replace => fs::rename(&tmp.path, path).map_err(write_err)?,
        Existing::Refuse(why) => match fs::hard_link(&tmp.path, path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(CertError::AlreadyExists {
                    path: path.to_path_buf(),
                    why,
                });
            }
            // Some file systems have no hard links. Fall back to check-then-rename, which only
            // loses to a concurrent writer of the same file.
            Err(_) if !exists(path).map_err(write_err)? => {
                fs::rename(&tmp.path, path).map_err(write_err)?
            }
            Err(_) => {
                return Err(CertError::AlreadyExists {
                    path: path.to_path_buf(),
                    why,
                })
            }
        },
    }
    drop(tmp);
    // Make the new directory entry durable too.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| CertError::Write {
            path: dir.to_path_buf(),
            source,
        })
}

/// Fails with [`CertError::AlreadyExists`] if `path` exists (checked before any work is done, so
/// a refusal costs nothing; [`write`] checks again when it commits).
pub(crate) fn refuse_existing(path: &Path, why: &'static str) -> Result<(), CertError> {
    match exists(path) {
        Ok(false) => Ok(()),
        Ok(true) => Err(CertError::AlreadyExists {
            path: path.to_path_buf(),
            why,
        }),
        Err(source) => Err(CertError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Whether anything, even a dangling symlink, is at `path`.
fn exists(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// A temporary file next to its destination, removed on drop (after a rename there is nothing
/// left to remove, and the failed removal is harmless).
struct TempFile {
    path: PathBuf,
    file: File,
}

impl TempFile {
    /// The name is short and independent of `dest`, so that it fits wherever `dest` fits
    /// (host names reach 253 bytes, file names 255).
    fn create(dir: &Path, mode: Mode) -> io::Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = dir.join(format!(
            ".crashdrop-certs.{}.{}.tmp",
            process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode.bits())
            .open(&path)?;
        Ok(TempFile { path, file })
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // Best effort: the file is either already renamed away or an incomplete leftover.
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn secret_files_are_0600_and_leave_no_temporaries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.key");
        write(&path, b"secret", Mode::Secret, Existing::Refuse("test")).expect("write");
        assert_eq!(fs::read(&path).expect("read"), b"secret");
        assert_eq!(mode_of(&path), 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.key")]);
    }

    #[test]
    fn refuse_keeps_the_old_file_and_replace_replaces_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.pem");
        write(&path, b"old", Mode::Public, Existing::Replace).expect("first write");
        let err = write(&path, b"new", Mode::Public, Existing::Refuse("because"))
            .expect_err("must refuse");
        assert!(
            matches!(err, CertError::AlreadyExists { ref path, why: "because" } if path.ends_with("x.pem"))
        );
        assert_eq!(fs::read(&path).expect("read"), b"old");
        write(&path, b"new", Mode::Public, Existing::Replace).expect("replace");
        assert_eq!(fs::read(&path).expect("read"), b"new");
        assert_eq!(fs::read_dir(dir.path()).expect("read_dir").count(), 1);
    }

    #[test]
    fn refuse_existing_sees_dangling_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.key");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &path).expect("symlink");
        assert!(matches!(
            refuse_existing(&path, "test"),
            Err(CertError::AlreadyExists { .. })
        ));
    }
}
