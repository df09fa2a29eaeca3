//! Reports written in the formats real kernels print, each in two builds: different addresses,
//! offsets, line numbers, CPUs, tasks and releases, the same bug.

use super::*;
use crate::triage::Signature;

/// One build of a machine: the values that differ between two occurrences of one bug.
struct Build {
    time: &'static str,
    cpu: u32,
    pid: u32,
    task: &'static str,
    release: &'static str,
    addr: &'static str,
    off: &'static str,
    line: u32,
}

const A: Build = Build {
    time: "   12.345678",
    cpu: 1,
    pid: 1,
    task: "init",
    release: "6.1.0-56-cloud-amd64",
    addr: "ffff888003c4e000",
    off: "0x16/0x20",
    line: 4218,
};

const B: Build = Build {
    time: "93211.000017",
    cpu: 37,
    pid: 48213,
    task: "kworker/37:2",
    release: "6.1.0-60-amd64",
    addr: "ffff9a1fc0de8000",
    off: "0x2b1/0x4c0",
    line: 4223,
};

/// `template` with `{time}`, `{cpu}`, `{pid}`, `{task}`, `{release}`, `{addr}`, `{off}` and
/// `{line}` filled from `build`, as a log with timestamps.
fn log(template: &str, build: &Build) -> String {
    template
        .lines()
        .map(|l| {
            let l = l
                .replace("{cpu}", &build.cpu.to_string())
                .replace("{pid}", &build.pid.to_string())
                .replace("{task}", build.task)
                .replace("{release}", build.release)
                .replace("{addr}", build.addr)
                .replace("{off}", build.off)
                .replace("{line}", &build.line.to_string());
            format!("[{}] {l}\n", build.time)
        })
        .collect()
}

const BOOT: &str = "Linux version {release} (debian-kernel@lists.debian.org)
Command line: BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro
x86/fpu: Supporting XSAVE feature 0x001: 'x87 floating point registers'
";

