//! The lockless ring buffer of Linux 5.10+ (formats.md 6.1): a descriptor ring, a parallel
//! `printk_info` array and a text data ring.

use std::ops::Range;

use super::error::DmesgError;
use super::format::{Flavor, LogWriter};
use super::kernel::{field, u16_at, u32_at, u64_at, Kernel};
use super::{MAX_DESCRIPTORS, MAX_LOG_BUF};
use crate::filter::PhysicalMemory;

/// Bits 0..61 of a state word or an id.
pub(super) const ID_MASK: u64 = (1 << 62) - 1;
/// Descriptor states (bits 62..63) whose record is readable.
const COMMITTED: u64 = 1;
const FINALIZED: u64 = 2;
/// Descriptors and infos are read this many bytes at a time.
const WINDOW_BYTES: u64 = 64 << 10;
/// Limits on the structure sizes VMCOREINFO gives.
const MAX_RINGBUFFER: u64 = 4096;
const MAX_DESC: u64 = 256;
const MAX_INFO: u64 = 1024;

/// Where the fields are, from VMCOREINFO, each checked to lie inside its structure.
struct Layout {
    rb_size: u64,
    count_bits: usize,
    descs: usize,
    infos: usize,
    head_id: usize,
    tail_id: usize,
    size_bits: usize,
    data: usize,
    desc_size: u64,
    state_var: usize,
    begin: usize,
    next: usize,
    info_size: u64,
    ts_nsec: usize,
    text_len: usize,
}

impl Layout {
    fn from_info<M: PhysicalMemory + ?Sized>(k: &Kernel<'_, M>) -> Result<Layout, DmesgError> {
        let rb_size = k.size("printk_ringbuffer", MAX_RINGBUFFER)?;
        let desc_ring = k.offset("printk_ringbuffer.desc_ring")?;
        let text_ring = k.offset("printk_ringbuffer.text_data_ring")?;
        let counter = k.offset("atomic_long_t.counter")?;
        let in_rb = |key: &str, base: u64, extra: u64, width: u64| -> Result<usize, DmesgError> {
            let off = k.offset(key)?;
            let sum = base.checked_add(off).and_then(|o| o.checked_add(extra));
            field(key, sum, width, rb_size)
        };
        let count_bits = in_rb("prb_desc_ring.count_bits", desc_ring, 0, 4)?;
        let descs = in_rb("prb_desc_ring.descs", desc_ring, 0, 8)?;
        let infos = in_rb("prb_desc_ring.infos", desc_ring, 0, 8)?;
        let head_id = in_rb("prb_desc_ring.head_id", desc_ring, counter, 8)?;
        let tail_id = in_rb("prb_desc_ring.tail_id", desc_ring, counter, 8)?;
        let size_bits = in_rb("prb_data_ring.size_bits", text_ring, 0, 4)?;
        let data = in_rb("prb_data_ring.data", text_ring, 0, 8)?;

        let desc_size = k.size("prb_desc", MAX_DESC)?;
        let state_off = k.offset("prb_desc.state_var")?;
        let state_var = field(
            "prb_desc.state_var",
            state_off.checked_add(counter),
            8,
            desc_size,
        )?;
        let lpos = k.offset("prb_desc.text_blk_lpos")?;
        let in_lpos = |key: &str| -> Result<usize, DmesgError> {
            let sum = lpos.checked_add(k.offset(key)?);
            field(key, sum, 8, desc_size)
        };
        let begin = in_lpos("prb_data_blk_lpos.begin")?;
        let next = in_lpos("prb_data_blk_lpos.next")?;

        let info_size = k.size("printk_info", MAX_INFO)?;
        let ts_nsec = field(
            "printk_info.ts_nsec",
            Some(k.offset("printk_info.ts_nsec")?),
            8,
            info_size,
        )?;
        let text_len = field(
            "printk_info.text_len",
            Some(k.offset("printk_info.text_len")?),
            2,
            info_size,
        )?;
        Ok(Layout {
            rb_size,
            count_bits,
            descs,
            infos,
            head_id,
            tail_id,
            size_bits,
            data,
            desc_size,
            state_var,
            begin,
            next,
            info_size,
            ts_nsec,
            text_len,
        })
    }
}

