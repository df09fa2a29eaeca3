//! Writer → reader round trips of small hand-made kdump-compressed files.

use std::path::{Path, PathBuf};

use super::*;
use crate::bitmap::Bitmap;
use crate::elf::encode_utsname;
use crate::notes::{push_note, NT_PRSTATUS};

const B: u64 = 4096;
const MAX_MAPNR: u64 = 40;

/// How a dumpable pfn is stored.
#[derive(Clone, Copy, Debug)]
enum Stored {
    Zlib,
    Zstd,
    Raw,
    Zero,
    Lost,
}

/// The 2nd-bitmap pfns and how each is stored; the 1st bitmap is pfns 1..30.
const PAGES: &[(u64, Stored)] = &[
    (1, Stored::Zlib),
    (2, Stored::Zstd),
    (3, Stored::Raw),
    (5, Stored::Zero),
    (8, Stored::Zlib),
    (13, Stored::Zero),
    (21, Stored::Lost),
    (22, Stored::Zstd),
    (29, Stored::Raw),
];

fn page_content(pfn: u64, kind: Stored) -> Vec<u8> {
    match kind {
        Stored::Zero | Stored::Lost => vec![0; B as usize],
        Stored::Raw => {
            let mut x = pfn.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            (0..B)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        }
        _ => format!("pfn {pfn} says hello; ")
            .bytes()
            .cycle()
            .take(B as usize)
            .collect(),
    }
}

fn notes() -> Vec<u8> {
    let mut seg = Vec::new();
    push_note(&mut seg, b"CORE", NT_PRSTATUS, &[0u8; 336]);
    push_note(
        &mut seg,
        b"VMCOREINFO",
        0,
        b"OSRELEASE=6.1.0-test\nPAGESIZE=4096\nCRASHTIME=42\n",
    );
    seg
}

fn meta(num_dumpable: u64) -> KdumpMeta {
    KdumpMeta {
        utsname: encode_utsname(["Linux", "box", "6.1.0-test", "#1", "x86_64", ""]),
        crash_time: 42,
        status: FLAG_ZLIB,
        block_size: B as u32,
        max_mapnr: MAX_MAPNR,
        nr_cpus: 1,
        phys_base: 0xffff_ffff_e020_0000,
        dump_level: 1,
        notes: notes(),
        num_dumpable,
    }
}

/// Writes the file; `tweak` may alter descriptors before they are written.
fn write_dump(path: &Path, tweak: impl Fn(u64, &mut PageDesc)) -> KdumpLayout {
    let mut bitmap1 = Bitmap::new(MAX_MAPNR);
    bitmap1.set_range(1..30);
    let mut bitmap2 = Bitmap::new(MAX_MAPNR);
    for &(pfn, _) in PAGES {
        bitmap2.set(pfn);
    }
    let meta = meta(PAGES.len() as u64);
    let layout = KdumpLayout::new(B, meta.notes.len() as u64, MAX_MAPNR, PAGES.len() as u64)
        .expect("layout");
    let mut file = encode_main_header(&meta, &layout);
    file.extend(encode_sub_header_area(&meta, &layout).expect("sub header"));
    assert_eq!(file.len() as u64, layout.bitmap1_offset);
    for bitmap in [&bitmap1, &bitmap2] {
        let mut region = bitmap.as_bytes().to_vec();
        region.resize(layout.bitmap_region_len() as usize, 0);
        file.extend(region);
    }
    assert_eq!(file.len() as u64, layout.descriptors_offset);
    // Data area: the shared zero block first, then the other pages in reverse pfn order (a
    // writer may lay data out in arrival order).
    let zero_offset = layout.data_offset;
    let mut data = vec![0u8; B as usize];
    let mut descs = vec![PageDesc::default(); PAGES.len()];
    for (index, &(pfn, kind)) in PAGES.iter().enumerate().rev() {
        let page = page_content(pfn, kind);
        let (bytes, flags) = match kind {
            Stored::Zlib => (compress_zlib(&page), FLAG_ZLIB),
            Stored::Zstd => (compress_zstd(&page).expect("zstd"), FLAG_ZSTD),
            Stored::Raw => (page, 0),
            Stored::Zero => {
                descs[index] = PageDesc {
                    offset: zero_offset as i64,
                    size: B as u32,
                    flags: 0,
                    page_flags: 0,
                };
                continue;
            }
            Stored::Lost => continue,
        };
        descs[index] = PageDesc {
            offset: (zero_offset + data.len() as u64) as i64,
            size: bytes.len() as u32,
            flags,
            page_flags: 0,
        };
        data.extend(bytes);
    }
    for (index, desc) in descs.iter_mut().enumerate() {
        tweak(index as u64, desc);
        file.extend(desc.encode());
    }
    assert_eq!(file.len() as u64, layout.data_offset);
    file.extend(data);
    std::fs::write(path, file).expect("write dump");
    layout
}

