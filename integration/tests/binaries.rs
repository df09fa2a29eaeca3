//! The binaries the other tests start are where `bin_path` looks, and they run.

use std::process::Command;

use crashdrop_integration::{bin_path, workspace::BINARIES};

#[test]
fn every_binary_is_built_next_to_the_tests_and_runs() {
    for name in BINARIES {
        let path = bin_path(name);
        let out = Command::new(&path)
            .arg("--help")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
        assert!(
            out.status.success(),
            "{name} --help: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
