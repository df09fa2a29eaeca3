//! The judge for "stored as makedumpfile stores it": send one vmcore through the real sender and
//! receiver at several dump levels and compare each stored dump with `makedumpfile -c -d N`'s
//! output from the same input (`max_mapnr`, both bitmaps, so the page set), then check that
//! makedumpfile takes the stored dump as input again (`-d 31`) and selects the same pages as from
//! the source. Shared by the QEMU tests (a `dump-guest-memory` ELF, a real kdump vmcore).

use std::path::{Path, PathBuf};

use crashdrop_formats::kdump::KdumpReader;
use crashdrop_formats::{Bitmap, ElfVmcore};

use crate::{
    assert_sent, makedumpfile_compress, run, selection, sender, stored_dumps, Receiver, TestCerts,
};

/// `max_mapnr`, 1st and 2nd bitmap of a kdump-compressed file.
pub fn kdump_bitmaps(path: &Path) -> (u64, Bitmap, Bitmap) {
    let r = KdumpReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (r.meta().max_mapnr, r.bitmap1().clone(), r.bitmap2().clone())
}

/// Sends `source` (as host `host`, which `TestCerts::new` must have been given) at each of
/// `levels` to a receiver storing zlib in `work/store`, and asserts each stored dump equals
/// makedumpfile's from `for_makedumpfile` (`source` itself, or a copy makedumpfile can read) and
/// re-filters at -d 31 to makedumpfile's -d 31 page set.
///
/// # Panics
///
/// On any difference, naming the level and what differs.
pub fn assert_stored_like_makedumpfile(
    work: &Path,
    source: &Path,
    for_makedumpfile: &Path,
    host: &str,
    levels: &[u8],
) {
    let vmcore = ElfVmcore::open(source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    let certs = TestCerts::new(&[host]);
    let store = work.join("store");
    let receiver = Receiver::start(&store, &certs, &["--store-compression", "zlib"]);
    let source_d31 = work.join("source-d31.kdump");
    makedumpfile_compress(for_makedumpfile, &source_d31, 31).unwrap_or_else(|e| panic!("{e}"));
    let want_refiltered = kdump_bitmaps(&source_d31).2;
    for &level in levels {
        let ours = selection(&vmcore, level);
        let reference: PathBuf = work.join(format!("ref-d{level}.kdump"));
        makedumpfile_compress(for_makedumpfile, &reference, level)
            .unwrap_or_else(|e| panic!("{e}"));
        let (ref_mapnr, ref_ram, ref_dumpable) = kdump_bitmaps(&reference);

        let out = run(&mut sender(&receiver, &certs, host, source, level));
        assert_sent(&out, &receiver);
        let stored = stored_dumps(&store)
            .iter()
            .map(|d| d.join("vmcore"))
            .find(|v| {
                kdump_bitmaps(v).2 == ours.dumpable
                    && KdumpReader::open(v).is_ok_and(|r| r.meta().dump_level == u32::from(level))
            })
            .unwrap_or_else(|| panic!("-d {level}: no stored dump with the filter's bitmap"));
        let (mapnr, ram, dumpable) = kdump_bitmaps(&stored);
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
        let refiltered = work.join(format!("refiltered-d{level}.kdump"));
        makedumpfile_compress(&stored, &refiltered, 31)
            .unwrap_or_else(|e| panic!("re-filtering the stored -d {level} dump: {e}"));
        let pages = kdump_bitmaps(&refiltered).2;
        assert!(
            pages == want_refiltered,
            "-d {level} stored, re-filtered at -d 31: {} pages, makedumpfile from the source {}",
            pages.count_ones(),
            want_refiltered.count_ones()
        );
        for f in [&reference, &refiltered] {
            std::fs::remove_file(f).ok();
        }
    }
}
