//! crashdropd: receives kernel crash dumps from `crashdrop-send` over mutual TLS and stores each
//! as a kdump-compressed file that `crash` opens.

pub mod acceptor;
pub mod cli;
pub mod handshakes;
pub mod hooks;
pub mod host_policy;
pub mod log_limit;
pub mod refusal;
pub mod reload;
pub mod revocation;
pub mod server_cert;
pub mod session;
pub mod ssh;
pub mod store;
pub mod tls;
pub mod triage;
