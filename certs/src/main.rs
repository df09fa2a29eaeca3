//! `crashdrop-certs`: creates the CA, the receiver certificate and one certificate per host.

#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match cli::Cli::parse().run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crashdrop-certs: {e:#}");
            ExitCode::FAILURE
        }
    }
}
