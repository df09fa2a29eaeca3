//! Certificate tooling.
