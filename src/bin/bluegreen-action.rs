//! `bluegreen-action`: the orchestrator `action.yml` runs on the GitHub runner. See
//! [`bluegreen::action`].

use std::process::ExitCode;

fn main() -> ExitCode {
    bluegreen::action::main()
}
