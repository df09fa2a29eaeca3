//! `Initramfs`: a tiny initramfs (newc cpio) with a static busybox, extra files and an `/init`
//! shell script, built at test time with `cpio`.

use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where Debian's `busybox-static` puts the binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// Files for the initramfs, then [`Initramfs::build`].
#[derive(Default)]
pub struct Initramfs {
    /// (path inside the image, host file to copy).
    files: Vec<(String, PathBuf)>,
    init: String,
}

impl Initramfs {
    /// An image whose `/init` runs `script` under busybox `sh` after mounting /proc, /sys and
    /// /dev. `busybox --install -s` gives the script every applet.
    pub fn new(script: &str) -> Initramfs {
        Initramfs {
            files: Vec::new(),
            init: format!(
                "#!/bin/busybox sh\n/bin/busybox --install -s /bin\nexport PATH=/bin\n\
                 mount -t proc proc /proc\nmount -t sysfs sysfs /sys\n\
                 mount -t devtmpfs devtmpfs /dev\n{script}\n"
            ),
        }
    }

    /// Copies host file `from` to `to` (an absolute path) inside the image.
    pub fn file(mut self, to: &str, from: &Path) -> Initramfs {
        self.files
            .push((to.trim_start_matches('/').to_string(), from.to_owned()));
        self
    }

    /// Copies a dynamically linked host executable `from` to `to` with every shared library
    /// `ldd` names, at the same absolute paths (so its ELF interpreter and `RUNPATH` resolve).
    /// Statically linked executables (ldd: "not a dynamic executable") are copied alone.
    pub fn binary(mut self, to: &str, from: &Path) -> io::Result<Initramfs> {
        let out = Command::new("ldd").arg(from).output().map_err(|e| {
            io::Error::new(e.kind(), format!("ldd {} (libc-bin): {e}", from.display()))
        })?;
        // ldd lines: "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vDSO has no path.
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let lib = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            if let Some(lib) = lib.filter(|l| l.starts_with('/')) {
                self = self.file(lib, Path::new(lib));
            }
        }
        Ok(self.file(to, from))
    }

    /// Writes the image to `out` (uncompressed newc cpio, which every kernel takes).
    pub fn build(&self, out: &Path) -> io::Result<()> {
        let root = tempfile::tempdir()?;
        let r = root.path();
        for d in ["bin", "proc", "sys", "dev", "tmp", "mnt"] {
            std::fs::create_dir_all(r.join(d))?;
        }
        std::fs::copy(BUSYBOX, r.join("bin/busybox"))
            .map_err(|e| io::Error::new(e.kind(), format!("{BUSYBOX} (busybox-static): {e}")))?;
        for (to, from) in &self.files {
            let dest = r.join(to);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(from, &dest)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", from.display())))?;
        }
        let init = r.join("init");
        std::fs::write(&init, &self.init)?;
        std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755))?;

        let list = walk(r)?;
        let image = std::fs::File::create(out)?;
        let mut cpio = Command::new("cpio")
            .args(["--quiet", "-o", "-H", "newc", "--owner=0:0"])
            .current_dir(r)
            .stdin(Stdio::piped())
            .stdout(image)
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = cpio.stdin.take() {
            for path in &list {
                writeln!(stdin, "{path}")?;
            }
        }
        let done = cpio.wait_with_output()?;
        if !done.status.success() {
            return Err(io::Error::other(format!(
                "cpio failed ({}): {}",
                done.status,
                String::from_utf8_lossy(&done.stderr)
            )));
        }
        Ok(())
    }
}

/// Every path under `root`, relative, directories before their contents.
fn walk(root: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        for entry in std::fs::read_dir(root.join(&rel))? {
            let entry = entry?;
            let path = rel.join(entry.file_name());
            out.push(path.to_string_lossy().into_owned());
            if entry.file_type()?.is_dir() {
                pending.push(path);
            }
        }
    }
    Ok(out)
}
