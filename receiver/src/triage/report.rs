//! Finding the crash report in a kernel log and reading its facts.

use super::signature::mask_numbers;

/// Lines after a report's first line that still belong to it (its registers, trace, modules).
const REPORT_WINDOW: usize = 200;

/// The kinds of kernel report we recognise, by the line that opens them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReportKind {
    /// `Kernel panic - not syncing: …`
    #[default]
    Panic,
    /// `BUG: …` and `kernel BUG at …`
    Bug,
    /// `Oops: …` without a `BUG:` line before it.
    Oops,
    /// `general protection fault…` (also as `Oops: general protection fault…`).
    GeneralProtectionFault,
    /// `BUG: KASAN: …`
    Kasan,
    /// `UBSAN: …`
    Ubsan,
    /// lockdep's `WARNING: possible circular locking dependency detected` and friends.
    Lockdep,
    /// `watchdog: BUG: soft lockup - CPU#N stuck for Ns!`
    SoftLockup,
    /// `INFO: task NAME:PID blocked for more than N seconds.`
    HungTask,
    /// `WARNING: CPU: N PID: N at FILE:LINE FUNC+0x…`
    Warning,
}

impl ReportKind {
    fn is_fatal(self) -> bool {
        self != ReportKind::Warning
    }
}

/// The first crash report of a kernel log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrashReport {
    pub kind: ReportKind,
    /// The report's first line as logged, without its timestamp.
    pub line: String,
    /// The line with numbers, addresses and task names masked, and the faulting function where
    /// the report names one: `BUG: kernel NULL pointer dereference in ext4_fill_super`.
    pub title: String,
    /// The reliable frames of the report's call trace that are not generic reporting, locking,
    /// scheduling or entry code, innermost first, without offsets or compiler clone suffixes.
    pub frames: Vec<String>,
    /// The CPU, PID and task (`Comm:`) of the report's `CPU: … PID: … Comm: …` line.
    pub cpu: Option<u32>,
    pub pid: Option<u32>,
    pub task: Option<String>,
    /// The kernel release from that line (`Not tainted 6.1.0-56-cloud-amd64 #1`).
    pub kernel_release: Option<String>,
}

/// The crash report of `log` (a kernel log as `dmesg` or `vmcore-dmesg` prints it, with or
/// without `[    8.484677] ` timestamps): the first fatal report, or the first warning when
/// there is no fatal one, or when the panic is `panic_on_warn`'s. `None` when the log holds no
/// report we recognise.
pub fn find_report(log: &str) -> Option<CrashReport> {
    let lines: Vec<&str> = log.lines().map(strip_timestamp).collect();
    let reports: Vec<(usize, ReportKind)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| classify(line).map(|kind| (i, kind)))
        .collect();
    let first_warning = reports.iter().find(|(_, k)| !k.is_fatal()).copied();
    let chosen = match reports.iter().find(|(_, k)| k.is_fatal()).copied() {
        Some((at, ReportKind::Panic))
            if lines.get(at).is_some_and(|l| l.contains("panic_on_warn")) =>
        {
            first_warning
                .filter(|(w, _)| *w < at)
                .or(Some((at, ReportKind::Panic)))
        }
        Some(fatal) => Some(fatal),
        None => first_warning,
    };
    let (at, kind) = chosen?;
    let line = lines.get(at)?;
    let window = lines
        .get(at..lines.len().min(at + REPORT_WINDOW))
        .unwrap_or_default();
    // A report's body ends where the next report begins. `Oops:` after `BUG:` and the panic
    // that ends an Oops continue the same report.
    let body_end = window
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, l)| {
            classify(l).is_some_and(|k| !matches!(k, ReportKind::Oops | ReportKind::Panic))
        })
        .map_or(window.len(), |(i, _)| i);
    let body = window.get(..body_end).unwrap_or(window);
    let frames = call_trace(body);
    let fault = faulting_function(body);
    let mut report = CrashReport {
        kind,
        line: (*line).to_owned(),
        title: title(
            kind,
            line,
            fault.as_deref(),
            frames.first().map(String::as_str),
        ),
        frames,
        ..CrashReport::default()
    };
    if let Some(task_line) = body.iter().find(|l| l.starts_with("CPU: ")) {
        read_task_line(task_line, &mut report);
    }
    Some(report)
}

/// `line` without a leading `[ seconds.micros] ` timestamp (and a `[T123]`/`[C1]` caller id).
fn strip_timestamp(line: &str) -> &str {
    let mut rest = line;
    for _ in 0..2 {
        let trimmed = rest.trim_start();
        let Some(inner) = trimmed.strip_prefix('[') else {
            break;
        };
        let Some((stamp, after)) = inner.split_once(']') else {
            break;
        };
        let stamp = stamp.trim();
        let is_time = !stamp.is_empty() && stamp.chars().all(|c| c.is_ascii_digit() || c == '.');
        let is_caller = stamp.len() > 1
            && (stamp.starts_with('T') || stamp.starts_with('C'))
            && stamp.chars().skip(1).all(|c| c.is_ascii_digit());
        if !(is_time || is_caller) {
            break;
        }
        rest = after.strip_prefix(' ').unwrap_or(after);
    }
    rest
}

