//! `dump.json`: the human- and script-readable record of one stored dump.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::summary::CrashSummary;
use super::StoreError;

/// Where a dump is in its life. Only `Complete` dumps passed the whole-dump digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DumpState {
    Receiving,
    Complete,
    Failed,
}

impl DumpState {
    pub fn as_str(self) -> &'static str {
        match self {
            DumpState::Receiving => "receiving",
            DumpState::Complete => "complete",
            DumpState::Failed => "failed",
        }
    }
}

/// The contents of `dump.json`. Fields this build does not know are kept, not refused: after a
/// rollback to an older crashdropd, `list`, `verify` and resume still read the records a newer
/// one wrote (and rewrite them without losing those fields).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DumpRecord {
    pub host: String,
    pub dump_id: String,
    pub kernel_release: String,
    /// Seconds since the epoch; `None` when the vmcore carries no CRASHTIME.
    pub crash_time: Option<i64>,
    pub crash_time_utc: Option<String>,
    pub dump_level: u8,
    pub page_size: u32,
    pub max_mapnr: u64,
    /// Pages with a descriptor (set bits of the 2nd bitmap).
    pub pages: u64,
    pub pages_per_chunk: u16,
    /// Pages durably stored so far.
    pub pages_stored: u64,
    /// Payload bytes of page chunks received over the network (all sessions).
    pub bytes_on_wire: u64,
    /// Size of the stored `vmcore` file.
    pub bytes_on_disk: u64,
    /// `zstd` or `zlib`: how page data is compressed in `vmcore`.
    pub store_compression: String,
    /// Hex SHA-256 whole-dump digest (see docs/protocol.md); set once complete.
    pub digest: Option<String>,
    pub state: DumpState,
    /// Why the dump failed, for `failed` dumps.
    pub failure: Option<String>,
    /// Why the last session ended before a `receiving` dump was complete (a cut, a full disk,
    /// an idle sender): what `list` shows for a dump that is stuck. Cleared when it completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
    pub created: String,
    pub updated: String,
    pub sessions: u32,
    /// `dmesg.txt` once the kernel log was extracted from the complete dump (absent from older
    /// records).
    #[serde(default)]
    pub kernel_log: Option<String>,
    /// Why the kernel log could not be extracted, if it could not.
    #[serde(default)]
    pub kernel_log_error: Option<String>,
    /// Hex digest of the whole `Offer` the transfer began with (`writer::offer_digest`); a
    /// resume must offer exactly this. Absent from older records, which then start over.
    #[serde(default)]
    pub offer_digest: Option<String>,
    /// The chunk and dump digests' version, that of the protocol version the dump is sent in
    /// (1 or 2, docs/protocol.md). Absent from older records: 1.
    #[serde(default)]
    pub digest_version: Option<u8>,
    /// What crashed, from the kernel log's first crash report: set when the log is extracted
    /// and holds a report we recognise; absent from older records.
    #[serde(default)]
    pub crash: Option<CrashSummary>,
    /// Fields written by a newer crashdropd, kept as they are so a rewrite here keeps them.
    #[serde(flatten)]
    pub unknown: serde_json::Map<String, serde_json::Value>,
}

impl DumpRecord {
    /// The digest version the dump uses (1 when the record predates the field).
    pub fn digest_version(&self) -> crashdrop_formats::digest::DigestVersion {
        use crashdrop_formats::digest::DigestVersion;
        match self.digest_version {
            Some(2) => DigestVersion::V2,
            _ => DigestVersion::V1,
        }
    }

