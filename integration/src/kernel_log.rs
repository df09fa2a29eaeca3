//! Comparing kernel logs extracted by different tools.
//!
//! On the 6.1 fixture, `crash`'s `log`, `makedumpfile --dump-dmesg` and kexec-tools'
//! `vmcore-dmesg` (`dmesg.txt`) print the same 376 lines, except that the first two indent the
//! continuation lines of a multi-line record to the width of the timestamp and `vmcore-dmesg`
//! does not. [`normalize_log`] removes that difference and nothing else.

/// `text` with each line's leading and trailing whitespace removed and trailing empty lines
/// dropped; lines joined with `\n`, ending with one.
pub fn normalize_log(text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().map(str::trim).collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// The kernel release from a log's `Linux version <release> (...)` line.
pub fn release_from_log(text: &str) -> Option<&str> {
    text.lines().find_map(|line| {
        let (_, rest) = line.split_once("Linux version ")?;
        rest.split_whitespace().next()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_indentation_is_ignored() {
        let crash = "[    3.090903] Unstable clock\n               If you want\n\n";
        let vmcore_dmesg = "[    3.090903] Unstable clock\nIf you want\n";
        assert_eq!(normalize_log(crash), normalize_log(vmcore_dmesg));
    }

    #[test]
    fn finds_the_release() {
        let log = "[    0.000000] Linux version 6.1.0-56-cloud-amd64 (debian-kernel@lists) #1\n";
        assert_eq!(release_from_log(log), Some("6.1.0-56-cloud-amd64"));
        assert_eq!(release_from_log("nothing here"), None);
    }
}
