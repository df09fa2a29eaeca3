//! External tools (`crash`, `makedumpfile`): whether they are installed, the skip-or-fail policy
//! when something a test needs is missing, and running a tool to completion under a time limit.

use std::ffi::OsStr;
use std::fmt::Display;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// True when running in CI: `CI` is set to anything but empty, `0` or `false`.
pub fn in_ci() -> bool {
    match std::env::var("CI") {
        Ok(v) => !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false")),
        Err(_) => false,
    }
}

/// Environment variable naming a file that every skip is appended to, one line each
/// (`TEST: reason`), so that `scripts/test.sh` can list what `cargo test` did not test.
pub const SKIP_LOG_ENV: &str = "CRASHDROP_SKIP_LOG";

/// Says why a test does not run its checks, on stderr and in `$CRASHDROP_SKIP_LOG`.
///
/// # Panics
///
/// In CI ([`in_ci`]), where everything a test needs must be installed: a skipped check there
/// would be a silently passing test.
pub fn skip(reason: impl Display) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    if in_ci() {
        panic!("CI is set, so {test} must not skip: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
    if let Some(log) = std::env::var_os(SKIP_LOG_ENV).filter(|v| !v.is_empty()) {
        // One write per line with O_APPEND: lines from parallel tests do not interleave.
        let line = format!("{test}: {reason}\n");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!(
                "cannot record the skip in {}: {e}",
                PathBuf::from(log).display()
            );
        }
    }
}

/// The executable `name` found on `PATH`, if any.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Whether `crash` is on `PATH`.
pub fn crash_available() -> bool {
    find_tool("crash").is_some()
}

/// Whether `makedumpfile` is on `PATH`.
pub fn makedumpfile_available() -> bool {
    find_tool("makedumpfile").is_some()
}

/// True if every tool is on `PATH`; otherwise [`skip`]s (a failure in CI) and returns false.
///
/// ```no_run
/// if !crashdrop_integration::require_tools(&["crash", "makedumpfile"]) {
///     return;
/// }
/// ```
pub fn require_tools(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| find_tool(t).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    skip(format!(
        "not installed: {} (Debian: apt-get install crash makedumpfile zstd)",
        missing.join(", ")
    ));
    false
}

/// A process that ran to its end.
#[derive(Debug)]
pub struct Finished {
    /// How it exited.
    pub status: ExitStatus,
    /// Everything it wrote to standard output (lossy UTF-8).
    pub stdout: String,
    /// Everything it wrote to standard error (lossy UTF-8).
    pub stderr: String,
    /// Wall-clock time from spawn to exit.
    pub elapsed: Duration,
}

/// Runs `cmd` to completion with `stdin` as its standard input, killing it after `timeout`.
///
/// Output goes to temporary files, not pipes, so a chatty tool can never block on a full pipe.
/// A run that exceeds `timeout` is killed and reported as [`io::ErrorKind::TimedOut`], with the
/// end of its output in the message.
pub fn run_with_timeout(
    cmd: &mut Command,
    stdin: &[u8],
    timeout: Duration,
) -> io::Result<Finished> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut input = tempfile::tempfile()?;
    input.write_all(stdin)?;
    input.rewind()?;
    let mut out = tempfile::tempfile()?;
    let mut err = tempfile::tempfile()?;
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::from(input))
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(err.try_clone()?))
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {program}: {e}")))?;
    let mut poll = Duration::from_millis(5);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() >= timeout {
            // Already exited between the two calls is fine: kill then reports an error we ignore.
            let _ = child.kill();
            let _ = child.wait();
            let output = read_all(&mut out)?;
            let tail = tail_of(&output, 4096);
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{program} still running after {timeout:?}, killed; output ended with:\n{tail}"
                ),
            ));
        }
        std::thread::sleep(poll);
        poll = (poll * 2).min(Duration::from_millis(100));
    };
    Ok(Finished {
        status,
        stdout: read_all(&mut out)?,
        stderr: read_all(&mut err)?,
        elapsed: started.elapsed(),
    })
}

/// A command for `program` with its arguments.
pub(crate) fn command<I, S>(program: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd
}

fn read_all(file: &mut File) -> io::Result<String> {
    let mut bytes = Vec::new();
    file.rewind()?;
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The last `max` bytes of `text` (at a character boundary).
pub(crate) fn tail_of(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text.get(start..).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_to_completion_with_stdin_and_both_streams() {
        let mut cmd = command("sh", ["-c", "cat; echo oops >&2; exit 3"]);
        let done = run_with_timeout(&mut cmd, b"hello\n", Duration::from_secs(30)).expect("runs");
        assert_eq!(done.stdout, "hello\n");
        assert_eq!(done.stderr, "oops\n");
        assert_eq!(done.status.code(), Some(3));
    }

    #[test]
    fn kills_a_run_past_its_timeout() {
        let mut cmd = command("sh", ["-c", "echo started; exec sleep 30"]);
        let err = run_with_timeout(&mut cmd, b"", Duration::from_millis(300)).expect_err("killed");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("started"), "{err}");
    }

    #[test]
    fn finds_sh_but_not_nonsense() {
        assert!(find_tool("sh").is_some());
        assert!(find_tool("no-such-tool-crashdrop").is_none());
    }

    #[test]
    fn tail_respects_char_boundaries() {
        assert_eq!(tail_of("abcé", 1), "");
        assert_eq!(tail_of("abcé", 2), "é");
        assert_eq!(tail_of("abc", 10), "abc");
    }
}
