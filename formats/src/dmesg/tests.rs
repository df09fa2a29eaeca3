//! Hand-built lockless rings (6.1), including lpos and id wrap-around, and garbage that must
//! error, not panic. Everything sits in the kernel-image region (`phys_base` 0), so no page
//! tables are needed. `structured_tests` does the same for the older buffers.

use super::lockless::ID_MASK;
use super::*;
use crate::filter::MemoryError;
pub(super) use crate::X86_64_START_KERNEL_MAP as KMAP;

const MEM: usize = 1 << 16;

/// Physical memory `0 .. MEM`; the rest is not in the dump.
pub(super) struct Flat(Vec<u8>);

impl Flat {
    pub(super) fn new() -> Flat {
        Flat(vec![0; MEM])
    }
    pub(super) fn put(&mut self, va: u64, bytes: &[u8]) {
        let pa = (va - KMAP) as usize;
        self.0[pa..pa + bytes.len()].copy_from_slice(bytes);
    }
    pub(super) fn put_u64(&mut self, va: u64, v: u64) {
        self.put(va, &v.to_le_bytes());
    }
}

impl PhysicalMemory for Flat {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let len = buf.len() as u64;
        let src = usize::try_from(paddr)
            .ok()
            .and_then(|p| self.0.get(p..p.checked_add(buf.len())?))
            .ok_or(MemoryError::NotInDump { paddr, len })?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

pub(super) fn text(log: Result<Vec<u8>, DmesgError>) -> String {
    String::from_utf8(log.expect("kernel log")).expect("ASCII")
}

/// The fixture's (Debian 6.1) lockless-ring VMCOREINFO, with `prb` at `PRB`.
const PRB: u64 = KMAP + 0x1000;
const RB: u64 = KMAP + 0x1100;
const DESCS: u64 = KMAP + 0x2000;
const INFOS: u64 = KMAP + 0x3000;
const DATA: u64 = KMAP + 0x8000;

fn prb_info(drop: &str) -> VmcoreInfo {
    let text = format!(
        "SYMBOL(init_top_pgt)={:x}\nSYMBOL(prb)={PRB:x}\nSIZE(printk_ringbuffer)=88\n\
         OFFSET(printk_ringbuffer.desc_ring)=0\nOFFSET(printk_ringbuffer.text_data_ring)=48\n\
         OFFSET(prb_desc_ring.count_bits)=0\nOFFSET(prb_desc_ring.descs)=8\n\
         OFFSET(prb_desc_ring.infos)=16\nOFFSET(prb_desc_ring.head_id)=24\n\
         OFFSET(prb_desc_ring.tail_id)=32\nSIZE(prb_desc)=24\nOFFSET(prb_desc.state_var)=0\n\
         OFFSET(prb_desc.text_blk_lpos)=8\nOFFSET(prb_data_blk_lpos.begin)=0\n\
         OFFSET(prb_data_blk_lpos.next)=8\nSIZE(printk_info)=88\nOFFSET(printk_info.seq)=0\n\
         OFFSET(printk_info.ts_nsec)=8\nOFFSET(printk_info.text_len)=16\n\
         OFFSET(printk_info.caller_id)=20\nOFFSET(prb_data_ring.size_bits)=0\n\
         OFFSET(prb_data_ring.data)=8\nOFFSET(atomic_long_t.counter)=0\n",
        KMAP + 0x10_0000
    );
    let kept: String = text
        .lines()
        .filter(|l| drop.is_empty() || !l.starts_with(drop))
        .map(|l| format!("{l}\n"))
        .collect();
    VmcoreInfo::parse(kept.as_bytes())
}

/// A lockless ring the way the kernel fills it: ids from `2^32 - count - 1`, lpos from
/// `2^64 - size`, blocks that do not fit before the end of the ring stored from index 0, and
/// the oldest records made reusable when their text is overwritten.
struct Ring {
    mem: Flat,
    count: u64,
    size: u64,
    head_id: u64,
    tail_id: u64,
    head_lpos: u64,
    /// (id, begin) of the records whose text is still in the ring, oldest first.
    live: std::collections::VecDeque<(u64, u64)>,
}

impl Ring {
    fn new(count_bits: u32, size_bits: u32) -> Ring {
        let (count, size) = (1u64 << count_bits, 1u64 << size_bits);
        let first = (1u64 << 32).wrapping_sub(count + 1) & 0xffff_ffff;
        let mut ring = Ring {
            mem: Flat::new(),
            count,
            size,
            head_id: first,
            tail_id: first,
            head_lpos: 0u64.wrapping_sub(size),
            live: Default::default(),
        };
        ring.mem.put_u64(PRB, RB);
        ring.mem.put(RB, &count_bits.to_le_bytes());
        ring.mem.put_u64(RB + 8, DESCS);
        ring.mem.put_u64(RB + 16, INFOS);
        ring.mem.put(RB + 48, &size_bits.to_le_bytes());
        ring.mem.put_u64(RB + 56, DATA);
        ring.set_desc(first, 3 << 62 | first, 1, 1);
        ring
    }

