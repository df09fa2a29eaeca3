//! Site hooks on the real daemon: `on_complete` and `on_log` run with the dump's facts in
//! `CRASHDROP_*` variables, and a hook that hangs is killed (with what it started) at its
//! timeout while other dumps' hooks and sessions go on.

use std::path::Path;
use std::time::{Duration, Instant};

use crashdrop_formats::{SynthMachine, SynthSpec};
use crashdrop_integration::{assert_sent, run, sender, stored_dumps, Receiver, TestCerts};

fn synthetic(path: &Path, seed: u64) {
    SynthMachine::new(&SynthSpec {
        memory_bytes: 16 << 20,
        seed,
        osrelease: "6.1.0-hooks".into(),
        crash_time: 1_700_000_000 + seed as i64,
    })
    .and_then(|m| m.write(path))
    .expect("synthetic vmcore");
}

fn wait_for_file(path: &Path, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if text.ends_with("END\n") {
                return text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn hooks_see_the_dump_and_a_hanging_one_is_killed_without_delaying_others() {
    let work = tempfile::tempdir().expect("tempdir");
    let out = work.path().join("hooks");
    std::fs::create_dir(&out).expect("hooks dir");
    let certs = TestCerts::new(&["slow-host", "fast-host"]);
    let store = work.path().join("store");
    // `slow-host`'s on_log never ends by itself (a unique sleep, to find it afterwards).
    let on_log = format!(
        "if [ \"$CRASHDROP_HOST\" = slow-host ]; then sleep 86399.5; fi; \
         echo \"$CRASHDROP_EVENT $CRASHDROP_KERNEL_LOG\" > {}/$CRASHDROP_HOST.log-event",
        out.display()
    );
    let on_complete = format!(
        "(env | grep ^CRASHDROP_ | sort; echo END) > {}/$CRASHDROP_HOST.env",
        out.display()
    );
    let receiver = Receiver::start(
        &store,
        &certs,
        &[
            "--on-log",
            &on_log,
            "--on-complete",
            &on_complete,
            "--hook-timeout-secs",
            "8",
        ],
    );
    let started = Instant::now();
    for (i, host) in ["slow-host", "fast-host"].into_iter().enumerate() {
        let vmcore = work.path().join(format!("vmcore-{i}"));
        synthetic(&vmcore, i as u64);
        assert_sent(
            &run(&mut sender(&receiver, &certs, host, &vmcore, 31)),
            &receiver,
        );
    }

    // fast-host's hooks ran while slow-host's on_log still hangs.
    let env = wait_for_file(&out.join("fast-host.env"), Duration::from_secs(6));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "fast-host's hook waited for the hanging one"
    );
    let dump = stored_dumps(&store)
        .into_iter()
        .find(|d| d.to_string_lossy().contains("fast-host"))
        .expect("fast-host's dump");
    for line in [
        "CRASHDROP_EVENT=on_complete".to_string(),
        "CRASHDROP_HOST=fast-host".to_string(),
        "CRASHDROP_STATE=complete".to_string(),
        "CRASHDROP_KERNEL=6.1.0-hooks".to_string(),
        "CRASHDROP_DUMP_LEVEL=31".to_string(),
        "CRASHDROP_KIND=panic".to_string(),
        "CRASHDROP_TITLE=Kernel panic - not syncing: sysrq triggered crash".to_string(),
        format!("CRASHDROP_DUMP_DIR={}", dump.display()),
    ] {
        assert!(
            env.lines().any(|l| l == line),
            "missing {line:?} in:\n{env}"
        );
    }
    assert!(
        env.lines()
            .any(|l| l.starts_with("CRASHDROP_SIGNATURE=") && l.len() == 20 + 16),
        "{env}"
    );
    let log_event =
        std::fs::read_to_string(out.join("fast-host.log-event")).expect("fast-host's on_log ran");
    assert_eq!(
        log_event.trim(),
        format!("on_log {}", dump.join("dmesg.txt").display())
    );

    // slow-host's on_log is killed at its timeout, and the sleep it started goes with it.
    receiver.wait_for_log("hook killed: still running after its timeout of 8s", 1);
    assert!(
        !out.join("slow-host.log-event").exists(),
        "the killed hook must not have gone on"
    );
    let still_running = std::process::Command::new("pgrep")
        .args(["-f", "^sleep 86399.5"])
        .output()
        .expect("pgrep");
    assert!(
        still_running.stdout.is_empty(),
        "the hook's child survived its kill: {}",
        String::from_utf8_lossy(&still_running.stdout)
    );
    // slow-host's own on_complete still ran.
    wait_for_file(&out.join("slow-host.env"), Duration::from_secs(10));
}