fn classify(line: &str) -> Option<ReportKind> {
    const LOCKDEP: [&str; 5] = [
        "WARNING: possible circular locking dependency detected",
        "WARNING: possible recursive locking detected",
        "WARNING: inconsistent lock state",
        "WARNING: suspicious RCU usage",
        "WARNING: bad unlock balance detected!",
    ];
    let kind = if line.starts_with("Kernel panic - not syncing") {
        ReportKind::Panic
    } else if line.starts_with("BUG: KASAN: ") {
        ReportKind::Kasan
    } else if line.starts_with("UBSAN: ") {
        ReportKind::Ubsan
    } else if line.starts_with("watchdog: BUG: soft lockup") || line.starts_with("BUG: soft lockup")
    {
        ReportKind::SoftLockup
    } else if line.starts_with("INFO: task ") && line.contains(" blocked for more than ") {
        ReportKind::HungTask
    } else if LOCKDEP.iter().any(|p| line.starts_with(p)) {
        ReportKind::Lockdep
    } else if line.starts_with("general protection fault")
        || line.starts_with("Oops: general protection fault")
    {
        ReportKind::GeneralProtectionFault
    } else if line.starts_with("kernel BUG at ") || line.starts_with("BUG: ") {
        ReportKind::Bug
    } else if line.starts_with("Oops: ") || line.starts_with("Oops - ") {
        ReportKind::Oops
    } else if line.starts_with("WARNING: CPU: ") {
        ReportKind::Warning
    } else {
        return None;
    };
    Some(kind)
}

fn title(kind: ReportKind, line: &str, fault: Option<&str>, first_frame: Option<&str>) -> String {
    let located = |what: String, func: Option<&str>| match func {
        Some(func) => format!("{what} in {func}"),
        None => what,
    };
    match kind {
        ReportKind::Panic => mask_numbers(line),
        ReportKind::Kasan => {
            // `BUG: KASAN: slab-out-of-bounds in foo+0x12/0x30`
            let what = line.strip_prefix("BUG: ").unwrap_or(line);
            match what.split_once(" in ") {
                Some((class, func)) => {
                    format!("{} in {}", mask_numbers(class), function_name(func))
                }
                None => mask_numbers(what),
            }
        }
        ReportKind::Ubsan => mask_numbers(line),
        ReportKind::SoftLockup => located("BUG: soft lockup".into(), fault.or(first_frame)),
        ReportKind::HungTask => located("INFO: task hung".into(), first_frame),
        ReportKind::Lockdep => {
            let what = line.strip_prefix("WARNING: ").unwrap_or(line);
            located(mask_numbers(what.trim_end_matches('!')), first_frame)
        }
        ReportKind::GeneralProtectionFault => {
            located("general protection fault".into(), fault.or(first_frame))
        }
        ReportKind::Bug => {
            let what = if let Some(at) = line.strip_prefix("kernel BUG at ") {
                // `kernel BUG at mm/slub.c:4218!`: the file names the bug, the line moves.
                let file = at.split(':').next().unwrap_or(at).trim_end_matches('!');
                format!("kernel BUG at {file}")
            } else {
                // `BUG: kernel NULL pointer dereference, address: 0000000000000008`
                // `BUG: unable to handle page fault for address: ffff…`
                // `BUG: scheduling while atomic: swapper/0/0/0x00000002`
                let what = line.strip_prefix("BUG: ").unwrap_or(line);
                let what = what.split([':', ',']).next().unwrap_or(what);
                let what = what.strip_suffix(" for address").unwrap_or(what);
                format!("BUG: {}", mask_numbers(what.trim()))
            };
            located(what, fault.or(first_frame))
        }
        ReportKind::Oops => located("Oops".into(), fault.or(first_frame)),
        ReportKind::Warning => {
            // `WARNING: CPU: 0 PID: 1 at drivers/foo.c:12 foo_probe+0x1/0x2 [foo]`
            let func = line
                .split_once(" at ")
                .and_then(|(_, at)| at.split_whitespace().nth(1))
                .map(function_name);
            located("WARNING".into(), func.as_deref().or(first_frame))
        }
    }
}

/// The kernel function of the report's `RIP: 0010:func+0x…/0x…` line; `None` for a user-space
/// RIP (`RIP: 0033:0x47b7a0`) or none at all.
fn faulting_function(body: &[&str]) -> Option<String> {
    body.iter().find_map(|line| {
        let rest = line.strip_prefix("RIP: ")?;
        let (_segment, at) = rest.split_once(':')?;
        let at = at.trim();
        if at.starts_with("0x") || !at.contains("+0x") {
            return None;
        }
        Some(function_name(at))
    })
}

