//! The synthetic kernel's log: a plausible x86_64 boot of this machine (its memory map, memory
//! size, two CPUs), a short uptime, and a `sysrq` crash ending in `Kernel panic`.

use super::layout::{Layout, MIB, SYNTH_STEXT};
use super::{mix, SynthSpec, XorShift};

/// One record of the synthetic kernel log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthLogLine {
    /// Nanoseconds since boot (`printk_info.ts_nsec`).
    pub ts_nsec: u64,
    /// Log level 0..7 (`printk_info.level`).
    pub level: u8,
    /// `printk_info.caller_id`: a task id, or bit 31 and a CPU number.
    pub caller: u32,
    /// The text, one line, printable ASCII.
    pub text: String,
}

/// Lines with their seconds-since-boot as given; `ts` strictly increasing.
struct Log {
    lines: Vec<SynthLogLine>,
    ts: u64,
    rng: XorShift,
}

impl Log {
    /// A line `step_us` microseconds (plus jitter) after the previous one.
    fn at(&mut self, step_us: u64, level: u8, caller: u32, text: String) {
        let jitter = self.rng.next() % (step_us / 4 + 1);
        self.ts += (step_us + jitter) * 1000 + self.rng.next() % 1000;
        self.lines.push(SynthLogLine {
            ts_nsec: self.ts,
            level,
            caller,
            text,
        });
    }
}

const INFO: u8 = 6;
const WARNING: u8 = 4;
const EMERG: u8 = 0;

