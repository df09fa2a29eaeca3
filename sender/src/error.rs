//! Why a send failed, split into what retrying can fix and what it cannot, and the exit codes.

use std::process::ExitCode;

use crashdrop_proto::ErrorCode;

/// Exit codes of `crashdrop-send` (documented in the README).
pub mod exit {
    /// The receiver confirmed the dump complete (now or earlier).
    pub const COMPLETE: u8 = 0;
    /// Unexpected failure (a bug, or a local problem not covered below).
    pub const FAILURE: u8 = 1;
    // 2: bad command line (clap's own exit code).
    /// The vmcore cannot be read or is not a usable crash dump; sending cannot help.
    pub const BAD_VMCORE: u8 = 3;
    /// The receiver refused us for good: certificate rejected, protocol version, invalid dump.
    pub const REFUSED: u8 = 4;
    /// The receiver could not be reached, or the transfer was interrupted.
    pub const UNREACHABLE: u8 = 5;
    /// The credentials given to us are unusable: TLS files (--ca, --cert, --key), the SSH
    /// --identity key, --server-key or --known-hosts.
    pub const BAD_CREDENTIALS: u8 = 6;
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("{0}")]
    Vmcore(String),
    #[error("{0}")]
    Credentials(String),
    /// The receiver said no, or our identity was refused: retrying will not help.
    #[error("receiver refused the dump: {0}")]
    Refused(String),
    /// A certificate was refused at the TLS handshake — the receiver's by us, or ours by the
    /// receiver; the message says which and why. Retrying will not help.
    #[error("{0}")]
    Identity(String),
    /// Connection-level trouble: refused, reset, timed out, receiver busy or restarting.
    #[error("{0}")]
    Retryable(String),
    /// The receiver is at capacity and asked us to wait `retry_after` (protocol v2 `Busy`).
    #[error("receiver busy: {message} (asked to retry in {}s)", retry_after.as_secs_f64())]
    Busy {
        retry_after: std::time::Duration,
        message: String,
    },
    #[error("{0}")]
    Other(String),
}

impl SendError {
    pub fn from_receiver(code: ErrorCode, message: &str) -> SendError {
        let text = format!("{}: {message}", code.name());
        if code.is_retryable() {
            SendError::Retryable(format!("receiver: {text}"))
        } else {
            SendError::Refused(text)
        }
    }

    /// The receiver's `Busy` frame as an error that carries its delay.
    pub fn from_busy(busy: &crashdrop_proto::Busy) -> SendError {
        SendError::Busy {
            retry_after: busy.retry_after(),
            message: busy.message.clone(),
        }
    }

    /// The least wait the receiver asked for before the next attempt, if it asked.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            SendError::Busy { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Whether a new attempt (reconnect and resume) can fix this.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Retryable(_) | SendError::Busy { .. })
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            SendError::Vmcore(_) => exit::BAD_VMCORE,
            SendError::Credentials(_) => exit::BAD_CREDENTIALS,
            SendError::Refused(_) | SendError::Identity(_) => exit::REFUSED,
            SendError::Retryable(_) | SendError::Busy { .. } => exit::UNREACHABLE,
            SendError::Other(_) => exit::FAILURE,
        })
    }
}
