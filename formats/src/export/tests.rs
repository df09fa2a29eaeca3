//! Every writer on a small model kernel: a 16 MiB synthetic crash (`crate::synth`) filtered at
//! level 31 and stored as a kdump file with zstd pages, as the receiver stores it, is exported
//! in each format and read back with our own readers: same pages, same bitmaps, same kernel log.

use std::path::{Path, PathBuf};

use super::*;
use crate::bitmap::Bitmap;
use crate::dmesg::kernel_log;
use crate::elf::ElfVmcore;
use crate::filter::{DumpLevel, PageFilter};
use crate::kdump::*;
use crate::synth::{write_synthetic_vmcore, SynthSpec};

const PAGE: u64 = 4096;

struct Source {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    kdump: PathBuf,
    bitmap2: Bitmap,
    /// Pfns written with a zero descriptor (never arrived).
    lost: Vec<u64>,
    log: Vec<u8>,
}

/// The synthetic crash as a stored dump: zstd pages, zero pages sharing one block, and the
/// descriptors of `lose` pfns (indexes into the 2nd bitmap) left zero with the incomplete flag.
fn source(lose: &[usize]) -> Source {
    let dir = tempfile::tempdir().expect("tempdir");
    let elf_path = dir.path().join("vmcore");
    let spec = SynthSpec {
        memory_bytes: 16 << 20,
        seed: 3,
        osrelease: "6.1.0-99-synthetic-amd64".into(),
        crash_time: 1_700_000_000,
    };
    write_synthetic_vmcore(&elf_path, &spec).expect("synth");
    let elf = ElfVmcore::open(&elf_path).expect("open synth");
    let log = kernel_log(&elf, elf.vmcoreinfo(), elf.phys_base()).expect("synth log");
    let level = DumpLevel::new(31).expect("level");
    let sel = PageFilter::for_vmcore(&elf).select(level).expect("select");
    let pfns: Vec<u64> = sel.dumpable.iter_ones().collect();
    let lost: Vec<u64> = lose.iter().map(|&i| pfns[i]).collect();
    let meta = KdumpMeta {
        utsname: elf.utsname().expect("utsname"),
        crash_time: 1_700_000_000,
        status: FLAG_ZSTD | if lost.is_empty() { 0 } else { FLAG_INCOMPLETE },
        block_size: PAGE as u32,
        max_mapnr: sel.max_mapnr,
        nr_cpus: elf.nr_cpus(),
        phys_base: elf.phys_base(),
        dump_level: 31,
        notes: elf.notes().to_vec(),
        num_dumpable: pfns.len() as u64,
    };
    let layout = KdumpLayout::new(
        PAGE,
        meta.notes.len() as u64,
        sel.max_mapnr,
        pfns.len() as u64,
    )
    .expect("layout");
    let mut file = encode_main_header(&meta, &layout);
    file.extend(encode_sub_header_area(&meta, &layout).expect("sub"));
    for bitmap in [&sel.ram, &sel.dumpable] {
        let mut region = bitmap.as_bytes().to_vec();
        region.resize(layout.bitmap_region_len() as usize, 0);
        file.extend(region);
    }
    let mut data = vec![0u8; PAGE as usize];
    let mut descs = Vec::new();
    for &pfn in &pfns {
        let mut page = vec![0u8; PAGE as usize];
        elf.read_physical(pfn * PAGE, &mut page).expect("page");
        let desc = if lost.contains(&pfn) {
            PageDesc::default()
        } else if is_zero_page(&page) {
            PageDesc {
                offset: layout.data_offset as i64,
                size: PAGE as u32,
                ..PageDesc::default()
            }
        } else {
            let z = compress_zstd(&page).expect("zstd");
            // Random model pages do not shrink: stored raw, as the receiver does.
            let (z, flags) = if z.len() < page.len() {
                (z, FLAG_ZSTD)
            } else {
                (page, 0)
            };
            let d = PageDesc {
                offset: (layout.data_offset + data.len() as u64) as i64,
                size: z.len() as u32,
                flags,
                page_flags: 0,
            };
            data.extend(z);
            d
        };
        descs.extend(desc.encode());
    }
    file.extend(descs);
    file.extend(data);
    let kdump = dir.path().join("stored");
    std::fs::write(&kdump, file).expect("write stored");
    Source {
        dir: dir.path().to_path_buf(),
        _dir: dir,
        kdump,
        bitmap2: sel.dumpable,
        lost,
        log,
    }
}

fn to_file(reader: &KdumpReader, format: ExportFormat, path: &Path) -> ExportReport {
    let file = std::fs::File::create(path).expect("create");
    export(reader, format, FileSink::new(file, "out")).expect("export")
}

fn log_of<M: crate::filter::PhysicalMemory>(m: &M, info: &crate::VmcoreInfo, pb: u64) -> Vec<u8> {
    kernel_log(m, info, pb).expect("log")
}

