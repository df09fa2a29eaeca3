//! `crashdropd`: the crash-dump receiver daemon and its admin commands.

use std::process::ExitCode;

use clap::Parser;
use crashdrop_receiver::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => crashdrop_receiver::cli::serve::run(args),
        Command::List(args) => crashdrop_receiver::cli::list::run(args),
        Command::Verify(args) => crashdrop_receiver::cli::verify::run(args),
        Command::Prune(args) => crashdrop_receiver::cli::prune::run(args),
        Command::Show(args) => crashdrop_receiver::cli::show::run(args),
        Command::Dmesg(args) => crashdrop_receiver::cli::dmesg::run(args),
        Command::Export(args) => crashdrop_receiver::cli::export::run(args),
        Command::Stdio(args) => crashdrop_receiver::cli::stdio::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "crashdropd: error: {}",
                crashdrop_receiver::cli::error_line(&e)
            );
            ExitCode::FAILURE
        }
    }
}
