//! The first judge: the real `crash` utility (Debian 12: 8.0.2) opening a dump with its vmlinux.
//!
//! Run as `crash -s --no_scroll --no_crashrc VMLINUX DUMP` with the commands on standard input,
//! each preceded by an `echo` of a marker line so the output can be split per command, and a final
//! `quit`. No terminal, pager or `HOME` is needed. On the 6.1 fixture a session takes about 10 s,
//! almost all of it gdb reading the 288 MB vmlinux.
//!
//! What the exit status means: 0 when the session came up and read every command through `quit`;
//! 1 when crash could not open the dump (a truncated file exits 1 *silently*, a corrupt page
//! prints `crash: compressed kdump: uncompress failed: -3`) or standard input ended before
//! `quit`. A command that fails inside a session (`bt: invalid task`, `command not found`) does
//! not change the status: check the text.

use std::io;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use crate::tools::{command, run_with_timeout};

/// How long one crash session may take before it is killed.
pub const CRASH_TIMEOUT: Duration = Duration::from_secs(300);

/// Begins the marker line echoed before each command's output.
const MARKER: &str = "@@crashdrop-cmd@@";

/// What a crash session printed.
#[derive(Debug)]
pub struct CrashOutput {
    /// crash's exit status; see the module documentation for what it does and does not mean.
    pub status: ExitStatus,
    /// Standard output: the session, with a marker line before each command's output.
    pub stdout: String,
    /// Standard error: start-up failures (`not a supported file format`) and gdb warnings.
    pub stderr: String,
    /// The commands, in the order they ran.
    pub commands: Vec<String>,
    /// How long the session took.
    pub elapsed: Duration,
}

impl CrashOutput {
    /// Standard output followed by standard error, for matching and for failure messages.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Whether crash exited 0: the session came up and every command was read through `quit`.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The output of the `index`th command (0-based), without its marker line; `None` if the
    /// session never got there.
    pub fn output_of_index(&self, index: usize) -> Option<&str> {
        let start_marker = marker(index);
        let start = self.stdout.find(&start_marker)?;
        let rest = self.stdout.get(start..)?;
        let body_start = rest.find('\n').map_or(rest.len(), |n| n + 1);
        let body = rest.get(body_start..)?;
        let end = body.find(&marker(index + 1));
        Some(match end {
            Some(end) => body.get(..end).unwrap_or(body),
            None => body,
        })
    }

    /// The output of the first command that was exactly `cmd`, e.g. `output_of("bt")`.
    pub fn output_of(&self, cmd: &str) -> Option<&str> {
        let index = self.commands.iter().position(|c| c == cmd)?;
        self.output_of_index(index)
    }
}

/// Runs the real `crash` on `dump` with `vmlinux`, executing `commands` in order, then `quit`.
///
/// Returns whatever the session printed, also when crash failed (check [`CrashOutput::success`]
/// and the text). Errors: crash could not be started, a command contains a newline, or the
/// session ran past [`CRASH_TIMEOUT`] and was killed ([`io::ErrorKind::TimedOut`]).
pub fn run_crash(vmlinux: &Path, dump: &Path, commands: &[&str]) -> io::Result<CrashOutput> {
    run_crash_with_timeout(vmlinux, dump, commands, CRASH_TIMEOUT)
}

/// [`run_crash`] with a time limit of your choosing.
pub fn run_crash_with_timeout(
    vmlinux: &Path,
    dump: &Path,
    commands: &[&str],
    timeout: Duration,
) -> io::Result<CrashOutput> {
    let script = session_script(commands)?;
    // crash reads ./.crashrc unless told not to; --no_crashrc, and a scratch working directory
    // so nothing it might write lands in the tree.
    let scratch = tempfile::tempdir()?;
    let mut cmd = command("crash", ["-s", "--no_scroll", "--no_crashrc"]);
    cmd.arg(vmlinux).arg(dump).current_dir(scratch.path());
    let done = run_with_timeout(&mut cmd, script.as_bytes(), timeout)?;
    Ok(CrashOutput {
        status: done.status,
        stdout: done.stdout,
        stderr: done.stderr,
        commands: commands.iter().map(|c| c.to_string()).collect(),
        elapsed: done.elapsed,
    })
}

/// The line echoed before the `index`th command.
fn marker(index: usize) -> String {
    format!("{MARKER} {index} {MARKER}")
}

/// The text fed to crash's standard input.
fn session_script(commands: &[&str]) -> io::Result<String> {
    let mut script = String::new();
    for (i, c) in commands.iter().enumerate() {
        if c.contains('\n') || c.contains('\r') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("crash command {c:?} contains a line break"),
            ));
        }
        script.push_str(&format!("echo {}\n{c}\n", marker(i)));
    }
    script.push_str("quit\n");
    Ok(script)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn output(stdout: &str, commands: &[&str]) -> CrashOutput {
        CrashOutput {
            status: ExitStatus::from_raw(0),
            stdout: stdout.to_string(),
            stderr: String::new(),
            commands: commands.iter().map(|c| c.to_string()).collect(),
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn script_marks_each_command_and_quits() {
        let script = session_script(&["sys", "bt"]).expect("valid");
        assert_eq!(
            script,
            "echo @@crashdrop-cmd@@ 0 @@crashdrop-cmd@@\nsys\n\
             echo @@crashdrop-cmd@@ 1 @@crashdrop-cmd@@\nbt\nquit\n"
        );
        assert!(session_script(&["sys\nquit"]).is_err());
    }

    #[test]
    fn splits_output_per_command() {
        let out = output(
            "WARNING: x\n@@crashdrop-cmd@@ 0 @@crashdrop-cmd@@\n  RELEASE: 6.1\n\
             @@crashdrop-cmd@@ 1 @@crashdrop-cmd@@\nPID: 1\n #0 [f] a\n",
            &["sys", "bt"],
        );
        assert_eq!(out.output_of("sys"), Some("  RELEASE: 6.1\n"));
        assert_eq!(out.output_of("bt"), Some("PID: 1\n #0 [f] a\n"));
        assert_eq!(out.output_of("log"), None);
        assert_eq!(out.output_of_index(2), None);
    }
}
