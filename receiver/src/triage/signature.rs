//! A crash's stable identity: the masked title and the first meaningful frames, hashed.

use sha2::{Digest, Sha256};

use super::CrashReport;

/// How many meaningful frames of the call trace go into a signature. Three tell apart bugs that
/// share a title (a NULL dereference in a common helper) without splitting one bug whose deeper
/// callers differ between workloads.
pub const SIGNATURE_FRAMES: usize = 3;

/// The identity two dumps of one bug share: same title and frames, whatever the host, kernel
/// build (addresses, line numbers), CPU or task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// The report's masked title, e.g. `BUG: kernel NULL pointer dereference in ext4_fill_super`.
    pub title: String,
    /// Up to [`SIGNATURE_FRAMES`] function names, innermost first.
    pub frames: Vec<String>,
    /// 16 hex digits of SHA-256 over the title and frames: short enough to read out, long
    /// enough that a fleet's distinct bugs never collide.
    pub id: String,
}

impl Signature {
    /// The signature of `report`.
    pub fn of(report: &CrashReport) -> Signature {
        let frames: Vec<String> = report
            .frames
            .iter()
            .take(SIGNATURE_FRAMES)
            .cloned()
            .collect();
        // Each part length-prefixed, so no text can move between title and frames unnoticed.
        let mut hasher = Sha256::new();
        for part in std::iter::once(&report.title).chain(&frames) {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        let digest = hasher.finalize();
        let id = digest
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        Signature {
            title: report.title.clone(),
            frames,
            id,
        }
    }
}

/// `text` with every number that is not part of an identifier masked: `0x…` hex becomes `0x?`,
/// a run of 8 or more hex digits (a bare address) becomes `?`, and a decimal number becomes `N`.
/// `ext4` and `sha256_update` keep their digits; `CPU#3`, `22s`, `kworker/3:1:123` and
/// `exitcode=0x00000009` do not.
pub fn mask_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let in_identifier = i > 0
            && chars
                .get(i - 1)
                .is_some_and(|p| p.is_ascii_alphanumeric() || *p == '_');
        if in_identifier || !c.is_ascii_hexdigit() {
            out.push(c);
            i += 1;
            continue;
        }
        if c == '0' && matches!(chars.get(i + 1), Some('x' | 'X')) {
            let digits = run_len(&chars, i + 2, |c| c.is_ascii_hexdigit());
            if digits > 0 {
                out.push_str("0x?");
                i += 2 + digits;
                continue;
            }
        }
        let hex = run_len(&chars, i, |c| c.is_ascii_hexdigit());
        let ends_word = !chars
            .get(i + hex)
            .is_some_and(|n| n.is_ascii_alphanumeric() || *n == '_');
        if hex >= 8 && ends_word {
            out.push('?');
            i += hex;
            continue;
        }
        let decimal = run_len(&chars, i, |c| c.is_ascii_digit());
        if decimal > 0 {
            out.push('N');
            i += decimal;
        } else {
            // A hex letter starting a word (`deadlock`, `fault`): an ordinary word.
            let word = run_len(&chars, i, |c| c.is_ascii_alphanumeric() || c == '_');
            out.extend(chars.iter().skip(i).take(word.max(1)));
            i += word.max(1);
        }
    }
    out
}

fn run_len(chars: &[char], from: usize, pred: impl Fn(char) -> bool) -> usize {
    chars.iter().skip(from).take_while(|c| pred(**c)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_masked_but_identifiers_keep_their_digits() {
        assert_eq!(
            mask_numbers("soft lockup - CPU#3 stuck for 22s! [kworker/3:1:123]"),
            "soft lockup - CPU#N stuck for Ns! [kworker/N:N:N]"
        );
        assert_eq!(
            mask_numbers("Attempted to kill init! exitcode=0x00000009"),
            "Attempted to kill init! exitcode=0x?"
        );
        assert_eq!(
            mask_numbers("address: ffff888003c4e000 in ext4_fill_super sha256_update"),
            "address: ? in ext4_fill_super sha256_update"
        );
        assert_eq!(
            mask_numbers("UBSAN: shift-out-of-bounds in lib/ubsan.c:151:21"),
            "UBSAN: shift-out-of-bounds in lib/ubsan.c:N:N"
        );
        assert_eq!(mask_numbers("deadlock fault"), "deadlock fault");
        assert_eq!(mask_numbers("ünïcode 12 ✓"), "ünïcode N ✓");
    }

    fn report(title: &str, frames: &[&str]) -> CrashReport {
        CrashReport {
            title: title.to_owned(),
            frames: frames.iter().map(|f| f.to_string()).collect(),
            ..CrashReport::default()
        }
    }

    #[test]
    fn the_id_covers_title_and_the_first_three_frames_only() {
        let a = Signature::of(&report("BUG: x in f", &["f", "g", "h", "deep_caller_a"]));
        let b = Signature::of(&report("BUG: x in f", &["f", "g", "h", "deep_caller_b"]));
        assert_eq!(a, b);
        assert_eq!(a.id.len(), 16);
        let c = Signature::of(&report("BUG: x in f", &["f", "g", "other"]));
        assert_ne!(a.id, c.id);
        let d = Signature::of(&report("BUG: y in f", &["f", "g", "h"]));
        assert_ne!(a.id, d.id);
        // Parts are length-prefixed, so moving text between title and frames changes the id.
        let e = Signature::of(&report("BUG: x in f\nf", &["g", "h"]));
        assert_eq!(e.title, "BUG: x in f\nf");
        assert_ne!(a.id, e.id);
    }
}
