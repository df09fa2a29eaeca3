//! Tests of `ElfVmcore` on small hand-built ELF files.

use std::path::Path;

use super::header::{
    encode_elf_header, encode_xnum_section_header, ProgramHeader, PT_LOAD, PT_NOTE,
};
use super::*;
use crate::notes::{push_note, NT_PRSTATUS};
use crate::{utsname_field, UTSNAME_LEN};

const KVADDR: u64 = 0xffff_ffff_a880_0000;
const KPADDR: u64 = 0x20_0000;
/// phys_base so that KVADDR maps to KPADDR: negative, like a real capture.
const PHYS_BASE: i64 = KPADDR as i64 - (KVADDR - X86_64_START_KERNEL_MAP) as i64;
const UTS_VADDR: u64 = KVADDR + 0x1b60;

/// A load: (vaddr, paddr, filesz, memsz).
type Load = (u64, u64, u64, u64);

struct Img {
    phoff: u64,
    xnum: bool,
    note_segments: Vec<Vec<u8>>,
    loads: Vec<Load>,
}

/// The byte at physical address `pa`: the utsname at the kernel symbol, else a pattern.
fn mem(pa: u64) -> u8 {
    let uts_pa = UTS_VADDR - KVADDR + KPADDR;
    if (uts_pa..uts_pa + UTSNAME_LEN as u64).contains(&pa) {
        let uts = encode_utsname(["Linux", "box", "6.1.0-test", "#1", "x86_64", ""]);
        return uts[(pa - uts_pa) as usize];
    }
    (pa ^ (pa >> 8) ^ (pa >> 16)) as u8 | 1
}

fn vmcoreinfo_text(extra: &str) -> String {
    format!(
        "OSRELEASE=6.1.0-test\nPAGESIZE=4096\nSYMBOL(init_uts_ns)={UTS_VADDR:x}\n\
         OFFSET(uts_namespace.name)=0\n{extra}CRASHTIME=1700000000\n"
    )
}

fn notes_with(vmcoreinfo: &str) -> Vec<u8> {
    let mut seg = Vec::new();
    push_note(&mut seg, b"CORE", NT_PRSTATUS, &[0u8; 336]);
    push_note(&mut seg, b"CORE", NT_PRSTATUS, &[0u8; 336]);
    push_note(&mut seg, b"VMCOREINFO", 0, vmcoreinfo.as_bytes());
    seg
}

fn standard() -> Img {
    Img {
        phoff: 64,
        xnum: false,
        note_segments: vec![notes_with(&vmcoreinfo_text(&format!(
            "NUMBER(phys_base)={PHYS_BASE}\n"
        )))],
        loads: vec![
            (KVADDR, KPADDR, 0x4000, 0x4000),
            (0, 0x1000, 0x9_ec00, 0x9_ec00),
            (0, 0x10_0000, 0x20_0000, 0x20_0000),
            (0, 0x40_0000, 0x1800, 0x3000),
        ],
    }
}

fn build(img: &Img) -> Vec<u8> {
    let phnum = (img.note_segments.len() + img.loads.len()) as u64;
    let table_end = img.phoff + 56 * phnum;
    let shoff = table_end;
    let mut cursor = (shoff + 64).next_multiple_of(4096);
    let mut phdrs = Vec::new();
    let mut blobs: Vec<(u64, Vec<u8>)> = Vec::new();
    for seg in &img.note_segments {
        phdrs.push(ProgramHeader {
            p_type: PT_NOTE,
            p_offset: cursor,
            p_filesz: seg.len() as u64,
            p_memsz: seg.len() as u64,
            ..ProgramHeader::default()
        });
        blobs.push((cursor, seg.clone()));
        cursor = (cursor + seg.len() as u64).next_multiple_of(4096);
    }
    for &(vaddr, paddr, filesz, memsz) in &img.loads {
        let offset = cursor + paddr % 4096;
        phdrs.push(ProgramHeader {
            p_type: PT_LOAD,
            p_flags: 7,
            p_offset: offset,
            p_vaddr: vaddr,
            p_paddr: paddr,
            p_filesz: filesz,
            p_memsz: memsz,
            p_align: 0,
        });
        blobs.push((offset, (paddr..paddr + filesz).map(mem).collect()));
        cursor = (offset + filesz).next_multiple_of(4096);
    }
    let mut file = vec![0u8; cursor as usize];
    let phnum = if img.xnum { 0xffff } else { phnum as u32 };
    file[..64].copy_from_slice(&encode_elf_header(img.phoff, phnum, shoff));
    if img.xnum {
        let count = (img.note_segments.len() + img.loads.len()) as u32;
        file[shoff as usize..shoff as usize + 64]
            .copy_from_slice(&encode_xnum_section_header(count));
    }
    let table: Vec<u8> = phdrs.iter().flat_map(|p| p.encode()).collect();
    file[img.phoff as usize..table_end as usize].copy_from_slice(&table);
    for (offset, bytes) in blobs {
        file[offset as usize..offset as usize + bytes.len()].copy_from_slice(&bytes);
    }
    file
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write test file");
    path
}

