//! What crashdropd's built-in SSH server refuses, over real SSH handshakes with keys made at test
//! time: an unknown client key, a wrong pinned server key, a password, a shell, `exec` (from
//! crashdrop-send --ssh-command, OpenSSH's `ssh` and a hand-driven client), another subsystem
//! and a second channel, each with a clear message and nothing stored; SIGHUP reloads the
//! authorized keys (an added key is accepted, a removed one refused, a broken file keeps the old
//! keys); and the real OpenSSH client reaches the `crashdrop` subsystem with a hand-written Hello.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use crashdrop_formats::synth::{write_synthetic_vmcore, SynthSpec};
use crashdrop_integration::ssh_probe::{answer, SshProbe};
use crashdrop_integration::{
    assert_sent, openssh_client, openssh_client_available, run, ssh_sender_to, stored_dumps,
    Receiver, TestCerts, TestSshKeys,
};
use crashdrop_proto::{Frame, FrameCodec, Hello};
use tokio_util::bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

fn small_vmcore(dir: &Path) -> PathBuf {
    let path = dir.join("vmcore");
    write_synthetic_vmcore(
        &path,
        &SynthSpec {
            memory_bytes: 16 << 20,
            seed: 7,
            osrelease: "6.1.0-ssh".into(),
            crash_time: 1_700_000_000,
        },
    )
    .expect("synthetic vmcore");
    path
}

/// Nothing at all under the store root: no host directory, no dump directory, no temp file.
fn assert_nothing_stored(receiver: &Receiver) {
    let entries: Vec<_> = std::fs::read_dir(&receiver.store)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        entries.is_empty(),
        "the store holds {entries:?}\n--- crashdropd log:\n{}",
        receiver.log()
    );
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn an_unknown_client_key_and_a_wrong_pinned_server_key_are_refused_exit_4() {
    let work = tempfile::tempdir().expect("tempdir");
    let vmcore = small_vmcore(work.path());
    let mut keys = TestSshKeys::new(&["web-1"]);
    let stranger = keys.add_client("stranger");
    let receiver =
        Receiver::start_with_ssh(&work.path().join("store"), &TestCerts::new(&[]), &keys, &[]);

    let out = run(&mut ssh_sender_to(
        &receiver.ssh_url(),
        &stranger,
        &keys.host_key.line,
        &vmcore,
        1,
    ));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("refused this host's SSH key"), "{err}");
    assert!(err.contains(&keys.client("stranger").fingerprint), "{err}");
    let log = receiver.wait_for_log("SSH key not in the authorized-keys file", 1);
    assert!(log.contains(&keys.client("stranger").fingerprint), "{log}");

    // Pinning another receiver's key: the real one is refused before authentication.
    let other = TestSshKeys::new(&[]);
    let out = run(&mut ssh_sender_to(
        &receiver.ssh_url(),
        keys.identity("web-1"),
        &other.host_key.line,
        &vmcore,
        1,
    ));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("--server-key pins"), "{err}");
    assert!(err.contains(&keys.host_key.fingerprint), "presented: {err}");
    assert!(err.contains(&other.host_key.fingerprint), "expected: {err}");
    assert!(err.contains("Nothing was sent"), "{err}");
    assert!(!receiver.log().contains("SSH host authenticated"));
    assert_nothing_stored(&receiver);
}

#[test]
fn passwords_shells_exec_other_subsystems_and_second_channels_are_refused() {
    let work = tempfile::tempdir().expect("tempdir");
    let vmcore = small_vmcore(work.path());
    let keys = TestSshKeys::new(&["web-1"]);
    let receiver =
        Receiver::start_with_ssh(&work.path().join("store"), &TestCerts::new(&[]), &keys, &[]);
    let addr = receiver.ssh_addr.expect("ssh");
    let identity = keys.identity("web-1");

    runtime().block_on(async {
        // A password (even for a user the key would have authenticated) never works.
        let mut probe = SshProbe::connect(addr, &keys.host_key.line).await;
        assert!(
            !probe.password("crashdrop", "hunter2").await,
            "password accepted"
        );
        assert!(
            !probe.password("web-1", "").await,
            "empty password accepted"
        );
        assert!(probe.open_session().await.is_none(), "channel before auth");

        for (request, expected) in [
            ("shell", "shell refused"),
            ("exec", "exec refused"),
            ("sftp", "subsystem `sftp` refused"),
        ] {
            let mut probe = SshProbe::connect(addr, &keys.host_key.line).await;
            assert!(probe.key("anyone", identity).await, "key refused");
            let mut channel = probe.open_session().await.expect("session channel");
            match request {
                "shell" => channel.request_shell(true).await.expect("shell"),
                "exec" => channel.exec(true, "cat /etc/passwd").await.expect("exec"),
                name => channel.request_subsystem(true, name).await.expect("sub"),
            }
            let reply = answer(&mut channel).await;
            assert_eq!(reply.success, Some(false), "{request}: {reply:?}");
            assert!(reply.text.contains(expected), "{request}: {reply:?}");
            assert!(
                reply.text.contains("only runs the `crashdrop` subsystem"),
                "{reply:?}"
            );
            // The one session channel was used up: a second one is refused.
            assert!(
                probe.open_session().await.is_none(),
                "{request}: a second channel opened"
            );
        }
    });

    // crashdrop-send --ssh-command is for OpenSSH's forced command; the built-in server says why
    // it refuses, and the sender stops at once (exit 4).
    let out = run(receiver
        .ssh_sender(&keys, "web-1", &vmcore, 1)
        .arg("--ssh-command"));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("exec refused"), "{err}");
    assert_nothing_stored(&receiver);
}