    fn set_desc(&mut self, id: u64, state_var: u64, begin: u64, next: u64) {
        let at = DESCS + 24 * (id & (self.count - 1));
        self.mem.put_u64(at, state_var);
        self.mem.put_u64(at + 8, begin);
        self.mem.put_u64(at + 16, next);
    }

    fn set_info(&mut self, id: u64, ts_nsec: u64, text_len: u16) {
        let at = INFOS + 88 * (id & (self.count - 1));
        self.mem.put_u64(at + 8, ts_nsec);
        self.mem.put(at + 16, &text_len.to_le_bytes());
    }

    /// Appends a finalized record; returns its id.
    fn push(&mut self, ts_nsec: u64, msg: &[u8]) -> u64 {
        let id = (self.head_id + 1) & ID_MASK;
        let block = (8 + msg.len() as u64).next_multiple_of(8);
        let begin = self.head_lpos;
        let index = begin & (self.size - 1);
        let (at, next) = if index + block > self.size {
            (0, begin.wrapping_add(self.size - index).wrapping_add(block))
        } else {
            (index, begin.wrapping_add(block))
        };
        while let Some(&(old, old_begin)) = self.live.front() {
            if next.wrapping_sub(old_begin) <= self.size {
                break;
            }
            self.live.pop_front();
            self.set_desc(old, 3 << 62 | old, 1, 1);
            self.tail_id = (old + 1) & ID_MASK;
        }
        if id.wrapping_sub(self.tail_id) & ID_MASK >= self.count {
            self.tail_id = (self.tail_id + 1) & ID_MASK;
            self.live.pop_front();
        }
        self.mem.put_u64(DATA + at, id);
        self.mem.put(DATA + at + 8, msg);
        self.set_desc(id, 2 << 62 | id, begin, next);
        self.set_info(id, ts_nsec, msg.len() as u16);
        self.live.push_back((id, begin));
        self.head_id = id;
        self.head_lpos = next;
        self.mem.put_u64(RB + 24, self.head_id);
        self.mem.put_u64(RB + 32, self.tail_id);
        id
    }

