//! Printing records (formats.md 6.4): the timestamp prefix, escaping, and the two tools'
//! differences.

use std::io::Write;

use super::error::DmesgError;

/// Whose output to reproduce byte for byte.
///
/// Both escape a byte that is neither printable ASCII nor whitespace as `\x` and two lower-case
/// hex digits. (makedumpfile itself sign-extends bytes ≥ 0x80, e.g. `\xffffffc3`; crashdrop
/// writes `\xc3` in both flavors, as formats.md 6.4 says it should.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Flavor {
    /// kexec-tools' `vmcore-dmesg`: a `\n` inside a record is written as is, every committed or
    /// finalized lockless record gives a line (a data-less one only its prefix), and a wrapped
    /// `log_buf` gives the extra `[    0.000000] ` line of its wrap marker (6.2).
    #[default]
    VmcoreDmesg,
    /// makedumpfile 1.7.2 `--dump-dmesg`: continuation lines are indented to the prefix's
    /// width, data-less lockless records and the wrap marker give nothing. No caller field
    /// (that is 1.7.5+).
    Makedumpfile,
}

/// The formatted log, bounded by `limit` bytes.
pub(super) struct LogWriter {
    out: Vec<u8>,
    flavor: Flavor,
    limit: u64,
}

impl LogWriter {
    pub(super) fn new(flavor: Flavor, limit: u64) -> LogWriter {
        LogWriter {
            out: Vec::new(),
            flavor,
            limit,
        }
    }

    pub(super) fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// One record: `"[%5llu.%06lu] "`, the escaped text, `\n`.
    pub(super) fn record(&mut self, ts_nsec: u64, text: &[u8]) -> Result<(), DmesgError> {
        let start = self.out.len();
        // Writing to a Vec cannot fail.
        let _ = write!(
            self.out,
            "[{:5}.{:06}] ",
            ts_nsec / 1_000_000_000,
            (ts_nsec % 1_000_000_000) / 1000
        );
        let indent = self.out.len() - start;
        for &c in text {
            match c {
                b'\n' => {
                    self.out.push(b'\n');
                    if self.flavor == Flavor::Makedumpfile {
                        self.out.resize(self.out.len() + indent, b' ');
                    }
                }
                // Printable ASCII and C's isspace().
                0x20..=0x7e | b'\t' | 0x0b | 0x0c | b'\r' => self.out.push(c),
                _ => {
                    let _ = write!(self.out, "\\x{c:02x}");
                }
            }
        }
        self.out.push(b'\n');
        self.check()
    }

    fn check(&self) -> Result<(), DmesgError> {
        if self.out.len() as u64 > self.limit {
            return Err(DmesgError::OutputTooLarge { limit: self.limit });
        }
        Ok(())
    }

    pub(super) fn finish(self) -> Vec<u8> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(flavor: Flavor, ts: u64, text: &[u8]) -> String {
        let mut w = LogWriter::new(flavor, 1 << 20);
        w.record(ts, text).expect("record");
        String::from_utf8(w.finish()).expect("ASCII")
    }

    #[test]
    fn prefix_and_escapes() {
        assert_eq!(one(Flavor::VmcoreDmesg, 0, b""), "[    0.000000] \n");
        assert_eq!(
            one(Flavor::VmcoreDmesg, 12_345_678_901_234, b"a\tb\x01\xc3\x7f"),
            "[12345.678901] a\tb\\x01\\xc3\\x7f\n"
        );
        assert_eq!(
            one(Flavor::VmcoreDmesg, 123_456_789_000_000_000, b"x"),
            "[123456789.000000] x\n"
        );
    }

    #[test]
    fn continuation_lines() {
        assert_eq!(
            one(Flavor::VmcoreDmesg, 3_090_903_000, b"a\nb"),
            "[    3.090903] a\nb\n"
        );
        assert_eq!(
            one(Flavor::Makedumpfile, 3_090_903_000, b"a\nb"),
            "[    3.090903] a\n               b\n"
        );
    }

    #[test]
    fn the_limit_is_an_error() {
        let mut w = LogWriter::new(Flavor::VmcoreDmesg, 20);
        w.record(0, b"abc").expect("fits");
        assert!(matches!(
            w.record(0, b"abc"),
            Err(DmesgError::OutputTooLarge { limit: 20 })
        ));
    }
}
