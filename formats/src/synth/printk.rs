//! The synthetic kernel's printk ring buffer: the lockless ring of 5.10+ (formats.md 6.1), set up
//! the way the kernel's dynamic buffer is — `prb` (in the image) points at `printk_rb_dynamic`
//! (in the image), whose descriptor, info and text arrays are memblock memory in the direct map.
//! Ids start at `2^32 - count - 1` (that first descriptor reusable and data-less), lpos at
//! `2^64 - size`, so the usual wrap-arounds are present.

use std::io;

use super::kernel::Overlay;
use super::layout::{Layout, IMAGE_DATA, SYNTH_PAGE_OFFSET};
use super::SynthLogLine;

/// `1 << size_bits` bytes of text (CONFIG_LOG_BUF_SHIFT=17).
pub(super) const TEXT_BYTES: u64 = 1 << SIZE_BITS;
const SIZE_BITS: u32 = 17;
/// `1 << count_bits` descriptors (size_bits - 5).
pub(super) const DESCS: u64 = 1 << COUNT_BITS;
const COUNT_BITS: u32 = 12;
/// `SIZE(prb_desc)` and `SIZE(printk_info)`.
pub(super) const DESC_BYTES: u64 = 24;
pub(super) const INFO_BYTES: u64 = 88;
/// Image offsets of `prb`, `printk_rb_dynamic` and `clear_seq`.
pub(super) const PRB_OFFSET: u64 = IMAGE_DATA + 0x2c0;
const RB_DYNAMIC_OFFSET: u64 = IMAGE_DATA + 0x400;
pub(super) const CLEAR_SEQ_OFFSET: u64 = IMAGE_DATA + 0x800;

const ID_MASK: u64 = (1 << 62) - 1;
const COMMITTED: u64 = 1 << 62;
const FINALIZED: u64 = 2 << 62;
const REUSABLE: u64 = 3 << 62;
const FAILED_LPOS: u64 = 1;

/// Physical addresses of the three arrays, at the start of the memblock area.
pub(super) struct RingPlace {
    pub text: u64,
    pub descs: u64,
    pub infos: u64,
}

impl RingPlace {
    pub fn of(layout: &Layout) -> RingPlace {
        let text = layout.memblock.start;
        let descs = text + TEXT_BYTES;
        RingPlace {
            text,
            descs,
            infos: descs + DESCS * DESC_BYTES,
        }
    }

    pub fn end(&self) -> u64 {
        self.infos + DESCS * INFO_BYTES
    }
}