fn open_img(img: &Img) -> (tempfile::TempDir, Result<ElfVmcore, ElfError>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "vmcore", &build(img));
    let result = ElfVmcore::open(&path);
    (dir, result)
}

#[test]
fn standard_layout_parses() {
    let (_dir, v) = open_img(&standard());
    let v = v.expect("open");
    assert_eq!(v.loads().len(), 4);
    assert_eq!(v.nr_cpus(), 2);
    assert_eq!(v.page_size(), 4096);
    assert_eq!(v.osrelease(), Some("6.1.0-test"));
    assert_eq!(v.crash_time(), Some(1_700_000_000));
    assert_eq!(v.phys_base(), PHYS_BASE as u64);
    assert_eq!(v.max_mapnr(), 0x403);
    assert_eq!(v.elf_header_bytes().len(), 64);
    assert_eq!(v.program_header_bytes().len(), 5 * 56);
}

#[test]
fn qemu_style_phoff_192_parses() {
    let mut img = standard();
    img.phoff = 192;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = build(&img);
    bytes[52] = 8; // QEMU's e_ehsize: must not be validated
    let path = write(dir.path(), "qemu", &bytes);
    let v = ElfVmcore::open(&path).expect("QEMU-style ELF");
    assert_eq!(v.loads().len(), 4);
    assert_eq!(v.program_header_bytes(), &bytes[192..192 + 5 * 56]);
    assert_eq!(
        v.utsname().map(|u| utsname_field(&u, 2)).expect("utsname"),
        "6.1.0-test"
    );
}

#[test]
fn pn_xnum_and_several_note_segments() {
    let mut img = standard();
    img.xnum = true;
    let first = img.note_segments.remove(0);
    // Split after the first CORE note (356 bytes): two PT_NOTEs, concatenated on reading.
    img.note_segments = vec![first[..356].to_vec(), first[356..].to_vec()];
    let (_dir, v) = open_img(&img);
    let v = v.expect("open");
    assert_eq!(v.notes(), &first[..]);
    assert_eq!(v.nr_cpus(), 2);
    assert_eq!(v.program_header_bytes().len(), 6 * 56);
}

#[test]
fn read_physical_handles_overlap_holes_and_tails() {
    let (_dir, v) = open_img(&standard());
    let v = v.expect("open");
    let expect = |pa: u64| -> u8 {
        let backed = (0x1000..0x9_fc00).contains(&pa)
            || (0x10_0000..0x30_0000).contains(&pa)
            || (0x40_0000..0x40_1800).contains(&pa);
        if backed {
            mem(pa)
        } else {
            0
        }
    };
    for (pa, len) in [
        (0u64, 0x2000usize),
        (0x9_f000, 0x2000),
        (0x1f_f000, 0x8000), // across the kernel-image segment's start
        (0x20_3000, 0x2000), // across its end
        (0x2f_f800, 0x1000), // end of a RAM range into the hole
        (0x40_0000, 0x4000), // file part then the zero tail, then past memsz
        (0x10_0000, 1 << 20),
        (0x1234_5678, 100), // entirely in a hole
    ] {
        let mut buf = vec![0xaau8; len];
        v.read_physical(pa, &mut buf).expect("read");
        for (i, &b) in buf.iter().enumerate() {
            assert_eq!(b, expect(pa + i as u64), "pa {:#x}", pa + i as u64);
        }
    }
    let mut buf = [0u8; 16];
    assert!(matches!(
        v.read_physical(u64::MAX - 4, &mut buf),
        Err(ElfError::PhysicalOverflow { .. })
    ));
}

#[test]
fn bitmaps_follow_the_non_cyclic_and_1_7_2_rules() {
    let (_dir, v) = open_img(&standard());
    let v = v.expect("open");
    let ram = v.ram_bitmap();
    let dumpable = v.file_backed_bitmap();
    assert_eq!(ram.bits(), 0x403);
    assert!(ram.get(0x9f) && !dumpable.get(0x9f));
    assert!(!ram.get(0) && !ram.get(0xa0));
    // The last load: file part 0x40_0000..0x40_1800 → pfn 0x400 stays, 0x401 (partial) and 0x402 go.
    assert!(dumpable.get(0x400) && !dumpable.get(0x401) && !dumpable.get(0x402));
    assert!(ram.get(0x402));
    assert_eq!(ram.count_ones(), 0x9f + 0x200 + 3);
    assert_eq!(dumpable.count_ones(), 0x9e + 0x200 + 1);
    assert!(dumpable.is_subset_of(&ram));
}

