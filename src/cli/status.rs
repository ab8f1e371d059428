//! `status`: what an app's host holds and serves, for an operator at the host: what
//! state.json records, what nginx really routes to (the upstream file, or the nftables rule
//! in that mode), what each slot runs and whether it answers, and the latest history. The
//! same report as the action's `command: status`; changes nothing.

use std::process::ExitCode;

use crate::cli::EXIT_CODES_HELP;
use crate::cli::hand::HandArgs;
use crate::cli::output::{Report, fail, fail_run, finish};
use crate::config::defaults;
use crate::deploy::{DeployPlan, Engine, Operation, StatusReport, SystemHost};
use crate::error::Result;
use crate::input::HealthPath;
use crate::runtime::Runtime;

const EXAMPLES: &str = "\
Examples:
  bluegreen status --app shop
  bluegreen status --app shop --runtime compose --nft-command 'sudo nft' --json

Exit code 1 means something needs a look: nginx routes to another slot than state.json
records, or the slot that takes traffic does not answer healthy or is not running.";

/// Show what an app's host holds and serves.
#[derive(Debug, clap::Parser)]
#[command(name = "status", version, after_help = format!("{EXAMPLES}\n\n{EXIT_CODES_HELP}"))]
pub struct Cli {
    #[command(flatten)]
    hand: HandArgs,

    /// How the slots run, to see what each runs.
    #[arg(long, value_enum, default_value = defaults::RUNTIME)]
    runtime: Runtime,

    /// The health path each slot is probed at.
    #[arg(long, default_value = defaults::HEALTH_PATH, value_name = "PATH")]
    health_path: HealthPath,

    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The status plan of the app these options name.
fn plan(cli: &Cli) -> Result<DeployPlan> {
    let mut plan = cli.hand.plan(Operation::Status, "status by hand")?;
    plan.runtime.runtime = cli.runtime;
    plan.health.path = cli.health_path.clone();
    Ok(plan)
}

impl Report for StatusReport {
    fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    fn human(&self) -> String {
        self.lines().iter().map(|l| format!("{l}\n")).collect()
    }
}

pub fn main(cli: Cli) -> ExitCode {
    let plan = match plan(&cli) {
        Ok(plan) => plan,
        Err(e) => return fail(cli.json, &e),
    };
    let quiet = |_: &crate::deploy::Event| {};
    let result = Engine::new(&plan, &SystemHost, &quiet).run();
    match (result.status, result.error) {
        (Some(report), _) => finish(cli.json, Ok(report)),
        (None, Some(e)) => fail_run(cli.json, &e),
        (None, None) => unreachable!("a status run that failed says why"),
    }
}