/// Functions that every report of a kind passes through: they say how the kernel reported, not
/// what went wrong. Matched exactly, or as prefixes where they end in `*`.
const GENERIC_FRAMES: &[&str] = &[
    "dump_stack",
    "dump_stack_lvl",
    "show_stack",
    "show_regs",
    "panic",
    "vpanic",
    "nmi_panic",
    "__warn",
    "warn_slowpath_fmt",
    "warn_slowpath_null",
    "report_bug",
    "handle_bug",
    "die",
    "__die",
    "__die_body",
    "oops_end",
    "page_fault_oops",
    "kernelmode_fixup_or_oops",
    "no_context",
    "__bad_area_nosemaphore",
    "bad_area_nosemaphore",
    "do_user_addr_fault",
    "do_trap",
    "do_error_trap",
    "do_int3",
    "exc_*",
    "asm_*",
    "kasan_*",
    "__kasan_*",
    "__asan_*",
    "check_memory_region",
    "print_report",
    "print_address_description",
    "ubsan_*",
    "__ubsan_handle_*",
    "_printk",
    "printk",
    "vprintk*",
    "lockdep_*",
    "__lock_acquire",
    "lock_acquire",
    "lock_release",
    "print_circular_bug",
    "check_noncircular",
    "check_prev_add",
    "validate_chain",
    "__schedule",
    "schedule",
    "schedule_timeout",
    "schedule_preempt_disabled",
    "io_schedule",
    "io_schedule_timeout",
    "__mutex_lock",
    "mutex_lock",
    "mutex_lock_nested",
    "rwsem_down_*",
    "down_read",
    "down_write",
    "__wait_for_common",
    "wait_for_completion",
    "bit_wait_io",
    "__wait_on_bit",
    "out_of_line_wait_on_bit",
    "do_syscall_64",
    "entry_SYSCALL*",
    "ret_from_fork",
    "ret_from_fork_asm",
    "kthread",
    "worker_thread",
    "process_one_work",
    "sysvec_*",
    "__sysvec_*",
    "irq_exit_rcu",
    "__irq_exit_rcu",
    "watchdog_timer_fn",
    "__hrtimer_run_queues",
    "hrtimer_interrupt",
    "__do_softirq",
    "handle_softirqs",
];

fn is_generic(func: &str) -> bool {
    GENERIC_FRAMES.iter().any(|g| match g.strip_suffix('*') {
        Some(prefix) => func.starts_with(prefix),
        None => func == *g,
    })
}

/// The meaningful frames of the first `Call Trace:` in `body`.
fn call_trace(body: &[&str]) -> Vec<String> {
    let Some(start) = body.iter().position(|l| l.trim() == "Call Trace:") else {
        return Vec::new();
    };
    let mut frames = Vec::new();
    for line in body.iter().skip(start + 1) {
        let line = line.trim();
        if line == "</TASK>" || line.is_empty() {
            break;
        }
        // Kernels before 4.x print `[<ffffffff8100a1b2>] func+0x…`.
        let line = match line.strip_prefix("[<") {
            Some(rest) => rest.split_once(">]").map_or(rest, |(_, f)| f.trim_start()),
            None => line,
        };
        // `? func`: a stale address on the stack, not a caller.
        if line.starts_with("? ") {
            continue;
        }
        let Some(token) = line.split_whitespace().next() else {
            continue;
        };
        if !is_frame(token) {
            continue; // `<IRQ>`, `RIP: …`, register lines between the frames
        }
        let func = function_name(token);
        if !is_generic(&func) {
            frames.push(func);
        }
    }
    frames
}

/// `func+0x16/0x20`
fn is_frame(token: &str) -> bool {
    let Some((name, offsets)) = token.split_once("+0x") else {
        return false;
    };
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$');
    let offsets_ok = offsets.split_once("/0x").is_some_and(|(off, size)| {
        !off.is_empty()
            && !size.is_empty()
            && off.chars().all(|c| c.is_ascii_hexdigit())
            && size.chars().all(|c| c.is_ascii_hexdigit())
    });
    name_ok && offsets_ok
}

/// `__handle_sysrq.cold+0x44/0x11c` → `__handle_sysrq`: offsets move between builds, and the
/// compiler's clone suffixes (`.cold`, `.isra.0`, `.constprop.0`, `.part.0`) come and go.
fn function_name(token: &str) -> String {
    let name = token.split('+').next().unwrap_or(token);
    let name = name.split('.').next().unwrap_or(name);
    name.trim().to_owned()
}

/// `CPU: 1 PID: 1 Comm: init Kdump: loaded Not tainted 6.1.0-56-cloud-amd64 #1 …` (6.10+ adds
/// `UID: 0` after the CPU; tainted kernels print `Tainted: G        W` and the release).
fn read_task_line(line: &str, report: &mut CrashReport) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |key: &str| {
        words
            .iter()
            .position(|w| *w == key)
            .and_then(|i| words.get(i + 1))
            .copied()
    };
    report.cpu = after("CPU:").and_then(|w| w.parse().ok());
    report.pid = after("PID:").and_then(|w| w.parse().ok());
    report.task = after("Comm:").map(str::to_owned);
    let release_from = words
        .iter()
        .position(|w| *w == "tainted" || *w == "Tainted:")
        .map(|i| i + 1);
    report.kernel_release = release_from.and_then(|from| {
        words
            .iter()
            .skip(from)
            .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
            .map(|w| (*w).to_owned())
    });
}

#[cfg(test)]
mod tests;
