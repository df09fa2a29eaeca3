//! From kernel panic to stored dump inside a real capture kernel: the fixture's Debian kernel
//! boots in QEMU (TCG, 512 MiB, `crashkernel=192M`), loads itself as capture kernel with
//! `kexec -p` and panics via sysrq; the capture kernel's initramfs holds `crashdrop-send` (the
//! one this build made, stripped, with its libraries), its certificate, key and CA, and sends
//! `/proc/vmcore` at `-d 31` over TLS to a `crashdropd` the test runs on 127.0.0.1, which the
//! guest reaches as 10.0.2.2 through QEMU user networking. The stored dump must verify, its
//! `dmesg.txt` hold the panic line, and Debian's `crash` with the fixture's debug vmlinux run
//! `sys`, `log` and `bt` on it.
//!
//! Three runs of that: straight to the receiver; through the fault-injecting proxy, which cuts
//! the connection twice mid-transfer (the sender resumes where the receiver's durable copy
//! ends); and with the receiver started only 20 s after the panic (the sender retries refused
//! connections for `--retry-for`). The runs take a lock so they boot one guest at a time.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crashdrop_integration::qemu::{
    Guest, KdumpCapture, KernelPackage, BUSYBOX, HOST_ADDR, KDUMP_TIMEOUT, KEXEC, PANIC_LINE,
};
use crashdrop_integration::{
    bin_path, fixture_vmlinux, record_after_kernel_log, require_tools, run, run_crash, skip,
    stored_dumps, Fault, FaultProxy, Receiver, TestCerts,
};

const HOST: &str = "kdump-guest";
const SEND_EXIT: &str = "CRASHDROP-SEND-EXIT ";

/// One guest at a time: two TCG guests on a small machine make each other's timing meaningless.
static ONE_GUEST: Mutex<()> = Mutex::new(());

struct Setup {
    kernel: KernelPackage,
    vmlinux: PathBuf,
    certs: TestCerts,
    /// `crashdrop-send` without its debug sections (the capture kernel unpacks its initramfs
    /// into the 192 MiB it has).
    sender: PathBuf,
    work: tempfile::TempDir,
}

/// Everything a run needs, or `None` (with the reason printed; CI fails instead) when a tool,
/// the kernel package or the debug vmlinux is missing.
fn setup() -> Option<Setup> {
    if !require_tools(&[
        "qemu-system-x86_64",
        "cpio",
        "dpkg-deb",
        "ldd",
        "strip",
        "crash",
    ]) {
        return None;
    }
    let Some(deb) = KernelPackage::fixture_deb() else {
        skip("no linux-image-*.deb among the fixtures");
        return None;
    };
    for (tool, package) in [(BUSYBOX, "busybox-static"), (KEXEC, "kexec-tools")] {
        if !Path::new(tool).is_file() {
            skip(format!("no {tool} (apt install {package})"));
            return None;
        }
    }
    let vmlinux = fixture_vmlinux()?;
    let kernel = KernelPackage::unpack(&deb).unwrap_or_else(|e| panic!("{e}"));
    let work = tempfile::tempdir().expect("tempdir");
    let sender = work.path().join("crashdrop-send");
    let out = run(Command::new("strip")
        .arg("-o")
        .arg(&sender)
        .arg(bin_path("crashdrop-send")));
    assert!(
        out.status.success(),
        "strip crashdrop-send: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(Setup {
        kernel,
        vmlinux,
        certs: TestCerts::new(&[HOST]),
        sender,
        work,
    })
}

