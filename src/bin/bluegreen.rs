//! `bluegreen`: every host-side helper in one binary, so a host receives one file.
//!
//! `bluegreen validate|health-check|switch-traffic|monitor|deploy|restore|status|setup|maintenance|gate
//! ARGS`, or called through a
//! link named after a helper (`validate ARGS`), like busybox.

use std::ffi::OsString;
use std::path::Path;
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

const HELPERS: [&str; 4] = ["validate", "health-check", "switch-traffic", "monitor"];

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let called_as = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_owned();
    if HELPERS.contains(&called_as.as_str()) {
        args.insert(1, called_as.into());
    }
    match Command::parse_from(args) {
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