#[test]
fn utsname_and_fallback() {
    let (_dir, v) = open_img(&standard());
    let v = v.expect("open");
    let uts = v.utsname().expect("utsname");
    assert_eq!(utsname_field(&uts, 0), "Linux");
    assert_eq!(utsname_field(&uts, 4), "x86_64");
    let fb = v.fallback_utsname();
    assert_eq!(utsname_field(&fb, 0), "Linux");
    assert_eq!(utsname_field(&fb, 2), "6.1.0-test");
    assert_eq!(utsname_field(&fb, 4), "x86_64");
    assert!(matches!(
        v.read_kernel_virtual(0xffff_8880_0000_0000, &mut [0u8; 8]),
        Err(ElfError::NotKernelImage { .. })
    ));
    assert!(matches!(
        v.read_kernel_virtual(KVADDR + 0x1000_0000, &mut [0u8; 8]),
        Err(ElfError::NotInDump { .. })
    ));
}

#[test]
fn utsname_mismatch_is_reported() {
    let mut img = standard();
    // A wrong phys_base: init_uts_ns then lands on other memory.
    img.note_segments = vec![notes_with(&vmcoreinfo_text(&format!(
        "NUMBER(phys_base)={}\n",
        PHYS_BASE + 0x1000
    )))];
    let (_dir, v) = open_img(&img);
    let err = v.expect("open").utsname().expect_err("mismatch");
    assert!(matches!(err, ElfError::UtsnameMismatch { .. }), "{err}");
    assert!(err.to_string().contains("OSRELEASE"), "{err}");
}

#[test]
fn phys_base_from_the_kernel_load_when_not_exported() {
    let mut img = standard();
    img.note_segments = vec![notes_with(&vmcoreinfo_text(""))];
    let (_dir, v) = open_img(&img);
    let v = v.expect("open");
    assert_eq!(v.phys_base(), PHYS_BASE as u64);
    assert!(v.utsname().is_ok());
    img.loads.remove(0);
    let (_dir, v) = open_img(&img);
    assert_eq!(v.expect("open").phys_base(), 0);
}

#[test]
fn defects_are_errors_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = build(&standard());
    type Case = (&'static str, Vec<u8>, fn(&ElfError) -> bool);
    let cases: Vec<Case> = vec![
        ("tiny", good[..10].to_vec(), |e| {
            matches!(e, ElfError::TooShort { .. })
        }),
        (
            "text",
            b"this is not an ELF file at all, just some text....... and more text".to_vec(),
            |e| matches!(e, ElfError::NotElf { .. }),
        ),
        ("headers-cut", good[..100].to_vec(), |e| {
            matches!(e, ElfError::PhdrsPastEnd { .. })
        }),
        ("data-cut", good[..good.len() - 4096].to_vec(), |e| {
            matches!(e, ElfError::SegmentPastEnd { .. })
        }),
        (
            "elf32",
            {
                let mut b = good.clone();
                b[4] = 1;
                b
            },
            |e| matches!(e, ElfError::NotElf64Le { .. }),
        ),
        (
            "exec",
            {
                let mut b = good.clone();
                b[16] = 2;
                b
            },
            |e| matches!(e, ElfError::NotCore { .. }),
        ),
        (
            "arm",
            {
                let mut b = good.clone();
                b[18] = 183;
                b
            },
            |e| matches!(e, ElfError::NotX86_64 { .. }),
        ),
    ];
    for (name, bytes, check) in cases {
        let path = write(dir.path(), name, &bytes);
        let err = ElfVmcore::open(&path).expect_err(name);
        assert!(check(&err), "{name}: {err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{name}: {err}"
        );
    }
    let missing = dir.path().join("missing");
    let err = ElfVmcore::open(&missing).expect_err("missing");
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn missing_parts_are_errors() {
    let mut img = standard();
    img.note_segments = vec![{
        let mut seg = Vec::new();
        push_note(&mut seg, b"CORE", NT_PRSTATUS, &[0u8; 336]);
        seg
    }];
    let (_dir, v) = open_img(&img);
    assert!(matches!(v, Err(ElfError::NoVmcoreinfo { .. })));
    let mut img = standard();
    img.loads.clear();
    let (_dir, v) = open_img(&img);
    assert!(matches!(v, Err(ElfError::NoLoad { .. })));
    let mut img = standard();
    img.note_segments.clear();
    let (_dir, v) = open_img(&img);
    assert!(matches!(v, Err(ElfError::NoNote { .. })));
    let mut img = standard();
    img.loads[1].2 = img.loads[1].3 + 1; // filesz > memsz
    let (_dir, v) = open_img(&img);
    assert!(matches!(v, Err(ElfError::BadLoad { .. })));
    let mut img = standard();
    img.note_segments = vec![notes_with("PAGESIZE=4000\n")];
    let (_dir, v) = open_img(&img);
    assert!(matches!(v, Err(ElfError::BadPageSize { .. })));
}