    pub fn load(path: &Path) -> Result<DumpRecord, StoreError> {
        let text = fs::read_to_string(path).map_err(|source| StoreError::Io {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| StoreError::BadRecord {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes the record atomically and durably: temp file, fsync, rename, fsync the directory.
    pub fn save(&self, path: &Path) -> Result<(), StoreError> {
        let mut text = serde_json::to_vec_pretty(self).map_err(|source| StoreError::BadRecord {
            path: path.to_owned(),
            source,
        })?;
        text.push(b'\n');
        super::write_durably(path, &text)
    }
}

/// Now, as an RFC 3339 UTC timestamp.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

/// A crash time as used in directory names: `YYYY-MM-DDTHH-MM-SSZ` (no colons, sorts by time).
pub fn crash_time_dir_name(crash_time: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(crash_time).ok()?;
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]-[minute]-[second]Z");
    t.format(&format).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_time_names_sort_and_have_no_colons() {
        assert_eq!(
            crash_time_dir_name(1_700_000_000).as_deref(),
            Some("2023-11-14T22-13-20Z")
        );
        assert_eq!(
            crash_time_dir_name(0).as_deref(),
            Some("1970-01-01T00-00-00Z")
        );
    }

    #[test]
    fn record_round_trips_through_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dump.json");
        let record = DumpRecord {
            host: "web-7".into(),
            dump_id: "ab".repeat(32),
            kernel_release: "6.1.0".into(),
            crash_time: Some(1),
            crash_time_utc: None,
            dump_level: 31,
            page_size: 4096,
            max_mapnr: 10,
            pages: 5,
            pages_per_chunk: 256,
            pages_stored: 0,
            bytes_on_wire: 0,
            bytes_on_disk: 0,
            store_compression: "zstd".into(),
            digest: None,
            state: DumpState::Receiving,
            failure: None,
            interrupted: None,
            created: now_rfc3339(),
            updated: now_rfc3339(),
            sessions: 1,
            kernel_log: None,
            kernel_log_error: None,
            offer_digest: None,
            digest_version: Some(2),
            crash: Some(CrashSummary {
                title: "Kernel panic - not syncing: sysrq triggered crash".into(),
                signature: "0123456789abcdef".into(),
                ..CrashSummary::default()
            }),
            unknown: serde_json::Map::new(),
        };
        record.save(&path).expect("save");
        assert_eq!(DumpRecord::load(&path).expect("load"), record);
        // A record written before `kernel_log` existed still loads.
        let mut old: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        let fields = old.as_object_mut().expect("object");
        fields.remove("kernel_log");
        fields.remove("kernel_log_error");
        fields.remove("crash");
        std::fs::write(&path, old.to_string()).expect("write");
        let loaded = DumpRecord::load(&path).expect("old record");
        assert_eq!(loaded.crash, None);
        assert_eq!(
            DumpRecord {
                crash: record.crash.clone(),
                ..loaded
            },
            record
        );
        std::fs::write(&path, "{").expect("write");
        let err = DumpRecord::load(&path).expect_err("corrupt record must not load");
        assert!(err.to_string().contains("dump.json"), "{err}");
    }

    #[test]
    fn a_record_from_a_newer_receiver_loads_and_keeps_its_unknown_fields() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dump.json");
        let text = r#"{
            "host": "web-7", "dump_id": "ab", "kernel_release": "6.1.0",
            "crash_time": null, "crash_time_utc": null, "dump_level": 31, "page_size": 4096,
            "max_mapnr": 10, "pages": 5, "pages_per_chunk": 256, "pages_stored": 5,
            "bytes_on_wire": 1, "bytes_on_disk": 2, "store_compression": "zstd",
            "digest": null, "state": "complete", "failure": null, "created": "c",
            "updated": "u", "sessions": 1,
            "priority_pages": {"chunks": [0, 7], "durable_at": "t"},
            "crash": {"kind": "bug", "line": "BUG: x", "title": "BUG: x", "signature": "s",
                      "future_crash_field": 3}
        }"#;
        std::fs::write(&path, text).expect("write");
        let record = DumpRecord::load(&path).expect("a newer record loads");
        assert_eq!(record.state, DumpState::Complete);
        assert_eq!(
            record.crash.as_ref().map(|c| c.title.as_str()),
            Some("BUG: x")
        );
        assert_eq!(
            record.unknown.keys().collect::<Vec<_>>(),
            vec!["priority_pages"]
        );
        // Rewritten by this build (a resume, a kernel-log update), the newer field survives.
        record.save(&path).expect("save");
        let again: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        assert_eq!(again["priority_pages"]["chunks"][1], 7);
        assert_eq!(DumpRecord::load(&path).expect("reload"), record);
    }
}
