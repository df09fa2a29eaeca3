//! The real kernel dumps we test with (`../shared/fixtures/` beside the workspace, or
//! `$CRASHDROP_FIXTURES`), and their decompression into a cache in the target directory.
//!
//! A user's clone has no fixtures: then the functions here return `None` after printing why
//! ([`crate::skip`]), and the test skips. Under `CI` (or `CRASHDROP_REQUIRE_FIXTURES=1`) a missing
//! fixture fails the test instead: a CI run never passes without testing.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::kernel_log::release_from_log;
use crate::workspace::{target_dir, workspace_root};

/// Environment variable naming the fixtures folder, overriding `../shared/fixtures/`.
pub const FIXTURES_ENV: &str = "CRASHDROP_FIXTURES";

/// Environment variable that, when set to `1`, makes missing fixtures a test failure.
pub const REQUIRE_FIXTURES_ENV: &str = "CRASHDROP_REQUIRE_FIXTURES";

/// One real dump: `<fixtures>/kdump-*/vmcore.zst` and the `dmesg.txt` beside it.
#[derive(Debug, Clone)]
pub struct FixtureDump {
    /// The folder name, e.g. `kdump-6.1-cloud`.
    pub name: String,
    /// The zstd-compressed ELF vmcore, as `/proc/vmcore` gave it.
    pub vmcore_zst: PathBuf,
    /// The kernel log as kexec-tools' `vmcore-dmesg` printed it from this vmcore.
    pub dmesg_txt: PathBuf,
    /// The folder of debug kernels (`<fixtures>/kernel`).
    kernel_dir: PathBuf,
}

impl FixtureDump {
    /// The decompressed vmcore (cached; see [`decompressed`]).
    pub fn vmcore(&self) -> PathBuf {
        decompressed(&self.vmcore_zst)
    }

    /// The reference kernel log (`dmesg.txt`).
    pub fn dmesg(&self) -> String {
        match fs::read(&self.dmesg_txt) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => panic!("cannot read {}: {e}", self.dmesg_txt.display()),
        }
    }

    /// The kernel release, from the `Linux version` line of `dmesg.txt`.
    pub fn release(&self) -> Option<String> {
        release_from_log(&self.dmesg()).map(str::to_string)
    }

    /// The decompressed debug vmlinux of this dump's kernel (`kernel/vmlinux-<release>.zst`),
    /// or `None` (with the reason printed) if it is not among the fixtures.
    pub fn vmlinux(&self) -> Option<PathBuf> {
        let Some(release) = self.release() else {
            missing(&format!(
                "no `Linux version` line in {}",
                self.dmesg_txt.display()
            ));
            return None;
        };
        let zst = self.kernel_dir.join(format!("vmlinux-{release}.zst"));
        if !zst.is_file() {
            missing(&format!(
                "no debug kernel {} for {}",
                zst.display(),
                self.name
            ));
            return None;
        }
        Some(decompressed(&zst))
    }
}

/// The fixtures folder: `$CRASHDROP_FIXTURES`, else `<workspace>/../shared/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os(FIXTURES_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("..").join("shared").join("fixtures"),
    }
}

/// Every `kdump-*` dump among the fixtures, sorted by name; `None`, with the reason printed,
/// when there are none (a user's clone).
///
/// # Panics
///
/// When none are found under `CI` or with `CRASHDROP_REQUIRE_FIXTURES=1`.
pub fn fixture_dumps() -> Option<Vec<FixtureDump>> {
    let root = fixtures_dir();
    let mut dumps = Vec::new();
    if let Ok(entries) = fs::read_dir(&root) {
        for entry in entries.flatten() {
            let dir = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let vmcore_zst = dir.join("vmcore.zst");
            let dmesg_txt = dir.join("dmesg.txt");
            if name.starts_with("kdump-") && vmcore_zst.is_file() && dmesg_txt.is_file() {
                dumps.push(FixtureDump {
                    name,
                    vmcore_zst,
                    dmesg_txt,
                    kernel_dir: root.join("kernel"),
                });
            }
        }
    }
    dumps.sort_by(|a, b| a.name.cmp(&b.name));
    if dumps.is_empty() {
        missing(&format!("no kdump-*/vmcore.zst under {}", root.display()));
        return None;
    }
    Some(dumps)
}

/// The decompressed debug vmlinux: the one `kernel/vmlinux-*.zst` (the first by name if there
/// are several; prefer [`FixtureDump::vmlinux`], which matches the dump's release).
pub fn fixture_vmlinux() -> Option<PathBuf> {
    let kernel = fixtures_dir().join("kernel");
    let mut found: Vec<PathBuf> = fs::read_dir(&kernel)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinux-") && n.ends_with(".zst"))
        })
        .collect();
    found.sort();
    match found.into_iter().next() {
        Some(zst) => Some(decompressed(&zst)),
        None => {
            missing(&format!("no vmlinux-*.zst under {}", kernel.display()));
            None
        }
    }
}

fn missing(reason: &str) {
    if std::env::var(REQUIRE_FIXTURES_ENV).is_ok_and(|v| v == "1") {
        panic!("{REQUIRE_FIXTURES_ENV}=1, but the fixtures are missing: {reason}");
    }
    crate::skip(format!(
        "{reason} (set {FIXTURES_ENV} to the fixtures folder; README: Real dumps to test with)"
    ));
}

