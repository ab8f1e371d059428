//! `monitor`: see [`bluegreen::cli::monitor`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    bluegreen::cli::monitor::main(bluegreen::cli::monitor::Cli::parse())
}
