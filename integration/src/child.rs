//! A child process owned by a test: killed and reaped on drop, its stdout read line by line, its
//! stderr kept in memory and printed if the test panics while the child is alive.
//!
//! Start-up is synchronised on the child's own words, never on sleeps: `crashdropd` prints
//! `listening tls 127.0.0.1:PORT` on stdout once per bound listener, and
//! [`ChildGuard::wait_for_line`] waits for that line.

use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long [`spawn_until_line`] waits for a child's first expected line.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running child process, killed and waited for when dropped.
pub struct ChildGuard {
    name: String,
    child: Child,
    status: Option<ExitStatus>,
    lines: Receiver<String>,
    /// Every stdout line received so far, for diagnostics.
    history: Vec<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_done: Receiver<()>,
}

impl ChildGuard {
    /// Spawns `cmd` with stdin from `/dev/null` and stdout and stderr captured. `name` labels
    /// the child in messages (e.g. `"crashdropd"`).
    pub fn spawn(name: &str, cmd: &mut Command) -> io::Result<ChildGuard> {
        Self::spawn_with_stdin(name, cmd, Stdio::null())
    }

    /// [`ChildGuard::spawn`] with the given stdin; with `Stdio::piped()`, take it with
    /// [`ChildGuard::take_stdin`].
    pub fn spawn_with_stdin(name: &str, cmd: &mut Command, stdin: Stdio) -> io::Result<ChildGuard> {
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {name} ({cmd:?}): {e}")))?;
        let (line_tx, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line_tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, stderr_done) = mpsc::channel();
        if let Some(mut pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut buf) {
                    let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
                        break;
                    };
                    sink.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend_from_slice(chunk);
                }
                let _ = done_tx.send(());
            });
        }
        Ok(ChildGuard {
            name: name.to_string(),
            child,
            status: None,
            lines,
            history: Vec::new(),
            stderr,
            stderr_done,
        })
    }

    /// The label given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child's stdin, if it was spawned with `Stdio::piped()`.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// Waits up to `timeout` for a stdout line starting with `prefix` and returns it. Lines
    /// before it are consumed (they stay in [`ChildGuard::stdout_history`]).
    ///
    /// Errors, with the child's stderr in the message: the timeout passed
    /// ([`io::ErrorKind::TimedOut`]), or stdout closed first (the child exited).
    pub fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> io::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.history.push(line.clone());
                    if line.starts_with(prefix) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(self.failure(
                        io::ErrorKind::TimedOut,
                        &format!("no stdout line starting with {prefix:?} within {timeout:?}"),
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // stdout is closed, so the child has exited or is about to: reap it briefly
                    // so the message can say how it ended.
                    let _ = self.wait_timeout(Duration::from_secs(2));
                    return Err(self.failure(
                        io::ErrorKind::UnexpectedEof,
                        &format!("stdout closed before a line starting with {prefix:?}"),
                    ));
                }
            }
        }
    }

    /// The next stdout line, waiting up to `timeout`; `None` on timeout or end of output.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(timeout).ok()?;
        self.history.push(line.clone());
        Some(line)
    }

    /// The stdout lines received and not yet consumed, without waiting.
    pub fn take_lines(&mut self) -> Vec<String> {
        let lines: Vec<String> = self.lines.try_iter().collect();
        self.history.extend(lines.iter().cloned());
        lines
    }

    /// Every stdout line consumed so far, in order.
    pub fn stdout_history(&self) -> &[String] {
        &self.history
    }

    /// Everything the child wrote to stderr so far (lossy UTF-8): its log.
    pub fn stderr_text(&self) -> String {
        let bytes = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Waits up to `timeout` for the child to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let deadline = Instant::now() + timeout;
        let mut poll = Duration::from_millis(2);
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.status = Some(status);
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(self.failure(
                    io::ErrorKind::TimedOut,
                    &format!("still running after {timeout:?}"),
                ));
            }
            std::thread::sleep(poll);
            poll = (poll * 2).min(Duration::from_millis(50));
        }
    }

    /// Asks the child to stop with SIGTERM and waits up to `timeout` for it to exit; kills it
    /// if it has not by then (and returns the timeout error).
    pub fn terminate(&mut self, timeout: Duration) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        // The shell's builtin `kill`: no dependency on procps, and no `unsafe` libc call.
        let sent = Command::new("sh")
            .args(["-c", "kill -TERM \"$0\"", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !sent.success() {
            // Already gone between our last look and the signal.
            return self.wait_timeout(Duration::from_secs(5));
        }
        match self.wait_timeout(timeout) {
            Ok(status) => Ok(status),
            Err(e) => {
                let _ = self.kill();
                Err(e)
            }
        }
    }

    /// Sends the signal `name` (e.g. "HUP") without waiting for anything.
    pub fn signal(&self, name: &str) {
        if self.status.is_some() {
            return;
        }
        // The shell's builtin `kill`, as in `terminate`.
        let sent = Command::new("sh")
            .args([
                "-c",
                &format!("kill -{name} \"$0\""),
                &self.child.id().to_string(),
            ])
            .status();
        assert!(
            sent.is_ok_and(|s| s.success()),
            "kill -{name} {} failed",
            self.name
        );
    }

    /// Kills the child (SIGKILL) and reaps it.
    pub fn kill(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        if self.child.try_wait()?.is_none() {
            // An error here means it exited after the check; wait below reaps it either way.
            let _ = self.child.kill();
        }
        let status = self.child.wait()?;
        self.status = Some(status);
        Ok(status)
    }

    /// Gives the child's stderr reader a moment to take the last bytes after an exit.
    fn drain_stderr(&self) {
        let _ = self.stderr_done.recv_timeout(Duration::from_secs(1));
    }

    /// An error about this child, with its stderr and unread stdout appended.
    fn failure(&mut self, kind: io::ErrorKind, what: &str) -> io::Error {
        let _ = self.take_lines();
        if self.status.is_some() {
            self.drain_stderr();
        }
        let status = match self.status {
            Some(s) => format!(" ({s})"),
            None => String::new(),
        };
        io::Error::new(
            kind,
            format!(
                "{}{status}: {what}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.name,
                self.history.join("\n"),
                self.stderr_text()
            ),
        )
    }
}

