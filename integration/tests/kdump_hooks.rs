//! The dracut module (`dist/dracut/99crashdrop/module-setup.sh`, kdump-utils) and the
//! initramfs-tools hook (`dist/initramfs-tools/`, kdump-tools) build the capture initramfs:
//! their own install code runs, with stub `inst_*` / `copy_*` functions that copy into a
//! staging tree the way dracut and mkinitramfs do, and the test's initramfs is made from exactly
//! that tree. Then a QEMU kdump cycle per stack: the capture kernel runs the installed entry
//! point (kdump-utils' core collector call of `crashdrop-kdump`; the hook's init-premount
//! script) with the installed `/etc/crashdrop/sender.toml`, and the dump it sends over TLS must
//! verify on the receiver with the panic line in `dmesg.txt`.
//!
//! The dracut run also starts with the capture kernel's network down for 5 s (the sender waits,
//! `--wait-network`) and a first receiver that does not answer (the config's fallback receiver
//! takes the dump).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use crashdrop_integration::qemu::{
    Guest, KdumpCapture, KernelPackage, BUSYBOX, HOST_ADDR, KDUMP_TIMEOUT, KEXEC, PANIC_LINE,
};
use crashdrop_integration::{
    bin_path, record_after_kernel_log, require_tools, run, skip, stored_dumps, workspace_root,
    Receiver, TestCerts,
};

const HOST: &str = "kdump-guest";
const HOOK_EXIT: &str = "CRASHDROP-HOOK-EXIT ";

static ONE_GUEST: Mutex<()> = Mutex::new(());

/// The sender config and credentials as an admin would lay them out, in `dir`: CA and key by
/// relative path, the certificate by absolute path.
fn write_config(dir: &Path, certs: &TestCerts, receivers: &[String]) -> PathBuf {
    let host = certs.host(HOST);
    std::fs::copy(&certs.ca.cert, dir.join("ca.pem")).expect("copy ca");
    std::fs::copy(&host.cert, dir.join("host.pem")).expect("copy cert");
    std::fs::copy(&host.key, dir.join("host.key")).expect("copy key");
    let list: Vec<String> = receivers.iter().map(|r| format!("{r:?}")).collect();
    let config = dir.join("sender.toml");
    std::fs::write(
        &config,
        format!(
            "# crashdrop-send settings for the capture kernel\n\
             receivers = [{}]\n\
             server_name = \"localhost\"   # the test receiver's certificate name\n\
             ca = \"ca.pem\"\n\
             cert = \"{}\"\n\
             key = \"host.key\"\n\
             dump_level = 31\n\
             retry_for = \"5m\"\n\
             io_timeout = 20\n\
             wait_network = \"2m\"\n",
            list.join(", "),
            dir.join("host.pem").display()
        ),
    )
    .expect("write config");
    config
}

/// Which stack's installer to run.
#[derive(Clone, Copy, Debug)]
enum Stack {
    Dracut,
    InitramfsTools,
}

/// Runs the stack's installer with stubs that copy into `stage`; returns its output.
fn install_into(stack: Stack, stage: &Path, config: &Path, sender: &Path) -> String {
    let dist = workspace_root().join("dist");
    let copy = "mkdir -p \"$STAGE$(dirname \"$2\")\" && cp \"$1\" \"$STAGE$2\"";
    let script = match stack {
        Stack::Dracut => format!(
            "initdir=$STAGE\n\
             derror() {{ echo \"dracut error: $*\" >&2; }}\n\
             dinfo() {{ :; }}\n\
             inst_binary() {{ {copy}; }}\n\
             inst_script() {{ {copy}; }}\n\
             inst_simple() {{ {copy}; }}\n\
             moddir={}\n\
             . \"$moddir/module-setup.sh\"\n\
             check; rc=$?; [ $rc -eq 255 ] || {{ echo \"check() returned $rc, not 255\"; exit 1; }}\n\
             echo \"depends: $(depends)\"\n\
             install || exit 1\n",
            dist.join("dracut/99crashdrop").display()
        ),
        Stack::InitramfsTools => {
            let functions = stage.with_extension("hook-functions");
            std::fs::write(
                &functions,
                format!(
                    "copy_file() {{ shift; {copy}; }}\n\
                     copy_exec() {{ {copy}; }}\n\
                     manual_add_modules() {{ echo \"modules: $*\"; }}\n\
                     auto_add_modules() {{ echo \"modules: $*\"; }}\n"
                ),
            )
            .expect("write hook-functions");
            format!(
                "export DESTDIR=$STAGE CRASHDROP_HOOK_FUNCTIONS={}\n\
                 [ \"$(sh {hook} prereqs)\" = \"\" ] || exit 1\n\
                 sh {hook} || exit 1\n",
                functions.display(),
                hook = dist.join("initramfs-tools/hooks/crashdrop").display()
            )
        }
    };
    std::fs::create_dir_all(stage).expect("stage dir");
    let out = run(Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("STAGE", stage)
        .env("CRASHDROP_CONFIG", config)
        .env("CRASHDROP_SEND", sender)
        .env("CRASHDROP_KDUMP", dist.join("crashdrop-kdump")));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{stack:?} installer failed:\n{text}");
    text
}

