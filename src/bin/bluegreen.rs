//! `bluegreen`: every host-side helper in one binary, so a host receives one file.
//!
//! `bluegreen validate|health-check|switch-traffic|monitor|deploy|restore|status|setup|maintenance|gate
//! ARGS`, or called through a
//! link named after a helper (`validate ARGS`), like busybox.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bluegreen::cli::{
    deploy, gate, health_check, maintenance, monitor, restore, setup, status, switch_traffic,
    validate,
};
use clap::Parser;

/// Zero-downtime blue-green deploys behind nginx: the host-side helpers.
#[derive(Debug, Parser)]
#[command(name = "bluegreen", version)]
enum Command {
    Validate(validate::Cli),
    HealthCheck(health_check::Cli),
    SwitchTraffic(switch_traffic::Cli),
    Monitor(monitor::Cli),
    Deploy(deploy::Cli),
    Restore(restore::Cli),
    Status(status::Cli),
    Setup(setup::Cli),
    Maintenance(maintenance::Cli),
    Gate(gate::Cli),
}

fn main() -> ExitCode {
    // Called through a link named after a helper, it is that helper: its own usage line.
    let called_as = std::env::args_os().next().map(PathBuf::from);
    match called_as
        .as_deref()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
    {
        Some("validate") => return validate::main(validate::Cli::parse()),
        Some("health-check") => return health_check::main(health_check::Cli::parse()),
        Some("switch-traffic") => return switch_traffic::main(switch_traffic::Cli::parse()),
        Some("monitor") => return monitor::main(monitor::Cli::parse()),
        _ => {}
    }
    match Command::parse() {
        Command::Validate(cli) => validate::main(cli),
        Command::HealthCheck(cli) => health_check::main(cli),
        Command::SwitchTraffic(cli) => switch_traffic::main(cli),
        Command::Monitor(cli) => monitor::main(cli),
        Command::Deploy(cli) => deploy::main(cli),
        Command::Restore(cli) => restore::main(cli),
        Command::Status(cli) => status::main(cli),
        Command::Setup(cli) => setup::main(cli),
        Command::Maintenance(cli) => maintenance::main(cli),
        Command::Gate(cli) => gate::main(cli),
    }
}
