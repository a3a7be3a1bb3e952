//! `fake-metadata`: parse the command line, run it, exit with its code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    fake_metadata::cli::run(fake_metadata::cli::Cli::parse())
}
