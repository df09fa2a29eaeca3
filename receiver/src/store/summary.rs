//! What crashed, as `dump.json` records it: the crash report found in the kernel log
//! ([`crate::triage`]) reduced to the facts an operator sorts and groups dumps by.

use serde::{Deserialize, Serialize};

use crate::triage::{find_report, ReportKind, Signature};

/// The `crash` object of `dump.json`. Every field but `title` and `signature` may be absent: a
/// log names the task, CPU or release only in some report formats. Unknown fields are accepted
/// so that a newer receiver's records still list with this one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CrashSummary {
    /// `panic`, `bug`, `oops`, `general_protection_fault`, `kasan`, `ubsan`, `lockdep`,
    /// `soft_lockup`, `hung_task` or `warning`.
    pub kind: String,
    /// The report's first line as logged, without its timestamp.
    pub line: String,
    /// The line with numbers, addresses and task names masked (and the faulting function where
    /// the report names one): the same for every occurrence of one bug.
    pub title: String,
    /// 16 hex digits identifying title and `frames` (see `triage::Signature`).
    pub signature: String,
    /// The first meaningful frames of the call trace, innermost first, that the signature covers.
    #[serde(default)]
    pub frames: Vec<String>,
    /// The kernel release the report names (its `CPU: … Not tainted RELEASE` line), else the
    /// log's `Linux version RELEASE` line.
    #[serde(default)]
    pub kernel_release: Option<String>,
    /// The report line's printk timestamp: seconds since boot when the kernel crashed.
    #[serde(default)]
    pub seconds_after_boot: Option<f64>,
    /// The CPU, PID and task name (`Comm:`) of the crashing context, when the report names them.
    #[serde(default)]
    pub cpu: Option<u32>,
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub task: Option<String>,
}

/// The summary of the first crash report in `log`; `None` when it holds none we recognise.
pub fn summarize(log: &str) -> Option<CrashSummary> {
    let report = find_report(log)?;
    let signature = Signature::of(&report);
    let raw_line = log.lines().find(|l| l.ends_with(report.line.as_str()));
    Some(CrashSummary {
        kind: kind_name(report.kind).to_owned(),
        seconds_after_boot: raw_line.and_then(printk_seconds),
        kernel_release: report.kernel_release.clone().or_else(|| linux_version(log)),
        line: report.line,
        title: signature.title,
        signature: signature.id,
        frames: signature.frames,
        cpu: report.cpu,
        pid: report.pid,
        task: report.task,
    })
}

fn kind_name(kind: ReportKind) -> &'static str {
    match kind {
        ReportKind::Panic => "panic",
        ReportKind::Bug => "bug",
        ReportKind::Oops => "oops",
        ReportKind::GeneralProtectionFault => "general_protection_fault",
        ReportKind::Kasan => "kasan",
        ReportKind::Ubsan => "ubsan",
        ReportKind::Lockdep => "lockdep",
        ReportKind::SoftLockup => "soft_lockup",
        ReportKind::HungTask => "hung_task",
        ReportKind::Warning => "warning",
    }
}

/// `[    8.484677] …` → 8.484677.
fn printk_seconds(line: &str) -> Option<f64> {
    let inner = line.trim_start().strip_prefix('[')?;
    let (stamp, _) = inner.split_once(']')?;
    let stamp = stamp.trim();
    if stamp.is_empty() || !stamp.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    stamp.parse().ok()
}

