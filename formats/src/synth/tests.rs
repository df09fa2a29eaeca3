//! Tests of the synthetic vmcore: `ElfVmcore` must see it as a real `/proc/vmcore`.

use std::os::unix::fs::MetadataExt;

use super::layout::MIB;
use super::*;
use crate::elf::ElfVmcore;
use crate::X86_64_START_KERNEL_MAP;
use crate::{sha256, utsname_field};

fn spec(memory_bytes: u64, seed: u64) -> SynthSpec {
    SynthSpec {
        memory_bytes,
        seed,
        osrelease: "6.1.0-99-synthetic-amd64".to_owned(),
        crash_time: 1_700_000_123,
    }
}

#[test]
fn opens_like_a_real_vmcore() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vmcore");
    let summary = write_synthetic_vmcore(&path, &spec(64 * MIB, 7)).expect("write");
    let v = ElfVmcore::open(&path).expect("open");
    assert_eq!(v.osrelease(), Some("6.1.0-99-synthetic-amd64"));
    assert_eq!(v.nr_cpus(), 2);
    assert_eq!(v.crash_time(), Some(1_700_000_123));
    assert_eq!(v.page_size(), 4096);
    assert_eq!(v.program_header_bytes().len(), 5 * 56);
    assert_eq!(v.notes().len() % 4, 0);
    assert!((v.phys_base() as i64) < 0, "phys_base {:#x}", v.phys_base());

    let loads = v.loads();
    assert_eq!(loads.len(), 4);
    assert!(loads[0].vaddr >= X86_64_START_KERNEL_MAP);
    assert_eq!((loads[1].paddr, loads[1].memsz), (0x1000, 0x9_ec00));
    assert_eq!(loads[2].paddr, 0x10_0000);
    assert!(
        loads[3].paddr > loads[2].paddr + loads[2].memsz,
        "a hole before the last range"
    );
    let image = loads[0];
    assert!(
        image.paddr >= loads[2].paddr
            && image.paddr + image.memsz <= loads[2].paddr + loads[2].memsz
    );
    for l in loads {
        assert_eq!(l.offset % 4096, l.paddr % 4096);
    }

    let uts = v.utsname().expect("utsname");
    assert_eq!(utsname_field(&uts, 0), "Linux");
    assert_eq!(utsname_field(&uts, 2), "6.1.0-99-synthetic-amd64");
    assert_eq!(utsname_field(&uts, 4), "x86_64");

    let ram = v.ram_bitmap();
    let dumpable = v.file_backed_bitmap();
    assert!(ram.get(0x9f) && !dumpable.get(0x9f));
    assert_eq!(ram.count_ones(), summary.pages);
    assert_eq!(dumpable.count_ones(), summary.pages - 1);
    let zero_share = summary.zero_pages as f64 / summary.pages as f64;
    assert!(
        (0.40..0.60).contains(&zero_share),
        "zero share {zero_share}"
    );
    assert_eq!(
        summary.file_bytes,
        std::fs::metadata(&path).expect("stat").len()
    );
}

#[test]
fn kernel_image_copy_matches_ram_and_file_is_sparse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vmcore");
    write_synthetic_vmcore(&path, &spec(32 * MIB, 3)).expect("write");
    let v = ElfVmcore::open(&path).expect("open");
    let bytes = std::fs::read(&path).expect("read");
    let (image, ram) = (v.loads()[0], v.loads()[2]);
    let from_image = &bytes[image.offset as usize..(image.offset + image.filesz) as usize];
    let at = (ram.offset + image.paddr - ram.paddr) as usize;
    assert_eq!(from_image, &bytes[at..at + image.filesz as usize]);
    let allocated = std::fs::metadata(&path).expect("stat").blocks() * 512;
    assert!(
        allocated < bytes.len() as u64 * 3 / 4,
        "{allocated} of {} bytes allocated",
        bytes.len()
    );
}

#[test]
fn deterministic_per_seed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let digest = |name: &str, seed| {
        let path = dir.path().join(name);
        write_synthetic_vmcore(&path, &spec(16 * MIB, seed)).expect("write");
        sha256(&std::fs::read(&path).expect("read"))
    };
    assert_eq!(digest("a", 1), digest("b", 1));
    assert_ne!(digest("a", 1), digest("c", 2));
}

#[test]
fn too_little_memory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = write_synthetic_vmcore(&dir.path().join("v"), &spec(MIB, 1)).expect_err("too small");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn small_and_odd_sizes_all_have_room_for_the_kernel() {
    let dir = tempfile::tempdir().expect("tempdir");
    for size in [
        16 * MIB,
        17 * MIB,
        18 * MIB + 4096,
        23 * MIB + 12345,
        129 * MIB,
    ] {
        let path = dir.path().join("v");
        let summary = write_synthetic_vmcore(&path, &spec(size, 2)).expect("write");
        let v = ElfVmcore::open(&path).expect("open");
        assert_eq!(v.ram_bitmap().count_ones(), summary.pages, "{size}");
    }
}
