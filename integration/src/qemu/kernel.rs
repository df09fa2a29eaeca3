//! `KernelPackage`: the fixture's `linux-image-*.deb` unpacked with `dpkg-deb -x` into a
//! temporary directory (never installed), giving the kernel image and its modules.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fixtures::fixtures_dir;

/// An unpacked kernel package; the directory goes when this is dropped.
pub struct KernelPackage {
    dir: tempfile::TempDir,
    release: String,
}

impl KernelPackage {
    /// The one `linux-image-*.deb` in `<fixtures>/kernel/`, if there is one.
    pub fn fixture_deb() -> Option<PathBuf> {
        let dir = fixtures_dir().join("kernel");
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("linux-image-") && n.ends_with(".deb"))
            })
    }

    /// Unpacks `deb` with `dpkg-deb -x`.
    pub fn unpack(deb: &Path) -> io::Result<KernelPackage> {
        let dir = tempfile::tempdir()?;
        let out = Command::new("dpkg-deb")
            .arg("-x")
            .arg(deb)
            .arg(dir.path())
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "dpkg-deb -x {} failed ({}): {}",
                deb.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let release = std::fs::read_dir(dir.path().join("boot"))?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .find_map(|n| n.strip_prefix("vmlinuz-").map(str::to_string))
            .ok_or_else(|| io::Error::other(format!("{}: no boot/vmlinuz-*", deb.display())))?;
        Ok(KernelPackage { dir, release })
    }

    /// `uname -r` of the kernel.
    pub fn release(&self) -> &str {
        &self.release
    }

    /// `boot/vmlinuz-<release>`.
    pub fn vmlinuz(&self) -> PathBuf {
        self.dir
            .path()
            .join("boot")
            .join(format!("vmlinuz-{}", self.release))
    }

    /// The module file `lib/modules/<release>/kernel/<rel>` (e.g.
    /// `drivers/firmware/qemu_fw_cfg.ko`, which the guest needs for QEMU's vmcoreinfo device).
    pub fn module(&self, rel: &str) -> PathBuf {
        self.dir
            .path()
            .join("lib/modules")
            .join(&self.release)
            .join("kernel")
            .join(rel)
    }
}
