//! `crashdropd show`: everything known about one stored dump — its record, what crashed, the
//! call trace and the last lines of the kernel log — without opening `crash`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::dump_dir;
use super::list::human_bytes;
use crate::store::{summarize, DumpRecord};

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The store directory given to `crashdropd serve --store`.
    #[arg(long, value_name = "DIR")]
    pub store: PathBuf,
    /// The dump, as `crashdropd list` shows it (HOST/DUMP), or its directory.
    #[arg(value_name = "HOST/DUMP")]
    pub dump: String,
    /// How many of the kernel log's last lines to print.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub lines: usize,
    /// Print the dump's record (dump.json) with its `location` as JSON instead.
    #[arg(long)]
    pub json: bool,
}

/// Lines of call trace printed at most: the frames that matter come first.
const MAX_TRACE_LINES: usize = 40;

pub fn run(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let dir = dump_dir(&args.store, &args.dump)?;
    let record = DumpRecord::load(&dir.join("dump.json"))?;
    let location = dir
        .strip_prefix(&args.store)
        .map_or_else(|_| dir.display().to_string(), |p| p.display().to_string());
    let log = record
        .kernel_log
        .as_ref()
        .and_then(|file| std::fs::read(dir.join(file)).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    if args.json {
        let mut value = serde_json::to_value(&record)?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("location".into(), location.into());
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!(
        "{}",
        describe(&location, &record, log.as_deref(), args.lines)
    );
    Ok(ExitCode::SUCCESS)
}

/// The human-readable report `show` prints.
fn describe(location: &str, r: &DumpRecord, log: Option<&str>, lines: usize) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: String| out.push_str(&format!("{name:<11} {value}\n"));
    field("dump", location.to_string());
    field("host", r.host.clone());
    field(
        "state",
        format!(
            "{} ({}/{} pages)",
            r.state.as_str(),
            r.pages_stored,
            r.pages
        ),
    );
    if let Some(why) = &r.failure {
        field("failure", why.clone());
    }
    if let Some(why) = r.interrupted.as_ref().filter(|_| r.failure.is_none()) {
        field("interrupted", why.clone());
    }
    field("kernel", r.kernel_release.clone());
    field(
        "crash time",
        r.crash_time_utc.clone().unwrap_or_else(|| "unknown".into()),
    );
    field("dump level", r.dump_level.to_string());
    field(
        "stored",
        format!(
            "{} ({} pages), {} of page data received",
            human_bytes(r.bytes_on_disk),
            r.store_compression,
            human_bytes(r.bytes_on_wire)
        ),
    );
    if let Some(digest) = &r.digest {
        field("digest", digest.clone());
    }
    field(
        "received",
        format!(
            "{} sessions, first {}, last {}",
            r.sessions, r.created, r.updated
        ),
    );
    let crash = r.crash.clone().or_else(|| log.and_then(summarize));
    if let Some(c) = &crash {
        field("crash", format!("{}: {}", c.kind, c.line));
        field("title", c.title.clone());
        field("signature", c.signature.clone());
        let mut task = c.task.clone().unwrap_or_else(|| "unknown task".into());
        if let Some(pid) = c.pid {
            task.push_str(&format!(" (pid {pid})"));
        }
        if let Some(cpu) = c.cpu {
            task.push_str(&format!(" on CPU {cpu}"));
        }
        if let Some(secs) = c.seconds_after_boot {
            task.push_str(&format!(", {secs:.2} s after boot"));
        }
        field("task", task);
    }
    match (log, &r.kernel_log_error) {
        (Some(log), _) => {
            let trace = call_trace(log, crash.as_ref().map(|c| c.line.as_str()));
            if !trace.is_empty() {
                out.push_str("\ncall trace:\n");
                for line in trace {
                    out.push_str(&format!("  {line}\n"));
                }
            }
            let all: Vec<&str> = log.lines().collect();
            let tail = &all[all.len().saturating_sub(lines)..];
            out.push_str(&format!(
                "\nlast {} lines of the kernel log (crashdropd dmesg prints all of it):\n",
                tail.len()
            ));
            for line in tail {
                out.push_str(&format!("  {line}\n"));
            }
        }
        (None, Some(why)) => out.push_str(&format!("\nno kernel log: {why}\n")),
        (None, None) => out.push_str("\nno kernel log yet (the dump is not complete)\n"),
    }
    out
}

/// The `Call Trace:` block that follows the crash report line (or the first one in the log),
/// up to its `</TASK>` or the first line that is no longer part of it.
fn call_trace<'a>(log: &'a str, report_line: Option<&str>) -> Vec<&'a str> {
    let lines: Vec<&str> = log.lines().collect();
    let from = report_line
        .and_then(|needle| lines.iter().position(|l| l.contains(needle)))
        .unwrap_or(0);
    let Some(start) = lines[from..]
        .iter()
        .position(|l| l.contains("Call Trace:"))
        .map(|i| from + i)
    else {
        return Vec::new();
    };
    let mut trace = Vec::new();
    for line in &lines[start..] {
        trace.push(*line);
        if line.contains("</TASK>") || trace.len() >= MAX_TRACE_LINES {
            break;
        }
    }
    trace
}

#[cfg(test)]
mod tests {
    use super::call_trace;

    const LOG: &str = "\
[    1.0] Linux version 6.1.0
[   15.6] Kernel panic - not syncing: sysrq triggered crash
[   15.6] CPU: 1 PID: 1308 Comm: bash Kdump: loaded Not tainted 6.1.0 #1
[   15.6] Call Trace:
[   15.6]  <TASK>
[   15.6]  dump_stack_lvl+0x44/0x5c
[   15.6]  panic+0x118/0x2ed
[   15.6]  </TASK>
[   15.7] Kernel Offset: 0x1000000
";

    #[test]
    fn the_call_trace_after_the_report_is_cut_at_its_end() {
        let trace = call_trace(LOG, Some("Kernel panic - not syncing"));
        assert_eq!(trace.len(), 5, "{trace:#?}");
        assert!(trace[0].contains("Call Trace:"));
        assert!(trace[4].contains("</TASK>"));
    }

    #[test]
    fn a_log_without_a_trace_has_none() {
        assert!(call_trace("[ 1.0] nothing here\n", None).is_empty());
    }
}
