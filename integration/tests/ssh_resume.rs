//! Interrupted transfers over SSH resume exactly as over TLS (integration/tests/resume.rs): cuts
//! from the fault-injecting proxy between crashdrop-send's russh client and crashdropd's
//! built-in server cost at most one window each, and a receiver killed with SIGKILL mid-transfer
//! and restarted is resumed where its durable copy ends. On a synthetic dump (the TLS suite runs
//! the fixture; the transport is what differs here).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crashdrop_formats::synth::{write_synthetic_vmcore, SynthSpec};
use crashdrop_integration::{
    bin_path, compare_with_source, run, ssh_sender_to, stored_dumps, ChildGuard, Fault, FaultProxy,
    Receiver, TestCerts, TestSshKeys,
};

const HOST: &str = "flaky-ssh";
const LEVEL: u8 = 1;

/// As in resume.rs: the sender's window of 8 chunks of at most 256 raw pages, a reconnect's
/// handshake (here SSH's key exchange and authentication) with Hello and Offer, and both bitmaps.
fn per_cut_allowance(bitmap_bytes: u64) -> u64 {
    8 * (256 * (4096 + 5) + 64) + (64 << 10) + 2 * bitmap_bytes
}

struct Scenario {
    work: tempfile::TempDir,
    vmcore: PathBuf,
    certs: TestCerts,
    keys: TestSshKeys,
}

impl Scenario {
    fn new() -> Scenario {
        let work = tempfile::tempdir().expect("tempdir");
        let vmcore = work.path().join("vmcore");
        write_synthetic_vmcore(
            &vmcore,
            &SynthSpec {
                memory_bytes: 96 << 20,
                seed: 22,
                osrelease: "6.1.0-ssh-resume".into(),
                crash_time: 1_700_000_000,
            },
        )
        .expect("synthetic vmcore");
        Scenario {
            work,
            vmcore,
            certs: TestCerts::new(&[]),
            keys: TestSshKeys::new(&[HOST]),
        }
    }

    fn store(&self) -> PathBuf {
        self.work.path().join("store")
    }

    fn receiver_in(&self, store: &std::path::Path, extra: &[&str]) -> Receiver {
        Receiver::start_with_ssh(store, &self.certs, &self.keys, extra)
    }

    fn sender(&self, proxy: &FaultProxy, extra: &[&str]) -> Command {
        let mut cmd = ssh_sender_to(
            &format!("ssh://{}", proxy.addr()),
            self.keys.identity(HOST),
            &self.keys.host_key.line,
            &self.vmcore,
            LEVEL,
        );
        cmd.args(["--retry-for", "3m"]).args(extra);
        cmd
    }

    /// Upstream bytes of one uninterrupted SSH transfer (into a scratch store).
    fn baseline_bytes(&self) -> u64 {
        let scratch = tempfile::tempdir().expect("tempdir");
        let receiver = self.receiver_in(scratch.path(), &[]);
        let proxy = FaultProxy::start(receiver.ssh_addr.expect("ssh"), vec![]);
        let out = run(&mut self.sender(&proxy, &[]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        proxy.stats().upstream_bytes
    }

    fn check_stored(&self, what: &str) {
        let store = self.store();
        let dumps = stored_dumps(&store);
        assert_eq!(dumps.len(), 1, "{what}: {dumps:?}");
        assert_eq!(dumps[0].parent().expect("host dir"), store.join(HOST));
        compare_with_source(&dumps[0].join("vmcore"), &self.vmcore, LEVEL);
        let relative = dumps[0].strip_prefix(&store).expect("inside store");
        let out = run(Command::new(bin_path("crashdropd"))
            .arg("verify")
            .arg("--store")
            .arg(&store)
            .arg(relative));
        assert!(
            out.status.success(),
            "{what}: verify: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(!dumps[0].join("progress").exists(), "{what}: journal left");
    }
}

#[test]
fn ten_cuts_over_ssh_cost_at_most_a_window_each() {
    let s = Scenario::new();
    let baseline = s.baseline_bytes();
    let receiver = s.receiver_in(&s.store(), &[]);
    let cuts: Vec<Fault> = (1..=10).map(|k| Fault::CutAt(baseline * k / 11)).collect();
    let proxy = FaultProxy::start(receiver.ssh_addr.expect("ssh"), cuts);
    let out = run(&mut s.sender(&proxy, &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{stderr}\n--- receiver:\n{}",
        receiver.log()
    );
    let stats = proxy.stats();
    assert_eq!(stats.faults_fired, 10, "every cut happened: {stats:?}");
    assert!(stderr.contains("resuming at page"), "{stderr}");
    let extra = stats.upstream_bytes.saturating_sub(baseline);
    let bitmap_bytes = crashdrop_formats::ElfVmcore::open(&s.vmcore)
        .expect("vmcore")
        .max_mapnr()
        .div_ceil(8);
    let allowance = 10 * per_cut_allowance(bitmap_bytes);
    eprintln!(
        "10 cuts over SSH: {} bytes upstream vs {baseline} uninterrupted: {extra} extra ({:.1} KiB per cut)",
        stats.upstream_bytes,
        extra as f64 / 10.0 / 1024.0
    );
    assert!(
        extra <= allowance,
        "resends exceed one window per cut: {extra} > {allowance}"
    );
    s.check_stored("10 cuts over SSH");
}

#[test]
fn kill_9_of_the_receiver_over_ssh_then_restart_resumes() {
    let s = Scenario::new();
    let baseline = s.baseline_bytes();
    let extra = ["--idle-timeout-secs", "5"];
    let mut receiver = s.receiver_in(&s.store(), &extra);
    let stalls: Vec<Fault> = (1..=2).map(|k| Fault::StallAt(baseline * k / 3)).collect();
    let proxy = FaultProxy::start(receiver.ssh_addr.expect("ssh"), stalls);
    let mut sender = ChildGuard::spawn(
        "crashdrop-send",
        &mut s.sender(&proxy, &["--io-timeout", "60"]),
    )
    .expect("spawn sender");
    for k in 1..=2 {
        proxy
            .wait_for(Duration::from_secs(60), |st| st.faults_fired == k)
            .unwrap_or_else(|| panic!("stall {k} never reached:\n{}", sender.stderr_text()));
        receiver.guard.kill().expect("kill -9 crashdropd");
        receiver = s.receiver_in(&s.store(), &extra);
        proxy.set_target(receiver.ssh_addr.expect("ssh"));
        proxy.cut_all();
    }
    let status = sender
        .wait_timeout(Duration::from_secs(120))
        .expect("sender finished in time");
    let stderr = sender.stderr_text();
    assert!(
        status.success(),
        "crashdrop-send failed ({status}):\n{stderr}"
    );
    assert!(stderr.contains("resuming at page"), "{stderr}");
    s.check_stored("receiver kill -9 over SSH");
}
