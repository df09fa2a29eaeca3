//! `KdumpCapture`: a real kdump cycle in QEMU. The first kernel boots with `crashkernel=`, runs a
//! test's script, loads a capture kernel (the same kernel) with `kexec -p` and panics with
//! `echo c > /proc/sysrq-trigger`; the capture kernel's `/init` finds `/proc/vmcore` and either
//! copies it raw onto a virtio disk ([`KdumpCapture::run`]: the host reads it back by cutting the
//! disk image to the size the guest printed) or runs the test's own capture script
//! ([`KdumpCapture::start`], e.g. `crashdrop-send` over QEMU user networking, where the host's
//! 127.0.0.1 is [`HOST_ADDR`] to the guest).
//!
//! Two initramfs images: the capture one (busybox, the virtio modules, the test's files and
//! binaries, the capture script) is built first and then packed, with the kernel image and
//! `kexec` plus its libraries, into the first kernel's. Under TCG a whole cycle of a 512 MiB
//! guest takes about 12 s.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Guest, GuestConfig, Initramfs, KernelPackage};

/// How long the whole cycle (first boot, panic, capture boot, saving) may take under TCG.
pub const KDUMP_TIMEOUT: Duration = Duration::from_secs(420);

/// Where Debian's `kexec-tools` installs `kexec`.
pub const KEXEC: &str = "/sbin/kexec";

/// The capture kernel's command line as kdump-tools and the fixture use it.
pub const CAPTURE_CMDLINE: &str = "console=ttyS0 irqpoll nr_cpus=1 reset_devices panic=1";

/// The host's loopback as the guest sees it through QEMU user networking.
pub const HOST_ADDR: &str = "10.0.2.2";

/// The first kernel's panic line (sysrq `c`).
pub const PANIC_LINE: &str = "Kernel panic - not syncing: sysrq triggered crash";

/// Modules, in load order, that give both kernels a virtio-blk device (all `=m` in Debian's
/// cloud kernel; `insmod` does not resolve dependencies, so the order matters).
pub const VIRTIO_BLK_MODULES: [&str; 6] = [
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "drivers/block/virtio_blk.ko",
];

/// Loaded after [`VIRTIO_BLK_MODULES`] when the guest has a network card (virtio-net).
pub const VIRTIO_NET_MODULES: [&str; 3] = [
    "net/core/failover.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/virtio_net.ko",
];

/// QEMU user networking's fixed guest address set up by hand (busybox `ip`, no DHCP client).
const NET_SETUP: &str = "ip link set lo up\nip link set eth0 up\n\
     ip addr add 10.0.2.15/24 dev eth0\nip route add default via 10.0.2.2\n";

const SIZE_LINE: &str = "CRASHDROP-VMCORE-SIZE ";
const SAVED_LINE: &str = "CRASHDROP-VMCORE-SAVED";
const FAILED_LINE: &str = "CRASHDROP-VMCORE-FAILED";

/// One kdump cycle to run.
pub struct KdumpCapture {
    /// RAM QEMU gives the guest.
    pub memory_mib: u32,
    /// More first-kernel command-line words, e.g. `mem=384M` (the case formats.md names).
    pub first_cmdline: String,
    /// `crashkernel=` size, e.g. `192M`.
    pub crashkernel: String,
    /// Shell run in the first kernel before `kexec -p` (e.g. to fill memory).
    pub before_panic: String,
    /// Extra (image path, host file) pairs for the capture initramfs.
    pub capture_files: Vec<(String, PathBuf)>,
    /// Extra (image path, host executable) pairs for the capture initramfs, each with the shared
    /// libraries `ldd` names ([`Initramfs::binary`]).
    pub capture_binaries: Vec<(String, PathBuf)>,
    /// A virtio-net card on QEMU user networking, brought up in the capture kernel as
    /// 10.0.2.15/24 with [`HOST_ADDR`] as gateway before the capture script runs.
    pub network: bool,
    /// Shell the capture kernel runs instead of saving to the disk (`/proc/vmcore` exists, the
    /// virtio modules are loaded, the network is up if asked for); `None` saves to the disk.
    pub capture_script: Option<String>,
    /// More QEMU arguments.
    pub qemu_extra: Vec<String>,
}

impl Default for KdumpCapture {
    fn default() -> Self {
        KdumpCapture {
            memory_mib: 512,
            first_cmdline: String::new(),
            crashkernel: "192M".into(),
            before_panic: String::new(),
            capture_files: Vec::new(),
            capture_binaries: Vec::new(),
            network: false,
            capture_script: None,
            qemu_extra: Vec::new(),
        }
    }
}

/// What [`KdumpCapture::run`] produced.
pub struct Captured {
    /// The `/proc/vmcore` copy.
    pub vmcore: PathBuf,
    /// Both kernels' console output.
    pub console: String,
}