/// A port on 127.0.0.1 that nothing listens on (for a receiver or proxy started later).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Boots the guest whose capture kernel sends its vmcore to 10.0.2.2:`port`.
fn boot(setup: &Setup, port: u16) -> Guest {
    let host = setup.certs.host(HOST);
    let cycle = KdumpCapture {
        // Something in memory besides the kernel: 8 MiB in a tmpfs (left out at -d 31).
        before_panic: "mount -t tmpfs tmpfs /tmp && dd if=/dev/urandom of=/tmp/fill bs=1M count=8"
            .into(),
        capture_files: vec![
            ("/etc/crashdrop/ca.pem".into(), setup.certs.ca.cert.clone()),
            ("/etc/crashdrop/host.pem".into(), host.cert),
            ("/etc/crashdrop/host.key".into(), host.key),
        ],
        capture_binaries: vec![("/usr/bin/crashdrop-send".into(), setup.sender.clone())],
        network: true,
        // The receiver's test certificate is for `localhost`: the guest dials an address.
        capture_script: Some(format!(
            "/usr/bin/crashdrop-send --receiver tls://{HOST_ADDR}:{port} --server-name localhost \
             --ca /etc/crashdrop/ca.pem --cert /etc/crashdrop/host.pem \
             --key /etc/crashdrop/host.key --dump-level 31 --retry-for 5m --io-timeout 20\n\
             echo {SEND_EXIT}$?"
        )),
        ..KdumpCapture::default()
    };
    cycle
        .start(&setup.kernel, setup.work.path())
        .unwrap_or_else(|e| panic!("kdump guest: {e}"))
}