fn dump_in(dir: &Path) -> (PathBuf, KdumpLayout) {
    let path = dir.join("dump");
    let layout = write_dump(&path, |_, _| {});
    (path, layout)
}

#[test]
fn main_header_fields_at_their_offsets() {
    let m = meta(9);
    let layout = KdumpLayout::new(B, m.notes.len() as u64, MAX_MAPNR, 9).expect("layout");
    let h = encode_main_header(&m, &layout);
    assert_eq!(h.len(), 4096);
    assert_eq!(&h[0..8], b"KDUMP   ");
    assert_eq!(h[8..12], 6i32.to_le_bytes());
    assert_eq!(&h[12..17], b"Linux");
    assert_eq!(&h[12 + 130..12 + 140], b"6.1.0-test");
    assert_eq!(h[408..416], 42i64.to_le_bytes());
    assert_eq!(h[424..428], FLAG_ZLIB.to_le_bytes());
    assert_eq!(h[428..432], 4096i32.to_le_bytes());
    assert_eq!(h[432..436], 1i32.to_le_bytes());
    assert_eq!(h[436..440], 2u32.to_le_bytes());
    assert_eq!(h[440..444], 40u32.to_le_bytes());
    assert_eq!(h[460..464], 1i32.to_le_bytes());
    assert!(h[464..].iter().all(|&b| b == 0));
}

#[test]
fn sub_header_points_into_the_note_copy() {
    let m = meta(9);
    let layout = KdumpLayout::new(B, m.notes.len() as u64, MAX_MAPNR, 9).expect("layout");
    let area = encode_sub_header_area(&m, &layout).expect("area");
    assert_eq!(area.len() as u64, B);
    let sub = SubHeader::decode(&area[..104]);
    assert_eq!(sub.phys_base, 0xffff_ffff_e020_0000);
    assert_eq!((sub.dump_level, sub.split), (1, 0));
    assert_eq!(sub.offset_note, 4096 + 104);
    assert_eq!(sub.size_note, m.notes.len() as u64);
    assert_eq!(sub.max_mapnr_64, MAX_MAPNR);
    let text_at = (sub.offset_vmcoreinfo - 4096) as usize;
    assert_eq!(
        &area[text_at..text_at + sub.size_vmcoreinfo as usize],
        b"OSRELEASE=6.1.0-test\nPAGESIZE=4096\nCRASHTIME=42\n"
    );
    assert_eq!(&area[104..104 + m.notes.len()], &m.notes[..]);
    let mut wrong = m.clone();
    wrong.notes.push(0);
    assert!(matches!(
        encode_sub_header_area(&wrong, &layout),
        Err(KdumpError::NotesLength { .. })
    ));
    let mut none = m;
    none.notes.clear();
    let layout = KdumpLayout::new(B, 0, MAX_MAPNR, 9).expect("layout");
    let sub = SubHeader::decode(&encode_sub_header_area(&none, &layout).expect("area"));
    assert_eq!(
        (sub.offset_note, sub.size_note, sub.offset_vmcoreinfo),
        (0, 0, 0)
    );
}

