//! `setup`: prepares this host (with nginx) for an app's first deploy, as the action's
//! `command: setup` does: the state directory, the upstream include (a placeholder until
//! the first deploy), the server block, the boot path in nftables mode, then `nginx -t` and
//! a reload. A second run changes nothing.

use std::process::ExitCode;

use crate::cli::EXIT_CODES_HELP;
use crate::cli::hand::{self, HandArgs};
use crate::config::{default_server_file, defaults};
use crate::deploy::{Operation, SiteSpec};
use crate::input::{HostPath, Listen, ServerNames};

const EXAMPLES: &str = "\
Examples:
  bluegreen setup --app shop --server-name shop.example.com --dry-run
  bluegreen setup --app shop --server-name shop.example.com --listen 80";

/// Prepare this host for an app's first deploy.
#[derive(Debug, clap::Parser)]
#[command(name = "setup", version, after_help = format!("{EXAMPLES}\n\n{EXIT_CODES_HELP}"))]
pub struct Cli {
    #[command(flatten)]
    hand: HandArgs,

    /// The server block's server_name (names separated by spaces or commas; _ for none).
    #[arg(long, default_value = defaults::SERVER_NAME, value_name = "NAMES")]
    server_name: ServerNames,

    /// The server block's listen address: a port, or ADDRESS:PORT.
    #[arg(long, default_value = defaults::LISTEN, value_name = "ADDRESS")]
    listen: Listen,

    /// Where the server block is written [default: bluegreen-APP.server.conf beside the
    /// upstream file].
    #[arg(long, value_name = "PATH")]
    server_file: Option<HostPath>,

    /// Show every file it would write, as a diff; change nothing.
    #[arg(long)]
    dry_run: bool,

    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn main(cli: Cli) -> ExitCode {
    let mut plan = match cli.hand.plan(Operation::Setup, "setup by hand") {
        Ok(plan) => plan,
        Err(e) => return crate::cli::output::fail(cli.json, &e),
    };
    plan.dry_run = cli.dry_run;
    plan.site = SiteSpec {
        server_names: cli.server_name,
        listen: cli.listen,
        server_file: cli
            .server_file
            .unwrap_or_else(|| default_server_file(&plan.app, &plan.switch.upstream_file)),
    };
    hand::run(&plan, cli.json)
}
