//! `Guest`: one qemu-system-x86_64 run of a kernel and initramfs, its serial console on stdout,
//! a QMP socket, killed on drop.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::qmp::Qmp;
use crate::child::ChildGuard;

/// How long a boot to the init script may take (TCG is slow).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long one QMP command may take (a 512 MiB dump under TCG included).
pub const QMP_TIMEOUT: Duration = Duration::from_secs(300);

/// KVM or TCG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// `$CRASHDROP_QEMU_ACCEL` (`kvm` or `tcg`) if set; else KVM when `/dev/kvm` opens for
    /// reading and writing, else TCG. Nested KVM can fail to emulate guest instructions
    /// ("emulation failure" on `lock cmpxchg16b`, seen on this lab's host): set `tcg` there.
    pub fn detect() -> Accel {
        match std::env::var("CRASHDROP_QEMU_ACCEL").as_deref() {
            Ok("tcg") => return Accel::Tcg,
            Ok("kvm") => return Accel::Kvm,
            _ => {}
        }
        let kvm = OpenOptions::new().read(true).write(true).open("/dev/kvm");
        if kvm.is_ok() {
            Accel::Kvm
        } else {
            Accel::Tcg
        }
    }

    /// `-cpu`: `max` without 5-level paging; under KVM also without the ARCH_CAPABILITIES MSR,
    /// which nested KVM hosts refuse to set (QEMU then aborts with "failed to set MSR 0x10a").
    fn cpu(self) -> &'static str {
        match self {
            Accel::Kvm => "max,la57=off,arch-capabilities=off",
            Accel::Tcg => "max,la57=off",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// What to boot.
#[derive(Clone, Debug)]
pub struct GuestConfig {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// Kernel command line; `console=ttyS0` is added.
    pub cmdline: String,
    pub memory_mib: u32,
    pub cpus: u32,
    pub accel: Accel,
    /// More qemu arguments (e.g. a `-drive` for a capture disk).
    pub extra: Vec<String>,
}

impl GuestConfig {
    /// 512 MiB, 1 CPU, the detected accelerator, QEMU's vmcoreinfo device.
    pub fn new(kernel: &Path, initrd: &Path, cmdline: &str) -> GuestConfig {
        GuestConfig {
            kernel: kernel.to_owned(),
            initrd: initrd.to_owned(),
            cmdline: cmdline.to_string(),
            memory_mib: 512,
            cpus: 1,
            accel: Accel::detect(),
            extra: Vec::new(),
        }
    }
}

/// A running guest. Dropping it kills QEMU.
pub struct Guest {
    child: ChildGuard,
    qmp_socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Guest {
    /// Starts QEMU (`-cpu max,la57=off`, see [`Accel`]; no display, serial on stdout, QMP on a unix socket in
    /// a temporary directory, `-no-reboot`).
    pub fn boot(config: &GuestConfig) -> io::Result<Guest> {
        let dir = tempfile::tempdir()?;
        let qmp_socket = dir.path().join("qmp.sock");
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-accel", config.accel.name()])
            .args(["-cpu", config.accel.cpu()])
            .args(["-m", &config.memory_mib.to_string()])
            .args(["-smp", &config.cpus.to_string()])
            .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
            .args(["-no-reboot", "-device", "vmcoreinfo"])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp_socket.display()))
            .arg("-kernel")
            .arg(&config.kernel)
            .arg("-initrd")
            .arg(&config.initrd)
            .arg("-append")
            .arg(format!("console=ttyS0 {}", config.cmdline))
            .args(&config.extra);
        let child = ChildGuard::spawn("qemu-system-x86_64", &mut cmd)?;
        Ok(Guest {
            child,
            qmp_socket,
            _dir: dir,
        })
    }

    /// Waits up to `timeout` for a console line containing `text`; returns it.
    pub fn wait_for_line(&mut self, text: &str, timeout: Duration) -> io::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.failure(&format!("no console line with {text:?} in {timeout:?}")));
            }
            match self.child.next_line(left) {
                Some(line) if line.contains(text) => return Ok(line),
                Some(_) => {}
                None if Instant::now() >= deadline => {
                    return Err(
                        self.failure(&format!("no console line with {text:?} in {timeout:?}"))
                    )
                }
                None => return Err(self.failure("QEMU's console closed")),
            }
        }
    }

    /// A QMP connection (QEMU allows one at a time).
    pub fn qmp(&self) -> io::Result<Qmp> {
        Qmp::connect(&self.qmp_socket, QMP_TIMEOUT)
    }

    /// Kills QEMU now.
    pub fn kill(&mut self) -> io::Result<()> {
        self.child.kill().map(|_| ())
    }

    /// Waits up to `timeout` for QEMU to exit by itself (e.g. `-no-reboot` after a reboot).
    pub fn wait_exit(&mut self, timeout: Duration) -> io::Result<()> {
        self.child.wait_timeout(timeout).map(|_| ())
    }

    /// Everything the console printed so far and QEMU's stderr, for failure messages.
    pub fn console(&mut self) -> String {
        let mut lines = self.child.stdout_history().to_vec();
        lines.extend(self.child.take_lines());
        format!(
            "{}\n--- qemu stderr:\n{}",
            lines.join("\n"),
            self.child.stderr_text()
        )
    }

    fn failure(&mut self, what: &str) -> io::Error {
        let console = self.console();
        let tail: Vec<&str> = console.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("guest: {what}; console tail:\n{}", tail.join("\n")),
        )
    }
}