    fn log(&self, flavor: Flavor) -> Result<Vec<u8>, DmesgError> {
        kernel_log_as(&self.mem, &prb_info(""), 0, flavor)
    }
}

#[test]
fn lockless_records_in_both_flavors() {
    let mut ring = Ring::new(4, 10);
    ring.push(0, b"Linux version 6.1");
    ring.push(1_500_000, b"two\nlines");
    ring.push(12_345_678_901_234, b"caf\xc3\xa9\x01");
    let empty = ring.push(13_000_000_000_000, b"");
    // An empty message has no data block (EMPTY_LINE_LPOS); a reserved record is skipped.
    ring.set_desc(empty, 2 << 62 | empty, 3, 3);
    let reserved = ring.push(14_000_000_000_000, b"not yet");
    ring.set_desc(reserved, reserved, 0, 0);
    assert_eq!(
        text(ring.log(Flavor::VmcoreDmesg)),
        "[    0.000000] Linux version 6.1\n[    0.001500] two\nlines\n\
         [12345.678901] caf\\xc3\\xa9\\x01\n[13000.000000] \n"
    );
    assert_eq!(
        text(ring.log(Flavor::Makedumpfile)),
        "[    0.000000] Linux version 6.1\n[    0.001500] two\n               lines\n\
         [12345.678901] caf\\xc3\\xa9\\x01\n"
    );
}

#[test]
fn lpos_and_ids_wrap_past_two_to_the_64_and_32() {
    let mut ring = Ring::new(4, 8);
    let mut expected = Vec::new();
    for n in 0..40u64 {
        let msg = format!("message {n} {}", "x".repeat((n % 7) as usize));
        let id = ring.push(n * 1000, msg.as_bytes());
        expected.push((id, format!("[    0.{:06}] {msg}\n", n)));
    }
    assert!(ring.head_id > 1 << 32, "ids passed 2^32");
    assert!(ring.head_lpos < ring.size * 40, "lpos passed 2^64");
    let live: Vec<u64> = ring.live.iter().map(|&(id, _)| id).collect();
    let want: String = expected
        .iter()
        .filter(|(id, _)| live.contains(id))
        .map(|(_, line)| line.as_str())
        .collect();
    assert!(want.lines().count() >= 5, "{want}");
    assert_eq!(text(ring.log(Flavor::VmcoreDmesg)), want);
}

#[test]
fn text_ranges_follow_the_tools_rule() {
    use super::lockless::text_range;
    assert_eq!(text_range(16, 48, 256, 20), Some(24..44));
    assert_eq!(
        text_range(16, 48, 256, 100),
        Some(24..48),
        "lowered to next"
    );
    assert_eq!(
        text_range(240, 256 + 32, 256, 20),
        Some(8..28),
        "wrapped block"
    );
    assert_eq!(text_range(1, 1, 256, 5), None, "FAILED_LPOS");
    assert_eq!(text_range(3, 3, 256, 5), None, "EMPTY_LINE_LPOS");
    // A negative `next - b` lowers nothing; the range is clamped to the ring.
    assert_eq!(text_range(0, 4, 256, 300), Some(8..256));
}

#[test]
fn missing_keys_are_named() {
    for key in [
        "OFFSET(printk_info.text_len)",
        "SIZE(prb_desc)",
        "OFFSET(atomic_long_t.counter)",
    ] {
        let ring = Ring::new(4, 8);
        let err = kernel_log(&ring.mem, &prb_info(key), 0).expect_err("missing key");
        assert!(err.to_string().contains(key), "{err}");
    }
    let info = VmcoreInfo::parse(format!("SYMBOL(init_top_pgt)={:x}\n", KMAP).as_bytes());
    let err = kernel_log(&Flat::new(), &info, 0).expect_err("nothing");
    assert!(err.to_string().contains("no SYMBOL(prb)"), "{err}");
    let err = kernel_log(&Flat::new(), &VmcoreInfo::default(), 0).expect_err("nothing");
    assert!(err.to_string().contains("SYMBOL(init_top_pgt)"), "{err}");
}

#[test]
fn bad_ring_headers_are_errors_before_any_allocation() {
    let cases: [(u64, &[u8], &str); 4] = [
        (RB, &30u32.to_le_bytes(), "count_bits"),
        (RB + 48, &40u32.to_le_bytes(), "size_bits"),
        (RB + 32, &5u64.to_le_bytes(), "spans more than"),
        (
            RB + 56,
            &(KMAP + 0x20_0000u64).to_le_bytes(),
            "not in the dump",
        ),
    ];
    for (at, bytes, why) in cases {
        let mut ring = Ring::new(4, 8);
        ring.push(0, b"hello");
        ring.mem.put(at, bytes);
        let err = ring.log(Flavor::VmcoreDmesg).expect_err(why);
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
    let mut ring = Ring::new(4, 8);
    ring.mem.put_u64(PRB, 0x1234);
    let err = ring
        .log(Flavor::VmcoreDmesg)
        .expect_err("prb points nowhere");
    assert!(err.to_string().contains("printk_ringbuffer"), "{err}");
}

#[test]
fn offsets_outside_their_structure_are_refused() {
    let ring = Ring::new(4, 8);
    let base = prb_info("SIZE(printk_info)");
    let mut all: String = base.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    all.push_str("SIZE(printk_info)=16\n");
    let err = kernel_log(&ring.mem, &VmcoreInfo::parse(all.as_bytes()), 0).expect_err("too small");
    assert!(
        err.to_string().contains("OFFSET(printk_info.text_len)"),
        "{err}"
    );
}

mod garbage {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Random ring headers, descriptors, infos and text never panic, and a result stays
        /// within the output bound.
        #[test]
        fn random_lockless_rings(
            header in proptest::collection::vec(any::<u8>(), 88),
            small_bits in 0u32..12,
            descs in proptest::collection::vec(any::<u8>(), 24 * 16),
            infos in proptest::collection::vec(any::<u8>(), 88 * 16),
            data in proptest::collection::vec(any::<u8>(), 512),
        ) {
            let mut ring = Ring::new(4, 9);
            ring.mem.put(RB, &header);
            // Keep the pointers in the dump half the time, so the walk itself is exercised.
            if small_bits % 2 == 0 {
                ring.mem.put(RB, &(small_bits % 5).to_le_bytes());
                ring.mem.put_u64(RB + 8, DESCS);
                ring.mem.put_u64(RB + 16, INFOS);
                ring.mem.put(RB + 48, &small_bits.max(3).to_le_bytes());
                ring.mem.put_u64(RB + 56, DATA);
                // ... and the ids close enough for the walk to start.
                let tail = u64::from_le_bytes(header[24..32].try_into().unwrap_or_default());
                ring.mem.put_u64(RB + 32, tail);
                ring.mem.put_u64(RB + 24, tail.wrapping_add(u64::from(small_bits) % 3));
            }
            ring.mem.put(DESCS, &descs);
            ring.mem.put(INFOS, &infos);
            ring.mem.put(DATA, &data);
            if small_bits % 2 == 0 {
                // Random lpos and lengths behind state words that match their ids.
                let count = 1u64 << (small_bits % 5);
                let tail = u64::from_le_bytes(header[24..32].try_into().unwrap_or_default());
                for step in 0..3u64 {
                    let id = tail.wrapping_add(step) & ID_MASK;
                    let at = DESCS + 24 * (id & (count - 1));
                    ring.mem.put_u64(at, (1 + step % 2) << 62 | id);
                }
            }
            for flavor in [Flavor::VmcoreDmesg, Flavor::Makedumpfile] {
                if let Ok(log) = ring.log(flavor) {
                    prop_assert!(log.len() <= 8 * 4096 + 64 * 16);
                }
            }
        }

    }
}
