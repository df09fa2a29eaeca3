//! The second judge: Debian 12's `makedumpfile` 1.7.2, which reads kdump-compressed files
//! (`--dump-dmesg`) and makes the reference ones our receiver's output is compared with.
//!
//! Things to know: it never overwrites an output file (exit 1, `File exists`) unless given `-f`,
//! so each call here writes into a fresh temporary directory; it prints its progress and
//! `makedumpfile Completed.` / `makedumpfile Failed.` on standard output and the reason for a
//! failure on standard error; on this 6.1 kernel it warns `The kernel version is not supported.`
//! and still works.

use std::io;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use crate::tools::{command, run_with_timeout};

/// How long one makedumpfile run may take before it is killed.
pub const MAKEDUMPFILE_TIMEOUT: Duration = Duration::from_secs(300);

/// `makedumpfile --dump-dmesg DUMP OUT`: the kernel log as makedumpfile extracts it.
///
/// Returns the exit status, the log text (empty if makedumpfile wrote none) and its messages
/// (standard output, then standard error; a failure's reason is there). makedumpfile indents the
/// continuation lines of a multi-line record, which `vmcore-dmesg` (and `dmesg.txt`) does not:
/// compare through [`crate::normalize_log`].
pub fn makedumpfile_dump_dmesg(dump: &Path) -> io::Result<(ExitStatus, String, String)> {
    let scratch = tempfile::tempdir()?;
    let out = scratch.path().join("dmesg.txt");
    let mut cmd = command("makedumpfile", ["--dump-dmesg"]);
    cmd.arg(dump).arg(&out);
    let done = run_with_timeout(&mut cmd, b"", MAKEDUMPFILE_TIMEOUT)?;
    let log = match std::fs::read(&out) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    Ok((done.status, log, format!("{}{}", done.stdout, done.stderr)))
}

/// `makedumpfile -c -d LEVEL VMCORE OUT`: a reference kdump-compressed file (zlib pages).
///
/// `out` must not exist yet. Errors if makedumpfile fails, with its messages. On the 6.1
/// fixture this takes about 1 s at `-d 31` (16 MB out) and 5 s at `-d 1` (87 MB out).
pub fn makedumpfile_compress(vmcore: &Path, out: &Path, dump_level: u8) -> io::Result<()> {
    makedumpfile_with(vmcore, out, dump_level, "-c")
}

/// `makedumpfile COMPRESSION -d LEVEL VMCORE OUT`, `compression` one of `-c` (zlib) and `-l`
/// (lzo, several times faster; the bitmaps do not depend on it).
pub fn makedumpfile_with(
    vmcore: &Path,
    out: &Path,
    dump_level: u8,
    compression: &str,
) -> io::Result<()> {
    let mut cmd = command("makedumpfile", [compression, "-d"]);
    cmd.arg(dump_level.to_string()).arg(vmcore).arg(out);
    let done = run_with_timeout(&mut cmd, b"", MAKEDUMPFILE_TIMEOUT)?;
    if done.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "makedumpfile {compression} -d {dump_level} {} {} failed ({}):\n{}{}",
            vmcore.display(),
            out.display(),
            done.status,
            done.stdout,
            done.stderr
        )))
    }
}
