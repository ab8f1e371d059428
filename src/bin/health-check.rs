//! `health-check`: see [`bluegreen::cli::health_check`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    bluegreen::cli::health_check::main(bluegreen::cli::health_check::Cli::parse())
}
