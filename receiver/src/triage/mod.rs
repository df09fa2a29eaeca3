//! What crashed, read from the crashed kernel's log: the first crash report in it ([`CrashReport`]:
//! its title line, the task and CPU it names, the call trace) and a stable [`Signature`] that two
//! dumps of the same bug share across hosts and kernel builds.
//!
//! The approach is the one syzkaller's crash titles and ABRT's kernel-oops hashes take: the report's
//! first line with every number, address and task name masked, plus the first frames of the call
//! trace that are not generic reporting or entry code. Pure text in, text out: no I/O here.

mod report;
mod signature;

pub use report::{find_report, CrashReport, ReportKind};
pub use signature::{mask_numbers, Signature};