/// The same refusals through the real OpenSSH client, which prints its own line for a refused
/// request (it exits on the failure reply, before reading our stderr line); the receiver logs
/// the reason. (Its own receiver: the log limiter allows a burst of 5 lines of one kind.)
#[test]
fn the_openssh_client_is_refused_a_shell_exec_and_another_subsystem() {
    if !openssh_client_available() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let keys = TestSshKeys::new(&["web-1"]);
    let receiver =
        Receiver::start_with_ssh(&work.path().join("store"), &TestCerts::new(&[]), &keys, &[]);
    let addr = receiver.ssh_addr.expect("ssh");
    let identity = keys.identity("web-1");
    for (options, args, said, logged) in [
        (&[][..], &[][..], "shell request failed", "shell refused"),
        (&[][..], &["id"][..], "exec request failed", "exec refused"),
        (
            &["-s"][..],
            &["sftp"][..],
            "subsystem request failed",
            "subsystem `sftp` refused",
        ),
    ] {
        let before = receiver.log().matches(logged).count();
        let out = run(openssh_client(&keys, addr, identity, options).args(args));
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?}: {err}");
        assert!(err.contains(said), "{args:?}: {err}");
        receiver.wait_for_log(logged, before + 1);
    }

    assert_nothing_stored(&receiver);
}

#[test]
fn sighup_reloads_the_authorized_keys_for_new_connections() {
    let work = tempfile::tempdir().expect("tempdir");
    let vmcore = small_vmcore(work.path());
    let mut keys = TestSshKeys::new(&["web-1"]);
    keys.add_client("db-2");
    let store = work.path().join("store");
    let receiver = Receiver::start_with_ssh(&store, &TestCerts::new(&[]), &keys, &[]);
    let send_as = |host: &str| run(&mut receiver.ssh_sender(&keys, host, &vmcore, 1));

    let out = send_as("db-2");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));

    // db-2 added, web-1 removed.
    keys.authorize(&["db-2"]);
    receiver.reload("SSH authorized keys");
    assert_sent(&send_as("db-2"), &receiver);
    let out = send_as("web-1");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("refused this host's SSH key"));

    // A broken file keeps the keys in force, and says why.
    std::fs::write(
        keys.authorized_keys(),
        "crashdrop-host=\"db-2\" ssh-ed25519 !!!\n",
    )
    .expect("write");
    receiver.guard.signal("HUP");
    let log = receiver.wait_for_log("kept the previous SSH authorized keys", 1);
    assert!(log.contains("authorized_keys"), "{log}");
    let out = send_as("db-2");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already holds this dump"),
        "{}",
        stderr(&out)
    );
    let dumps = stored_dumps(&store);
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    assert_eq!(dumps[0].parent().expect("host dir"), store.join("db-2"));
    assert!(!store.join("web-1").exists());
}

#[test]
fn the_openssh_client_reaches_the_crashdrop_subsystem_and_is_welcomed() {
    if !openssh_client_available() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let keys = TestSshKeys::new(&["web-1"]);
    let receiver =
        Receiver::start_with_ssh(&work.path().join("store"), &TestCerts::new(&[]), &keys, &[]);
    let addr = receiver.ssh_addr.expect("ssh");
    // A hand-written Hello on ssh's stdin; its end (EOF) ends the session after the Welcome.
    let mut hello = BytesMut::new();
    FrameCodec
        .encode(
            Frame::Hello(Hello::new("OpenSSH ssh -s crashdrop")),
            &mut hello,
        )
        .expect("encode");
    let hello_file = work.path().join("hello");
    std::fs::write(&hello_file, &hello).expect("write hello");
    let out = openssh_client(&keys, addr, keys.identity("web-1"), &["-s"])
        .arg("crashdrop")
        .stdin(Stdio::from(
            std::fs::File::open(&hello_file).expect("hello"),
        ))
        .output()
        .expect("run ssh");
    let mut reply = BytesMut::from(&out.stdout[..]);
    let frame = FrameCodec.decode(&mut reply);
    assert!(
        matches!(frame, Ok(Some(Frame::Welcome(_)))),
        "{frame:?} from {} bytes; ssh: {}\n--- crashdropd log:\n{}",
        out.stdout.len(),
        stderr(&out),
        receiver.log()
    );
    let log = receiver.wait_for_log("SSH host authenticated", 1);
    assert!(log.contains("web-1"), "{log}");
    assert_nothing_stored(&receiver);
}
