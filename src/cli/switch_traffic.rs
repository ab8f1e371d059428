//! `switch-traffic`: points nginx at the blue or green slot (or, with `--weight`, a share of
//! new requests at it), confirms it, records it.

use std::process::ExitCode;

use crate::cli::{AppArgs, EXIT_CODES_HELP, NginxArgs, PortArgs, SwitchArgs, SwitchParts};
use std::time::Duration;

use crate::canary::Share;
use crate::cancel::Cancel;
use crate::cli::output::finish;
use crate::config::defaults;
use crate::error::{Error, Result};
use crate::health::{HealthCheck, HealthCriteria};
use crate::input::{HealthPath, HttpUrl, Slot, StatusSet, SwitchTarget, Version, parse_time_limit};
use crate::progress::Progress;
use crate::state::CanaryRecord;
use crate::switch::{Intent, SwitchReport, SwitchRequest};

const EXAMPLES: &str = "\
Examples:
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

fn run(cli: &Cli) -> Result<SwitchReport> {
    let parts = SwitchParts {
        app: &cli.app.app,
        state_dir: cli.app.state_dir.as_ref(),
        ports: &cli.ports,
        nginx: &cli.nginx,
        switch: &cli.switch,
    };
    let plain = Intent::switch_to(cli.to).recording(cli.app_version.clone(), None);
    let request = parts.request(plain, cli.dry_run)?;
    let slot = request.target_slot()?;
    let request = match cli.weight {
        Some(share) => parts.request(split_to(cli, &request, slot, share)?, cli.dry_run)?,
        None => request,
    };
    let progress = Progress::new(0);
    if !cli.dry_run && !cli.skip_health_check_dangerous {
        target_answers_healthy(cli, &request, slot, &progress)?;
    }
    request.run(&progress)
}

/// The intent of `--weight`: `share` of new requests to `slot`, the rest to the live slot,
/// which must be the other one.
fn split_to(cli: &Cli, request: &SwitchRequest, slot: Slot, share: Share) -> Result<Intent> {
    let state = request
        .store
        .load(
            &request.app,
            request.config.upstream_file.as_path(),
            request.ports,
        )?
        .state;
    let live = state.active.filter(|live| *live != slot).ok_or_else(|| {
        Error::invalid(
            "--weight",
            format!(
                "a weight sends a share to the slot that is not live, beside the live one; the live slot is {}",
                state.active.map_or("none", Slot::as_str)
            ),
        )
    })?;
    let version = match &cli.app_version {
        Some(v) => v.clone(),
        None => state
            .slots
            .get(slot)
            .version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                Error::invalid(
                    "--app-version",
                    format!("state records no version for {slot}: say which it runs"),
                )
            })?,
    };
    Ok(Intent::split(
        live,
        CanaryRecord {
            slot,
            share,
            version,
            image: None,
            image_id: None,
            paused: true,
        },
    ))
}

/// Refuses the switch, changing nothing, unless `slot` (the target, or the slot a weight
/// sends a share to) answers healthy: a switch to a stopped slot would make nginx answer
/// 502.
fn target_answers_healthy(
    cli: &Cli,
    request: &SwitchRequest,
    slot: Slot,
    progress: &Progress,
) -> Result<()> {
    let port = request.ports.port(slot);
    let url: HttpUrl = format!("http://127.0.0.1:{port}{}", cli.health_path.as_str())
        .parse()
        .expect("a loopback URL with a checked path parses");
    let report = HealthCheck {
        url,
        timeout: cli.health_timeout,
        healthy_threshold: 1,
        interval: Duration::from_millis(200),
        max_interval: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        criteria: HealthCriteria::new(StatusSet::default(), false),
        cancel: Cancel::new(),
    }
    .run(progress);
    if report.healthy {
        return Ok(());
    }
    Err(Error::CheckFailed(format!(
        "not switching: {slot} (port {port}) does not answer healthy at {} within {}: {}; start it first, or pass --skip-health-check-dangerous",
        report.url,
        humantime::format_duration(cli.health_timeout),
        report.last_problem.as_deref().unwrap_or("no answer")
    )))
}

pub fn main(cli: Cli) -> ExitCode {
    finish(cli.json, run(&cli))
}
