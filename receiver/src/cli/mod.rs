//! Command-line interface: `serve`, `stdio`, `list`, `verify`, `dmesg`, `export`, `prune`.

pub mod dmesg;
pub mod export;
pub mod groups;
pub mod list;
pub mod prune;
pub mod serve;
pub mod show;
pub mod stdio;
pub mod verify;

use std::path::{Component, Path, PathBuf};

use anyhow::bail;
use clap::{Parser, Subcommand};

/// crashdropd receives Linux kernel crash dumps from crashdrop-send over mutual TLS and stores
/// each one as a kdump-compressed file that `crash` opens directly.
#[derive(Parser, Debug)]
#[command(name = "crashdropd", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start-up: the size of the `serve` variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the receiver: listen for senders and store their dumps.
    ///
    /// Required, as flags or in the --config file: --store, and either --tls-listen with
    /// --tls-cert, --tls-key and --client-ca, or --ssh-listen with --ssh-host-key and
    /// --ssh-authorized-keys (or both). Everything else has a default.
    ///
    /// Each bound address is printed on stdout (`listening tls ADDR`); logs go to stderr, at
    /// level info unless RUST_LOG says otherwise (RUST_LOG=debug for more, RUST_LOG=warn for less).
    #[command(verbatim_doc_comment)]
    Serve(serve::ServeArgs),
    /// List the dumps in a store (--group-by signature: one row per crash signature).
    List(list::ListArgs),
    /// Re-read a stored dump and check it against its recorded digest (exit 0 only if it matches).
    Verify(verify::VerifyArgs),
    /// Remove stale transfers and the dumps retention and quotas say must go (see --dry-run).
    Prune(prune::PruneArgs),
    /// Everything known about one dump: its record, what crashed, the call trace and the last
    /// lines of the kernel log.
    Show(show::ShowArgs),
    /// Print the crashed kernel's log, read from a stored dump (as vmcore-dmesg prints it).
    Dmesg(dmesg::DmesgArgs),
    /// Write a stored dump as ELF, kdump-compressed with zlib or raw pages, or a flattened
    /// stream, for tools that cannot read zstd pages (Debian 12's makedumpfile, gdb, drgn).
    Export(export::ExportArgs),
    /// Serve one sender on stdin/stdout: the forced command of an OpenSSH authorized_keys line,
    /// for sites that keep their own sshd (`restrict,command="crashdropd stdio --store DIR
    /// --host NAME" ssh-ed25519 AAAA...`). The same store, limits and locks as `serve`.
    Stdio(stdio::StdioArgs),
}

/// An error and its causes on one line, each cause once: many errors here name their source in
/// their own message (so that a log line is whole), and anyhow's `{:#}` would print it again.
pub fn error_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// The directory of a stored dump named as `crashdropd list` prints it (`HOST/DUMP`), or by its
/// path (absolute or from here) inside `store`. Anything else, and a dump that is not there, is
/// refused with a line saying how to find the right name.
pub fn dump_dir(store: &Path, dump: &str) -> anyhow::Result<PathBuf> {
    let given = Path::new(dump);
    let as_name = given.components().count() == 2
        && given
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    let relative = if as_name && store.join(given).is_dir() {
        given.to_path_buf()
    } else if let Some(inside) = path_inside_store(store, given) {
        inside
    } else if as_name {
        bail!(
            "no dump {dump} in store {}: `crashdropd list --store {}` shows the dumps it holds",
            store.display(),
            store.display()
        );
    } else {
        bail!(
            "{dump}: not a dump of store {}: name it HOST/DUMP as `crashdropd list --store {}` \
             prints it, or give its directory inside the store",
            store.display(),
            store.display()
        );
    };
    let dir = store.join(&relative);
    if !dir.join("dump.json").is_file() {
        bail!(
            "{}: no dump.json, so this is not a stored dump (an interrupted first offer leaves \
             none); `crashdropd list --store {}` shows the dumps the store holds",
            dir.display(),
            store.display()
        );
    }
    Ok(dir)
}

/// `path` as `HOST/DUMP` if it is a directory exactly two levels below `store`.
fn path_inside_store(store: &Path, path: &Path) -> Option<PathBuf> {
    let path = path.canonicalize().ok()?;
    let store = store.canonicalize().ok()?;
    let relative = path.strip_prefix(&store).ok()?;
    (path.is_dir() && relative.components().count() == 2).then(|| relative.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::{dump_dir, error_line};

    #[test]
    fn an_error_line_names_each_cause_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let text = io.to_string();
        let e = anyhow::Error::new(io).context(format!("/srv/x/dump.json: {text}"));
        assert_eq!(error_line(&e), format!("/srv/x/dump.json: {text}"));
        let e = anyhow::anyhow!("disk full").context("writing /srv/x/vmcore");
        assert_eq!(error_line(&e), "writing /srv/x/vmcore: disk full");
    }

    fn store_with_dump() -> tempfile::TempDir {
        let store = tempfile::tempdir().expect("temp dir");
        let dump = store.path().join("web-7/2026-11-26T14-03-11Z-0a1b2c3d4e5f");
        std::fs::create_dir_all(&dump).expect("dump dir");
        std::fs::write(dump.join("dump.json"), "{}").expect("dump.json");
        store
    }

    #[test]
    fn a_dump_is_found_by_its_list_name_and_by_its_path() {
        let store = store_with_dump();
        let name = "web-7/2026-11-26T14-03-11Z-0a1b2c3d4e5f";
        let by_name = dump_dir(store.path(), name).expect("found by name");
        assert_eq!(by_name, store.path().join(name));
        let full = store.path().join(name);
        let by_path = dump_dir(store.path(), full.to_str().expect("utf-8")).expect("found by path");
        assert_eq!(
            by_path.canonicalize().expect("canonical"),
            full.canonicalize().expect("canonical")
        );
    }

    #[test]
    fn a_missing_dump_is_named_and_points_to_list() {
        let store = store_with_dump();
        let err = dump_dir(store.path(), "web-7/nope")
            .expect_err("refused")
            .to_string();
        assert!(err.contains("no dump web-7/nope in store"), "{err}");
        assert!(err.contains("crashdropd list --store"), "{err}");
    }

    #[test]
    fn paths_outside_the_store_and_traversal_are_refused() {
        let store = store_with_dump();
        for bad in ["../etc", "web-7/../../x", "/etc/ssh", "web-7"] {
            let err = dump_dir(store.path(), bad)
                .expect_err("refused")
                .to_string();
            assert!(err.contains("not a dump of store"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_directory_without_dump_json_is_not_a_dump() {
        let store = store_with_dump();
        std::fs::create_dir_all(store.path().join("web-7/empty")).expect("empty dir");
        let err = dump_dir(store.path(), "web-7/empty")
            .expect_err("refused")
            .to_string();
        assert!(err.contains("no dump.json"), "{err}");
    }
}
