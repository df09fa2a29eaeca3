//! Little-endian field access on byte slices that never panics (short input reads as zero).

/// The `N` bytes at `off`, or zeros where `b` is too short.
fn bytes_at<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = off.checked_add(N).and_then(|end| b.get(off..end)) {
        out.copy_from_slice(src);
    }
    out
}

pub(crate) fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(bytes_at(b, off))
}

pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(bytes_at(b, off))
}

pub(crate) fn i32_at(b: &[u8], off: usize) -> i32 {
    i32::from_le_bytes(bytes_at(b, off))
}

pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(bytes_at(b, off))
}

pub(crate) fn i64_at(b: &[u8], off: usize) -> i64 {
    i64::from_le_bytes(bytes_at(b, off))
}

/// Writes `v` at `off`; the caller sized `b`. Out-of-range writes are dropped.
pub(crate) fn put(b: &mut [u8], off: usize, v: &[u8]) {
    if let Some(dst) = off.checked_add(v.len()).and_then(|end| b.get_mut(off..end)) {
        dst.copy_from_slice(v);
    }
}
