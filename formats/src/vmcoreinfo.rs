//! The VMCOREINFO text (1.6): `KEY=VALUE` lines, first occurrence of a key wins.

use std::collections::HashMap;

/// Parsed VMCOREINFO text.
///
/// A key is everything before the first `=` of a line and is compared whole, so
/// `SYMBOL(log_buf)` never matches `SYMBOL(log_buf_len)`. A missing key is `None`, never 0.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmcoreInfo {
    /// `(key, value)` in text order, first occurrence of each key only.
    entries: Vec<(String, String)>,
    /// Key → index into `entries`.
    index: HashMap<String, usize>,
}

impl VmcoreInfo {
    /// Parses VMCOREINFO text. Never fails: lines without `=`, with an empty key, or that are not
    /// UTF-8 are ignored. The text ends at its first NUL byte, if any; the last line may lack its
    /// `\n`. A trailing `\r` on a line is dropped.
    pub fn parse(text: &[u8]) -> VmcoreInfo {
        let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
        let mut info = VmcoreInfo::default();
        for line in text[..end].split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Ok(line) = std::str::from_utf8(line) else {
                continue;
            };
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            if key.is_empty() || info.index.contains_key(key) {
                continue;
            }
            info.index.insert(key.to_owned(), info.entries.len());
            info.entries.push((key.to_owned(), value.to_owned()));
        }
        info
    }

    /// The value of `key` (given without the `=`, e.g. `"OSRELEASE"`, `"SYMBOL(init_uts_ns)"`).
    pub fn get(&self, key: &str) -> Option<&str> {
        let &i = self.index.get(key)?;
        self.entries.get(i).map(|(_, v)| v.as_str())
    }

    /// Every `(key, value)` pair in text order (first occurrences only).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of distinct keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no key was found.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `SYMBOL(name)`: hex without `0x` (an optional `0x` is tolerated). 0 and all-ones are
    /// treated as absent, as makedumpfile does.
    pub fn symbol(&self, name: &str) -> Option<u64> {
        let value = parse_hex(self.get(&format!("SYMBOL({name})"))?)?;
        (value != 0 && value != u64::MAX).then_some(value)
    }

    /// `NUMBER(name)`: signed decimal, else hex with an optional `0x` (kept as the same 64 bits).
    pub fn number(&self, name: &str) -> Option<i64> {
        let value = self.get(&format!("NUMBER({name})"))?.trim();
        if let Ok(n) = value.parse::<i64>() {
            return Some(n);
        }
        // Hex values above i64::MAX (e.g. NUMBER(VMALLOC_START)) keep their bits.
        parse_hex(value).map(|n| n as i64)
    }

    /// `SIZE(name)`: unsigned decimal.
    pub fn size(&self, name: &str) -> Option<u64> {
        parse_decimal(self.get(&format!("SIZE({name})"))?)
    }

    /// `OFFSET(name)` (e.g. `"uts_namespace.name"`): unsigned decimal.
    pub fn offset(&self, name: &str) -> Option<u64> {
        parse_decimal(self.get(&format!("OFFSET({name})"))?)
    }

    /// `LENGTH(name)`: unsigned decimal.
    pub fn length(&self, name: &str) -> Option<u64> {
        parse_decimal(self.get(&format!("LENGTH({name})"))?)
    }

    /// `OSRELEASE`: `uname -r` of the crashed kernel.
    pub fn osrelease(&self) -> Option<&str> {
        self.get("OSRELEASE")
    }

    /// `BUILD-ID`: the vmlinux build id (hex text), on newer kernels.
    pub fn build_id(&self) -> Option<&str> {
        self.get("BUILD-ID")
    }

    /// `PAGESIZE`: unsigned decimal.
    pub fn page_size(&self) -> Option<u64> {
        parse_decimal(self.get("PAGESIZE")?)
    }

    /// `CRASHTIME`: seconds since the epoch; absent from dumps not taken through the crash path.
    pub fn crash_time(&self) -> Option<i64> {
        self.get("CRASHTIME")?.trim().parse().ok()
    }

    /// `KERNELOFFSET`: the KASLR virtual shift, hex without `0x`.
    pub fn kernel_offset(&self) -> Option<u64> {
        parse_hex(self.get("KERNELOFFSET")?)
    }

    /// `NUMBER(phys_base)` as the 64 bits the kdump sub header stores (two's complement).
    pub fn phys_base(&self) -> Option<u64> {
        self.number("phys_base").map(|n| n as u64)
    }
}

