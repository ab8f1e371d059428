//! `validate`: see [`bluegreen::cli::validate`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    bluegreen::cli::validate::main(bluegreen::cli::validate::Cli::parse())
}