impl std::fmt::Debug for ChildGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildGuard")
            .field("name", &self.name)
            .field("pid", &self.child.id())
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.kill();
        if std::thread::panicking() {
            self.drain_stderr();
            let _ = self.take_lines();
            eprintln!(
                "--- {} stdout ---\n{}\n--- {} stderr ---\n{}--- end of {} ---",
                self.name,
                self.history.join("\n"),
                self.name,
                self.stderr_text(),
                self.name
            );
        }
    }
}

/// Spawns `cmd` (see [`ChildGuard::spawn`]) and waits up to [`START_TIMEOUT`] for its first
/// stdout line starting with `prefix`; returns the guard and that line.
///
/// ```no_run
/// # use crashdrop_integration::{bin_path, spawn_until_line, listen_addr};
/// let mut cmd = std::process::Command::new(bin_path("crashdropd"));
/// let (receiver, line) = spawn_until_line("crashdropd", &mut cmd, "listening tls ").unwrap();
/// let addr = listen_addr(&line, "listening tls ").unwrap();
/// ```
pub fn spawn_until_line(
    name: &str,
    cmd: &mut Command,
    prefix: &str,
) -> io::Result<(ChildGuard, String)> {
    let mut guard = ChildGuard::spawn(name, cmd)?;
    let line = guard.wait_for_line(prefix, START_TIMEOUT)?;
    Ok((guard, line))
}

/// The socket address after `prefix` in a line like `listening tls 127.0.0.1:40123`.
pub fn listen_addr(line: &str, prefix: &str) -> Option<SocketAddr> {
    line.strip_prefix(prefix)?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn waits_for_the_announced_line() {
        let mut cmd =
            sh("echo booting >&2; echo hello; echo 'listening tls 127.0.0.1:4242'; exec sleep 30");
        let (mut guard, line) = spawn_until_line("sh", &mut cmd, "listening tls ").expect("line");
        assert_eq!(line, "listening tls 127.0.0.1:4242");
        assert_eq!(
            listen_addr(&line, "listening tls "),
            "127.0.0.1:4242".parse().ok()
        );
        assert_eq!(
            guard.stdout_history(),
            ["hello", "listening tls 127.0.0.1:4242"]
        );
        let status = guard.terminate(Duration::from_secs(10)).expect("stops");
        assert!(!status.success());
        assert!(guard.stderr_text().contains("booting"));
    }

    #[test]
    fn an_early_exit_is_an_error_with_the_log() {
        let mut cmd = sh("echo 'bad config' >&2; exit 2");
        let err = spawn_until_line("sh", &mut cmd, "listening tls ").expect_err("exits");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let msg = err.to_string();
        assert!(msg.contains("bad config"), "{msg}");
        assert!(msg.contains("exit status: 2"), "{msg}");
    }

    #[test]
    fn a_silent_child_times_out() {
        let mut guard = ChildGuard::spawn("sh", &mut sh("exec sleep 30")).expect("spawn");
        let err = guard
            .wait_for_line("never", Duration::from_millis(200))
            .expect_err("timeout");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn drop_kills_the_child() {
        let guard = ChildGuard::spawn("sh", &mut sh("exec sleep 30")).expect("spawn");
        let pid = guard.id();
        drop(guard);
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn stdin_can_be_piped() {
        use std::io::Write;
        let mut guard =
            ChildGuard::spawn_with_stdin("cat", &mut Command::new("cat"), Stdio::piped())
                .expect("spawn");
        let mut stdin = guard.take_stdin().expect("piped");
        stdin.write_all(b"ping\n").expect("write");
        drop(stdin);
        assert_eq!(
            guard.next_line(Duration::from_secs(10)).as_deref(),
            Some("ping")
        );
        assert!(guard
            .wait_timeout(Duration::from_secs(10))
            .expect("exits")
            .success());
    }
}
