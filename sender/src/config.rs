//! `--config FILE`: the sender's settings from a TOML file (`/etc/crashdrop/sender.toml` in a
//! kdump initramfs), so the capture kernel only runs `crashdrop-send --config FILE`. Every key
//! has the name of the flag it stands for (`--server-name` is `server_name`), except
//! `receivers`, a list tried in order (the first is the main receiver, the others fallbacks).
//! A flag on the command line wins over the file; a key the sender does not know is an error
//! naming the key and the file, so a typo never silently drops a setting.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::ArgMatches;
use serde::Deserialize;

use crate::retry::parse_duration;
use crate::transport::ReceiverUrl;

/// The file's keys. Paths that are not absolute are relative to the file's directory.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SenderConfig {
    pub receivers: Option<Vec<String>>,
    pub server_name: Option<String>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub identity: Option<PathBuf>,
    pub server_key: Option<String>,
    pub known_hosts: Option<PathBuf>,
    pub ssh_command: Option<bool>,
    pub vmcore: Option<PathBuf>,
    pub dump_level: Option<u8>,
    pub retry_for: Option<String>,
    pub io_timeout: Option<u64>,
    pub wait_network: Option<String>,
}

/// The settings a file gives, checked (receiver URLs, dump level, durations) and with paths
/// made absolute.
#[derive(Debug, Default, PartialEq)]
pub struct Settings {
    pub receivers: Vec<String>,
    pub server_name: Option<String>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub identity: Option<PathBuf>,
    pub server_key: Option<String>,
    pub known_hosts: Option<PathBuf>,
    pub ssh_command: Option<bool>,
    pub vmcore: Option<PathBuf>,
    pub dump_level: Option<u8>,
    pub retry_for: Option<Duration>,
    pub io_timeout: Option<u64>,
    pub wait_network: Option<Duration>,
}

/// Reads and checks `path`. Errors name the file (and the key, for a bad or unknown one).
pub fn load(path: &Path) -> Result<Settings, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
    parse(&text, path)
}

/// [`load`] on text already read; `path` names the file in errors and anchors relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Settings, String> {
    let file = path.display();
    let raw: SenderConfig = toml::from_str(text)
        .map_err(|e| format!("config file {file}: {}", e.to_string().trim_end()))?;
    let bad = |key: &str, why: String| format!("config file {file}: {key}: {why}");
    let base = path.parent().unwrap_or(Path::new("/"));
    let absolute = |p: Option<PathBuf>| p.map(|p| if p.is_absolute() { p } else { base.join(p) });
    if raw.receivers.as_ref().is_some_and(Vec::is_empty) {
        return Err(bad("receivers", "the list is empty".into()));
    }
    let receivers = raw.receivers.unwrap_or_default();
    for url in &receivers {
        ReceiverUrl::parse(url).map_err(|e| bad("receivers", e.to_string()))?;
    }
    if let Some(level) = raw.dump_level {
        if level > 31 {
            return Err(bad(
                "dump_level",
                format!("{level} is not in 0..=31 (makedumpfile's -d)"),
            ));
        }
    }
    let duration = |key: &str, v: Option<String>| {
        v.map(|t| parse_duration(&t).map_err(|e| bad(key, e)))
            .transpose()
    };
    Ok(Settings {
        receivers,
        server_name: raw.server_name,
        ca: absolute(raw.ca),
        cert: absolute(raw.cert),
        key: absolute(raw.key),
        identity: absolute(raw.identity),
        server_key: raw.server_key,
        known_hosts: absolute(raw.known_hosts),
        ssh_command: raw.ssh_command,
        vmcore: absolute(raw.vmcore),
        dump_level: raw.dump_level,
        retry_for: duration("retry_for", raw.retry_for)?,
        io_timeout: raw.io_timeout,
        wait_network: duration("wait_network", raw.wait_network)?,
    })
}

/// Which settings the command line gave itself (and so keeps over the file's).
pub struct GivenFlags<'a>(pub &'a ArgMatches);

impl GivenFlags<'_> {
    /// Whether the flag with clap id `id` (the field name) was on the command line.
    pub fn given(&self, id: &str) -> bool {
        matches!(self.0.value_source(id), Some(ValueSource::CommandLine))
    }
}

/// Fills `slot` from the file unless the command line gave it.
pub fn fill<T>(slot: &mut T, from_file: Option<T>, given_on_command_line: bool) {
    if !given_on_command_line {
        if let Some(v) = from_file {
            *slot = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Settings, String> {
        parse(text, Path::new("/etc/crashdrop/sender.toml"))
    }

    #[test]
    fn every_key_is_read_and_relative_paths_follow_the_file() {
        let s = parsed(
            r#"
receivers = ["tls://10.0.0.5:7420", "tls://dumps-b.example:7420"]
server_name = "dumps.example"
ca = "ca.pem"
cert = "/etc/crashdrop/host.pem"
key = "host.key"
dump_level = 17
retry_for = "1h"
io_timeout = 20
wait_network = "90s"
vmcore = "/proc/vmcore"
"#,
        )
        .expect("valid");
        assert_eq!(
            s.receivers,
            ["tls://10.0.0.5:7420", "tls://dumps-b.example:7420"]
        );
        assert_eq!(s.server_name.as_deref(), Some("dumps.example"));
        assert_eq!(s.ca, Some(PathBuf::from("/etc/crashdrop/ca.pem")));
        assert_eq!(s.key, Some(PathBuf::from("/etc/crashdrop/host.key")));
        assert_eq!(s.dump_level, Some(17));
        assert_eq!(s.retry_for, Some(Duration::from_secs(3600)));
        assert_eq!(s.io_timeout, Some(20));
        assert_eq!(s.wait_network, Some(Duration::from_secs(90)));
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_the_key_and_the_file() {
        let e = parsed("receivers = [\"tls://a:1\"]\nretry_four = \"1h\"\n").expect_err("typo");
        assert!(e.contains("retry_four"), "{e}");
        assert!(e.contains("/etc/crashdrop/sender.toml"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("dump_level = 32", "dump_level"),
            ("retry_for = \"30\"", "retry_for"),
            ("wait_network = \"2d\"", "wait_network"),
            ("receivers = [\"http://x:1\"]", "receivers"),
            ("receivers = []", "receivers"),
            ("io_timeout = \"soon\"", "io_timeout"),
        ] {
            let e = parsed(text).expect_err(text);
            assert!(e.contains(key) && e.contains("sender.toml"), "{text}: {e}");
        }
    }

    #[test]
    fn a_comment_naming_receivers_is_not_a_key() {
        let s = parsed("# receivers come from the command line\ndump_level = 1\n").expect("ok");
        assert!(s.receivers.is_empty());
    }

    #[test]
    fn the_command_line_wins() {
        let mut level = 5u8;
        fill(&mut level, Some(17), true);
        assert_eq!(level, 5);
        fill(&mut level, Some(17), false);
        assert_eq!(level, 17);
        fill(&mut level, None, false);
        assert_eq!(level, 17);
    }
}
