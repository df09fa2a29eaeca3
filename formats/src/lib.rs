//! Crash-dump formats.