/// Reads the log (6.1 algorithm).
pub(super) fn read<M: PhysicalMemory + ?Sized>(
    k: &mut Kernel<'_, M>,
    flavor: Flavor,
) -> Result<Vec<u8>, DmesgError> {
    let l = Layout::from_info(k)?;
    let prb = k.symbol("prb")?;
    let rb_va = k.read_u64(prb, "the prb pointer (SYMBOL(prb))")?;
    let rb = k.read(rb_va, l.rb_size, l.rb_size, "struct printk_ringbuffer")?;

    let count_bits = u32_at(&rb, l.count_bits);
    if u64::from(count_bits) > MAX_DESCRIPTORS.trailing_zeros().into() {
        return Err(DmesgError::bad(
            "prb->desc_ring.count_bits",
            count_bits,
            format!("more than {MAX_DESCRIPTORS} descriptors"),
        ));
    }
    let count = 1u64 << count_bits;
    let size_bits = u32_at(&rb, l.size_bits);
    if !(3..=MAX_LOG_BUF.trailing_zeros()).contains(&size_bits) {
        return Err(DmesgError::bad(
            "prb->text_data_ring.size_bits",
            size_bits,
            format!("the text ring must be 8 bytes to {MAX_LOG_BUF} bytes"),
        ));
    }
    let size = 1u64 << size_bits;
    let head_id = u64_at(&rb, l.head_id) & ID_MASK;
    let tail_id = u64_at(&rb, l.tail_id) & ID_MASK;
    let span = head_id.wrapping_sub(tail_id) & ID_MASK;
    if span >= count {
        return Err(DmesgError::corrupt(
            "printk ring buffer",
            format!(
                "tail_id {tail_id:#x} .. head_id {head_id:#x} spans more than {count} descriptors"
            ),
        ));
    }
    let data = k.read(
        u64_at(&rb, l.data),
        size,
        MAX_LOG_BUF,
        "the printk text ring",
    )?;
    let mut descs = Window::new(
        u64_at(&rb, l.descs),
        l.desc_size,
        count,
        "printk descriptors",
    );
    let mut infos = Window::new(
        u64_at(&rb, l.infos),
        l.info_size,
        count,
        "printk_info array",
    );
    // A well-formed ring prints each text byte once, escaped to at most 4 bytes, plus a prefix
    // line per descriptor; twice that is still far from what a malformed ring could make.
    let mut out = LogWriter::new(flavor, 8 * size + 64 * count);
    for step in 0..=span {
        let id = tail_id.wrapping_add(step) & ID_MASK;
        let i = id & (count - 1);
        let desc = descs.get(k, i)?;
        let state_var = u64_at(desc, l.state_var);
        let state = state_var >> 62;
        if state_var & ID_MASK != id || !(state == COMMITTED || state == FINALIZED) {
            continue;
        }
        let (begin, next) = (u64_at(desc, l.begin), u64_at(desc, l.next));
        let info = infos.get(k, i)?;
        let ts_nsec = u64_at(info, l.ts_nsec);
        let text_len = u16_at(info, l.text_len);
        match text_range(begin, next, size, text_len) {
            Some(range) => out.record(ts_nsec, data.get(range).unwrap_or_default())?,
            None if flavor == Flavor::VmcoreDmesg => out.record(ts_nsec, b"")?,
            None => {}
        }
    }
    Ok(out.finish())
}

/// Where a record's text is in the data ring, by the rule makedumpfile and vmcore-dmesg use
/// (6.1 step 4): `None` for a data-less record (`begin % size == next % size`). The range is
/// clamped to the ring, where the tools would read past it.
pub(super) fn text_range(begin: u64, next: u64, size: u64, text_len: u16) -> Option<Range<usize>> {
    let mask = size.wrapping_sub(1);
    let (mut b, n) = (begin & mask, next & mask);
    if b == n {
        return None;
    }
    if b > n {
        b = 0;
    }
    b += 8;
    // As unsigned 64-bit: a negative difference lowers nothing.
    let len = u64::from(text_len).min(n.wrapping_sub(b));
    let start = b.min(size);
    let end = b.saturating_add(len).min(size);
    Some(start as usize..end as usize)
}

/// Elements `first ..` of a kernel array, read [`WINDOW_BYTES`] at a time.
struct Window {
    base: u64,
    elem: u64,
    count: u64,
    what: &'static str,
    first: u64,
    bytes: Vec<u8>,
}

impl Window {
    fn new(base: u64, elem: u64, count: u64, what: &'static str) -> Window {
        Window {
            base,
            elem,
            count,
            what,
            first: 0,
            bytes: Vec::new(),
        }
    }

    /// Element `i` (`i < count`; `elem` ≥ 1 and `count * elem` fit, see the limits).
    fn get<M: PhysicalMemory + ?Sized>(
        &mut self,
        k: &mut Kernel<'_, M>,
        i: u64,
    ) -> Result<&[u8], DmesgError> {
        let held = self.bytes.len() as u64 / self.elem;
        if i < self.first || i >= self.first + held {
            let take = (WINDOW_BYTES / self.elem).max(1).min(self.count - i);
            let va = self.base.wrapping_add(i * self.elem);
            let len = take * self.elem;
            self.bytes = k.read(va, len, len, self.what)?;
            self.first = i;
        }
        let at = ((i - self.first) * self.elem) as usize;
        self.bytes
            .get(at..at + self.elem as usize)
            .ok_or_else(|| DmesgError::corrupt(self.what, "element outside its window"))
    }
}
