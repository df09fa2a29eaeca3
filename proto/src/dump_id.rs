//! `DumpId`: the 32-byte identity of one dump (SHA-256, see `docs/protocol.md`), the key for resume.

use std::fmt;
use std::str::FromStr;

use crate::hex::{to_hex, write_hex};

/// The identity of one dump: SHA-256 over the vmcore's ELF header, program headers, note segment
/// and the dump level. The same crash sent with the same settings always has the same id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DumpId(pub [u8; 32]);

impl DumpId {
    /// The full id as 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    /// The first 12 hex characters, for directory names and log lines.
    pub fn short(&self) -> String {
        to_hex(self.0.get(..6).unwrap_or(&self.0))
    }

    /// Parses 64 hex characters (either case).
    pub fn from_hex(s: &str) -> Result<DumpId, ParseDumpIdError> {
        if s.len() != 64 {
            return Err(ParseDumpIdError::Length(s.len()));
        }
        let mut id = [0u8; 32];
        for (byte, pair) in id.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
            let &[hi, lo] = pair else {
                return Err(ParseDumpIdError::Length(s.len()));
            };
            *byte = (nibble(hi)? << 4) | nibble(lo)?;
        }
        Ok(DumpId(id))
    }
}

fn nibble(c: u8) -> Result<u8, ParseDumpIdError> {
    match c {
        b'0'..=b'9' => Ok(c.wrapping_sub(b'0')),
        b'a'..=b'f' => Ok(c.wrapping_sub(b'a').wrapping_add(10)),
        b'A'..=b'F' => Ok(c.wrapping_sub(b'A').wrapping_add(10)),
        _ => Err(ParseDumpIdError::NotHex(char::from(c))),
    }
}

impl fmt::Display for DumpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for DumpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DumpId(")?;
        write_hex(f, &self.0)?;
        f.write_str(")")
    }
}

impl FromStr for DumpId {
    type Err = ParseDumpIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DumpId::from_hex(s)
    }
}

/// Why a string is not a `DumpId`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseDumpIdError {
    /// Not exactly 64 characters.
    #[error("a dump id is 64 hex characters, not {0}")]
    Length(usize),
    /// A character that is not a hex digit.
    #[error("a dump id is hex, but contains {0:?}")]
    NotHex(char),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DumpId {
        let mut id = [0u8; 32];
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::try_from(i).expect("small") * 7;
        }
        DumpId(id)
    }

    #[test]
    fn hex_forms() {
        let id = sample();
        let hex = id.to_hex();
        assert_eq!(hex.len(), 64);
        assert!(hex.starts_with("00070e151c23"));
        assert_eq!(id.short(), "00070e151c23");
        assert_eq!(id.to_string(), hex);
        assert_eq!(format!("{id:?}"), format!("DumpId({hex})"));
    }

    #[test]
    fn parses_its_own_hex_in_either_case() {
        let id = sample();
        assert_eq!(id.to_hex().parse::<DumpId>(), Ok(id));
        assert_eq!(DumpId::from_hex(&id.to_hex().to_uppercase()), Ok(id));
    }

    #[test]
    fn rejects_bad_hex() {
        assert_eq!(DumpId::from_hex("abc"), Err(ParseDumpIdError::Length(3)));
        let bad = format!("{}g", "0".repeat(63));
        assert_eq!(DumpId::from_hex(&bad), Err(ParseDumpIdError::NotHex('g')));
        // A multi-byte character must not be split into "hex digits".
        let wide = format!("{}é", "0".repeat(62));
        assert_eq!(wide.len(), 64);
        assert!(DumpId::from_hex(&wide).is_err());
    }
}
