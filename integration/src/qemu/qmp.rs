//! `Qmp`: QEMU's machine protocol over a unix socket, JSON by hand — one command at a time,
//! events skipped, every read under a timeout.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A negotiated QMP connection.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to `socket`, reads the greeting and leaves capabilities negotiation mode.
    /// `timeout` bounds each read (a `dump-guest-memory` of 512 MiB must fit in it).
    pub fn connect(socket: &Path, timeout: Duration) -> io::Result<Qmp> {
        let stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(timeout))?;
        let writer = stream.try_clone()?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(io::Error::other(format!("not a QMP greeting: {greeting}")));
        }
        qmp.execute("qmp_capabilities", serde_json::json!({}))?;
        Ok(qmp)
    }

    /// Runs `command` with `arguments` and returns its `return` value, or its `error` as an
    /// error.
    pub fn execute(
        &mut self,
        command: &str,
        arguments: serde_json::Value,
    ) -> io::Result<serde_json::Value> {
        let request = serde_json::json!({ "execute": command, "arguments": arguments });
        writeln!(self.writer, "{request}")?;
        loop {
            let reply = self.read_message()?;
            if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = reply.get("error") {
                return Err(io::Error::other(format!("QMP {command}: {err}")));
            }
            // An asynchronous event: not the reply.
        }
    }

    /// `dump-guest-memory` with paging off and no compression: the ELF QEMU writes, to `out`.
    pub fn dump_guest_memory(&mut self, out: &Path) -> io::Result<()> {
        let protocol = format!("file:{}", out.display());
        self.execute(
            "dump-guest-memory",
            serde_json::json!({ "paging": false, "protocol": protocol }),
        )
        .map(|_| ())
    }

    fn read_message(&mut self) -> io::Result<serde_json::Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "QMP socket closed",
            ));
        }
        serde_json::from_str(&line).map_err(|e| io::Error::other(format!("QMP sent {line:?}: {e}")))
    }
}
