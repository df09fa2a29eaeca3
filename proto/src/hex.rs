//! Lowercase hex rendering of ids and digests, for `Display` and `Debug`.

use std::fmt;

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Writes `bytes` as lowercase hex.
pub(crate) fn write_hex(f: &mut impl fmt::Write, bytes: &[u8]) -> fmt::Result {
    for &b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            let digit = DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'?');
            f.write_char(char::from(digit))?;
        }
    }
    Ok(())
}

/// `bytes` as a lowercase hex string.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len().saturating_mul(2));
    // Writing to a String cannot fail.
    let _ = write_hex(&mut s, bytes);
    s
}

/// A `Debug` wrapper that shows a digest as hex rather than as 32 decimal numbers.
pub(crate) struct Hex<'a>(pub(crate) &'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_lowercase_hex() {
        assert_eq!(to_hex(&[0x00, 0x0a, 0xff, 0x5c]), "000aff5c");
        assert_eq!(to_hex(&[]), "");
        assert_eq!(format!("{:?}", Hex(&[0xde, 0xad])), "dead");
    }
}
