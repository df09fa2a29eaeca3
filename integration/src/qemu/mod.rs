//! Booting the fixture's Debian kernel in QEMU for tests: unpack the kernel package
//! ([`KernelPackage`]), build a busybox initramfs ([`Initramfs`]), run the guest ([`Guest`]: boot,
//! wait for a console line, QMP commands such as `dump-guest-memory`, kill on drop), and turn a
//! QEMU ELF dump into one makedumpfile reads ([`move_program_headers_to_64`]), and run a real
//! kdump cycle (`kexec -p`, panic, capture kernel saves `/proc/vmcore`: [`KdumpCapture`]).
//!
//! Heavy: tests using this are `#[ignore]` and skip (fail under `CI`) when QEMU, busybox or the
//! kernel package is missing. The guest uses KVM when `/dev/kvm` opens, else TCG.

mod elf_copy;
mod guest;
mod initramfs;
mod kdump;
mod kernel;
mod qmp;

pub use elf_copy::move_program_headers_to_64;
pub use guest::{Accel, Guest, GuestConfig, BOOT_TIMEOUT};
pub use initramfs::{Initramfs, BUSYBOX};
pub use kdump::{
    Captured, KdumpCapture, CAPTURE_CMDLINE, HOST_ADDR, KDUMP_TIMEOUT, KEXEC, PANIC_LINE,
    VIRTIO_BLK_MODULES, VIRTIO_NET_MODULES,
};
pub use kernel::KernelPackage;
pub use qmp::Qmp;
