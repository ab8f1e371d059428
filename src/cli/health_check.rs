//! `health-check`: polls a URL until it answers healthy enough times in a row, or times out.

use std::process::ExitCode;
use std::time::Duration;

use crate::cli::EXIT_CODES_HELP;
use crate::cli::output::finish;
use crate::config::defaults;
use crate::health::{HealthCheck, HealthCriteria};
use crate::input::{HttpUrl, StatusSet, parse_millis, parse_positive_count, parse_time_limit};
use crate::progress::Progress;

const EXAMPLES: &str = "\
Examples (`bluegreen health-check`, or health-check as a link to bluegreen):
  health-check --url http://127.0.0.1:3002/health
  health-check --url http://127.0.0.1:3002/health --timeout 60 --healthy-threshold 3
  health-check --url http://127.0.0.1:3002/ready --accept-status 200,204 --allow-degraded --json

Healthy means: the status is accepted (2xx by default) and, when the body is JSON with a
string \"status\" field, its value is healthy, ok, up or pass (or degraded with
--allow-degraded). Redirects are never followed; at most 64 KiB of a body is read.";

/// Wait until a URL answers healthy N times in a row.
#[derive(Debug, clap::Parser)]
#[command(name = "health-check", version, allow_negative_numbers = true, after_help = format!("{EXAMPLES}\n\n{EXIT_CODES_HELP}"))]
pub struct Cli {
    /// The URL to poll, usually the new slot's health endpoint on loopback.
    #[arg(long)]
    url: HttpUrl,

    /// Total time to wait (seconds, or 500ms, 2m...).
    #[arg(long, default_value = defaults::HEALTH_TIMEOUT, value_parser = parse_time_limit, value_name = "DURATION")]
    timeout: Duration,

    /// Healthy answers needed in a row.
    #[arg(long, default_value = defaults::HEALTHY_THRESHOLD, value_parser = parse_positive_count, value_name = "N")]
    healthy_threshold: u32,

    /// First wait between polls (milliseconds, or 1s...); doubles while unhealthy.
    #[arg(long, default_value = defaults::HEALTH_INTERVAL, value_parser = parse_millis, value_name = "DURATION")]
    interval: Duration,

    /// Longest wait between polls (milliseconds, or 1s...).
    #[arg(long, default_value = defaults::HEALTH_MAX_INTERVAL, value_parser = parse_millis, value_name = "DURATION")]
    max_interval: Duration,

    /// Time budget of one request, body included (seconds, or 500ms...).
    #[arg(long, default_value = defaults::REQUEST_TIMEOUT, value_parser = parse_time_limit, value_name = "DURATION")]
    request_timeout: Duration,

    /// Accepted HTTP statuses, like 2xx, 200,204 or 200-299.
    #[arg(long, default_value = defaults::HEALTH_ACCEPT_STATUS, value_name = "SET")]
    accept_status: StatusSet,

    /// Also accept a JSON body status of "degraded".
    #[arg(long)]
    allow_degraded: bool,

    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn main(cli: Cli) -> ExitCode {
    let check = HealthCheck {
        url: cli.url,
        timeout: cli.timeout,
        healthy_threshold: cli.healthy_threshold,
        interval: cli.interval,
        max_interval: cli.max_interval,
        request_timeout: cli.request_timeout,
        criteria: HealthCriteria::new(cli.accept_status, cli.allow_degraded),
        cancel: crate::cancel::Cancel::new(),
    };
    let progress = Progress::new(check.timeout.as_millis() as u64);
    let report = check.run(&progress);
    drop(progress);
    finish(cli.json, Ok(report))
}