/// Writes the ring holding `log` (which must fit: it is the generator's own log).
pub(super) fn write_ring(
    ov: &mut Overlay,
    layout: &Layout,
    log: &[SynthLogLine],
) -> io::Result<()> {
    let place = RingPlace::of(layout);
    let first = (1u64 << 32).wrapping_sub(DESCS + 1) & 0xffff_ffff;
    let tail_lpos = 0u64.wrapping_sub(TEXT_BYTES);
    let desc = |id: u64| place.descs + DESC_BYTES * (id & (DESCS - 1));
    let info = |id: u64| place.infos + INFO_BYTES * (id & (DESCS - 1));
    ov.write_u64(desc(first), REUSABLE | first);
    ov.write_u64(desc(first) + 8, FAILED_LPOS);
    ov.write_u64(desc(first) + 16, FAILED_LPOS);

    let (mut id, mut lpos) = (first, tail_lpos);
    let used: u64 = log
        .iter()
        .map(|l| (8 + l.text.len() as u64).next_multiple_of(8))
        .sum();
    if log.len() as u64 >= DESCS - 1 || used > TEXT_BYTES / 2 {
        return Err(io::Error::other(
            "synthetic kernel log too long for its ring",
        ));
    }
    for (seq, line) in log.iter().enumerate() {
        id = (id + 1) & ID_MASK;
        let text = line.text.as_bytes();
        let block = (8 + text.len() as u64).next_multiple_of(8);
        let index = lpos & (TEXT_BYTES - 1);
        // A block that does not fit before the end of the ring is stored from index 0.
        let (at, next) = if index + block > TEXT_BYTES {
            (0, lpos.wrapping_add(TEXT_BYTES - index).wrapping_add(block))
        } else {
            (index, lpos.wrapping_add(block))
        };
        ov.write_u64(place.text + at, id);
        ov.write(place.text + at + 8, text);
        let state = if seq + 1 == log.len() {
            COMMITTED // the panic's last line: not yet finalized when the CPU stopped
        } else {
            FINALIZED
        };
        ov.write_u64(desc(id), state | id);
        ov.write_u64(desc(id) + 8, lpos);
        ov.write_u64(desc(id) + 16, next);
        let i = info(id);
        ov.write_u64(i, seq as u64);
        ov.write_u64(i + 8, line.ts_nsec);
        ov.write(i + 16, &(text.len() as u16).to_le_bytes());
        ov.write(i + 18, &[0, line.level << 5]); // facility 0 (kernel), flags 0, level
        ov.write(i + 20, &line.caller.to_le_bytes());
        lpos = next;
    }

    // struct printk_ringbuffer printk_rb_dynamic, and `prb` pointing at it.
    let rb_va = layout.image_va(RB_DYNAMIC_OFFSET);
    let rb = layout.image_pa(rb_va);
    ov.write(rb, &COUNT_BITS.to_le_bytes());
    ov.write_u64(rb + 8, SYNTH_PAGE_OFFSET + place.descs);
    ov.write_u64(rb + 16, SYNTH_PAGE_OFFSET + place.infos);
    ov.write_u64(rb + 24, id); // head_id
    ov.write_u64(rb + 32, first); // tail_id
    ov.write_u64(rb + 40, 0); // last_finalized_id (6.1 has none; padding)
    ov.write(rb + 48, &SIZE_BITS.to_le_bytes());
    ov.write_u64(rb + 56, SYNTH_PAGE_OFFSET + place.text);
    ov.write_u64(rb + 64, lpos); // head_lpos
    ov.write_u64(rb + 72, tail_lpos);
    ov.write_u64(layout.image_pa(layout.image_va(PRB_OFFSET)), rb_va);
    Ok(())
}

/// The VMCOREINFO lines of the lockless ring (the fixture kernel's offsets).
pub(super) fn vmcoreinfo(layout: &Layout) -> String {
    format!(
        "SYMBOL(prb)={:x}\nSYMBOL(clear_seq)={:x}\nSIZE(printk_ringbuffer)=88\n\
         OFFSET(printk_ringbuffer.desc_ring)=0\nOFFSET(printk_ringbuffer.text_data_ring)=48\n\
         OFFSET(printk_ringbuffer.fail)=80\nSIZE(prb_desc_ring)=48\n\
         OFFSET(prb_desc_ring.count_bits)=0\nOFFSET(prb_desc_ring.descs)=8\n\
         OFFSET(prb_desc_ring.infos)=16\nOFFSET(prb_desc_ring.head_id)=24\n\
         OFFSET(prb_desc_ring.tail_id)=32\nSIZE(prb_desc)=24\nOFFSET(prb_desc.state_var)=0\n\
         OFFSET(prb_desc.text_blk_lpos)=8\nSIZE(prb_data_blk_lpos)=16\n\
         OFFSET(prb_data_blk_lpos.begin)=0\nOFFSET(prb_data_blk_lpos.next)=8\n\
         SIZE(printk_info)=88\nOFFSET(printk_info.seq)=0\nOFFSET(printk_info.ts_nsec)=8\n\
         OFFSET(printk_info.text_len)=16\nOFFSET(printk_info.caller_id)=20\n\
         OFFSET(printk_info.dev_info)=24\nSIZE(dev_printk_info)=64\n\
         OFFSET(dev_printk_info.subsystem)=0\nLENGTH(printk_info_subsystem)=16\n\
         OFFSET(dev_printk_info.device)=16\nLENGTH(printk_info_device)=48\n\
         SIZE(prb_data_ring)=32\nOFFSET(prb_data_ring.size_bits)=0\n\
         OFFSET(prb_data_ring.data)=8\nOFFSET(prb_data_ring.head_lpos)=16\n\
         OFFSET(prb_data_ring.tail_lpos)=24\nSIZE(atomic_long_t)=8\n\
         OFFSET(atomic_long_t.counter)=0\nSIZE(latched_seq)=24\nOFFSET(latched_seq.val)=8\n",
        layout.image_va(PRB_OFFSET),
        layout.image_va(CLEAR_SEQ_OFFSET),
    )
}
