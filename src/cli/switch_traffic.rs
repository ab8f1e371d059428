//! `switch-traffic`: points nginx at the blue or green slot (or, with `--weight`, a share of
//! new requests at it), confirms it, records it.

use std::process::ExitCode;
use std::time::Duration;

use crate::canary::Share;
use crate::cli::hand::{HandArgs, print_progress, refuse_problems};
use crate::cli::output::{fail, fail_run, finish};
use crate::cli::{AppArgs, EXIT_CODES_HELP, NginxArgs, PortArgs, SwitchArgs};
use crate::config::defaults;
use crate::deploy::{DeployPlan, Engine, HandSwitchSpec, Operation, SystemHost};
use crate::error::Result;
use crate::input::{HealthPath, SwitchTarget, Version, parse_time_limit};

const EXAMPLES: &str = "\
Examples (`bluegreen switch-traffic`, or switch-traffic as a link to bluegreen):
  switch-traffic --app shop --to green --app-version v42 --verify-url http://127.0.0.1/health
  switch-traffic --app shop --to previous
  switch-traffic --app shop --to blue --dry-run
  switch-traffic --app shop --to green --weight 10    # 10% of new requests to green
  switch-traffic --app shop --to green --test-cmd 'docker exec web nginx -t' \\
      --reload-cmd 'docker exec web nginx -s reload' --verify-url http://127.0.0.1/health

Your nginx server block proxies to the upstream named after the app:
  include /etc/nginx/conf.d/bluegreen-shop.conf;   # or any include that picks it up
  location / { proxy_pass http://shop; }";

/// Switch nginx to the blue or green slot once it answers healthy: render the upstream
/// include, write it atomically, test, reload, confirm, and only then record the new state.
/// Any failure puts the previous include back.
#[derive(Debug, clap::Parser)]
#[command(name = "switch-traffic", version, allow_negative_numbers = true, after_help = format!("{EXAMPLES}\n\n{EXIT_CODES_HELP}"))]
pub struct Cli {
    #[command(flatten)]
    app: AppArgs,

    /// The slot to send traffic to: blue, green, or previous (the slot active before).
    #[arg(long, value_name = "SLOT")]
    to: SwitchTarget,

    /// The version now running in that slot, recorded in state and the include.
    #[arg(long, value_name = "VERSION")]
    app_version: Option<Version>,

    /// Send only this share of new requests (1 to 99 percent) to the slot, the rest to the
    /// live slot: a canary by hand, recorded in state until the next switch.
    #[arg(long, value_name = "PERCENT")]
    weight: Option<Share>,

    #[command(flatten)]
    ports: PortArgs,

    #[command(flatten)]
    nginx: NginxArgs,

    #[command(flatten)]
    switch: SwitchArgs,

    /// Path of the slot's health endpoint, checked before the switch: the target slot must
    /// answer 2xx there (within --health-timeout) or nothing is switched.
    #[arg(long, value_name = "PATH", default_value = defaults::HEALTH_PATH)]
    health_path: HealthPath,

    /// How long the target slot may take to answer healthy before the switch is refused.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_time_limit)]
    health_timeout: Duration,

    /// DANGEROUS: switch without checking that the target slot answers healthy (nginx then
    /// answers 502 if it does not).
    #[arg(long)]
    skip_health_check_dangerous: bool,

    /// Print the include that would be written and its diff; change nothing.
    #[arg(long)]
    dry_run: bool,

    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The plan of the switch these options ask for: the engine's operation `switch`, with
/// the slots known by their ports only (it starts none).
fn plan(cli: &Cli) -> Result<DeployPlan> {
    let hand = HandArgs::with_defaults(
        cli.app.clone(),
        cli.ports.clone(),
        cli.nginx.clone(),
        cli.switch.clone(),
    );
    let mut plan = hand.plan(Operation::Switch, "switch-traffic by hand")?;
    plan.dry_run = cli.dry_run;
    plan.runtime = plan.runtime.starting_no_slot();
    plan.health.path = cli.health_path.clone();
    plan.health.timeout = cli.health_timeout;
    plan.hand_switch = Some(HandSwitchSpec {
        to: cli.to,
        share: cli.weight,
        version: cli.app_version.clone(),
        check_health: !cli.skip_health_check_dangerous,
    });
    Ok(plan)
}

pub fn main(cli: Cli) -> ExitCode {
    let plan = match plan(&cli) {
        Ok(plan) => plan,
        Err(e) => return fail(cli.json, &e),
    };
    if let Err(error) = refuse_problems(&plan) {
        return fail(cli.json, &error);
    }
    let result = Engine::new(&plan, &SystemHost, &print_progress).run();
    match (result.switch, result.error) {
        (_, Some(e)) => fail_run(cli.json, &e),
        (Some(report), None) => finish(cli.json, Ok(report)),
        (None, None) => unreachable!("a switch that did not fail says what it did"),
    }
}
