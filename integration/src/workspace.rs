//! Where things are: the workspace root, the target directory of the running test, and the
//! crashdrop binaries that `cargo test --workspace` built next to it.

use std::path::{Path, PathBuf};

/// The names of the binaries that the workspace builds.
pub const BINARIES: [&str; 3] = ["crashdropd", "crashdrop-send", "crashdrop-certs"];

/// The workspace root: the parent of this crate's manifest directory.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.to_path_buf())
}

/// The profile directory of the running test binary, e.g. `target/debug`.
///
/// A test executable lives in `<target>/<profile>/deps/<test>-<hash>`; the binaries of the same
/// build are in `<target>/<profile>/`. Deriving it from the executable honours `CARGO_TARGET_DIR`,
/// `--target <triple>` and `--profile` without reading any of them.
pub fn profile_dir() -> PathBuf {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => panic!("cannot find the running test executable: {e}"),
    };
    let deps = exe.parent().unwrap_or(Path::new("."));
    if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().unwrap_or(deps).to_path_buf()
    } else {
        // Not run from `deps/` (e.g. an example or a copied binary): use its own directory.
        deps.to_path_buf()
    }
}

/// The target directory (`target/`, or `target/<triple>` with `--target`): the parent of
/// [`profile_dir`]. Scratch data shared between test runs (the fixture cache) lives here.
pub fn target_dir() -> PathBuf {
    let profile = profile_dir();
    profile.parent().map(Path::to_path_buf).unwrap_or(profile)
}

/// The built binary `name` (`crashdropd`, `crashdrop-send`, `crashdrop-certs`) of the same build
/// profile as the running test.
///
/// # Panics
///
/// If the binary is not there. `cargo test -p crashdrop-integration` alone does not build the
/// other packages' binaries; `cargo test --workspace` does.
pub fn bin_path(name: &str) -> PathBuf {
    let path = profile_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        panic!(
            "binary {} not found; run the tests with `cargo test --workspace` (it builds every \
             binary of the workspace), or `cargo build --workspace --bins` first",
            path.display()
        );
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let root = workspace_root();
        assert!(root.join("Cargo.toml").is_file(), "{}", root.display());
        assert!(root.join("integration").is_dir(), "{}", root.display());
    }

    #[test]
    fn profile_dir_is_above_deps() {
        let profile = profile_dir();
        assert!(profile.join("deps").is_dir(), "{}", profile.display());
        assert!(target_dir().is_dir());
    }
}
