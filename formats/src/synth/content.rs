//! Page contents of the synthetic machine: per class a share of zero pages, text-like pages
//! (cut from a pseudo-source corpus) and random bytes, a function of (seed, pfn) only.

use super::classes::SynthClass;
use super::layout::PAGE;
use super::{mix, XorShift};

const WORDS: &[&[u8]] = &[
    b"kernel",
    b"page",
    b"struct",
    b"mutex",
    b"irq",
    b"sched",
    b"task",
    b"memory",
    b"0x0000",
    b"ffff888",
    b"return",
    b"static",
    b"int",
    b"void",
    b"NULL",
    b"list_head",
    b"spin_lock",
    b"error",
    b"debug",
    b"the",
    b"of",
    b"to",
    b"a",
    b"in",
    b"and",
    b"device",
    b"driver",
];

/// Bytes of text from which text-like pages are cut.
const CORPUS_LEN: usize = 64 << 10;

/// Pseudo-source text, deterministic from the seed (built once per file).
pub(super) fn corpus(seed: u64) -> Vec<u8> {
    let mut rng = XorShift(mix(seed) | 1);
    let mut text = Vec::with_capacity(CORPUS_LEN + 16);
    while text.len() < CORPUS_LEN {
        let r = rng.next();
        text.extend_from_slice(WORDS[(r % WORDS.len() as u64) as usize]);
        text.push(if r & 0x700 == 0 { b'\n' } else { b' ' });
    }
    text.truncate(CORPUS_LEN);
    text
}

/// Shares (in percent) of zero and text-like pages per class; the rest are random bytes.
fn mix_of(class: SynthClass) -> (u64, u64) {
    match class {
        // Never-touched free memory of a machine up for minutes: mostly zero.
        SynthClass::Free => (85, 15),
        SynthClass::Cache | SynthClass::CachePrivate => (10, 70),
        SynthClass::Anon => (35, 25),
        SynthClass::Slab => (5, 60),
        SynthClass::Kernel => (30, 40),
        SynthClass::Reserved => (60, 20),
    }
}

/// Fills `page` with the contents of `pfn` of class `class`. Returns true if it is all zero.
pub(super) fn fill_page(
    seed: u64,
    corpus: &[u8],
    pfn: u64,
    class: SynthClass,
    page: &mut [u8; PAGE as usize],
) -> bool {
    let h = mix(seed ^ mix(pfn));
    let mut rng = XorShift(h | 1);
    let (zero, text) = mix_of(class);
    let r = h % 100;
    if r < zero {
        page.fill(0);
        true
    } else if r < zero + text {
        // A slice of the corpus, stamped with the pfn so no two pages are identical.
        let start = (rng.next() % (CORPUS_LEN - page.len()) as u64) as usize;
        if let Some(src) = corpus.get(start..start + page.len()) {
            page.copy_from_slice(src);
        }
        let stamp = format!("pfn={pfn:x};");
        let n = stamp.len().min(page.len());
        page[..n].copy_from_slice(&stamp.as_bytes()[..n]);
        false
    } else {
        for chunk in page.chunks_exact_mut(8) {
            chunk.copy_from_slice(&rng.next().to_le_bytes());
        }
        false
    }
}
