//! The model kernel as the rest of the crate sees it: the page filter must find exactly the
//! classes the generator assigned, at every dump level and several machine sizes, and the
//! kernel log reader must find exactly the log it wrote.

use super::*;
use crate::bitmap::Bitmap;
use crate::elf::ElfVmcore;
use crate::filter::PageFilter;

fn spec(memory_bytes: u64, seed: u64) -> SynthSpec {
    SynthSpec {
        memory_bytes,
        seed,
        osrelease: "6.1.0-99-synthetic-amd64".to_owned(),
        crash_time: 1_700_000_123,
    }
}

/// The 2nd bitmap the generator's classes imply at `level`: file-backed pfns whose class the
/// level does not exclude.
fn expected(machine: &SynthMachine, vmcore: &ElfVmcore, level: DumpLevel) -> Bitmap {
    let mut bitmap = vmcore.file_backed_bitmap();
    machine.for_each_chunk(|first, classes| {
        for (i, class) in classes.iter().enumerate() {
            if class.excluded_at(level) {
                bitmap.clear(first + i as u64);
            }
        }
    });
    bitmap
}

fn first_difference(a: &Bitmap, b: &Bitmap, machine: &SynthMachine) -> Option<(u64, SynthClass)> {
    let pfn = (0..a.bits()).find(|&p| a.get(p) != b.get(p))?;
    let mut class = None;
    machine.for_each_chunk(|first, classes| {
        if (first..first + classes.len() as u64).contains(&pfn) {
            class = Some(classes[(pfn - first) as usize]);
        }
    });
    Some((pfn, class.expect("pfn in the machine")))
}

fn check_every_level(memory_bytes: u64, seed: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vmcore");
    let machine = SynthMachine::new(&spec(memory_bytes, seed)).expect("machine");
    let summary = machine.write(&path).expect("write");
    let vmcore = ElfVmcore::open(&path).expect("open");
    assert_eq!(vmcore.max_mapnr(), machine.end_pfn());
    let filter = PageFilter::for_vmcore(&vmcore);
    for n in 0..=31u8 {
        let level = DumpLevel::new(n).expect("level");
        let mut got = vmcore.file_backed_bitmap();
        let report = filter.apply(level, &mut got).expect("filter");
        assert_eq!(report.unreadable, 0, "level {n}: unreadable struct pages");
        assert_eq!(report.bad_buddy_orders, 0, "level {n}");
        assert!(
            !report.free_lists,
            "level {n}: buddy detection must be used"
        );
        let want = expected(&machine, &vmcore, level);
        assert_eq!(
            first_difference(&got, &want, &machine),
            None,
            "{memory_bytes} bytes, level {n}: the filter's (pfn, generator class) disagree"
        );
        assert_eq!(got.count_ones(), summary.dumpable_at(level), "level {n}");
        assert_eq!(
            report.free,
            if level.excludes_free() {
                summary.pages_of(SynthClass::Free)
            } else {
                0
            }
        );
    }
}

#[test]
fn filter_finds_the_generated_classes_at_every_level_on_a_64_mib_machine() {
    check_every_level(64 << 20, 5);
}

#[test]
fn filter_finds_the_generated_classes_at_every_level_on_a_1_gib_machine_with_a_cut_section() {
    // 1 GiB + 40 MiB: RAM ends inside a section and off a 4 MiB chunk.
    check_every_level((1 << 30) + (40 << 20) + (12 << 10), 9);
}

#[test]
fn classes_come_in_realistic_proportions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vmcore");
    let summary = write_synthetic_vmcore(&path, &spec(512 << 20, 3)).expect("write");
    let share = |c| summary.pages_of(c) as f64 / summary.file_backed as f64;
    let bounds = [
        (SynthClass::Free, 0.35, 0.65),
        (SynthClass::Cache, 0.10, 0.30),
        (SynthClass::CachePrivate, 0.01, 0.08),
        (SynthClass::Anon, 0.08, 0.25),
        (SynthClass::Slab, 0.01, 0.08),
        (SynthClass::Reserved, 0.01, 0.10),
        (SynthClass::Kernel, 0.01, 0.10),
    ];
    for (class, lo, hi) in bounds {
        let s = share(class);
        assert!((lo..hi).contains(&s), "{class:?}: {s:.3} not in {lo}..{hi}");
    }
}

#[test]
fn kernel_log_reads_back_as_written_and_ends_in_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vmcore");
    let machine = SynthMachine::new(&spec(32 << 20, 4)).expect("machine");
    machine.write(&path).expect("write");
    let vmcore = ElfVmcore::open(&path).expect("open");
    let log = crate::dmesg::kernel_log(&vmcore, vmcore.vmcoreinfo(), vmcore.phys_base())
        .expect("kernel log");
    let want: String = machine
        .kernel_log()
        .iter()
        .map(|l| {
            let (s, ns) = (l.ts_nsec / 1_000_000_000, l.ts_nsec % 1_000_000_000);
            format!("[{s:5}.{:06}] {}\n", ns / 1000, l.text)
        })
        .collect();
    assert_eq!(String::from_utf8(log).expect("ASCII"), want);
    assert!(want.contains("] Kernel panic - not syncing: sysrq triggered crash\n"));
    assert!(want.contains("Memory: "));
}

#[test]
fn a_64_gib_machine_plans_and_counts_without_writing() {
    let machine = SynthMachine::new(&spec(64 << 30, 1)).expect("machine");
    let mut pfns = 0u64;
    let mut free = 0u64;
    machine.for_each_chunk(|_, classes| {
        pfns += classes.len() as u64;
        free += classes.iter().filter(|&&c| c == SynthClass::Free).count() as u64;
    });
    assert_eq!(pfns, machine.end_pfn());
    assert!(free > pfns / 3, "{free} of {pfns} free");
}
