//! Makes a real kdump fixture like the ones in `../shared/fixtures/`: boots a Debian kernel
//! package in QEMU with `crashkernel=`, fills some memory, loads the same kernel as capture kernel
//! with `kexec -p`, panics it, and saves what the capture kernel read from `/proc/vmcore`.
//!
//! Writes `OUT/kdump-NAME/vmcore.zst` and `OUT/kdump-NAME/dmesg.txt` (kexec-tools'
//! `vmcore-dmesg`), and copies the kernel package to `OUT/kernel/`. Run it through
//! `scripts/make-fixture.sh`, which says what it needs.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use crashdrop_integration::qemu::{KdumpCapture, KernelPackage};

const USAGE: &str = "usage: make_fixture KERNEL_DEB OUT_DIR [NAME]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (deb, out) = match (args.first(), args.get(1)) {
        (Some(deb), Some(out)) => (PathBuf::from(deb), PathBuf::from(out)),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let name = args.get(2).cloned().unwrap_or_else(|| "kdump-local".into());
    match make(&deb, &out, &name) {
        Ok(dir) => {
            println!("fixture written to {}", dir.display());
            println!(
                "use it with: CRASHDROP_FIXTURES={} scripts/test.sh",
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("make_fixture: {e}");
            ExitCode::FAILURE
        }
    }
}

fn make(deb: &std::path::Path, out: &std::path::Path, name: &str) -> Result<PathBuf, String> {
    let dir = out.join(name);
    if dir.exists() {
        return Err(format!(
            "{} exists; remove it or pick another NAME",
            dir.display()
        ));
    }
    let kernel = KernelPackage::unpack(deb).map_err(|e| e.to_string())?;
    eprintln!(
        "booting {} in QEMU (a kdump cycle takes about 15 s under TCG)",
        kernel.release()
    );
    let work = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    // Some page cache and anonymous memory, so that every dump level has something to drop.
    let capture = KdumpCapture {
        before_panic: "mkdir -p /tmp/fill && mount -t tmpfs tmpfs /tmp/fill && \
                       dd if=/dev/urandom of=/tmp/fill/data bs=1M count=16 2>/dev/null\n"
            .into(),
        ..KdumpCapture::default()
    };
    let captured = capture
        .run(&kernel, work.path())
        .map_err(|e| format!("kdump cycle failed: {e}"))?;

    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dmesg = Command::new("vmcore-dmesg")
        .arg(&captured.vmcore)
        .output()
        .map_err(|e| format!("vmcore-dmesg (apt-get install kexec-tools): {e}"))?;
    if !dmesg.status.success() {
        return Err(format!(
            "vmcore-dmesg {} failed: {}",
            captured.vmcore.display(),
            String::from_utf8_lossy(&dmesg.stderr)
        ));
    }
    std::fs::write(dir.join("dmesg.txt"), &dmesg.stdout)
        .map_err(|e| format!("{}: {e}", dir.join("dmesg.txt").display()))?;
    let vmcore_zst = dir.join("vmcore.zst");
    let status = Command::new("zstd")
        .args(["-q", "-T0", "-o"])
        .arg(&vmcore_zst)
        .arg(&captured.vmcore)
        .status()
        .map_err(|e| format!("zstd (apt-get install zstd): {e}"))?;
    if !status.success() {
        return Err(format!(
            "zstd -o {} failed ({status})",
            vmcore_zst.display()
        ));
    }
    let kernel_dir = out.join("kernel");
    std::fs::create_dir_all(&kernel_dir).map_err(|e| format!("{}: {e}", kernel_dir.display()))?;
    let deb_name = deb
        .file_name()
        .ok_or("the kernel package path has no file name")?;
    let deb_copy = kernel_dir.join(deb_name);
    if !deb_copy.exists() {
        std::fs::copy(deb, &deb_copy).map_err(|e| format!("{}: {e}", deb_copy.display()))?;
    }
    Ok(dir)
}
