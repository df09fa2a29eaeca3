//! Test support for running the real binaries.
