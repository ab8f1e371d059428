//! `bluegreen-action`: the orchestrator `action.yml` runs on the GitHub runner. See
//! [`bluegreen::action`].

use std::process::ExitCode;

use clap::Parser;

/// Deploy to the hosts in INPUT_HOST over SSH, as action.yml's Deploy step does. Every
/// action input arrives as an INPUT_* environment variable (INPUT_SSH_KEY for ssh-key);
/// BLUEGREEN_HELPERS lists the host helper binaries (one per machine type, :-separated).
#[derive(Debug, Parser)]
#[command(name = "bluegreen-action", version)]
struct Cli {
    /// Relay ssh's stdin and stdout to HOST PORT with prompt acknowledgements (the run's
    /// own ssh uses this as its ProxyCommand).
    #[arg(long, num_args = 2, value_names = ["HOST", "PORT"], hide = true)]
    tcp_proxy: Option<Vec<String>>,
}

fn main() -> ExitCode {
    match Cli::parse().tcp_proxy.as_deref() {
        Some([host, port]) => bluegreen::action::proxy::main(host, port),
        _ => bluegreen::action::main(),
    }
}