/// Every regular file under `root`, as (absolute image path, staged file).
fn staged_files(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let rel = path.strip_prefix(root).expect("under root");
                out.push((format!("/{}", rel.display()), path));
            }
        }
    }
    out.sort();
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// What both installers must have put in the image: the sender, the entry script, the config
/// and the credentials, the secrets 0600.
fn check_staged(stack: Stack, stage: &Path, certdir: &Path) {
    let files = staged_files(stage);
    let has = |p: &str| files.iter().find(|(to, _)| to == p).map(|(_, f)| f.clone());
    let must = |p: &str| has(p).unwrap_or_else(|| panic!("{stack:?}: no {p} in {files:?}"));
    assert_eq!(mode(&must("/usr/bin/crashdrop-send")) & 0o111, 0o111);
    assert_eq!(mode(&must("/usr/bin/crashdrop-kdump")) & 0o111, 0o111);
    let host_pem = format!("{}", certdir.join("host.pem").display());
    for secret in [
        "/etc/crashdrop/sender.toml",
        "/etc/crashdrop/ca.pem",
        "/etc/crashdrop/host.key",
        host_pem.as_str(),
    ] {
        assert_eq!(mode(&must(secret)), 0o600, "{stack:?}: {secret} not 0600");
    }
    if let Stack::Dracut = stack {
        let cmdline =
            std::fs::read_to_string(must("/etc/cmdline.d/95crashdrop.conf")).expect("cmdline.d");
        assert!(cmdline.contains("rd.neednet=1 ip=dhcp"), "{cmdline}");
    }
}