const NULL_DEREF: &str = "BUG: kernel NULL pointer dereference, address: 0000000000000008
#PF: supervisor read access in kernel mode
#PF: error_code(0x0000) - not-present page
PGD 0 P4D 0
Oops: 0000 [#1] PREEMPT SMP NOPTI
CPU: {cpu} PID: {pid} Comm: {task} Not tainted {release} #1  Debian 6.1.192-2
Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
RIP: 0010:ext4_fill_super+{off}
Code: 48 8b 47 08 <48> 8b 00 c3
RSP: 0018:ffffc90000013d48 EFLAGS: 00010246
Call Trace:
 <TASK>
 ? __die+0x23/0x70
 ? page_fault_oops+{off}
 ? exc_page_fault+{off}
 ? asm_exc_page_fault+0x26/0x30
 ext4_fill_super+{off}
 get_tree_bdev+{off}
 vfs_get_tree+0x25/0xd0
 path_mount.isra.0+{off}
 __x64_sys_mount+{off}
 do_syscall_64+0x5d/0x90
 entry_SYSCALL_64_after_hwframe+0x6e/0xd8
 </TASK>
Modules linked in: ext4 crc16 mbcache jbd2
CR2: 0000000000000008
---[ end trace 0000000000000000 ]---
Kernel panic - not syncing: Fatal exception
";

const GPF: &str = "general protection fault, probably for non-canonical address 0xdead000000000122: 0000 [#1] PREEMPT SMP NOPTI
CPU: {cpu} PID: {pid} Comm: {task} Tainted: G        W          {release} #1
RIP: 0010:list_del_entry_valid.cold+{off}
Call Trace:
 <TASK>
 __list_del_entry+{off}
 release_pages+{off}
 tlb_batch_pages_flush+{off}
 </TASK>
Kernel panic - not syncing: Fatal exception
";

const KERNEL_BUG: &str = "------------[ cut here ]------------
kernel BUG at mm/slub.c:{line}!
invalid opcode: 0000 [#1] PREEMPT SMP NOPTI
CPU: {cpu} PID: {pid} Comm: {task} Not tainted {release} #1
RIP: 0010:__slab_free+{off}
Call Trace:
 <TASK>
 ? die+0x36/0x90
 ? do_trap+0xda/0x100
 ? exc_invalid_op+0x50/0x70
 kmem_cache_free+{off}
 ext4_destroy_inode+{off}
 destroy_inode+{off}
 </TASK>
";

const KASAN: &str = "==================================================================
BUG: KASAN: slab-use-after-free in nf_tables_rule_destroy+{off} [nf_tables]
Read of size 8 at addr {addr} by task {task}/{pid}

CPU: {cpu} PID: {pid} Comm: {task} Not tainted {release} #1
Call Trace:
 <TASK>
 dump_stack_lvl+0x44/0x5c
 print_report+0xc2/0x5f0
 kasan_report+0xc5/0x100
 nf_tables_rule_destroy+{off} [nf_tables]
 nf_tables_abort+{off} [nf_tables]
 nfnetlink_rcv_batch+{off}
 </TASK>
";

const SOFT_LOCKUP: &str = "watchdog: BUG: soft lockup - CPU#{cpu} stuck for 22s! [{task}:{pid}]
Modules linked in: xfs
CPU: {cpu} PID: {pid} Comm: {task} Not tainted {release} #1
RIP: 0010:native_queued_spin_lock_slowpath+{off}
Call Trace:
 <IRQ>
 ? watchdog_timer_fn+0x1b4/0x210
 ? __hrtimer_run_queues+0x112/0x2b0
 </IRQ>
 <TASK>
 _raw_spin_lock+{off}
 xfs_log_force_seq+{off} [xfs]
 </TASK>
Kernel panic - not syncing: softlockup: hung tasks
";

const HUNG_TASK: &str = "INFO: task {task}:{pid} blocked for more than 122 seconds.
      Not tainted {release} #1
\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.
task:{task}     state:D stack:0     pid:{pid}   ppid:2      flags:0x00004000
Call Trace:
 <TASK>
 __schedule+{off}
 schedule+0x5e/0xd0
 io_schedule+0x46/0x70
 folio_wait_bit_common+{off}
 jbd2_journal_commit_transaction+{off} [jbd2]
 kjournald2+{off} [jbd2]
 kthread+0xe6/0x110
 ret_from_fork+0x1f/0x30
 </TASK>
Kernel panic - not syncing: hung_task: blocked tasks
";

const WARN_THEN_PANIC: &str = "------------[ cut here ]------------
WARNING: CPU: {cpu} PID: {pid} at drivers/gpu/drm/drm_atomic.c:{line} drm_atomic_check_only+{off} [drm]
Modules linked in: drm
CPU: {cpu} PID: {pid} Comm: {task} Not tainted {release} #1
RIP: 0010:drm_atomic_check_only+{off} [drm]
Call Trace:
 <TASK>
 drm_atomic_commit+{off} [drm]
 drm_client_modeset_commit_atomic+{off} [drm]
 </TASK>
Kernel panic - not syncing: kernel: panic_on_warn set ...
";

const LOCKDEP: &str = "======================================================
WARNING: possible circular locking dependency detected
{release} #1 Not tainted
------------------------------------------------------
{task}/{pid} is trying to acquire lock:
{addr} (&mm->mmap_lock){++++}-{3:3}, at: __might_fault+{off}
Call Trace:
 <TASK>
 dump_stack_lvl+0x44/0x5c
 check_noncircular+{off}
 __lock_acquire+{off}
 lock_acquire+{off}
 __might_fault+{off}
 perf_copy_attr+{off}
 </TASK>
";

const UBSAN: &str =
    "================================================================================
UBSAN: shift-out-of-bounds in drivers/net/ethernet/foo/foo_main.c:{line}:17
shift exponent 64 is too large for 64-bit type 'long unsigned int'
CPU: {cpu} PID: {pid} Comm: {task} Not tainted {release} #1
Call Trace:
 <TASK>
 dump_stack_lvl+0x44/0x5c
 __ubsan_handle_shift_out_of_bounds.cold+{off}
 foo_set_rx_mode+{off}
 </TASK>
";

const SYSRQ: &str = "sysrq: Trigger a crash
Kernel panic - not syncing: sysrq triggered crash
CPU: {cpu} PID: {pid} Comm: {task} Kdump: loaded Not tainted {release} #1  Debian 6.1.192-2
Call Trace:
 <TASK>
 dump_stack_lvl+0x44/0x5c
 panic+0x118/0x2f4
 ? _printk+0x68/0x83
 sysrq_handle_crash+{off}
 __handle_sysrq.cold+{off}
 write_sysrq_trigger+{off}
 proc_reg_write+0x56/0xa0
 </TASK>
";

fn report_of(template: &str, build: &Build) -> CrashReport {
    let text = log(BOOT, build) + &log(template, build);
    find_report(&text).unwrap_or_else(|| panic!("no report found in:\n{text}"))
}

/// Every report: its expected title and frames, the same signature in both builds.
#[test]
fn each_report_kind_gets_its_title_frames_and_a_build_independent_signature() {
    let cases: [(&str, ReportKind, &str, &[&str]); 10] = [
        (
            NULL_DEREF,
            ReportKind::Bug,
            "BUG: kernel NULL pointer dereference in ext4_fill_super",
            &["ext4_fill_super", "get_tree_bdev", "vfs_get_tree"],
        ),
        (
            GPF,
            ReportKind::GeneralProtectionFault,
            "general protection fault in list_del_entry_valid",
            &["__list_del_entry", "release_pages", "tlb_batch_pages_flush"],
        ),
        (
            KERNEL_BUG,
            ReportKind::Bug,
            "kernel BUG at mm/slub.c in __slab_free",
            &["kmem_cache_free", "ext4_destroy_inode", "destroy_inode"],
        ),
        (
            KASAN,
            ReportKind::Kasan,
            "KASAN: slab-use-after-free in nf_tables_rule_destroy",
            &[
                "nf_tables_rule_destroy",
                "nf_tables_abort",
                "nfnetlink_rcv_batch",
            ],
        ),
        (
            SOFT_LOCKUP,
            ReportKind::SoftLockup,
            "BUG: soft lockup in native_queued_spin_lock_slowpath",
            &["_raw_spin_lock", "xfs_log_force_seq"],
        ),
        (
            HUNG_TASK,
            ReportKind::HungTask,
            "INFO: task hung in folio_wait_bit_common",
            &[
                "folio_wait_bit_common",
                "jbd2_journal_commit_transaction",
                "kjournald2",
            ],
        ),
        (
            WARN_THEN_PANIC,
            ReportKind::Warning,
            "WARNING in drm_atomic_check_only",
            &["drm_atomic_commit", "drm_client_modeset_commit_atomic"],
        ),
        (
            LOCKDEP,
            ReportKind::Lockdep,
            "possible circular locking dependency detected in __might_fault",
            &["__might_fault", "perf_copy_attr"],
        ),
        (
            UBSAN,
            ReportKind::Ubsan,
            "UBSAN: shift-out-of-bounds in drivers/net/ethernet/foo/foo_main.c:N:N",
            &["foo_set_rx_mode"],
        ),
        (
            SYSRQ,
            ReportKind::Panic,
            "Kernel panic - not syncing: sysrq triggered crash",
            &[
                "sysrq_handle_crash",
                "__handle_sysrq",
                "write_sysrq_trigger",
            ],
        ),
    ];
    let mut ids = Vec::new();
    for (template, kind, title, frames) in cases {
        let a = report_of(template, &A);
        let b = report_of(template, &B);
        assert_eq!(a.kind, kind, "{title}");
        assert_eq!(a.title, title);
        let got: Vec<&str> = a.frames.iter().take(3).map(String::as_str).collect();
        assert_eq!(got, frames, "{title}");
        let (sa, sb) = (Signature::of(&a), Signature::of(&b));
        assert_eq!(sa, sb, "{title}: the two builds differ");
        ids.push(sa.id);
    }
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "two different bugs share a signature: {ids:?}"
    );
}

#[test]
fn the_task_line_gives_cpu_pid_task_and_release() {
    let r = report_of(NULL_DEREF, &B);
    assert_eq!(r.cpu, Some(37));
    assert_eq!(r.pid, Some(48213));
    assert_eq!(r.task.as_deref(), Some("kworker/37:2"));
    assert_eq!(r.kernel_release.as_deref(), Some("6.1.0-60-amd64"));
    let tainted = report_of(GPF, &A);
    assert_eq!(
        tainted.kernel_release.as_deref(),
        Some("6.1.0-56-cloud-amd64")
    );
    assert_eq!(
        r.line,
        "BUG: kernel NULL pointer dereference, address: 0000000000000008"
    );
}

#[test]
fn the_same_title_with_a_different_call_path_is_a_different_signature() {
    let other_path = NULL_DEREF.replace("get_tree_bdev", "ext4_remount");
    let a = Signature::of(&report_of(NULL_DEREF, &A));
    let b = Signature::of(&report_of(&other_path, &A));
    assert_eq!(a.title, b.title);
    assert_ne!(a.id, b.id);
}

#[test]
fn the_first_fatal_report_wins_over_an_earlier_warning_and_a_later_panic() {
    let benign_warning = "WARNING: CPU: 0 PID: 1 at fs/sysfs/dir.c:32 sysfs_warn_dup+0x5b/0x70\n";
    let text = log(BOOT, &A) + &log(benign_warning, &A) + &log(NULL_DEREF, &A);
    let report = find_report(&text).expect("report");
    assert_eq!(report.kind, ReportKind::Bug);
    // Without a fatal report, the warning is what there is.
    let only_warning = log(BOOT, &A) + &log(benign_warning, &A);
    assert_eq!(
        find_report(&only_warning).expect("warning").title,
        "WARNING in sysfs_warn_dup"
    );
}

#[test]
fn logs_without_a_report_or_without_timestamps_are_handled() {
    assert_eq!(find_report(&log(BOOT, &A)), None);
    assert_eq!(find_report(""), None);
    let bare: String = SYSRQ
        .replace("{cpu}", "0")
        .replace("{pid}", "1")
        .replace("{task}", "sh")
        .replace("{release}", "6.1.0")
        .replace("{off}", "0x1/0x2");
    let report = find_report(&bare).expect("report without timestamps");
    assert_eq!(
        report.title,
        "Kernel panic - not syncing: sysrq triggered crash"
    );
    assert_eq!(report.task.as_deref(), Some("sh"));
}

#[test]
fn timestamps_and_caller_ids_are_stripped_but_other_brackets_kept() {
    assert_eq!(strip_timestamp("[    8.484677] sysrq: x"), "sysrq: x");
    assert_eq!(
        strip_timestamp("[    8.484677] [    T1] sysrq: x"),
        "sysrq: x"
    );
    assert_eq!(strip_timestamp("[drm] Initialized"), "[drm] Initialized");
    assert_eq!(strip_timestamp("[ 1.0"), "[ 1.0");
}

#[test]
fn garbage_never_panics() {
    for text in [
        "Call Trace:\n",
        "BUG: \nCall Trace:\n ? \n+0x/0x\n",
        "RIP: \nRIP: 0010:\nOops: \nCPU: \nCPU: x PID: Comm:",
        "WARNING: CPU: 0 PID: 1 at\n",
        "\u{0}\u{ffff}[\u{1f600}] BUG: KASAN: in \n",
        "kernel BUG at !\n",
    ] {
        let _ = find_report(text);
    }
}
