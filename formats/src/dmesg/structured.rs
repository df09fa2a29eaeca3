//! The structured `log_buf` of Linux 3.5 – 5.9 (formats.md 6.2): variable-length records, each a
//! `struct printk_log` header followed by its text, in one circular buffer.

use super::error::DmesgError;
use super::format::{Flavor, LogWriter};
use super::kernel::{field, u16_at, u64_at, Kernel};
use super::MAX_LOG_BUF;
use crate::filter::PhysicalMemory;

/// Limit on `SIZE(printk_log)`.
const MAX_HEADER: u64 = 1024;

/// Where a record header's fields are.
struct Header {
    size: u64,
    ts_nsec: usize,
    len: usize,
    text_len: usize,
}

impl Header {
    /// `SIZE(printk_log)` and its offsets, or `SIZE(log)` and `OFFSET(log.*)` before 3.11.
    fn from_info<M: PhysicalMemory + ?Sized>(k: &Kernel<'_, M>) -> Result<Header, DmesgError> {
        let name = if k.info.size("printk_log").is_none() && k.info.size("log").is_some() {
            "log"
        } else {
            "printk_log"
        };
        let size = k.size(name, MAX_HEADER)?;
        let at = |member: &str, width: u64| -> Result<usize, DmesgError> {
            let key = format!("{name}.{member}");
            field(&key, Some(k.offset(&key)?), width, size)
        };
        Ok(Header {
            size,
            ts_nsec: at("ts_nsec", 8)?,
            len: at("len", 2)?,
            text_len: at("text_len", 2)?,
        })
    }
}

/// Reads `SYMBOL(log_buf)`'s buffer and its `SYMBOL(log_buf_len)` (an int), bounded.
pub(super) fn log_buf<M: PhysicalMemory + ?Sized>(
    k: &mut Kernel<'_, M>,
    at_least: u64,
) -> Result<Vec<u8>, DmesgError> {
    let buf_va = k.read_u64(
        k.symbol("log_buf")?,
        "the log_buf pointer (SYMBOL(log_buf))",
    )?;
    let len = k.read_u32(k.symbol("log_buf_len")?, "log_buf_len")? as i32;
    if i64::from(len) <= at_least as i64 || i64::from(len) > MAX_LOG_BUF as i64 {
        return Err(DmesgError::bad(
            "log_buf_len",
            len,
            format!("not in {}..={MAX_LOG_BUF}", at_least + 1),
        ));
    }
    k.read(buf_va, len as u64, MAX_LOG_BUF, "log_buf")
}

/// Walks the records from `log_first_idx` to `log_next_idx` (6.2).
pub(super) fn read<M: PhysicalMemory + ?Sized>(
    k: &mut Kernel<'_, M>,
    flavor: Flavor,
) -> Result<Vec<u8>, DmesgError> {
    let h = Header::from_info(k)?;
    let first = k.read_u32(k.symbol("log_first_idx")?, "log_first_idx")?;
    let next = u64::from(k.read_u32(k.symbol("log_next_idx")?, "log_next_idx")?);
    let buf = log_buf(k, h.size)?;
    let last = buf.len() as u64 - h.size;
    // Records are at least a header long; their text is escaped to at most 4 bytes a byte.
    let mut out = LogWriter::new(flavor, 16 * buf.len() as u64);
    let mut idx = u64::from(first);
    let mut wrapped = false;
    // Terminates: `idx` only grows (`len` > 0) except at the one wrap allowed, and is bounded.
    while idx != next {
        if idx > last {
            return Err(DmesgError::corrupt(
                "log_buf",
                format!("record offset {idx} exceeds log_buf_len - SIZE(printk_log) = {last}"),
            ));
        }
        let mut at = idx as usize;
        if u16_at(&buf, at + h.len) == 0 {
            if wrapped {
                return Err(DmesgError::corrupt(
                    "log_buf",
                    format!("a second wrap marker at offset {idx}: the walk loops"),
                ));
            }
            wrapped = true;
            if out.flavor() == Flavor::VmcoreDmesg {
                record(&mut out, &h, &buf, at)?;
            }
            at = 0;
        }
        record(&mut out, &h, &buf, at)?;
        idx = at as u64 + u64::from(u16_at(&buf, at + h.len));
    }
    Ok(out.finish())
}

/// Prints the record whose header is at `at` (≤ `buf.len() - h.size`).
fn record(out: &mut LogWriter, h: &Header, buf: &[u8], at: usize) -> Result<(), DmesgError> {
    let ts_nsec = u64_at(buf, at + h.ts_nsec);
    let text_len = usize::from(u16_at(buf, at + h.text_len));
    let start = at + h.size as usize;
    let end = (start + text_len).min(buf.len());
    out.record(ts_nsec, buf.get(start..end).unwrap_or_default())
}
