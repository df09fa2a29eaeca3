//! A throwaway PKI for one test, made by the `certs` crate at test time (no key is committed):
//! a CA, a receiver certificate for `localhost` and `127.0.0.1`, and host certificates.

use std::error::Error;
use std::path::{Path, PathBuf};

use crashdrop_certs::{CertPaths, HostOptions, InitOutput};
use tempfile::TempDir;
use time::{Duration, OffsetDateTime};

/// The names the receiver certificate of [`TestCerts::new`] is valid for.
pub const RECEIVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A certificate directory in a temporary folder, removed on drop.
#[derive(Debug)]
pub struct TestCerts {
    /// The folder holding `ca.pem`, `ca.key`, `receiver.pem`, `receiver.key` and
    /// `<host>.pem`/`<host>.key` per host.
    pub dir: TempDir,
    /// `ca.pem` and `ca.key`.
    pub ca: CertPaths,
    /// `receiver.pem` and `receiver.key`.
    pub receiver: CertPaths,
}

impl TestCerts {
    /// A CA, a receiver certificate for [`RECEIVER_NAMES`], and a host certificate for each of
    /// `hosts`.
    ///
    /// # Panics
    ///
    /// If the certs crate fails (with its full error chain).
    pub fn new(hosts: &[&str]) -> TestCerts {
        Self::with_receiver_names(&RECEIVER_NAMES, hosts)
    }

    /// [`TestCerts::new`] with other receiver names (DNS names or IP addresses).
    pub fn with_receiver_names(receiver_names: &[&str], hosts: &[&str]) -> TestCerts {
        let dir = tempfile::Builder::new()
            .prefix("crashdrop-certs-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let names: Vec<String> = receiver_names.iter().map(|n| n.to_string()).collect();
        let InitOutput { ca, receiver } = crashdrop_certs::init(dir.path(), &names)
            .unwrap_or_else(|e| panic!("crashdrop_certs::init({names:?}): {}", chain(&e)));
        let certs = TestCerts { dir, ca, receiver };
        for host in hosts {
            certs.issue_host(host);
        }
        certs
    }

    /// The certificate directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate (`ca.pem`) that both sides trust.
    pub fn ca_cert(&self) -> &Path {
        &self.ca.cert
    }

    /// Where `host`'s certificate and key are (issued or not).
    pub fn host(&self, host: &str) -> CertPaths {
        CertPaths::in_dir(self.path(), host)
    }

    /// Issues a certificate for `host`, valid for the default period.
    pub fn issue_host(&self, host: &str) -> CertPaths {
        crashdrop_certs::issue_host(self.path(), host)
            .unwrap_or_else(|e| panic!("crashdrop_certs::issue_host({host:?}): {}", chain(&e)))
    }

    /// Issues a certificate for `host` with explicit options.
    pub fn issue_host_with(&self, host: &str, opts: &HostOptions) -> CertPaths {
        crashdrop_certs::issue_host_with(self.path(), host, opts).unwrap_or_else(|e| {
            panic!(
                "crashdrop_certs::issue_host_with({host:?}, {opts:?}): {}",
                chain(&e)
            )
        })
    }

    /// Issues (or reissues) a certificate for `host` that expired yesterday.
    pub fn issue_expired_host(&self, host: &str) -> CertPaths {
        let now = OffsetDateTime::now_utc();
        self.issue_host_with(
            host,
            &HostOptions {
                not_before: now - Duration::days(2),
                not_after: now - Duration::days(1),
                force: true,
            },
        )
    }

    /// All files of the directory (for a receiver config or a failure message).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        files
    }
}

/// An error and its sources, `a: b: c`.
fn chain(e: &dyn Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_a_ca_a_receiver_and_hosts() {
        let certs = TestCerts::new(&["web-1"]);
        for f in [
            &certs.ca.cert,
            &certs.ca.key,
            &certs.receiver.cert,
            &certs.receiver.key,
        ] {
            assert!(f.is_file(), "{}", f.display());
        }
        let web = certs.host("web-1");
        assert!(web.cert.is_file() && web.key.is_file());
        let expired = certs.issue_expired_host("db-1");
        assert_eq!(expired, certs.host("db-1"));
        assert!(certs.files().contains(&expired.key));
    }
}
