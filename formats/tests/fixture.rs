//! Tests against the real `/proc/vmcore` of the shared fixtures (`kdump-6.1-cloud`), skipped
//! with a printed reason when the fixtures are absent (a user's clone does not have them), and
//! failed when they are absent under `CI`. The same rule and wording as `crashdrop-integration`'s
//! `skip` (which this crate cannot depend on: integration depends on formats).

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crashdrop_formats::dmesg::{kernel_log, kernel_log_as, Flavor};
use crashdrop_formats::kdump::{self, KdumpLayout, KdumpMeta, KdumpReader, PageDesc, PageRead};
use crashdrop_formats::{dump_id, utsname_field, ElfVmcore, LoadSegment, UTSNAME_LEN};

/// Size of the decompressed fixture (fixtures README).
const VMCORE_LEN: u64 = 377_163_776;

/// `$CRASHDROP_FIXTURES`, else `../shared/fixtures` beside the workspace.
fn fixtures_dir() -> PathBuf {
    std::env::var_os("CRASHDROP_FIXTURES")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/fixtures"
            ))
        })
}

/// True when `CI` is set to anything but empty, `0` or `false`.
fn in_ci() -> bool {
    std::env::var("CI")
        .is_ok_and(|v| !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false")))
}

/// Says why this test does not run (on stderr and in `$CRASHDROP_SKIP_LOG`); under `CI`, fails it.
fn skip(reason: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let reason = format!(
        "{reason} (set CRASHDROP_FIXTURES to the fixtures folder; README: Real dumps to test with)"
    );
    if in_ci() {
        panic!("CI is set, so {test} must not skip: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
    if let Some(log) = std::env::var_os("CRASHDROP_SKIP_LOG").filter(|v| !v.is_empty()) {
        let line = format!("{test}: {reason}\n");
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
    }
}

/// Decompresses the fixture once per build directory; `None` (after saying why) if absent.
fn fixture_vmcore() -> Option<PathBuf> {
    let found = decompressed_fixture();
    if found.is_none() {
        let zst = fixtures_dir().join("kdump-6.1-cloud/vmcore.zst");
        skip(&format!(
            "{} not found: these known-answer tests check the facts its README states about the \
             shared fixture kdump-6.1-cloud (other dumps are tested by crashdrop-integration)",
            zst.display()
        ));
    }
    found
}

fn decompressed_fixture() -> Option<PathBuf> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| {
        let zst = fixtures_dir().join("kdump-6.1-cloud/vmcore.zst");
        if !zst.exists() {
            return None;
        }
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kdump-6.1-cloud.vmcore");
        if std::fs::metadata(&out).map(|m| m.len()).ok() != Some(VMCORE_LEN) {
            let part = out.with_extension(format!("part{}", std::process::id()));
            let mut decoder =
                zstd::stream::read::Decoder::new(File::open(&zst).expect("open fixture"))
                    .expect("zstd decoder");
            let mut sink = io::BufWriter::new(File::create(&part).expect("create"));
            io::copy(&mut decoder, &mut sink).expect("decompress fixture");
            sink.flush().expect("flush");
            std::fs::rename(&part, &out).expect("rename");
        }
        Some(out)
    })
    .clone()
}

#[test]
fn fixture_headers_and_bitmaps() {
    let Some(path) = fixture_vmcore() else { return };
    let v = ElfVmcore::open(&path).expect("open fixture");
    assert_eq!(v.file_len(), VMCORE_LEN);
    assert_eq!(v.program_header_bytes().len(), 5 * 56, "5 program headers");
    assert_eq!(
        v.loads(),
        &[
            LoadSegment {
                offset: 0x2000,
                vaddr: 0xffff_ffff_a880_0000,
                paddr: 0x8a0_0000,
                filesz: 0x283_0000,
                memsz: 0x283_0000
            },
            LoadSegment {
                offset: 0x283_2000,
                vaddr: 0xffff_8aa9_8000_1000,
                paddr: 0x1000,
                filesz: 0x9_ec00,
                memsz: 0x9_ec00
            },
            LoadSegment {
                offset: 0x28d_1000,
                vaddr: 0xffff_8aa9_8010_0000,
                paddr: 0x10_0000,
                filesz: 0x11f0_0000,
                memsz: 0x11f0_0000
            },
            LoadSegment {
                offset: 0x147d_1000,
                vaddr: 0xffff_8aa9_9e00_0000,
                paddr: 0x1e00_0000,
                filesz: 0x1fe_0000,
                memsz: 0x1fe_0000
            },
        ]
    );
    assert_eq!(v.notes().len(), 0xfb4);
    assert_eq!(v.nr_cpus(), 2);
    assert_eq!(v.page_size(), 4096);
    assert_eq!(v.osrelease(), Some("6.1.0-56-cloud-amd64"));
    assert_eq!(v.crash_time(), Some(1_795_701_935));
    assert_eq!(
        v.phys_base(),
        0xffff_ffff_e020_0000,
        "NUMBER(phys_base)=-534773760"
    );
    assert_eq!(v.vmcoreinfo().kernel_offset(), Some(0x2780_0000));
    assert_eq!(v.max_mapnr(), 0x1_ffe0);

    let uts = v.utsname().expect("utsname");
    assert_eq!(utsname_field(&uts, 0), "Linux");
    assert_eq!(utsname_field(&uts, 2), "6.1.0-56-cloud-amd64");
    assert_eq!(utsname_field(&uts, 4), "x86_64");
    eprintln!(
        "fixture utsname: {:?}",
        (0..6).map(|i| utsname_field(&uts, i)).collect::<Vec<_>>()
    );

    let ram = v.ram_bitmap();
    let dumpable = v.file_backed_bitmap();
    assert_eq!(ram.bits(), 0x1_ffe0);
    assert_eq!(ram.count_ones(), 81_791);
    // makedumpfile 1.7.2 at levels 0 and 1 (fixtures README).
    assert_eq!(dumpable.count_ones(), 81_790);
    assert!(
        ram.get(0x9f) && !dumpable.get(0x9f),
        "partial last page 0x9f (1.7.2 rule)"
    );
    assert!(!ram.get(0) && !ram.get(0xa0) && !ram.get(0x1_2000) && ram.get(0x1_1fff));
    assert!(dumpable.is_subset_of(&ram));

    let id = dump_id(
        v.elf_header_bytes(),
        v.program_header_bytes(),
        v.notes(),
        31,
    );
    eprintln!("fixture DumpId at level 31: {}", hex(&id));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a level-1 kdump file (zlib pages, one shared zero block) from `v`; returns the
/// number of zero pages.
fn write_level1(v: &ElfVmcore, out: &Path, utsname: [u8; UTSNAME_LEN]) -> u64 {
    let bitmap1 = v.ram_bitmap();
    let bitmap2 = v.file_backed_bitmap();
    let num_dumpable = bitmap2.count_ones();
    let meta = KdumpMeta {
        utsname,
        crash_time: v.crash_time().unwrap_or(0),
        status: kdump::FLAG_ZLIB,
        block_size: v.page_size() as u32,
        max_mapnr: v.max_mapnr(),
        nr_cpus: v.nr_cpus(),
        phys_base: v.phys_base(),
        dump_level: 1,
        notes: v.notes().to_vec(),
        num_dumpable,
    };
    let layout = KdumpLayout::new(
        v.page_size(),
        v.notes().len() as u64,
        v.max_mapnr(),
        num_dumpable,
    )
    .expect("layout");
    let file = File::create(out).expect("create dump");
    file.write_all_at(&kdump::encode_main_header(&meta, &layout), 0)
        .expect("write");
    let area = kdump::encode_sub_header_area(&meta, &layout).expect("sub header");
    file.write_all_at(&area, layout.block_size).expect("write");
    file.write_all_at(bitmap1.as_bytes(), layout.bitmap1_offset)
        .expect("write");
    file.write_all_at(bitmap2.as_bytes(), layout.bitmap2_offset)
        .expect("write");
    let ps = v.page_size() as usize;
    let zero_block = layout.data_offset;
    file.write_all_at(&vec![0u8; ps], zero_block)
        .expect("write");
    let mut next = zero_block + ps as u64;
    let mut descs = Vec::with_capacity(num_dumpable as usize * 24);
    let mut page = vec![0u8; ps];
    let mut zero_pages = 0;
    for pfn in bitmap2.iter_ones() {
        v.read_physical(pfn * ps as u64, &mut page)
            .expect("read page");
        let desc = if kdump::is_zero_page(&page) {
            zero_pages += 1;
            PageDesc {
                offset: zero_block as i64,
                size: ps as u32,
                flags: 0,
                page_flags: 0,
            }
        } else {
            let z = kdump::compress_zlib(&page);
            let (data, flags) = if z.len() < ps {
                (&z[..], kdump::FLAG_ZLIB)
            } else {
                (&page[..], 0)
            };
            file.write_all_at(data, next).expect("write");
            let desc = PageDesc {
                offset: next as i64,
                size: data.len() as u32,
                flags,
                page_flags: 0,
            };
            next += data.len() as u64;
            desc
        };
        descs.extend_from_slice(&desc.encode());
    }
    file.write_all_at(&descs, layout.descriptors_offset)
        .expect("write");
    zero_pages
}

#[test]
fn fixture_level1_kdump_round_trip() {
    let Some(path) = fixture_vmcore() else { return };
    let v = ElfVmcore::open(&path).expect("open fixture");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("dump.kdump");
    let uts = v.utsname().expect("utsname");
    let zero_pages = write_level1(&v, &out, uts);
    // makedumpfile 1.7.2 -d 1: 81,790 stored pfns, 43,623 of them zero (fixtures README).
    assert_eq!(zero_pages, 43_623);

    let r = KdumpReader::open(&out).expect("open kdump");
    assert_eq!(r.meta().num_dumpable, 81_790);
    assert_eq!(r.meta().utsname, uts);
    assert_eq!(
        r.vmcoreinfo()
            .and_then(|i| i.osrelease().map(str::to_owned))
            .as_deref(),
        Some("6.1.0-56-cloud-amd64")
    );
    assert_eq!(r.read_page(0x9f).expect("read"), PageRead::Excluded);
    assert_eq!(r.read_page(0).expect("read"), PageRead::NotInDump);
    let mut expected = vec![0u8; 4096];
    let mut checked = 0u64;
    for item in r.pages() {
        let (pfn, desc) = item.expect("descriptor");
        let index = checked;
        let PageRead::Data(page) = r.page_data(pfn, index, &desc).expect("page") else {
            panic!("pfn {pfn:#x} has no data");
        };
        v.read_physical(pfn * 4096, &mut expected)
            .expect("read vmcore");
        assert!(page == expected, "pfn {pfn:#x} differs");
        checked += 1;
    }
    assert_eq!(checked, 81_790);
    eprintln!(
        "level-1 zlib kdump of the fixture: {} bytes, {zero_pages} zero pages",
        std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0)
    );
    // The kernel log reads the same from the kdump file as from the ELF vmcore.
    let Some(reference) = fixture_dmesg() else {
        return;
    };
    let info = r.vmcoreinfo().expect("vmcoreinfo");
    let log = kernel_log(&r, &info, r.meta().phys_base).expect("kernel log from kdump");
    assert!(
        log == reference,
        "the kdump file's log differs from dmesg.txt"
    );
}

/// The fixture's `dmesg.txt` (kexec-tools' `vmcore-dmesg` output), if present.
fn fixture_dmesg() -> Option<Vec<u8>> {
    let path = fixtures_dir().join("kdump-6.1-cloud/dmesg.txt");
    match std::fs::read(&path) {
        Ok(text) => Some(text),
        Err(e) => {
            skip(&format!("{}: {e}", path.display()));
            None
        }
    }
}

#[test]
fn fixture_kernel_log_is_vmcore_dmesg_byte_for_byte() {
    let Some(path) = fixture_vmcore() else { return };
    let Some(reference) = fixture_dmesg() else {
        return;
    };
    let v = ElfVmcore::open(&path).expect("open fixture");
    let log = kernel_log(&v, v.vmcoreinfo(), v.phys_base()).expect("kernel log");
    if log != reference {
        let (ours, theirs) = (
            String::from_utf8_lossy(&log),
            String::from_utf8_lossy(&reference),
        );
        let first = ours.lines().zip(theirs.lines()).position(|(a, b)| a != b);
        panic!(
            "{} bytes vs dmesg.txt's {}; first differing line: {first:?}",
            log.len(),
            reference.len()
        );
    }
    // makedumpfile 1.7.2's flavor differs only by indenting the continuation lines.
    let mdf =
        kernel_log_as(&v, v.vmcoreinfo(), v.phys_base(), Flavor::Makedumpfile).expect("kernel log");
    let mdf = String::from_utf8(mdf).expect("ASCII");
    let indented: String = String::from_utf8_lossy(&reference)
        .lines()
        .map(|l| {
            if l.starts_with('[') {
                format!("{l}\n")
            } else {
                format!("{:15}{l}\n", "")
            }
        })
        .collect();
    assert_eq!(mdf, indented);
}