/// Waits for the sender in the capture kernel to finish and the guest to power off; returns the
/// console. Panics unless the sender exited 0.
fn finish(guest: &mut Guest, receiver: &Receiver) -> String {
    let exit = guest
        .wait_for_line(SEND_EXIT, KDUMP_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n--- crashdropd log:\n{}", receiver.log()));
    guest.wait_exit(Duration::from_secs(60)).ok();
    let console = guest.console();
    assert!(
        exit.trim_end().ends_with(&format!("{SEND_EXIT}0")),
        "crashdrop-send in the capture kernel failed ({exit}):\n{console}\n--- crashdropd log:\n{}",
        receiver.log()
    );
    assert!(
        console.contains(PANIC_LINE),
        "the first kernel did not panic as planned:\n{console}"
    );
    console
}

/// The one stored dump verifies, its dmesg.txt holds the panic line, and crash runs sys, log
/// and bt on it.
fn check_stored(setup: &Setup, receiver: &Receiver, what: &str) -> serde_json::Value {
    let store = &receiver.store;
    let dumps = stored_dumps(store);
    assert_eq!(dumps.len(), 1, "{what}: one dump stored: {dumps:?}");
    let dump = &dumps[0];
    assert_eq!(dump.parent().expect("host dir"), store.join(HOST));
    let relative = dump.strip_prefix(store).expect("inside the store");
    let out = run(Command::new(bin_path("crashdropd"))
        .arg("verify")
        .arg("--store")
        .arg(store)
        .arg(relative));
    assert!(
        out.status.success(),
        "{what}: verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let record = record_after_kernel_log(dump, receiver);
    assert_eq!(record["state"], "complete", "{what}: {record:#}");
    assert_eq!(record["dump_level"], 31, "{what}: {record:#}");
    assert_eq!(record["kernel_log"], "dmesg.txt", "{what}: {record:#}");
    let dmesg = std::fs::read_to_string(dump.join("dmesg.txt")).expect("dmesg.txt");
    assert!(
        dmesg.contains(PANIC_LINE),
        "{what}: dmesg.txt lacks the panic line:\n{dmesg}"
    );
    eprintln!(
        "{what}: stored {} ({} pages, {} bytes on the wire)",
        relative.display(),
        record["pages"],
        record["bytes_on_wire"]
    );

    let crash = run_crash(&setup.vmlinux, &dump.join("vmcore"), &["sys", "log", "bt"])
        .unwrap_or_else(|e| panic!("{what}: crash: {e}"));
    assert!(crash.success(), "{what}: crash failed:\n{}", crash.text());
    let sys = crash.output_of("sys").unwrap_or_default();
    assert!(
        sys.contains("sysrq triggered crash") && sys.contains(setup.kernel.release()),
        "{what}: crash sys:\n{}",
        crash.text()
    );
    let log = crash.output_of("log").unwrap_or_default();
    assert!(
        log.contains(PANIC_LINE),
        "{what}: crash log lacks the panic line:\n{}",
        crash.text()
    );
    let bt = crash.output_of("bt").unwrap_or_default();
    assert!(
        bt.contains(" #0 [") && bt.contains(" panic at "),
        "{what}: crash bt:\n{}",
        crash.text()
    );
    record
}

#[test]
#[ignore = "a kdump cycle in QEMU under TCG whose capture kernel sends over the network (about 40 s), then crash"]
fn capture_kernel_sends_its_vmcore_over_tls() {
    let _one = ONE_GUEST.lock().unwrap_or_else(|p| p.into_inner());
    let Some(setup) = setup() else { return };
    let started = Instant::now();
    let receiver = Receiver::start(&setup.work.path().join("store"), &setup.certs, &[]);
    let mut guest = boot(&setup, receiver.addr.port());
    let console = finish(&mut guest, &receiver);
    eprintln!("panic to stored dump: {:?}", started.elapsed());
    assert!(
        console.contains("dump complete on the receiver"),
        "{console}"
    );
    let record = check_stored(&setup, &receiver, "straight");
    assert_eq!(record["sessions"], 1, "one session: {record:#}");
}

#[test]
#[ignore = "a kdump cycle in QEMU under TCG sending through a proxy that cuts it twice (about a minute), then crash"]
fn capture_kernel_resumes_after_two_cuts_mid_transfer() {
    let _one = ONE_GUEST.lock().unwrap_or_else(|p| p.into_inner());
    let Some(setup) = setup() else { return };
    let receiver = Receiver::start(&setup.work.path().join("store"), &setup.certs, &[]);
    // A -d 31 dump of this guest is about 15 MB of page data on the wire: cut at 3 and 9 MiB.
    let proxy = FaultProxy::start(
        receiver.addr,
        vec![Fault::CutAt(3 << 20), Fault::CutAt(9 << 20)],
    );
    let mut guest = boot(&setup, proxy.addr().port());
    let console = finish(&mut guest, &receiver);
    let stats = proxy.stats();
    eprintln!("proxy: {stats:?}");
    assert_eq!(
        stats.faults_fired, 2,
        "both cuts fired: {stats:?}\n{console}"
    );
    assert!(stats.connections >= 3, "{stats:?}");
    assert!(
        // Protocol 2 says "resuming: the receiver holds N of M chunks", 1 "resuming at page N".
        console
            .lines()
            .filter(
                |l| l.contains("resuming: the receiver holds ") || l.contains("resuming at page ")
            )
            .count()
            >= 2,
        "the sender resumed after each cut:\n{console}"
    );
    let record = check_stored(&setup, &receiver, "cut twice");
    assert!(
        record["sessions"].as_u64() >= Some(3),
        "three sessions made the dump: {record:#}"
    );
}

#[test]
#[ignore = "a kdump cycle in QEMU under TCG whose receiver starts 20 s after the panic (about a minute), then crash"]
fn capture_kernel_waits_for_a_receiver_started_after_the_panic() {
    let _one = ONE_GUEST.lock().unwrap_or_else(|p| p.into_inner());
    let Some(setup) = setup() else { return };
    let port = free_port();
    let mut guest = boot(&setup, port);
    guest
        .wait_for_line(PANIC_LINE, KDUMP_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_secs(20));
    let receiver = Receiver::start_on(
        &format!("127.0.0.1:{port}"),
        &setup.work.path().join("store"),
        &setup.certs,
        &[],
    );
    let console = finish(&mut guest, &receiver);
    assert!(
        console.contains("attempt 1 failed"),
        "the sender found no receiver at first and retried:\n{console}"
    );
    let record = check_stored(&setup, &receiver, "receiver late");
    assert_eq!(
        record["sessions"], 1,
        "refused attempts open no session: {record:#}"
    );
}