/// The release of the log's `Linux version 6.1.0-56-cloud-amd64 (…)` boot line.
fn linux_version(log: &str) -> Option<String> {
    log.lines().find_map(|l| {
        let (_, rest) = l.split_once("Linux version ")?;
        rest.split_whitespace().next().map(str::to_owned)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE_TAIL: &str = "\
[    8.484255] sysrq: Trigger a crash
[    8.484677] Kernel panic - not syncing: sysrq triggered crash
[    8.485057] CPU: 1 PID: 1 Comm: init Kdump: loaded Not tainted 6.1.0-56-cloud-amd64 #1  Debian 6.1.192-2
[    8.485816] Call Trace:
[    8.486496]  <TASK>
[    8.486689]  dump_stack_lvl+0x44/0x5c
[    8.487088]  panic+0x118/0x2f4
[    8.487170]  ? _printk+0x68/0x83
[    8.487246]  sysrq_handle_crash+0x16/0x20
[    8.487341]  __handle_sysrq.cold+0x44/0x11c
[    8.487512]  write_sysrq_trigger+0x24/0x40
[    8.487585]  proc_reg_write+0x56/0xa0
[    8.487585]  </TASK>
";

    #[test]
    fn a_panic_log_gives_every_fact() {
        let s = summarize(FIXTURE_TAIL).expect("a report");
        assert_eq!(s.kind, "panic");
        assert_eq!(s.line, "Kernel panic - not syncing: sysrq triggered crash");
        assert_eq!(s.title, "Kernel panic - not syncing: sysrq triggered crash");
        assert_eq!(
            s.frames,
            [
                "sysrq_handle_crash",
                "__handle_sysrq",
                "write_sysrq_trigger"
            ]
        );
        assert_eq!(s.signature.len(), 16);
        assert_eq!(s.kernel_release.as_deref(), Some("6.1.0-56-cloud-amd64"));
        assert_eq!(s.seconds_after_boot, Some(8.484677));
        assert_eq!(
            (s.cpu, s.pid, s.task.as_deref()),
            (Some(1), Some(1), Some("init"))
        );
    }

    #[test]
    fn the_release_falls_back_to_the_boot_line_and_no_report_is_none() {
        let log = "[    0.000000] Linux version 5.10.0-9-amd64 (debian-kernel@lists.debian.org)\n\
                   Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n";
        let s = summarize(log).expect("a report");
        assert_eq!(s.kernel_release.as_deref(), Some("5.10.0-9-amd64"));
        assert_eq!(
            s.seconds_after_boot, None,
            "the panic line has no timestamp"
        );
        assert_eq!(s.cpu, None);
        assert_eq!(
            s.title,
            "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(N,N)"
        );
        assert!(summarize("[    0.000000] Linux version 6.1.0\nall quiet\n").is_none());
    }

    /// A general protection fault as 6.1 prints it, with what differs between builds filled in.
    fn gpf(time: &str, cpu: u32, task: &str, release: &str, addr: &str, off: &str) -> String {
        format!(
            "[{time}] general protection fault, probably for non-canonical address 0x{addr}: 0000 [#1] PREEMPT SMP NOPTI
[{time}] CPU: {cpu} PID: 4242 Comm: {task} Not tainted {release} #1 Debian 6.1.192-2
[{time}] RIP: 0010:nft_set_elem_destroy+{off}
[{time}] Call Trace:
[{time}]  <TASK>
[{time}]  ? die_addr+0x36/0x90
[{time}]  ? exc_general_protection+{off}
[{time}]  ? asm_exc_general_protection+0x26/0x30
[{time}]  nft_set_elem_destroy+{off}
[{time}]  nft_pipapo_destroy.isra.0+0x6b/0x90 [nf_tables]
[{time}]  nf_tables_commit+{off} [nf_tables]
[{time}]  nfnetlink_rcv_batch+0x5a3/0x8c0 [nfnetlink]
[{time}]  </TASK>
"
        )
    }

    #[test]
    fn one_bug_on_two_builds_shares_a_signature_but_keeps_its_own_facts() {
        let a = summarize(&gpf(
            "  312.004411",
            3,
            "nft",
            "6.1.0-56-cloud-amd64",
            "dead4ead00000000",
            "0x2f/0x90",
        ))
        .expect("a report");
        let b = summarize(&gpf(
            "90211.771002",
            41,
            "iptables-nft",
            "6.1.0-60-amd64",
            "6b6b6b6b6b6b6b73",
            "0x31/0xa0",
        ))
        .expect("a report");
        assert_eq!(a.kind, "general_protection_fault");
        assert_eq!(a.title, "general protection fault in nft_set_elem_destroy");
        assert_eq!(a.signature, b.signature);
        assert_eq!((a.cpu, a.task.as_deref()), (Some(3), Some("nft")));
        assert_eq!((b.cpu, b.task.as_deref()), (Some(41), Some("iptables-nft")));
        assert_eq!(b.kernel_release.as_deref(), Some("6.1.0-60-amd64"));
        assert_eq!(b.seconds_after_boot, Some(90211.771002));
        let panic = summarize(FIXTURE_TAIL).expect("a report");
        assert_ne!(a.signature, panic.signature, "different bugs");
    }
}