/// Unsigned decimal, the whole (trimmed) value.
fn parse_decimal(value: &str) -> Option<u64> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Hex with an optional `0x`/`0X` prefix, the whole (trimmed) value.
fn parse_hex(value: &str) -> Option<u64> {
    let value = value.trim();
    let digits = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
        .unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"OSRELEASE=6.1.0-56-cloud-amd64\n\
PAGESIZE=4096\n\
SYMBOL(init_uts_ns)=ffffffffaa3f9b60\n\
SYMBOL(log_buf_len)=ffffffff00001000\n\
OFFSET(uts_namespace.name)=0\n\
SIZE(page)=64\n\
LENGTH(mem_section)=2048\n\
NUMBER(phys_base)=-534773760\n\
NUMBER(VMALLOC_START)=0xffffb6f740000000\n\
NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129\n\
SYMBOL(zero)=0\n\
SYMBOL(ones)=ffffffffffffffff\n\
OSRELEASE=second-occurrence\n\
not a key value line\n\
=emptykey\n\
KERNELOFFSET=27800000\n\
CRASHTIME=1795701935";

    #[test]
    fn parses_the_common_encodings() {
        let info = VmcoreInfo::parse(SAMPLE);
        assert_eq!(info.osrelease(), Some("6.1.0-56-cloud-amd64"));
        assert_eq!(info.page_size(), Some(4096));
        assert_eq!(info.symbol("init_uts_ns"), Some(0xffff_ffff_aa3f_9b60));
        assert_eq!(info.offset("uts_namespace.name"), Some(0));
        assert_eq!(info.size("page"), Some(64));
        assert_eq!(info.length("mem_section"), Some(2048));
        assert_eq!(info.kernel_offset(), Some(0x2780_0000));
    }

    #[test]
    fn negative_and_hex_numbers() {
        let info = VmcoreInfo::parse(SAMPLE);
        assert_eq!(info.number("phys_base"), Some(-534_773_760));
        assert_eq!(info.phys_base(), Some(0xffff_ffff_e020_0000));
        assert_eq!(
            info.number("VMALLOC_START").map(|n| n as u64),
            Some(0xffff_b6f7_4000_0000)
        );
        assert_eq!(
            info.number("PAGE_BUDDY_MAPCOUNT_VALUE").map(|n| n as u32),
            Some(0xffff_ff7f)
        );
        let small = VmcoreInfo::parse(b"NUMBER(x)=0x1f\nNUMBER(y)=ff\nNUMBER(z)=1g\n");
        assert_eq!(small.number("x"), Some(0x1f));
        assert_eq!(small.number("y"), Some(0xff));
        assert_eq!(small.number("z"), None);
    }

    #[test]
    fn whole_key_match_only() {
        let info = VmcoreInfo::parse(SAMPLE);
        assert_eq!(info.symbol("log_buf"), None);
        assert_eq!(info.symbol("log_buf_len"), Some(0xffff_ffff_0000_1000));
        assert_eq!(info.get("OSRELEAS"), None);
    }

    #[test]
    fn first_occurrence_wins() {
        let info = VmcoreInfo::parse(SAMPLE);
        assert_eq!(info.osrelease(), Some("6.1.0-56-cloud-amd64"));
        assert_eq!(info.iter().filter(|(k, _)| *k == "OSRELEASE").count(), 1);
    }

    #[test]
    fn final_line_without_newline() {
        let info = VmcoreInfo::parse(SAMPLE);
        assert_eq!(info.crash_time(), Some(1_795_701_935));
        let info = VmcoreInfo::parse(b"CRASHTIME=17\n");
        assert_eq!(info.crash_time(), Some(17));
    }

    #[test]
    fn zero_and_all_ones_symbols_are_absent() {
        let info = VmcoreInfo::parse(SAMPLE);
        assert_eq!(info.symbol("zero"), None);
        assert_eq!(info.symbol("ones"), None);
        assert!(info.get("SYMBOL(zero)").is_some());
    }

    #[test]
    fn malformed_lines_are_ignored() {
        let info = VmcoreInfo::parse(b"\xff\xfe=1\nA=1\nB\nPAGESIZE=4k\n\0C=3\n");
        assert_eq!(info.get("A"), Some("1"));
        assert_eq!(info.get("B"), None);
        assert_eq!(info.page_size(), None);
        assert_eq!(info.get("C"), None, "text ends at the first NUL");
        assert_eq!(info.len(), 2);
        assert!(VmcoreInfo::parse(b"").is_empty());
    }

    #[test]
    fn missing_key_is_none_not_zero() {
        let info = VmcoreInfo::parse(b"OSRELEASE=x\n");
        assert_eq!(info.number("phys_base"), None);
        assert_eq!(info.crash_time(), None);
        assert_eq!(info.page_size(), None);
    }
}
