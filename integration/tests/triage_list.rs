//! Fleet triage over a store the test fills: three real sends of synthetic crashes (two hosts,
//! two kernel builds, the same sysrq panic) and dump directories written beside them whose logs
//! are real kernel report formats (a general protection fault on two hosts and builds, a soft
//! lockup), plus one dump without a log. `crashdropd list --group-by signature` must count each
//! bug's dumps, hosts and kernels; `list --host/--since` must filter; the table shows titles.

use std::path::Path;
use std::process::{Command, Output};

use crashdrop_formats::{SynthMachine, SynthSpec};
use crashdrop_integration::{
    assert_sent, bin_path, record_after_kernel_log, run, sender, stored_dumps, Receiver, TestCerts,
};
use serde_json::Value;

const DAY: i64 = 86_400;
const T0: i64 = 1_700_000_000;

fn gpf_log(cpu: u32, release: &str, addr: &str, off: &str) -> String {
    format!(
        "[    0.000000] Linux version {release} (debian-kernel@lists.debian.org)
[  312.004411] general protection fault, probably for non-canonical address 0x{addr}: 0000 [#1] PREEMPT SMP NOPTI
[  312.004502] CPU: {cpu} PID: 4242 Comm: nft Not tainted {release} #1 Debian
[  312.004577] RIP: 0010:nft_set_elem_destroy+{off}
[  312.004601] Call Trace:
[  312.004602]  <TASK>
[  312.004603]  ? die_addr+0x36/0x90
[  312.004604]  ? asm_exc_general_protection+0x26/0x30
[  312.004605]  nft_set_elem_destroy+{off}
[  312.004606]  nft_pipapo_destroy.isra.0+0x6b/0x90 [nf_tables]
[  312.004607]  nf_tables_commit+{off} [nf_tables]
[  312.004608]  </TASK>
"
    )
}

const SOFT_LOCKUP: &str =
    "[ 1200.100000] watchdog: BUG: soft lockup - CPU#2 stuck for 22s! [kworker/2:1:88]
[ 1200.100010] CPU: 2 PID: 88 Comm: kworker/2:1 Not tainted 6.1.0-56-cloud-amd64 #1
[ 1200.100020] RIP: 0010:mlx5e_poll_tx_cq+0x1a4/0x5e0 [mlx5_core]
[ 1200.100030] Call Trace:
[ 1200.100031]  <IRQ>
[ 1200.100032]  mlx5e_napi_poll+0x9c/0x6f0 [mlx5_core]
[ 1200.100033]  __napi_poll+0x2b/0x160
[ 1200.100034]  net_rx_action+0x29e/0x350
[ 1200.100035]  </IRQ>
";

/// Writes `STORE/host/name/` as the receiver would have stored a dump whose log is `log`
/// (`None`: no log extracted), its dump.json derived from a real one (`template`) and recording
/// no `crash`, as records from before it existed: `list` must read the title from `dmesg.txt`.
fn write_dump(
    store: &Path,
    template: &Value,
    host: &str,
    time: i64,
    release: &str,
    log: Option<&str>,
) {
    let id = format!("{:064x}", time as u64 ^ host.len() as u64);
    let dir = store.join(host).join(format!("{time}-{}", &id[..12]));
    std::fs::create_dir_all(&dir).expect("dump dir");
    let mut record = template.clone();
    record["host"] = host.into();
    record["dump_id"] = id.into();
    record["crash_time"] = time.into();
    record["crash_time_utc"] = Value::Null;
    record["kernel_release"] = release.into();
    record["crash"] = Value::Null;
    record["kernel_log"] = Value::Null;
    if let Some(log) = log {
        std::fs::write(dir.join("dmesg.txt"), log).expect("dmesg.txt");
        record["kernel_log"] = "dmesg.txt".into();
    }
    std::fs::write(dir.join("dump.json"), record.to_string()).expect("dump.json");
}

fn crashdropd(store: &Path, args: &[&str]) -> Output {
    let out = run(Command::new(bin_path("crashdropd"))
        .arg("list")
        .arg("--store")
        .arg(store)
        .args(args));
    assert!(
        out.status.success(),
        "crashdropd list {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(store: &Path, args: &[&str]) -> Vec<Value> {
    let out = crashdropd(store, args);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn list_groups_a_fleets_crashes_by_signature_and_filters_by_host_and_time() {
    let work = tempfile::tempdir().expect("tempdir");
    let certs = TestCerts::new(&["synth-a", "synth-b"]);
    let store = work.path().join("store");
    let receiver = Receiver::start(&store, &certs, &[]);
    // The real path: the same panic from two hosts and two kernel builds.
    for (i, (host, release)) in [
        ("synth-a", "6.1.0-56-cloud-amd64"),
        ("synth-a", "6.1.0-60-cloud-amd64"),
        ("synth-b", "6.1.0-60-cloud-amd64"),
    ]
    .into_iter()
    .enumerate()
    {
        let vmcore = work.path().join(format!("vmcore-{i}"));
        SynthMachine::new(&SynthSpec {
            memory_bytes: 16 << 20,
            seed: i as u64,
            osrelease: release.into(),
            crash_time: T0 + i as i64 * DAY,
        })
        .and_then(|m| m.write(&vmcore))
        .expect("synthetic vmcore");
        assert_sent(
            &run(&mut sender(&receiver, &certs, host, &vmcore, 31)),
            &receiver,
        );
    }
    let sent = stored_dumps(&store);
    assert_eq!(sent.len(), 3, "{sent:?}");
    let records: Vec<Value> = sent
        .iter()
        .map(|d| record_after_kernel_log(d, &receiver))
        .collect();
    for r in &records {
        assert_eq!(
            r["crash"]["title"], "Kernel panic - not syncing: sysrq triggered crash",
            "{r:#}"
        );
    }
    let template = &records[0];
    let gpf_a = gpf_log(3, "6.1.0-56-cloud-amd64", "dead4ead00000000", "0x2f/0x90");
    let gpf_b = gpf_log(41, "6.1.0-61-amd64", "6b6b6b6b6b6b6b73", "0x31/0xa0");
    write_dump(
        &store,
        template,
        "web-1",
        T0 + 5 * DAY,
        "6.1.0-56-cloud-amd64",
        Some(&gpf_a),
    );
    write_dump(
        &store,
        template,
        "web-2",
        T0 + 6 * DAY,
        "6.1.0-61-amd64",
        Some(&gpf_b),
    );
    write_dump(
        &store,
        template,
        "db-1",
        T0 + 4 * DAY,
        "6.1.0-56-cloud-amd64",
        Some(SOFT_LOCKUP),
    );
    write_dump(
        &store,
        template,
        "db-1",
        T0 + 7 * DAY,
        "6.1.0-56-cloud-amd64",
        None,
    );

    let groups = json(&store, &["--group-by", "signature", "--json"]);
    assert_eq!(groups.len(), 4, "{groups:#?}");
    // Most dumps first: the panic (3 dumps, 2 hosts, 2 kernels).
    let panic = &groups[0];
    assert_eq!(
        panic["title"],
        "Kernel panic - not syncing: sysrq triggered crash"
    );
    assert_eq!(
        (panic["dumps"].as_u64(), panic["hosts"].as_u64()),
        (Some(3), Some(2)),
        "{panic:#}"
    );
    assert_eq!(
        panic["host_names"],
        serde_json::json!(["synth-a", "synth-b"])
    );
    assert_eq!(
        panic["kernels"],
        serde_json::json!(["6.1.0-56-cloud-amd64", "6.1.0-60-cloud-amd64"])
    );
    assert_eq!(panic["first_seen"], T0);
    assert_eq!(panic["last_seen"], T0 + 2 * DAY);
    assert_eq!(panic["first_seen_utc"], "2023-11-14T22:13:20Z");
    assert_eq!(panic["signature"], records[0]["crash"]["signature"]);
    let gpf = &groups[1];
    assert_eq!(
        gpf["title"], "general protection fault in nft_set_elem_destroy",
        "{gpf:#}"
    );
    assert_eq!(
        (gpf["dumps"].as_u64(), gpf["hosts"].as_u64()),
        (Some(2), Some(2)),
        "{gpf:#}"
    );
    assert_eq!(gpf["kernels"].as_array().map(Vec::len), Some(2), "{gpf:#}");
    assert_eq!(gpf["last_seen"], T0 + 6 * DAY);
    assert_eq!(gpf["frames"][0], "nft_set_elem_destroy");
    // Two single dumps, the later-seen first: the log-less dump, then the soft lockup.
    assert!(
        groups[2]["signature"].is_null() && groups[2]["title"].is_null(),
        "{groups:#?}"
    );
    assert_eq!(groups[2]["dumps"], 1);
    assert_eq!(groups[3]["title"], "BUG: soft lockup in mlx5e_poll_tx_cq");
    let signatures: std::collections::HashSet<String> =
        groups.iter().map(|g| g["signature"].to_string()).collect();
    assert_eq!(signatures.len(), 4, "different bugs, different signatures");

    // The table: one row per signature, titles included.
    let table = String::from_utf8_lossy(&crashdropd(&store, &["--group-by", "signature"]).stdout)
        .into_owned();
    assert_eq!(table.lines().count(), 5, "{table}");
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("    3     2 ")),
        "{table}"
    );

    // Filters, on the dump list.
    let all = json(&store, &["--json"]);
    assert_eq!(all.len(), 7);
    let web1 = json(&store, &["--json", "--host", "web-1"]);
    assert_eq!(web1.len(), 1);
    assert_eq!(
        web1[0]["crash"]["title"],
        "general protection fault in nft_set_elem_destroy"
    );
    let recent = json(&store, &["--json", "--since", "2023-11-19T22:13:20Z"]);
    let hosts: Vec<&str> = recent.iter().filter_map(|d| d["host"].as_str()).collect();
    assert_eq!(hosts, ["db-1", "web-1", "web-2"], "{recent:#?}");
    let grouped_recent = json(
        &store,
        &["--json", "--group-by", "signature", "--since", "2023-11-15"],
    );
    assert_eq!(grouped_recent[0]["dumps"], 2, "{grouped_recent:#?}");
    let table =
        String::from_utf8_lossy(&crashdropd(&store, &["--host", "db-1"]).stdout).into_owned();
    assert!(
        table.lines().next().is_some_and(|l| l.ends_with("TITLE")),
        "{table}"
    );
    assert!(
        table.contains("BUG: soft lockup in mlx5e_poll_tx_cq"),
        "{table}"
    );
}
