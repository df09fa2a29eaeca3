//! `HostName`: a validated, lowercased host identity, safe to use as a directory name in the store.
//!
//! The protocol never carries a host name: the receiver takes it from the transport (the client
//! certificate's DNS name) and parses it here before it touches the file system.

use std::fmt;
use std::str::FromStr;

/// Bytes in a whole host name (DNS: 253).
pub const MAX_HOST_LEN: usize = 253;

/// Bytes in one label (DNS: 63).
pub const MAX_LABEL_LEN: usize = 63;

/// A host identity: 1..=253 bytes of dot-separated labels, each 1..=63 of `[a-z0-9-_]`, not
/// starting or ending with `-`. Stored lowercased, since DNS names are case-insensitive: `WEB-7`
/// and `web-7` are the same host and the same directory.
///
/// The rules leave no way to spell `/`, NUL, `.` or `..` as a whole name, so the name is safe to
/// join to a store path.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostName(String);

impl HostName {
    /// Checks `s` against the rules above and lowercases it.
    pub fn parse(s: &str) -> Result<HostName, HostNameError> {
        check(s).map_err(|rule| HostNameError {
            name: s.to_owned(),
            rule,
        })?;
        Ok(HostName(s.to_ascii_lowercase()))
    }

    /// The lowercased name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check(s: &str) -> Result<(), HostNameRule> {
    if s.is_empty() {
        return Err(HostNameRule::Empty);
    }
    if s.len() > MAX_HOST_LEN {
        return Err(HostNameRule::TooLong { len: s.len() });
    }
    if s.starts_with('.') {
        return Err(HostNameRule::LeadingDot);
    }
    if s.ends_with('.') {
        return Err(HostNameRule::TrailingDot);
    }
    if s.contains("..") {
        return Err(HostNameRule::DoubleDot);
    }
    if let Some(c) = s.chars().find(|&c| !is_name_char(c) && c != '.') {
        return Err(HostNameRule::BadChar(c));
    }
    for label in s.split('.') {
        if label.is_empty() {
            // Unreachable after the dot checks above, but cheap to keep honest.
            return Err(HostNameRule::DoubleDot);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(HostNameRule::LabelTooLong { len: label.len() });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(HostNameRule::HyphenAtLabelEdge);
        }
    }
    Ok(())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostName({:?})", self.0)
    }
}

impl AsRef<str> for HostName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for HostName {
    type Err = HostNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HostName::parse(s)
    }
}

impl TryFrom<&str> for HostName {
    type Error = HostNameError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        HostName::parse(s)
    }
}

/// A string that is not a valid host name: the name as given and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid host name {name:?}: {rule}")]
pub struct HostNameError {
    /// The rejected name, verbatim (shown escaped by `Display`).
    pub name: String,
    /// The first rule it breaks.
    pub rule: HostNameRule,
}

/// The rule a rejected host name breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostNameRule {
    /// The name is empty.
    #[error("it is empty")]
    Empty,
    /// The name is longer than [`MAX_HOST_LEN`] bytes.
    #[error("it is {len} bytes long, more than {MAX_HOST_LEN}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The name starts with `.`.
    #[error("it starts with '.'")]
    LeadingDot,
    /// The name ends with `.`.
    #[error("it ends with '.'")]
    TrailingDot,
    /// The name has an empty label (`..`).
    #[error("it contains \"..\"")]
    DoubleDot,
    /// A character outside `[A-Za-z0-9-_.]` (such as `/`, a space or NUL).
    #[error("it contains {0:?}; only A-Z a-z 0-9 '-' '_' and '.' between labels are allowed")]
    BadChar(char),
    /// A label longer than [`MAX_LABEL_LEN`] bytes.
    #[error("a label is {len} bytes long, more than {MAX_LABEL_LEN}")]
    LabelTooLong {
        /// The label's length in bytes.
        len: usize,
    },
    /// A label that starts or ends with `-`.
    #[error("a label starts or ends with '-'")]
    HyphenAtLabelEdge,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> HostNameRule {
        HostName::parse(s).expect_err(s).rule
    }

    #[test]
    fn accepts_good_names() {
        for name in [
            "web-7",
            "a",
            "db01.example.com",
            "under_score",
            "10.0.0.1",
            "x-y-z.a_b",
        ] {
            assert_eq!(HostName::parse(name).expect(name).as_str(), name);
        }
        let label = "a".repeat(MAX_LABEL_LEN);
        assert!(HostName::parse(&label).is_ok());
        let long = [label.as_str(); 4].join(".");
        assert_eq!(long.len(), 255);
        assert_eq!(rule(&long), HostNameRule::TooLong { len: 255 });
        let just_fits = &long[..MAX_HOST_LEN];
        assert!(!just_fits.ends_with('.'));
        assert!(HostName::parse(just_fits).is_ok());
    }

    #[test]
    fn folds_case() {
        let upper = HostName::parse("WEB-7.Example.COM").expect("valid");
        let lower = HostName::parse("web-7.example.com").expect("valid");
        assert_eq!(upper, lower);
        assert_eq!(upper.as_str(), "web-7.example.com");
        assert_eq!(upper.to_string(), "web-7.example.com");
    }

    #[test]
    fn rejects_path_tricks() {
        assert_eq!(rule(""), HostNameRule::Empty);
        assert_eq!(rule("."), HostNameRule::LeadingDot);
        assert_eq!(rule(".."), HostNameRule::LeadingDot);
        assert_eq!(rule("a..b"), HostNameRule::DoubleDot);
        assert_eq!(rule(".hidden"), HostNameRule::LeadingDot);
        assert_eq!(rule("web-7."), HostNameRule::TrailingDot);
        assert_eq!(rule("a/b"), HostNameRule::BadChar('/'));
        assert_eq!(rule("../etc"), HostNameRule::LeadingDot);
        assert_eq!(rule("a\0b"), HostNameRule::BadChar('\0'));
        assert_eq!(rule("a b"), HostNameRule::BadChar(' '));
        assert_eq!(rule("a\\b"), HostNameRule::BadChar('\\'));
        assert_eq!(rule("wéb"), HostNameRule::BadChar('é'));
    }

    #[test]
    fn rejects_bad_labels() {
        assert_eq!(rule("-a"), HostNameRule::HyphenAtLabelEdge);
        assert_eq!(rule("a-"), HostNameRule::HyphenAtLabelEdge);
        assert_eq!(rule("ok.-bad"), HostNameRule::HyphenAtLabelEdge);
        let label = "a".repeat(MAX_LABEL_LEN + 1);
        assert_eq!(rule(&label), HostNameRule::LabelTooLong { len: 64 });
        assert_eq!(
            rule(&format!("ok.{label}")),
            HostNameRule::LabelTooLong { len: 64 }
        );
    }

    #[test]
    fn error_names_the_name_and_the_rule() {
        let err = HostName::parse("a/b").expect_err("invalid");
        let msg = err.to_string();
        assert!(msg.contains("\"a/b\""), "{msg}");
        assert!(msg.contains("'/'"), "{msg}");
        let msg = HostName::parse("a\0").expect_err("invalid").to_string();
        assert!(msg.contains("\\0"), "NUL is shown escaped: {msg}");
    }
}
