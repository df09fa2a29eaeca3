//! The character ring of kernels before 3.5 (formats.md 6.3): plain text, printed as is.

use super::error::DmesgError;
use super::kernel::Kernel;
use super::structured::log_buf;
use crate::filter::PhysicalMemory;

/// `[0, log_end)` while the ring has not wrapped, else `[log_end mod len, len)` then
/// `[0, log_end mod len)`. `log_end` is read as a u32, as vmcore-dmesg does (the low half of the
/// u64 of kernels before 2.6.25).
pub(super) fn read<M: PhysicalMemory + ?Sized>(
    k: &mut Kernel<'_, M>,
) -> Result<Vec<u8>, DmesgError> {
    let log_end = u64::from(k.read_u32(k.symbol("log_end")?, "log_end")?);
    let buf = log_buf(k, 0)?;
    let len = buf.len() as u64;
    if log_end < len {
        return Ok(buf[..log_end as usize].to_vec());
    }
    let split = (log_end % len) as usize;
    let mut out = Vec::with_capacity(buf.len());
    out.extend_from_slice(&buf[split..]);
    out.extend_from_slice(&buf[..split]);
    Ok(out)
}