/// The log of the synthetic machine of `spec`.
pub(super) fn boot_log(spec: &SynthSpec, layout: &Layout) -> Vec<SynthLogLine> {
    let mut log = Log {
        lines: Vec::new(),
        ts: 0,
        rng: XorShift(mix(spec.seed ^ 0x106) | 1),
    };
    let rel = &spec.osrelease;
    let first = |log: &mut Log, text: String| {
        log.lines.push(SynthLogLine {
            ts_nsec: 0,
            level: INFO,
            caller: 0,
            text,
        })
    };
    first(
        &mut log,
        format!("Linux version {rel} (crashdrop@synthetic) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC crashdrop synthetic"),
    );
    first(
        &mut log,
        format!("Command line: BOOT_IMAGE=/boot/vmlinuz-{rel} root=/dev/vda1 ro console=ttyS0 crashkernel=256M"),
    );
    first(&mut log, "BIOS-provided physical RAM map:".into());
    let e820 = |log: &mut Log, start: u64, end: u64, kind: &str| {
        first(
            log,
            format!("BIOS-e820: [mem {start:#018x}-{:#018x}] {kind}", end - 1),
        )
    };
    e820(&mut log, 0, 0x1000, "reserved");
    let mut prev = 0x1000;
    for r in &layout.ram {
        if r.start > prev {
            e820(&mut log, prev, r.start, "reserved");
        }
        e820(&mut log, r.start, r.end, "usable");
        prev = r.end;
    }
    first(&mut log, "NX (Execute Disable) protection: active".into());
    first(
        &mut log,
        "DMI: crashdrop Synthetic PC, BIOS 1.16.3 04/01/2014".into(),
    );
    first(&mut log, "tsc: Fast TSC calibration using PIT".into());
    first(&mut log, "tsc: Detected 2995.200 MHz processor".into());
    first(
        &mut log,
        format!(
            "last_pfn = {:#x} max_arch_pfn = 0x400000000",
            layout.end_pfn
        ),
    );
    first(
        &mut log,
        "x86/PAT: Configuration [0-7]: WB  WC  UC- UC  WB  WP  UC- WT  ".into(),
    );
    first(&mut log, "RAMDISK: [mem 0x3fb8f000-0x3fff7fff]".into());
    first(
        &mut log,
        "ACPI: Early table checksum verification disabled".into(),
    );
    let crashkernel = layout.ram[1].start + (layout.ram[1].end - layout.ram[1].start) / 2;
    first(
        &mut log,
        format!(
            "Reserving 256MB of memory at {}MB for crashkernel (System RAM: {}MB)",
            crashkernel / MIB,
            spec.memory_bytes / MIB
        ),
    );
    first(&mut log, "Zone ranges:".into());
    first(
        &mut log,
        "  DMA      [mem 0x0000000000001000-0x0000000000ffffff]".into(),
    );
    first(
        &mut log,
        "  DMA32    [mem 0x0000000001000000-0x00000000ffffffff]".into(),
    );
    first(&mut log, "Movable zone start for each node".into());
    first(
        &mut log,
        "setup_percpu: NR_CPUS:8192 nr_cpumask_bits:2 nr_cpu_ids:2 nr_node_ids:1".into(),
    );
    first(
        &mut log,
        format!("Kernel command line: BOOT_IMAGE=/boot/vmlinuz-{rel} root=/dev/vda1 ro console=ttyS0 crashkernel=256M"),
    );
    let total_k = layout
        .ram
        .iter()
        .map(|r| (r.end - r.start) / 1024)
        .sum::<u64>();
    let image_k = (layout.image.end - layout.image.start) / 1024;
    let reserved_k = image_k + (layout.vmemmap_end() - layout.memblock.start) / 1024 + 1024;
    first(
        &mut log,
        format!(
            "Memory: {}K/{total_k}K available ({}K kernel code, {}K rwdata, {}K rodata, 2876K init, 3428K bss, {reserved_k}K reserved, 0K cma-reserved)",
            total_k.saturating_sub(reserved_k),
            image_k * 2 / 5,
            image_k / 8,
            image_k / 4
        ),
    );
    first(
        &mut log,
        "SLUB: HWalign=64, Order=0-3, MinObjects=0, CPUs=2, Nodes=1".into(),
    );
    first(&mut log, "rcu: Hierarchical RCU implementation.".into());
    first(
        &mut log,
        "NR_IRQS: 524544, nr_irqs: 440, preallocated irqs: 16".into(),
    );
    first(&mut log, "Console: colour VGA+ 80x25".into());
    first(&mut log, "printk: console [ttyS0] enabled".into());

    let t = |n: u32| n; // task id
    let cpu = |n: u32| 0x8000_0000 | n;
    log.ts = 21_000_000 + log.rng.next() % 1_000_000;
    for text in [
        "Calibrating delay loop (skipped), value calculated using timer frequency.. 5990.40 BogoMIPS (lpj=11980800)",
        "pid_max: default: 32768 minimum: 301",
        "LSM: Security Framework initializing",
        "Mount-cache hash table entries: 8192 (order: 4, 65536 bytes, linear)",
        "smp: Bringing up secondary CPUs ...",
        "x86: Booting SMP configuration:",
        ".... node  #0, CPUs:      #1",
        "smp: Brought up 1 node, 2 CPUs",
        "devtmpfs: initialized",
        "clocksource: jiffies: mask: 0xffffffff max_cycles: 0xffffffff, max_idle_ns: 7645041785100000 ns",
        "NET: Registered PF_NETLINK/PF_ROUTE protocol family",
        "PCI: Using configuration type 1 for base access",
        "ACPI: Interpreter enabled",
        "PCI host bridge to bus 0000:00",
        "iommu: Default domain type: Translated ",
        "NetLabel: Initializing",
        "clocksource: Switched to clocksource kvm-clock",
        "NET: Registered PF_INET protocol family",
        "Freeing initrd memory: 4516K",
        "Initialise system trusted keyrings",
        "Key type asymmetric registered",
        "Serial: 8250/16550 driver, 4 ports, IRQ sharing enabled",
        "00:00: ttyS0 at I/O 0x3f8 (irq = 4, base_baud = 115200) is a 16550A",
        "rtc_cmos 00:01: RTC can wake from S4",
        "NET: Registered PF_INET6 protocol family",
        "Loading compiled-in X.509 certificates",
    ] {
        log.at(9_000, INFO, t(1), text.into());
    }
    log.at(
        40_000,
        INFO,
        t(1),
        "Freeing unused kernel image (initmem) memory: 2876K".into(),
    );
    log.at(
        2_000,
        INFO,
        t(1),
        "Write protecting the kernel read-only data: 26624k".into(),
    );
    log.at(3_000, INFO, t(1), "Run /init as init process".into());
    for text in [
        "virtio_blk virtio1: [vda] 20971520 512-byte logical blocks (10.7 GB/10.0 GiB)",
        " vda: vda1 vda14 vda15",
        "virtio_net virtio0 enp0s2: renamed from eth0",
        "EXT4-fs (vda1): mounted filesystem with ordered data mode. Quota mode: none.",
    ] {
        log.at(
            60_000,
            INFO,
            t(96 + log.lines.len() as u32 % 7),
            text.into(),
        );
    }
    log.at(
        400_000,
        INFO,
        t(1),
        "systemd[1]: systemd 252.33-1~deb12u1 running in system mode".into(),
    );
    log.at(
        90_000,
        INFO,
        t(1),
        "systemd[1]: Detected virtualization kvm.".into(),
    );
    log.at(
        80_000,
        INFO,
        t(1),
        "systemd[1]: Hostname set to <synthetic>.".into(),
    );
    log.at(
        700_000,
        INFO,
        t(212),
        "EXT4-fs (vda1): re-mounted. Quota mode: none.".into(),
    );
    log.at(
        1_300_000,
        INFO,
        t(301),
        "kdump-tools[301]: Starting kdump-tools:".into(),
    );
    log.at(
        50_000,
        INFO,
        t(309),
        "kdump-tools[309]: loaded kdump kernel.".into(),
    );
    log.at(
        2_500_000,
        WARNING,
        cpu(1),
        "hrtimer: interrupt took 2113425 ns".into(),
    );

    // The crash: `echo c > /proc/sysrq-trigger`.
    let pid = 1000 + (log.rng.next() % 3000) as u32;
    log.at(9_000_000, INFO, t(pid), "sysrq: Trigger a crash".into());
    log.at(
        300,
        EMERG,
        t(pid),
        "Kernel panic - not syncing: sysrq triggered crash".into(),
    );
    log.at(
        300,
        WARNING,
        t(pid),
        format!("CPU: 1 PID: {pid} Comm: bash Kdump: loaded Not tainted {rel} #1"),
    );
    log.at(
        300,
        WARNING,
        t(pid),
        "Hardware name: crashdrop Synthetic PC, BIOS 1.16.3 04/01/2014".into(),
    );
    log.at(300, WARNING, t(pid), "Call Trace:".into());
    for frame in [
        " <TASK>",
        " dump_stack_lvl+0x44/0x5c",
        " panic+0x118/0x2f4",
        " sysrq_handle_crash+0x16/0x20",
        " __handle_sysrq.cold+0x44/0x11c",
        " write_sysrq_trigger+0x24/0x40",
        " proc_reg_write+0x56/0xa0",
        " vfs_write+0xc7/0x3f0",
        " ksys_write+0x6b/0xf0",
        " do_syscall_64+0x5d/0x90",
        " entry_SYSCALL_64_after_hwframe+0x6e/0xd8",
        " </TASK>",
    ] {
        log.at(60, WARNING, t(pid), frame.into());
    }
    let offset = SYNTH_STEXT - super::layout::LINK_STEXT;
    log.at(
        200,
        EMERG,
        t(pid),
        format!("Kernel Offset: {offset:#x} from 0xffffffff81000000 (relocation range: 0xffffffff80000000-0xffffffffbfffffff)"),
    );
    log.lines
}
