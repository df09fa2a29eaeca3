//! Running a real `crashdropd` and `crashdrop-send` against each other, and checking what the
//! receiver stored against the vmcore that was sent.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crashdrop_certs::CertPaths;
use crashdrop_formats::kdump::{KdumpReader, PageRead};
use crashdrop_formats::{Bitmap, DumpLevel, ElfVmcore, PageFilter, PageSelection};

use crate::child::{listen_addr, spawn_until_line, ChildGuard, START_TIMEOUT};
use crate::test_certs::TestCerts;
use crate::test_ssh::{ssh_sender_to, TestSshKeys};
use crate::workspace::bin_path;

/// A running `crashdropd serve` on 127.0.0.1 with a port the OS picked.
pub struct Receiver {
    pub guard: ChildGuard,
    pub addr: SocketAddr,
    /// The SSH listener, when started with [`Receiver::start_with_ssh`].
    pub ssh_addr: Option<SocketAddr>,
    pub store: PathBuf,
}

impl Receiver {
    /// Starts `crashdropd serve` with the test PKI; `extra` are more `serve` flags.
    pub fn start(store: &Path, certs: &TestCerts, extra: &[&str]) -> Receiver {
        Receiver::spawn("127.0.0.1:0", store, certs, None, extra)
    }

    /// [`Receiver::start`] listening on `listen` (e.g. a port a sender is already dialling).
    pub fn start_on(listen: &str, store: &Path, certs: &TestCerts, extra: &[&str]) -> Receiver {
        Receiver::spawn(listen, store, certs, None, extra)
    }

    /// [`Receiver::start`] with an SSH listener on 127.0.0.1:0 beside TLS, using `keys`' host
    /// key and authorized-keys file.
    pub fn start_with_ssh(
        store: &Path,
        certs: &TestCerts,
        keys: &TestSshKeys,
        extra: &[&str],
    ) -> Receiver {
        Receiver::spawn(
            "127.0.0.1:0",
            store,
            certs,
            Some((keys, "127.0.0.1:0")),
            extra,
        )
    }

    /// [`Receiver::start_with_ssh`] with the SSH listener on `ssh_listen` (e.g. the port of a
    /// receiver that was killed, which a sender keeps dialling).
    pub fn start_with_ssh_on(
        ssh_listen: &str,
        store: &Path,
        certs: &TestCerts,
        keys: &TestSshKeys,
        extra: &[&str],
    ) -> Receiver {
        Receiver::spawn("127.0.0.1:0", store, certs, Some((keys, ssh_listen)), extra)
    }

    fn spawn(
        listen: &str,
        store: &Path,
        certs: &TestCerts,
        ssh: Option<(&TestSshKeys, &str)>,
        extra: &[&str],
    ) -> Receiver {
        let mut cmd = Command::new(bin_path("crashdropd"));
        cmd.arg("serve")
            .arg("--store")
            .arg(store)
            .args(["--tls-listen", listen])
            .arg("--tls-cert")
            .arg(&certs.receiver.cert)
            .arg("--tls-key")
            .arg(&certs.receiver.key)
            .arg("--client-ca")
            .arg(&certs.ca.cert)
            .args(
                ssh.map(|(keys, listen)| keys.serve_args_on(listen))
                    .unwrap_or_default(),
            )
            .args(extra);
        // Tests not about disk space must not depend on how full the machine running them is.
        if !extra.contains(&"--min-free") {
            cmd.args(["--min-free", "0"]);
        }
        let (mut guard, line) = spawn_until_line("crashdropd", &mut cmd, "listening tls ")
            .unwrap_or_else(|e| panic!("crashdropd did not start: {e}"));
        let addr = listen_addr(&line, "listening tls ")
            .unwrap_or_else(|| panic!("unexpected first line from crashdropd: {line:?}"));
        // The SSH listener's line follows the TLS one.
        let ssh_addr = ssh.map(|_| {
            let line = guard
                .wait_for_line("listening ssh ", START_TIMEOUT)
                .unwrap_or_else(|e| panic!("crashdropd did not listen for SSH: {e}"));
            listen_addr(&line, "listening ssh ")
                .unwrap_or_else(|| panic!("unexpected SSH line from crashdropd: {line:?}"))
        });
        Receiver {
            guard,
            addr,
            ssh_addr,
            store: store.to_owned(),
        }
    }