#[test]
fn round_trip_every_kind_of_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, layout) = dump_in(dir.path());
    let r = KdumpReader::open(&path).expect("open");
    assert_eq!(r.layout(), &layout);
    assert_eq!(r.meta(), &meta(PAGES.len() as u64));
    assert_eq!(r.status(), FLAG_ZLIB);
    assert!(!r.is_incomplete());
    let info = r.vmcoreinfo().expect("vmcoreinfo");
    assert_eq!(info.osrelease(), Some("6.1.0-test"));
    assert_eq!(r.bitmap1().count_ones(), 29);
    assert_eq!(r.bitmap2().count_ones(), PAGES.len() as u64);
    for &(pfn, kind) in PAGES {
        let got = r.read_page(pfn).expect("read");
        match kind {
            Stored::Lost => assert_eq!(got, PageRead::Lost, "pfn {pfn}"),
            _ => assert_eq!(got, PageRead::Data(page_content(pfn, kind)), "pfn {pfn}"),
        }
    }
    for pfn in [0, 30, 39, 40, 1000, u64::MAX] {
        assert_eq!(
            r.read_page(pfn).expect("read"),
            PageRead::NotInDump,
            "pfn {pfn}"
        );
    }
    for pfn in [4, 6, 28] {
        assert_eq!(
            r.read_page(pfn).expect("read"),
            PageRead::Excluded,
            "pfn {pfn}"
        );
    }
    let listed: Vec<(u64, PageDesc)> = r.pages().collect::<Result<_, _>>().expect("pages");
    assert_eq!(
        listed.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        PAGES.iter().map(|(p, _)| *p).collect::<Vec<_>>()
    );
    for (index, (pfn, desc)) in listed.iter().enumerate() {
        assert_eq!(*desc, r.descriptor(index as u64).expect("descriptor"));
        assert_eq!(r.descriptor_index(*pfn), index as u64);
    }
    assert!(r.descriptor(PAGES.len() as u64).is_err());
}

#[test]
fn bad_descriptors_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dump");
    write_dump(&path, |index, d| match index {
        0 => d.size = 5000,
        1 => d.offset = 4096,
        2 => d.offset = 1 << 40,
        4 => d.flags = FLAG_LZO,
        _ => {}
    });
    let r = KdumpReader::open(&path).expect("open");
    for pfn in [1, 2, 3, 8] {
        let err = r.read_page(pfn).expect_err("bad descriptor");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert!(err.to_string().contains(&format!("pfn {pfn:#x}")), "{err}");
    }
}

#[test]
fn damaged_files_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, layout) = dump_in(dir.path());
    let good = std::fs::read(&path).expect("read");
    let variant = |name: &str, f: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = good.clone();
        f(&mut bytes);
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).expect("write");
        let err = KdumpReader::open(&p).expect_err(name);
        assert!(err.to_string().contains(name), "{name}: {err}");
        err
    };
    let e = variant("signature", &|b| b[0] = b'X');
    assert!(matches!(e, KdumpError::BadSignature { .. }));
    let e = variant("version", &|b| b[8] = 5);
    assert!(matches!(e, KdumpError::UnsupportedVersion { .. }));
    let e = variant("blocksize", &|b| {
        b[428..432].copy_from_slice(&1000i32.to_le_bytes())
    });
    assert!(matches!(e, KdumpError::Header { .. }));
    let d = layout.descriptors_offset as usize;
    let e = variant("truncated", &|b| b.truncate(d + 10));
    assert!(matches!(e, KdumpError::PastEnd { .. }));
    let b2 = layout.bitmap2_offset as usize;
    let e = variant("subset", &|b| b[b2 + 4] = 1); // pfn 32: not RAM
    assert!(matches!(e, KdumpError::NotSubset { pfn: 32, .. }));
    let e = variant("tail", &|b| b[b2 + 5] = 1); // pfn 40 = max_mapnr
    assert!(matches!(e, KdumpError::Bitmap { which: 2, .. }));
    let e = variant("split", &|b| b[4096 + 12] = 1);
    assert!(matches!(e, KdumpError::Split { .. }));
    let e = variant("short", &|b| b.truncate(100));
    assert!(matches!(e, KdumpError::TooShort { .. }));
}

#[test]
fn incomplete_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = dump_in(dir.path());
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[424..428].copy_from_slice(&(FLAG_ZLIB | FLAG_INCOMPLETE).to_le_bytes());
    std::fs::write(&path, bytes).expect("write");
    let r = KdumpReader::open(&path).expect("open");
    assert!(r.is_incomplete());
}