#[test]
fn kdump_outputs_hold_the_same_pages_with_zlib_or_raw_data() {
    let src = source(&[]);
    let reader = KdumpReader::open(&src.kdump).expect("open stored");
    for (format, flag) in [
        (ExportFormat::KdumpZlib, FLAG_ZLIB),
        (ExportFormat::KdumpNone, 0),
    ] {
        let path = src.dir.join(format.name());
        let report = to_file(&reader, format, &path);
        assert_eq!(report.pages_written, src.bitmap2.count_ones());
        assert!(report.zero_pages > 0, "the model kernel has zero pages");
        assert_eq!(report.bytes, std::fs::metadata(&path).expect("meta").len());
        let out = KdumpReader::open(&path).expect("open export");
        assert_eq!(out.status(), flag);
        assert_eq!(out.bitmap1(), reader.bitmap1());
        assert_eq!(out.bitmap2(), reader.bitmap2());
        assert_eq!(out.meta().notes, reader.meta().notes);
        assert_eq!(out.meta().phys_base, reader.meta().phys_base);
        for entry in out.pages() {
            let (pfn, desc) = entry.expect("descriptor");
            assert!(
                desc.flags == flag || desc.flags == 0,
                "pfn {pfn:#x}: {desc:?}"
            );
            assert_eq!(
                out.read_page(pfn).expect("out"),
                reader.read_page(pfn).expect("src")
            );
        }
        let info = out.vmcoreinfo().expect("vmcoreinfo");
        assert_eq!(log_of(&out, &info, out.meta().phys_base), src.log);
    }
}

#[test]
fn flattened_stream_rebuilds_into_the_kdump_zlib_file() {
    let src = source(&[]);
    let reader = KdumpReader::open(&src.kdump).expect("open stored");
    let zlib = src.dir.join("zlib");
    to_file(&reader, ExportFormat::KdumpZlib, &zlib);
    let mut stream = Vec::new();
    let report = export(
        &reader,
        ExportFormat::Flattened,
        StreamSink::new(&mut stream, "pipe"),
    )
    .expect("flattened to a pipe");
    assert_eq!(report.bytes, stream.len() as u64);
    let rebuilt = flattened::rebuild(&stream).expect("rebuild");
    assert!(
        rebuilt == std::fs::read(&zlib).expect("zlib"),
        "rebuilt differs"
    );
}

#[test]
fn elf_output_has_segments_only_for_present_pages() {
    let src = source(&[]);
    let reader = KdumpReader::open(&src.kdump).expect("open stored");
    let mut piped = Vec::new();
    let report = export(
        &reader,
        ExportFormat::Elf,
        StreamSink::new(&mut piped, "pipe"),
    )
    .expect("elf to a pipe");
    let path = src.dir.join("elf");
    let to_disk = to_file(&reader, ExportFormat::Elf, &path);
    assert_eq!(report, to_disk);
    assert!(
        std::fs::read(&path).expect("read") == piped,
        "pipe and file differ"
    );
    let elf = ElfVmcore::open(&path).expect("open elf");
    assert_eq!(elf.notes(), &reader.meta().notes[..]);
    // The kernel-image page plus one segment per run.
    assert_eq!(elf.loads().len() as u64, report.segments);
    assert!(elf.loads()[0].vaddr >= crate::X86_64_START_KERNEL_MAP);
    assert_eq!(elf.phys_base(), reader.meta().phys_base);
    let direct = elf.loads()[1];
    assert!(
        direct.vaddr >= crate::filter::DIRECT_MAP_FLOOR,
        "direct-map vaddr {direct:?}"
    );
    let mut page = vec![0u8; PAGE as usize];
    for pfn in 0..reader.layout().max_mapnr {
        let covered = elf.covers_physical(pfn * PAGE, PAGE);
        assert_eq!(covered, src.bitmap2.get(pfn), "pfn {pfn:#x}");
        if covered {
            elf.read_physical(pfn * PAGE, &mut page).expect("read");
            assert_eq!(
                PageRead::Data(page.clone()),
                reader.read_page(pfn).expect("src")
            );
        }
    }
    assert_eq!(log_of(&elf, elf.vmcoreinfo(), elf.phys_base()), src.log);
}

#[test]
fn pages_that_never_arrived_stay_missing_and_flag_the_output() {
    let src = source(&[10, 11, 500]);
    let reader = KdumpReader::open(&src.kdump).expect("open stored");
    assert!(reader.is_incomplete());
    let kd = src.dir.join("kd");
    let report = to_file(&reader, ExportFormat::KdumpZlib, &kd);
    assert_eq!(report.pages_lost, 3);
    assert!(report.incomplete);
    let out = KdumpReader::open(&kd).expect("open");
    assert!(out.is_incomplete());
    for &pfn in &src.lost {
        assert_eq!(out.read_page(pfn).expect("read"), PageRead::Lost);
    }
    let elf_path = src.dir.join("elf");
    let report = to_file(&reader, ExportFormat::Elf, &elf_path);
    assert_eq!(report.pages_lost, 3);
    let bytes = std::fs::read(&elf_path).expect("read");
    assert_eq!(bytes[48..52], elf::EF_INCOMPLETE.to_le_bytes());
    let elf = ElfVmcore::open(&elf_path).expect("open");
    for &pfn in &src.lost {
        assert!(
            !elf.covers_physical(pfn * PAGE, PAGE),
            "lost pfn {pfn:#x} covered"
        );
    }
}

#[test]
fn format_names_round_trip() {
    for f in ExportFormat::ALL {
        assert_eq!(f.name().parse::<ExportFormat>(), Ok(f));
    }
    assert!("zstd".parse::<ExportFormat>().is_err());
    assert!(ExportFormat::KdumpZlib.needs_seekable_output());
    assert!(!ExportFormat::Flattened.needs_seekable_output());
    assert!(!ExportFormat::Elf.needs_seekable_output());
}