impl KdumpCapture {
    /// Runs the cycle with files in `work`, the capture kernel saving `/proc/vmcore` to a disk
    /// (there must be no `capture_script`); the vmcore lands in `work/vmcore`.
    pub fn run(&self, kernel: &KernelPackage, work: &Path) -> io::Result<Captured> {
        if self.capture_script.is_some() {
            return Err(io::Error::other(
                "KdumpCapture::run saves to a disk: use start() with a capture script",
            ));
        }
        let disk = work.join("disk.img");
        // A sparse raw disk bigger than any vmcore of this guest.
        std::fs::File::create(&disk)?.set_len(u64::from(self.memory_mib + 64) << 20)?;
        let save = format!(
            "echo {SIZE_LINE}$(stat -c %s /proc/vmcore)\n\
             if dd if=/proc/vmcore of=/dev/vda bs=1M conv=fsync; then echo {SAVED_LINE}; \
             else echo {FAILED_LINE}; fi\n"
        );
        let mut guest = self.boot(kernel, work, &save, Some(&disk))?;
        let size_line = guest.wait_for_line(SIZE_LINE, KDUMP_TIMEOUT)?;
        let size: u64 = size_line
            .split_once(SIZE_LINE)
            .and_then(|(_, n)| n.trim().parse().ok())
            .ok_or_else(|| io::Error::other(format!("capture kernel: bad size {size_line:?}")))?;
        let saved = guest.wait_for_line("CRASHDROP-VMCORE-", KDUMP_TIMEOUT)?;
        if !saved.contains(SAVED_LINE) {
            return Err(io::Error::other(format!(
                "capture kernel could not copy /proc/vmcore to its disk:\n{}",
                guest.console()
            )));
        }
        guest.wait_exit(Duration::from_secs(60))?;
        let console = guest.console();
        let disk_len = std::fs::metadata(&disk)?.len();
        if size == 0 || size > disk_len {
            return Err(io::Error::other(format!(
                "capture kernel: /proc/vmcore is {size} bytes, the disk {disk_len}"
            )));
        }
        let vmcore = work.join("vmcore");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&disk)?
            .set_len(size)?;
        std::fs::rename(&disk, &vmcore)?;
        Ok(Captured { vmcore, console })
    }

    /// Boots the first kernel (images in `work`) and returns the running guest: it panics by
    /// itself, and its capture kernel runs `capture_script` and powers off. Follow it with
    /// [`Guest::wait_for_line`] (e.g. [`PANIC_LINE`]) and [`Guest::wait_exit`].
    pub fn start(&self, kernel: &KernelPackage, work: &Path) -> io::Result<Guest> {
        let script = self.capture_script.as_deref().ok_or_else(|| {
            io::Error::other("KdumpCapture::start needs a capture script: run() saves to a disk")
        })?;
        self.boot(kernel, work, script, None)
    }

    fn boot(
        &self,
        kernel: &KernelPackage,
        work: &Path,
        capture: &str,
        disk: Option<&Path>,
    ) -> io::Result<Guest> {
        let mut modules: Vec<&str> = VIRTIO_BLK_MODULES.to_vec();
        if self.network {
            modules.extend(VIRTIO_NET_MODULES);
        }
        let insmods: String = modules
            .iter()
            .map(|m| format!("insmod /modules/{}\n", module_name(m)))
            .collect();
        let net = if self.network { NET_SETUP } else { "" };
        // One script for both kernels: only the capture kernel has /proc/vmcore.
        let script = format!(
            "{insmods}if [ -e /proc/vmcore ]; then\n{net}{capture}\nsync\npoweroff -f\nfi\n{}\n\
             {KEXEC} -p /vmlinuz --initrd=/capture.cpio --append='{CAPTURE_CMDLINE}' \
             || echo 'CRASHDROP-KEXEC-FAILED'\n\
             echo c > /proc/sysrq-trigger\nwhile true; do sleep 3600; done",
            self.before_panic
        );
        let with_modules = |mut image: Initramfs| {
            for m in &modules {
                image = image.file(&format!("/modules/{}", module_name(m)), &kernel.module(m));
            }
            image
        };
        let mut capture_image = with_modules(Initramfs::new(&script));
        for (to, from) in &self.capture_files {
            capture_image = capture_image.file(to, from);
        }
        for (to, from) in &self.capture_binaries {
            capture_image = capture_image.binary(to, from)?;
        }
        let capture_cpio = work.join("capture.cpio");
        capture_image.build(&capture_cpio)?;
        // The first kernel's image: the same script and modules plus what kexec needs.
        let first_cpio = work.join("first.cpio");
        with_modules(Initramfs::new(&script))
            .file("/vmlinuz", &kernel.vmlinuz())
            .file("/capture.cpio", &capture_cpio)
            .binary(KEXEC, Path::new(KEXEC))?
            .build(&first_cpio)?;

        let cmdline = format!(
            "crashkernel={} panic=-1 {}",
            self.crashkernel, self.first_cmdline
        );
        let mut config = GuestConfig::new(&kernel.vmlinuz(), &first_cpio, &cmdline);
        config.memory_mib = self.memory_mib;
        if let Some(disk) = disk {
            config.extra.push("-drive".into());
            config
                .extra
                .push(format!("file={},format=raw,if=virtio", disk.display()));
        }
        if self.network {
            config.extra.extend(
                [
                    "-netdev",
                    "user,id=net0",
                    "-device",
                    "virtio-net-pci,netdev=net0",
                ]
                .map(String::from),
            );
        }
        config.extra.extend(self.qemu_extra.iter().cloned());
        Guest::boot(&config)
    }
}

/// `virtio_pci.ko` from `drivers/virtio/virtio_pci.ko`.
fn module_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
