//! Test-only: reads back the certificates the crate wrote, for the unit tests to inspect.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use x509_parser::pem::{parse_x509_pem, Pem};

/// The PEM block in the certificate file at `path` (parse it with [`Pem::parse_x509`]).
pub(crate) fn read_pem(path: &Path) -> Pem {
    let bytes = fs::read(path).expect("read certificate");
    let (rest, pem) = parse_x509_pem(&bytes).expect("PEM certificate");
    assert!(
        rest.iter().all(u8::is_ascii_whitespace),
        "one certificate per file"
    );
    assert_eq!(pem.label, "CERTIFICATE");
    pem
}

/// Permission bits of the file at `path`.
pub(crate) fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}