/// Serialises decompression within this process; other processes are handled by the rename.
static DECOMPRESSING: Mutex<()> = Mutex::new(());

/// The decompressed content of `zst`, at `<target>/fixture-cache/<parent folder>/<name without
/// .zst>`, made on first use.
///
/// Streams (never holds the file in memory) into a uniquely named temporary file in the same
/// folder and renames it into place, so parallel tests in several processes see either no file
/// or the whole one. A cached file is reused when its size equals the content size recorded in
/// the zstd frame header, else made again.
///
/// # Panics
///
/// On any I/O or decompression error: the fixture is unusable and the test cannot go on.
pub fn decompressed(zst: &Path) -> PathBuf {
    match decompress_cached(zst) {
        Ok(path) => path,
        Err(e) => panic!("cannot decompress fixture {}: {e}", zst.display()),
    }
}

fn decompress_cached(zst: &Path) -> io::Result<PathBuf> {
    let name = zst
        .file_stem()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let folder = zst
        .parent()
        .and_then(Path::file_name)
        .map_or_else(|| "fixtures".into(), |f| f.to_os_string());
    let cache = target_dir().join("fixture-cache").join(folder);
    let target = cache.join(name);
    let expected = content_size(zst)?;

    // A poisoned lock only means another test panicked while holding it; the rename protocol
    // keeps the cache consistent regardless.
    let _guard = DECOMPRESSING.lock().unwrap_or_else(|p| p.into_inner());
    if is_complete(&target, expected) {
        return Ok(target);
    }
    fs::create_dir_all(&cache)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.to_string_lossy()))
        .suffix(".partial")
        .tempfile_in(&cache)?;
    {
        let mut decoder = zstd::stream::read::Decoder::new(BufReader::new(File::open(zst)?))?;
        decoder.window_log_max(31)?;
        let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        let written = io::copy(&mut decoder, &mut out)?;
        out.flush()?;
        if let Some(expected) = expected {
            if written != expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("decompressed {written} bytes, the frame header says {expected}"),
                ));
            }
        }
    }
    tmp.as_file().sync_all()?;
    // Read-only: a test that writes into a cached fixture would corrupt every later run.
    let mut perms = tmp.as_file().metadata()?.permissions();
    perms.set_readonly(true);
    tmp.as_file().set_permissions(perms)?;
    tmp.persist(&target).map_err(|e| e.error)?;
    Ok(target)
}

fn is_complete(path: &Path, expected: Option<u64>) -> bool {
    match (fs::metadata(path), expected) {
        (Ok(m), Some(size)) => m.is_file() && m.len() == size,
        (Ok(m), None) => m.is_file(),
        (Err(_), _) => false,
    }
}

/// The decompressed size recorded in the first frame's header, when the file is a single frame
/// that records it (the zstd CLI does); `None` if unknown.
fn content_size(zst: &Path) -> io::Result<Option<u64>> {
    let mut header = [0u8; 18]; // ZSTD_FRAMEHEADERSIZE_MAX
    let mut file = File::open(zst)?;
    let mut len = 0;
    while len < header.len() {
        let n = file.read(header.get_mut(len..).unwrap_or_default())?;
        if n == 0 {
            break;
        }
        len += n;
    }
    let frame = header.get(..len).unwrap_or_default();
    Ok(zstd::zstd_safe::get_frame_content_size(frame)
        .ok()
        .flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decompresses_once_into_the_cache_and_reuses_it() {
        let src = tempfile::Builder::new()
            .prefix("crashdrop-fixture-test-")
            .tempdir()
            .expect("tempdir");
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let zst = src.path().join("sample.bin.zst");
        fs::write(&zst, zstd::encode_all(&data[..], 3).expect("compress")).expect("write");

        let first = decompressed(&zst);
        assert_eq!(fs::read(&first).expect("read"), data);
        assert!(first.starts_with(target_dir().join("fixture-cache")));
        assert_eq!(
            first.file_name().and_then(|n| n.to_str()),
            Some("sample.bin")
        );
        let modified = fs::metadata(&first)
            .and_then(|m| m.modified())
            .expect("mtime");
        assert_eq!(decompressed(&zst), first);
        let again = fs::metadata(&first)
            .and_then(|m| m.modified())
            .expect("mtime");
        assert_eq!(modified, again, "a complete cached file is reused");
        fs::remove_dir_all(first.parent().expect("cache folder")).expect("clean up");
    }

    #[test]
    fn parallel_requests_agree() {
        let src = tempfile::Builder::new()
            .prefix("crashdrop-fixture-par-")
            .tempdir()
            .expect("tempdir");
        let data = vec![7u8; 3 << 20];
        let zst = src.path().join("par.zst");
        fs::write(&zst, zstd::encode_all(&data[..], 1).expect("compress")).expect("write");
        let paths: Vec<PathBuf> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4).map(|_| s.spawn(|| decompressed(&zst))).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no panic"))
                .collect()
        });
        assert!(paths.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(fs::read(&paths[0]).expect("read").len(), data.len());
        fs::remove_dir_all(paths[0].parent().expect("cache folder")).expect("clean up");
    }
}
