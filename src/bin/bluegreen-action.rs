//! `bluegreen-action`: the orchestrator `action.yml` runs on the GitHub runner. See
//! [`bluegreen::action`].

use std::process::ExitCode;

use clap::Parser;

/// Deploy to the hosts in INPUT_HOST over SSH, as action.yml's Deploy step does. Every
/// action input arrives as an INPUT_* environment variable (INPUT_SSH_KEY for ssh-key);
/// BLUEGREEN_HELPERS lists the host helper binaries (one per machine type, :-separated).
#[derive(Debug, Parser)]
#[command(name = "bluegreen-action", version)]
struct Cli {}

fn main() -> ExitCode {
    Cli::parse();
    bluegreen::action::main()
}
