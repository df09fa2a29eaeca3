//! Hand-built structured `log_buf`s (6.2, with the wrap marker) and character rings (6.3), and
//! garbage that must error, not panic.

use super::tests::{text, Flat, KMAP};
use super::*;

const LOG_BUF: u64 = KMAP + 0x1000;
const LOG_BUF_LEN: u64 = KMAP + 0x1008;
const FIRST_IDX: u64 = KMAP + 0x1010;
const NEXT_IDX: u64 = KMAP + 0x1018;
const LOG_END: u64 = KMAP + 0x1020;
const BUF: u64 = KMAP + 0x4000;

fn log_buf_info() -> VmcoreInfo {
    VmcoreInfo::parse(
        format!(
            "SYMBOL(init_top_pgt)={KMAP:x}\nSYMBOL(log_buf)={LOG_BUF:x}\n\
             SYMBOL(log_buf_len)={LOG_BUF_LEN:x}\nSYMBOL(log_first_idx)={FIRST_IDX:x}\n\
             SYMBOL(log_next_idx)={NEXT_IDX:x}\nSIZE(printk_log)=16\n\
             OFFSET(printk_log.ts_nsec)=0\nOFFSET(printk_log.len)=8\n\
             OFFSET(printk_log.text_len)=10\nOFFSET(printk_log.dict_len)=12\n"
        )
        .as_bytes(),
    )
}

fn log_buf_memory(buf: &[u8], first: u32, next: u32) -> Flat {
    let mut mem = Flat::new();
    mem.put_u64(LOG_BUF, BUF);
    mem.put(LOG_BUF_LEN, &(buf.len() as u32).to_le_bytes());
    mem.put(FIRST_IDX, &first.to_le_bytes());
    mem.put(NEXT_IDX, &next.to_le_bytes());
    mem.put(BUF, buf);
    mem
}

/// A `printk_log` record: header, text, padding to 8.
fn log_record(ts_nsec: u64, msg: &[u8]) -> Vec<u8> {
    let len = (16 + msg.len()).next_multiple_of(8);
    let mut r = vec![0u8; len];
    r[..8].copy_from_slice(&ts_nsec.to_le_bytes());
    r[8..10].copy_from_slice(&(len as u16).to_le_bytes());
    r[10..12].copy_from_slice(&(msg.len() as u16).to_le_bytes());
    r[16..16 + msg.len()].copy_from_slice(msg);
    r
}

#[test]
fn structured_log_buf_with_a_wrap() {
    // Records at 0 ("c") and 96.. ("a", "b"), a zeroed wrap header after "b"; first = 96.
    let mut buf = vec![0u8; 160];
    let a = log_record(1_000, b"a");
    let b = log_record(2_000_000_000, b"b\nb");
    let c = log_record(3_000_000_000, b"c");
    buf[..c.len()].copy_from_slice(&c);
    buf[96..96 + a.len()].copy_from_slice(&a);
    buf[96 + a.len()..96 + a.len() + b.len()].copy_from_slice(&b);
    let mem = log_buf_memory(&buf, 96, c.len() as u32);
    let info = log_buf_info();
    assert_eq!(
        text(kernel_log_as(&mem, &info, 0, Flavor::VmcoreDmesg)),
        "[    0.000001] a\n[    2.000000] b\nb\n[    0.000000] \n[    3.000000] c\n"
    );
    assert_eq!(
        text(kernel_log_as(&mem, &info, 0, Flavor::Makedumpfile)),
        "[    0.000001] a\n[    2.000000] b\n               b\n[    3.000000] c\n"
    );
    // An index past the end, and a walk that loops, are errors.
    let mem = log_buf_memory(&buf, 150, 0);
    let err = kernel_log(&mem, &info, 0).expect_err("out of bounds");
    assert!(err.to_string().contains("exceeds"), "{err}");
    let mem = log_buf_memory(&buf, 96, 8);
    let err = kernel_log(&mem, &info, 0).expect_err("never reaches next");
    assert!(err.to_string().contains("loops"), "{err}");
}

#[test]
fn character_ring() {
    let info = VmcoreInfo::parse(
        format!(
            "SYMBOL(init_top_pgt)={KMAP:x}\nSYMBOL(log_buf)={LOG_BUF:x}\n\
             SYMBOL(log_buf_len)={LOG_BUF_LEN:x}\nSYMBOL(log_end)={LOG_END:x}\n"
        )
        .as_bytes(),
    );
    let mut mem = log_buf_memory(b"3456\x01012", 0, 0);
    mem.put(LOG_END, &5u32.to_le_bytes());
    assert_eq!(kernel_log(&mem, &info, 0).expect("log"), b"3456\x01");
    mem.put(LOG_END, &21u32.to_le_bytes());
    assert_eq!(kernel_log(&mem, &info, 0).expect("log"), b"0123456\x01");
}

mod garbage {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Random structured `log_buf`s and indices never panic.
        #[test]
        fn random_log_bufs(
            buf in proptest::collection::vec(any::<u8>(), 256),
            first in 0u32..300,
            next in 0u32..300,
        ) {
            let mut mem = log_buf_memory(&buf, first, next);
            mem.put(LOG_BUF_LEN, &256u32.to_le_bytes());
            for flavor in [Flavor::VmcoreDmesg, Flavor::Makedumpfile] {
                let _ = kernel_log_as(&mem, &log_buf_info(), 0, flavor);
            }
        }
    }
}
