//! A QEMU `dump-guest-memory` ELF of the fixture's kernel (512 MiB guest, made at test time)
//! through the real sender and receiver, judged by makedumpfile 1.7.2: at -d 1, 2, 8, 16 and
//! 31 the stored `max_mapnr`, both bitmaps and so the page set equal `makedumpfile -c -d N`'s from
//! the same input (a copy with its program headers at byte 64), and makedumpfile can re-filter
//! every stored dump at -d 31 to the same pages as from the source.

use std::path::{Path, PathBuf};

use crashdrop_formats::kdump::KdumpReader;
use crashdrop_formats::ElfVmcore;
use crashdrop_integration::qemu::{
    move_program_headers_to_64, Guest, GuestConfig, Initramfs, KernelPackage, BOOT_TIMEOUT,
};
use crashdrop_integration::{
    assert_sent, makedumpfile_compress, require_tools, run, selection, sender, skip, stored_dumps,
    Receiver, TestCerts,
};

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

fn bitmaps(path: &Path) -> (u64, crashdrop_formats::Bitmap, crashdrop_formats::Bitmap) {
    let r = KdumpReader::open(path).unwrap_or_else(|e| panic!("{e}"));
    (r.meta().max_mapnr, r.bitmap1().clone(), r.bitmap2().clone())
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

    let certs = TestCerts::new(&["qemu-guest"]);
    let store = work.path().join("store");
    let receiver = Receiver::start(&store, &certs, &["--store-compression", "zlib"]);
    let mut refiltered_reference = None;
    for level in LEVELS {
        let ours = selection(&vmcore, level);
        let reference: PathBuf = work.path().join(format!("ref-d{level}.kdump"));
        makedumpfile_compress(&for_makedumpfile, &reference, level)
            .unwrap_or_else(|e| panic!("{e}"));
        let (ref_mapnr, ref_ram, ref_dumpable) = bitmaps(&reference);

        let out = run(&mut sender(&receiver, &certs, "qemu-guest", &elf, level));
        assert_sent(&out, &receiver);
        let before: Vec<PathBuf> = stored_dumps(&store);
        let stored = before
            .iter()
            .map(|d| d.join("vmcore"))
            .find(|v| {
                bitmaps(v).2 == ours.dumpable
                    && KdumpReader::open(v).is_ok_and(|r| r.meta().dump_level == u32::from(level))
            })
            .unwrap_or_else(|| panic!("-d {level}: no stored dump with the filter's bitmap"));
        let (mapnr, ram, dumpable) = bitmaps(&stored);
        eprintln!(
            "-d {level}: max_mapnr {mapnr:#x} (ELF {:#x}, makedumpfile {ref_mapnr:#x}); pages {} (makedumpfile {})",
            vmcore.max_mapnr(),
            dumpable.count_ones(),
            ref_dumpable.count_ones()
        );
        assert_eq!(mapnr, ref_mapnr, "-d {level}: max_mapnr");
        assert!(
            ram == ref_ram,
            "-d {level}: 1st bitmap differs from makedumpfile's"
        );
        assert!(
            dumpable == ref_dumpable,
            "-d {level}: 2nd bitmap (page set) differs from makedumpfile's"
        );

        // makedumpfile takes the stored dump as input again.
        let refiltered = work.path().join(format!("refiltered-d{level}.kdump"));
        makedumpfile_compress(&stored, &refiltered, 31)
            .unwrap_or_else(|e| panic!("re-filtering the stored -d {level} dump: {e}"));
        let pages = bitmaps(&refiltered).2;
        let want = refiltered_reference.get_or_insert_with(|| {
            let out = work.path().join("source-d31.kdump");
            makedumpfile_compress(&for_makedumpfile, &out, 31).unwrap_or_else(|e| panic!("{e}"));
            bitmaps(&out).2
        });
        assert!(
            &pages == want,
            "-d {level} stored, re-filtered at -d 31: {} pages, makedumpfile from the source {}",
            pages.count_ones(),
            want.count_ones()
        );
        for f in [&reference, &refiltered] {
            std::fs::remove_file(f).ok();
        }
    }
}
