//! A real kdump vmcore, made at test time: the fixture's Debian kernel boots in QEMU with
//! `mem=400M` on a 512 MiB guest (so the vmcore's memory ends below the machine's RAM, the
//! `max_mapnr` case formats.md names) and `crashkernel=192M`, loads itself as capture kernel
//! with `kexec -p` and panics; the capture kernel copies `/proc/vmcore` to a virtio disk. Judged
//! by makedumpfile 1.7.2 at -d 1, 2, 8, 16 and 31: stored `max_mapnr`, both bitmaps and the page
//! set equal `makedumpfile -c -d N`'s from the same vmcore, and makedumpfile re-filters every
//! stored dump at -d 31 to the pages it selects from the vmcore.

use std::path::Path;

use crashdrop_formats::ElfVmcore;
use crashdrop_integration::qemu::{KdumpCapture, KernelPackage, BUSYBOX, KEXEC, PANIC_LINE};
use crashdrop_integration::{assert_stored_like_makedumpfile, require_tools, skip};

const LEVELS: [u8; 5] = [1, 2, 8, 16, 31];

#[test]
#[ignore = "a whole kdump cycle in QEMU (about 15 s under TCG) and makedumpfile 11 times"]
fn mem_limited_kdump_vmcore_is_stored_as_makedumpfile_stores_it_and_refilters() {
    if !require_tools(&[
        "qemu-system-x86_64",
        "cpio",
        "dpkg-deb",
        "makedumpfile",
        "ldd",
    ]) {
        return;
    }
    let Some(deb) = KernelPackage::fixture_deb() else {
        skip("no linux-image-*.deb among the fixtures");
        return;
    };
    for (tool, package) in [(BUSYBOX, "busybox-static"), (KEXEC, "kexec-tools")] {
        if !Path::new(tool).is_file() {
            skip(format!("no {tool} (apt install {package})"));
            return;
        }
    }
    let kernel = KernelPackage::unpack(&deb).unwrap_or_else(|e| panic!("{e}"));
    let work = tempfile::tempdir().expect("tempdir");
    let cycle = KdumpCapture {
        // nokaslr: with KASLR the kernel image sometimes lands mid-way through the 400 MiB and
        // no 192 MiB block is left ("Memory for crashkernel is not reserved", 1 run in 3 here).
        first_cmdline: "mem=400M nokaslr".into(),
        // Something in memory besides the kernel: 8 MiB in a tmpfs.
        before_panic: "mount -t tmpfs tmpfs /tmp && dd if=/dev/urandom of=/tmp/fill bs=1M count=8"
            .into(),
        ..KdumpCapture::default()
    };
    let started = std::time::Instant::now();
    let captured = cycle
        .run(&kernel, work.path())
        .unwrap_or_else(|e| panic!("kdump cycle: {e}"));
    let vmcore_path = captured.vmcore;
    assert!(
        captured.console.contains(PANIC_LINE),
        "the first kernel did not panic as planned"
    );
    let vmcore = ElfVmcore::open(&vmcore_path).unwrap_or_else(|e| panic!("vmcore: {e}"));
    eprintln!(
        "kdump cycle {:?}: vmcore {} bytes, max_mapnr {:#x}",
        started.elapsed(),
        vmcore_path.metadata().map_or(0, |m| m.len()),
        vmcore.max_mapnr()
    );
    assert!(
        vmcore.crash_time().is_some(),
        "a /proc/vmcore has CRASHTIME"
    );
    // mem=400M: no RAM the vmcore describes lies at or above 400 MiB (0x19000 pages), although
    // the machine has 512 MiB; 400 MiB is not a multiple of the 128 MiB memory section, so the
    // last section with a mem_map is cut short (formats.md 4.4).
    assert!(
        vmcore.max_mapnr() <= 0x19000,
        "max_mapnr {:#x} is above mem=400M",
        vmcore.max_mapnr()
    );
    assert_stored_like_makedumpfile(
        work.path(),
        &vmcore_path,
        &vmcore_path,
        "kdump-guest",
        &LEVELS,
    );
}
