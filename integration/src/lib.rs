//! Test support for running the real crashdrop binaries against each other and judging their
//! output with the real `crash` and `makedumpfile`.
//!
//! - [`workspace`]: where the workspace, the target directory and the built binaries are.
//! - [`child`]: [`ChildGuard`], a child process killed on drop whose start-up line you wait for.
//! - [`fixtures`]: the real kernel dumps under `../shared/fixtures/`, decompressed and cached.
//! - [`crash`] and [`makedumpfile`]: the judges, run non-interactively under a time limit.
//! - [`tools`]: whether a judge is installed, and the skip-or-fail policy (`CI=true` fails).
//! - [`kernel_log`]: comparing kernel logs from different extractors.
//! - [`test_certs`]: [`TestCerts`], a CA, receiver and host certificates made at test time.
//! - [`test_ssh`]: [`TestSshKeys`], an SSH host key, client keys and authorized-keys file.
//! - [`openssh`]: the real OpenSSH client (and server), configured for one test.
//! - [`ssh_probe`]: [`ssh_probe::SshProbe`], an SSH client that tries what crashdrop-send never does.
//! - [`proxy`]: [`FaultProxy`], a TCP proxy that cuts, stalls and corrupts a stream on purpose.
//! - [`transfer`]: a running receiver, sender commands, and the page-by-page check of a stored dump.
//!
//! Run the tests with `cargo test --workspace`: it builds `crashdropd`, `crashdrop-send` and
//! `crashdrop-certs`, which [`bin_path`] finds next to the test executable.

#![forbid(unsafe_code)]

pub mod child;
pub mod crash;
pub mod fixtures;
pub mod kernel_log;
pub mod like_makedumpfile;
pub mod makedumpfile;
pub mod openssh;
pub mod proxy;
pub mod qemu;
pub mod raw_peer;
pub mod ssh_probe;
pub mod test_certs;
pub mod test_ssh;
pub mod tools;
pub mod transfer;
pub mod workspace;

pub use child::{listen_addr, spawn_until_line, ChildGuard, START_TIMEOUT};
pub use crash::{run_crash, run_crash_with_timeout, CrashOutput, CRASH_TIMEOUT};
pub use fixtures::{decompressed, fixture_dumps, fixture_vmlinux, fixtures_dir, FixtureDump};
pub use kernel_log::{normalize_log, release_from_log};
pub use like_makedumpfile::{assert_stored_like_makedumpfile, kdump_bitmaps};
pub use makedumpfile::{makedumpfile_compress, makedumpfile_dump_dmesg, makedumpfile_with};
pub use openssh::{openssh_client, openssh_client_available, Sshd};
pub use proxy::{Fault, FaultProxy, ProxyStats};
pub use raw_peer::{exchange_plain, Ending, RawPeer, Reply, REPLY_TIMEOUT};
pub use test_certs::{TestCerts, RECEIVER_NAMES};
pub use test_ssh::{ssh_sender_to, TestSshKeys};
pub use tools::{crash_available, in_ci, makedumpfile_available, require_tools, skip};
pub use transfer::{
    assert_sent, compare_stored, compare_with_source, record_after_kernel_log, run, selection,
    sender, sender_as, sender_to, stored_dumps, Comparison, Receiver,
};
pub use workspace::{bin_path, target_dir, workspace_root};