fn stripped_sender(dir: &Path) -> PathBuf {
    let sender = dir.join("crashdrop-send");
    let out = run(Command::new("strip")
        .arg("-o")
        .arg(&sender)
        .arg(bin_path("crashdrop-send")));
    assert!(
        out.status.success(),
        "strip: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    sender
}

#[test]
fn both_installers_put_sender_config_and_credentials_0600_into_the_image() {
    if !require_tools(&["bash", "strip"]) {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let certs = TestCerts::new(&[HOST]);
    let sender = stripped_sender(work.path());
    for stack in [Stack::Dracut, Stack::InitramfsTools] {
        let certdir = work.path().join(format!("{stack:?}-etc"));
        std::fs::create_dir_all(&certdir).expect("mkdir");
        let config = write_config(&certdir, &certs, &["tls://10.0.2.2:7420".into()]);
        let stage = work.path().join(format!("{stack:?}-stage"));
        let output = install_into(stack, &stage, &config, &sender);
        check_staged(stack, &stage, &certdir);
        match stack {
            Stack::Dracut => assert!(output.contains("depends: network"), "{output}"),
            Stack::InitramfsTools => assert!(output.contains("modules: net"), "{output}"),
        }
    }
}

#[test]
fn an_installer_refuses_a_config_naming_a_missing_credential() {
    if !require_tools(&["bash"]) {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let config = work.path().join("sender.toml");
    std::fs::write(
        &config,
        "receivers = [\"tls://10.0.2.2:7420\"]\nca = \"/no/such/ca.pem\"\n",
    )
    .expect("write");
    let sender = bin_path("crashdrop-send");
    for stack in [Stack::Dracut, Stack::InitramfsTools] {
        let stage = work.path().join(format!("{stack:?}-stage"));
        let result = std::panic::catch_unwind(|| install_into(stack, &stage, &config, &sender));
        let message = match result {
            Ok(text) => panic!("{stack:?}: installed despite a missing CA:\n{text}"),
            Err(e) => e.downcast_ref::<String>().cloned().unwrap_or_default(),
        };
        assert!(message.contains("/no/such/ca.pem"), "{stack:?}: {message}");
    }
}

/// Tools, kernel and vmlinux for a QEMU run, or `None` with the reason printed.
fn qemu_kernel() -> Option<KernelPackage> {
    if !require_tools(&[
        "qemu-system-x86_64",
        "cpio",
        "dpkg-deb",
        "ldd",
        "strip",
        "bash",
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
    Some(KernelPackage::unpack(&deb).unwrap_or_else(|e| panic!("{e}")))
}

/// Boots a guest whose capture initramfs is the staged tree plus `capture_script`.
fn boot(kernel: &KernelPackage, work: &Path, stage: &Path, capture_script: String) -> Guest {
    let mut files = Vec::new();
    let mut binaries = Vec::new();
    for (to, from) in staged_files(stage) {
        if to == "/usr/bin/crashdrop-send" {
            binaries.push((to, from));
        } else {
            files.push((to, from));
        }
    }
    let cycle = KdumpCapture {
        before_panic: "mount -t tmpfs tmpfs /tmp && dd if=/dev/urandom of=/tmp/fill bs=1M count=8"
            .into(),
        capture_files: files,
        capture_binaries: binaries,
        network: true,
        capture_script: Some(capture_script),
        ..KdumpCapture::default()
    };
    cycle
        .start(kernel, work)
        .unwrap_or_else(|e| panic!("kdump guest: {e}"))
}

/// Waits for the entry point's exit line (must be 0) and the power-off; checks the stored dump.
fn finish(guest: &mut Guest, receiver: &Receiver, what: &str) -> String {
    let exit = guest
        .wait_for_line(HOOK_EXIT, KDUMP_TIMEOUT)
        .unwrap_or_else(|e| panic!("{what}: {e}\n--- crashdropd log:\n{}", receiver.log()));
    guest.wait_exit(Duration::from_secs(60)).ok();
    let console = guest.console();
    assert!(
        exit.trim_end().ends_with(&format!("{HOOK_EXIT}0")),
        "{what}: the entry point failed ({exit}):\n{console}\n--- crashdropd log:\n{}",
        receiver.log()
    );
    assert!(console.contains(PANIC_LINE), "{what}: no panic:\n{console}");
    assert!(
        console.contains("CRASHDROP-KDUMP-SENT"),
        "{what}:\n{console}"
    );

    let store = &receiver.store;
    let dumps = stored_dumps(store);
    assert_eq!(dumps.len(), 1, "{what}: one dump stored: {dumps:?}");
    let dump = &dumps[0];
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
    let dmesg = std::fs::read_to_string(dump.join("dmesg.txt")).expect("dmesg.txt");
    assert!(dmesg.contains(PANIC_LINE), "{what}: dmesg.txt:\n{dmesg}");
    console
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

#[test]
#[ignore = "a kdump cycle in QEMU under TCG (about a minute): the dracut module's image, crashdrop-kdump as kdump-utils' core collector"]
fn dracut_module_image_sends_the_dump_as_core_collector() {
    let _one = ONE_GUEST.lock().unwrap_or_else(|p| p.into_inner());
    let Some(kernel) = qemu_kernel() else { return };
    let work = tempfile::tempdir().expect("tempdir");
    let certs = TestCerts::new(&[HOST]);
    let receiver = Receiver::start(&work.path().join("store"), &certs, &[]);
    let certdir = work.path().join("etc-crashdrop");
    std::fs::create_dir_all(&certdir).expect("mkdir");
    // Nothing listens on the first receiver: the fallback gets the dump.
    let config = write_config(
        &certdir,
        &certs,
        &[
            format!("tls://{HOST_ADDR}:{}", free_port()),
            format!("tls://{HOST_ADDR}:{}", receiver.addr.port()),
        ],
    );
    let stage = work.path().join("stage");
    install_into(
        Stack::Dracut,
        &stage,
        &config,
        &stripped_sender(work.path()),
    );
    check_staged(Stack::Dracut, &stage, &certdir);
    // kdump-utils' dump_fs: `$CORE_COLLECTOR /proc/vmcore $DIR/vmcore-incomplete`, with the
    // network down for the first 5 s (the link still coming up).
    let script = format!(
        "ip addr flush dev eth0\n\
         (sleep 5; ip addr add 10.0.2.15/24 dev eth0; ip route add default via {HOST_ADDR}) &\n\
         mkdir -p /var/crash/127.0.0.1-now\n\
         /usr/bin/crashdrop-kdump makedumpfile -l --message-level 7 -d 31 \
         /proc/vmcore /var/crash/127.0.0.1-now/vmcore-incomplete\n\
         echo {HOOK_EXIT}$?\n\
         cat /var/crash/127.0.0.1-now/vmcore-incomplete"
    );
    let mut guest = boot(&kernel, work.path(), &stage, script);
    let console = finish(&mut guest, &receiver, "dracut");
    assert!(
        console.contains("waiting for the network (check 1)")
            && console.contains("is routable after"),
        "the sender waited for the network:\n{console}"
    );
    assert!(
        console.contains("attempt 1 failed") && console.contains("; trying 10.0.2.2:"),
        "the fallback receiver took over:\n{console}"
    );
    assert!(
        console.contains("sent to a crashdrop receiver"),
        "kdump's vmcore file is the note:\n{console}"
    );
}

#[test]
#[ignore = "a kdump cycle in QEMU under TCG (about a minute): the initramfs-tools hook's image and its init-premount script"]
fn initramfs_tools_hook_image_sends_the_dump_from_init_premount() {
    let _one = ONE_GUEST.lock().unwrap_or_else(|p| p.into_inner());
    let Some(kernel) = qemu_kernel() else { return };
    let work = tempfile::tempdir().expect("tempdir");
    let certs = TestCerts::new(&[HOST]);
    let receiver = Receiver::start(&work.path().join("store"), &certs, &[]);
    let certdir = work.path().join("etc-crashdrop");
    std::fs::create_dir_all(&certdir).expect("mkdir");
    let config = write_config(
        &certdir,
        &certs,
        &[format!("tls://{HOST_ADDR}:{}", receiver.addr.port())],
    );
    let stage = work.path().join("stage");
    install_into(
        Stack::InitramfsTools,
        &stage,
        &config,
        &stripped_sender(work.path()),
    );
    check_staged(Stack::InitramfsTools, &stage, &certdir);
    // mkinitramfs copies the boot script from the hook's scripts/ directory.
    let premount = workspace_root().join("dist/initramfs-tools/scripts/init-premount/crashdrop");
    std::fs::create_dir_all(stage.join("scripts/init-premount")).expect("mkdir");
    std::fs::copy(&premount, stage.join("scripts/init-premount/crashdrop")).expect("copy");
    // initramfs-tools' /scripts/functions and reboot, stubbed: the harness has brought the
    // network up already, and powers off itself. (busybox sh runs its own `reboot` applet
    // before any on PATH, so the stub is a function and the script is sourced in a subshell.)
    let script = format!(
        "mkdir -p /scripts\n\
         echo 'configure_networking() {{ echo configure_networking: up; }}' > /scripts/functions\n\
         [ \"$(sh /scripts/init-premount/crashdrop prereqs)\" = \"\" ] || echo bad prereqs\n\
         ( reboot() {{ echo CRASHDROP-HOOK-REBOOT; }}; . /scripts/init-premount/crashdrop )\n\
         echo {HOOK_EXIT}$?"
    );
    let mut guest = boot(&kernel, work.path(), &stage, script);
    let console = finish(&mut guest, &receiver, "initramfs-tools");
    assert!(
        console.contains("CRASHDROP-HOOK-REBOOT"),
        "the script reboots once the dump is sent:\n{console}"
    );
}