    pub fn url(&self) -> String {
        format!("tls://{}", self.addr)
    }

    /// `ssh://127.0.0.1:PORT` of the SSH listener.
    pub fn ssh_url(&self) -> String {
        let addr = self
            .ssh_addr
            .unwrap_or_else(|| panic!("this receiver was started without SSH"));
        format!("ssh://{addr}")
    }

    /// A `crashdrop-send` command to the SSH listener as `host`, pinning the real host key.
    pub fn ssh_sender(&self, keys: &TestSshKeys, host: &str, vmcore: &Path, level: u8) -> Command {
        ssh_sender_to(
            &self.ssh_url(),
            keys.identity(host),
            &keys.host_key.line,
            vmcore,
            level,
        )
    }

    /// Everything the receiver logged so far.
    pub fn log(&self) -> String {
        self.guard.stderr_text()
    }

    /// Waits up to 20 s until the log mentions `needle` at least `count` times; returns the log.
    pub fn wait_for_log(&self, needle: &str, count: usize) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let log = self.log();
            if log.matches(needle).count() >= count {
                return log;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "crashdropd never logged {needle:?} {count} times:\n{log}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Sends SIGHUP (reload the authorized keys, policies and CRLs) and waits for the receiver to
    /// log that it reloaded `what` (e.g. "SSH authorized keys").
    pub fn reload(&self, what: &str) {
        let needle = format!("reloaded {what} on SIGHUP");
        let before = self.log().matches(&needle).count();
        self.guard.signal("HUP");
        self.wait_for_log(&needle, before + 1);
    }
}

/// A `crashdrop-send` command for `host` (whose certificate is in `certs`).
pub fn sender(
    receiver: &Receiver,
    certs: &TestCerts,
    host: &str,
    vmcore: &Path,
    level: u8,
) -> Command {
    sender_as(receiver, &certs.ca.cert, &certs.host(host), vmcore, level)
}

/// A `crashdrop-send` command presenting `identity` and trusting `ca` for the receiver.
pub fn sender_as(
    receiver: &Receiver,
    ca: &Path,
    identity: &CertPaths,
    vmcore: &Path,
    level: u8,
) -> Command {
    sender_to(&receiver.url(), ca, identity, vmcore, level)
}

/// A `crashdrop-send` command for any receiver URL (e.g. a proxy's), verifying the receiver's
/// certificate as `localhost`.
pub fn sender_to(url: &str, ca: &Path, identity: &CertPaths, vmcore: &Path, level: u8) -> Command {
    let mut cmd = Command::new(bin_path("crashdrop-send"));
    cmd.arg("--receiver")
        .arg(url)
        .args(["--server-name", "localhost"])
        .arg("--ca")
        .arg(ca)
        .arg("--cert")
        .arg(&identity.cert)
        .arg("--key")
        .arg(&identity.key)
        .arg("--vmcore")
        .arg(vmcore)
        .arg("--dump-level")
        .arg(level.to_string());
    cmd
}

/// Runs a command to completion, capturing its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Asserts the sender exited 0, printing its and the receiver's output otherwise.
pub fn assert_sent(out: &Output, receiver: &Receiver) {
    assert!(
        out.status.success(),
        "crashdrop-send failed ({}):\n{}\n--- crashdropd log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        receiver.log()
    );
}

/// Every dump directory in a store (those holding a dump.json), sorted.
/// `dump.json` of a stored dump once it records the kernel-log extraction's outcome (the
/// receiver runs it after acknowledging the dump, and rewrites `dump.json` when it is done).
/// Panics, with the receiver's log, if that takes more than 60 s.
pub fn record_after_kernel_log(dump: &Path, receiver: &Receiver) -> serde_json::Value {
    let timeout = std::time::Duration::from_secs(60);
    let started = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(dump.join("dump.json")).unwrap_or_default();
        if let Ok(record) = serde_json::from_str::<serde_json::Value>(&text) {
            if !record["kernel_log"].is_null() || !record["kernel_log_error"].is_null() {
                return record;
            }
        }
        assert!(
            started.elapsed() < timeout,
            "no kernel log recorded in {} after {timeout:?}:\n{text}\n--- crashdropd log:\n{}",
            dump.display(),
            receiver.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

pub fn stored_dumps(store: &Path) -> Vec<PathBuf> {
    let mut dumps = Vec::new();
    for host in std::fs::read_dir(store).into_iter().flatten().flatten() {
        for dump in std::fs::read_dir(host.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if dump.path().join("dump.json").is_file() {
                dumps.push(dump.path());
            }
        }
    }
    dumps.sort();
    dumps
}

/// What [`compare_with_source`] counted.
#[derive(Debug, Default)]
pub struct Comparison {
    pub pages: u64,
    pub zero_pages: u64,
    pub shared_zero_block: u64,
}

/// Checks, page by page, that the stored kdump file holds exactly the source vmcore's pages for
/// a dump level of 0 or 1: same bitmaps, every stored page decompresses to the source's bytes,
/// and with the zero bit the pages stored as the shared zero block are exactly the zero pages.
pub fn compare_with_source(stored: &Path, source: &Path, level: u8) -> Comparison {
    assert!(level <= 1, "compare_with_source handles levels 0 and 1");
    let src = ElfVmcore::open(source).unwrap_or_else(|e| panic!("{e}"));
    compare_stored(stored, source, level, &selection(&src, level).dumpable)
}

/// The page filter's [`PageSelection`] of `vmcore` at `level` (what the sender offers).
pub fn selection(vmcore: &ElfVmcore, level: u8) -> PageSelection {
    let dump_level = DumpLevel::new(level).unwrap_or_else(|e| panic!("{e}"));
    PageFilter::for_vmcore(vmcore)
        .select(dump_level)
        .unwrap_or_else(|e| panic!("{}: -d {level}: {e}", vmcore.path().display()))
}

/// [`compare_with_source`] for any dump level: `max_mapnr` and the 1st bitmap must be the
/// filter's ([`selection`]), the stored 2nd bitmap must equal `expected`
/// (the page filter's result for `level`), and every stored page the source's bytes.
pub fn compare_stored(stored: &Path, source: &Path, level: u8, expected: &Bitmap) -> Comparison {
    let src = ElfVmcore::open(source).unwrap_or_else(|e| panic!("{e}"));
    let reader = KdumpReader::open(stored).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !reader.is_incomplete(),
        "{} still marked incomplete",
        stored.display()
    );
    let want = selection(&src, level);
    assert_eq!(reader.meta().max_mapnr, want.max_mapnr, "max_mapnr");
    assert!(
        reader.bitmap1() == &want.ram,
        "1st bitmap differs from the source's RAM"
    );
    assert!(
        reader.bitmap2() == expected,
        "2nd bitmap differs from the source's dumpable pages"
    );
    assert_eq!(
        reader.meta().dump_level,
        u32::from(level),
        "dump level in the sub header"
    );
    assert_eq!(reader.meta().phys_base, src.phys_base(), "phys_base");
    assert_eq!(reader.meta().nr_cpus, src.nr_cpus(), "nr_cpus");
    assert_eq!(
        reader.meta().notes,
        src.notes(),
        "ELF notes copied verbatim"
    );
    let data_start = reader.layout().data_offset;
    let page_size = src.page_size() as usize;
    let mut source_page = vec![0u8; page_size];
    let mut seen = Comparison::default();
    for (index, entry) in reader.pages().enumerate() {
        let (pfn, desc) = entry.unwrap_or_else(|e| panic!("{e}"));
        src.read_physical(pfn * page_size as u64, &mut source_page)
            .unwrap_or_else(|e| panic!("{e}"));
        let stored_page = match reader.page_data(pfn, index as u64, &desc) {
            Ok(PageRead::Data(p)) => p,
            Ok(_) => panic!("pfn {pfn:#x}: no data in the stored file"),
            Err(e) => panic!("pfn {pfn:#x}: {e}"),
        };
        assert!(
            stored_page == source_page,
            "pfn {pfn:#x}: stored page differs from the vmcore's"
        );
        let is_zero = source_page.iter().all(|&b| b == 0);
        let shared = desc.offset as u64 == data_start;
        if level & 1 == 1 {
            assert_eq!(
                shared, is_zero,
                "pfn {pfn:#x}: shared zero block iff the page is zero"
            );
        } else {
            assert!(
                !shared,
                "pfn {pfn:#x}: level {level} stores zero pages as their own data"
            );
        }
        seen.pages += 1;
        seen.zero_pages += u64::from(is_zero);
        seen.shared_zero_block += u64::from(shared);
    }
    assert_eq!(seen.pages, expected.count_ones(), "pages stored");
    seen
}
