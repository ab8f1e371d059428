//! `switch-traffic`: see [`bluegreen::cli::switch_traffic`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    bluegreen::cli::switch_traffic::main(bluegreen::cli::switch_traffic::Cli::parse())
}
