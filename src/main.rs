//! `fake-metadata`: parse the command line, run it, print an error once, exit with its code.

use std::process::ExitCode;

use clap::Parser;
use fake_metadata::cli;

fn main() -> ExitCode {
    match cli::run(cli::Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", cli::describe(&e));
            ExitCode::from(e.exit_code())
        }
    }
}
