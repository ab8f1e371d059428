//! `maintenance on|off`: nginx answers an app's requests with 503, a page and
//! `Retry-After` while its live slot keeps running, or proxies to it again; as the action's
//! `command: maintenance-on` and `maintenance-off` do.

use std::process::ExitCode;

use crate::cli::EXIT_CODES_HELP;
use crate::cli::hand::{self, HandArgs};
use crate::config::defaults;
use crate::deploy::Operation;
use crate::input::HostPath;

const EXAMPLES: &str = "\
Examples:
  bluegreen maintenance on --app shop --page /srv/shop/maintenance.html --retry-after 600
  bluegreen maintenance off --app shop";

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Switch {
    /// nginx answers 503 with the page.
    On,
    /// nginx proxies to the live slot again.
    Off,
}

/// Turn an app's maintenance mode on or off.
#[derive(Debug, clap::Parser)]
#[command(name = "maintenance", version, after_help = format!("{EXAMPLES}\n\n{EXIT_CODES_HELP}"))]
pub struct Cli {
    /// on or off.
    #[arg(value_enum)]
    switch: Switch,

    #[command(flatten)]
    hand: HandArgs,

    /// The HTML page served with the 503 [default: a built-in page].
    #[arg(long, value_name = "PATH")]
    page: Option<HostPath>,

    /// The seconds Retry-After tells clients to wait.
    #[arg(long, default_value = defaults::MAINTENANCE_RETRY_AFTER, value_name = "SECONDS")]
    retry_after: u32,

    /// Show the change to the include, as a diff; change nothing.
    #[arg(long)]
    dry_run: bool,

    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn main(cli: Cli) -> ExitCode {
    let operation = match cli.switch {
        Switch::On => Operation::MaintenanceOn,
        Switch::Off => Operation::MaintenanceOff,
    };
    let mut plan = match cli.hand.plan(operation, "maintenance by hand") {
        Ok(plan) => plan,
        Err(e) => return crate::cli::output::fail(cli.json, &e),
    };
    plan.dry_run = cli.dry_run;
    plan.maintenance.page = cli.page;
    plan.maintenance.retry_after_seconds = cli.retry_after;
    hand::run(&plan, cli.json)
}
