//! A QEMU `dump-guest-memory` ELF of the fixture's kernel (512 MiB guest, made at test time)
//! through the real sender and receiver, judged by makedumpfile 1.7.2: at -d 1, 2, 8, 16 and
//! 31 the stored `max_mapnr`, both bitmaps and so the page set equal `makedumpfile -c -d N`'s from
//! the same input (a copy with its program headers at byte 64), and makedumpfile can re-filter
//! every stored dump at -d 31 to the same pages as from the source.

use std::path::Path;

use crashdrop_formats::ElfVmcore;
use crashdrop_integration::qemu::{
    move_program_headers_to_64, Guest, GuestConfig, Initramfs, KernelPackage, BOOT_TIMEOUT,
};
use crashdrop_integration::{assert_stored_like_makedumpfile, require_tools, skip};

const READY: &str = "CRASHDROP-GUEST-READY";
const LEVELS: [u8; 5] = [1, 2, 8, 16, 31];

/// Boots the fixture kernel to a busybox shell and dumps its memory to `out`.
fn make_guest_dump(work: &Path, out: &Path) -> Option<()> {
    if !require_tools(&["qemu-system-x86_64", "cpio", "dpkg-deb", "makedumpfile"]) {
        return None;
    }
    let Some(deb) = KernelPackage::fixture_deb() else {
        skip("no linux-image-*.deb among the fixtures");
        return None;
    };
    if !Path::new(crashdrop_integration::qemu::BUSYBOX).is_file() {
        skip("no /bin/busybox (apt install busybox-static)");
        return None;
    }
    let kernel = KernelPackage::unpack(&deb).unwrap_or_else(|e| panic!("{e}"));
    let initrd = work.join("initrd.cpio");
    // qemu_fw_cfg is a module in this kernel: without it QEMU's dump has no VMCOREINFO.
    Initramfs::new(&format!(
        "insmod /qemu_fw_cfg.ko\necho {READY}\nwhile true; do sleep 3600; done"
    ))
    .file(
        "/qemu_fw_cfg.ko",
        &kernel.module("drivers/firmware/qemu_fw_cfg.ko"),
    )
    .build(&initrd)
    .unwrap_or_else(|e| panic!("initramfs: {e}"));
    let config = GuestConfig::new(&kernel.vmlinuz(), &initrd, "panic=-1");
    let mut guest = Guest::boot(&config).unwrap_or_else(|e| panic!("qemu: {e}"));
    guest
        .wait_for_line(READY, BOOT_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    guest
        .qmp()
        .and_then(|mut q| q.dump_guest_memory(out))
        .unwrap_or_else(|e| panic!("dump-guest-memory: {e}"));
    guest.kill().ok();
    eprintln!(
        "guest dump ({:?}): {} bytes",
        config.accel,
        out.metadata().map_or(0, |m| m.len())
    );
    Some(())
}

#[test]
#[ignore = "boots a 512 MiB QEMU guest (about a minute with KVM) and runs makedumpfile 10 times"]
fn qemu_guest_dump_is_stored_as_makedumpfile_stores_it_and_refilters() {
    let work = tempfile::tempdir().expect("tempdir");
    let elf = work.path().join("guest.elf");
    if make_guest_dump(work.path(), &elf).is_none() {
        return;
    }
    let vmcore = ElfVmcore::open(&elf).unwrap_or_else(|e| panic!("QEMU ELF: {e}"));
    assert_eq!(vmcore.crash_time(), None, "QEMU dumps have no CRASHTIME");
    assert_eq!(
        u64::from_le_bytes(vmcore.elf_header_bytes()[32..40].try_into().expect("8")),
        192,
        "QEMU puts its program headers at 192"
    );
    let for_makedumpfile = work.path().join("guest64.elf");
    move_program_headers_to_64(&elf, &for_makedumpfile).unwrap_or_else(|e| panic!("{e}"));

    assert_stored_like_makedumpfile(work.path(), &elf, &for_makedumpfile, "qemu-guest", &LEVELS);
}
