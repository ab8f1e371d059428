//! `monitor`: watches the live URL after a switch and, when asked, rolls back by itself.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::canary::{AccessLog, StepTraffic, Thresholds, Verdict, judge};
use crate::cli::hand::HandArgs;
use crate::cli::output::{Report, finish};
use crate::cli::{AppArgs, EXIT_CODES_HELP, NginxArgs, PortArgs, SwitchArgs};
use crate::config::defaults;
use crate::deploy::{DeployPlan, Engine, Event, Operation, Outcome, SystemHost};
use crate::error::{Error, Result};
use crate::input::{
    AppName, Fraction, HealthPath, HostPath, HttpUrl, Port, Slot, StatusSet, parse_millis,
    parse_time_limit, parse_wait,
};
use crate::monitor::{Monitor, MonitorReport};
use crate::progress::Progress;

const EXAMPLES: &str = "\
Examples (`bluegreen monitor`, or monitor as a link to bluegreen):
  monitor --url https://shop.example.com/ --duration 30
  monitor --url http://127.0.0.1/ --duration 60 --max-error-rate 0 --max-p95-ms 300
  monitor --url http://127.0.0.1/ --rollback-on-fail --app shop --verify-url http://127.0.0.1/health
  monitor --url http://127.0.0.1:3002/health --duration 60 --app shop \
      --access-log /var/log/bluegreen/shop.access.log --canary green

A request fails when it gets no answer in time or a status outside --accept-status
(default 200-399: a mistyped URL's 404 fails the watch too; say 200-499 to accept it).
The watch stops early once failures exceed what the whole window allows.

With --access-log, the requests nginx logged during the window are judged too: the
--canary slot's error rate and p95 against the ceilings and against the other slot's,
as a canary step is (see switch-traffic --weight).";

/// Watch a live URL for a while: error rate, latency percentiles, longest gap without a
/// successful answer. Exit 1 when a threshold is broken; with --rollback-on-fail, switch
/// back to the previous slot first.
#[derive(Debug, clap::Parser)]
#[command(name = "monitor", version, allow_negative_numbers = true, after_help = format!("{EXAMPLES}\n\n{EXIT_CODES_HELP}"))]
pub struct Cli {
    /// The live URL to watch (through nginx).
    #[arg(long)]
    url: HttpUrl,

    /// How long to watch (seconds, or 2m...).
    #[arg(long, default_value = defaults::MONITOR_DURATION, value_parser = parse_wait, value_name = "DURATION")]
    duration: Duration,

    /// Time between request starts (milliseconds, or 1s...).
    #[arg(long, default_value = defaults::MONITOR_INTERVAL, value_parser = parse_millis, value_name = "DURATION")]
    interval: Duration,

    /// Time budget of one request (seconds, or 500ms...).
    #[arg(long, default_value = defaults::REQUEST_TIMEOUT, value_parser = parse_time_limit, value_name = "DURATION")]
    request_timeout: Duration,

    /// Statuses that count as success, like 200-499 or 2xx.
    #[arg(long, default_value = defaults::MONITOR_ACCEPT_STATUS, value_name = "SET")]
    accept_status: StatusSet,

    /// Highest acceptable error rate, from 0 to 1.
    #[arg(long, default_value = defaults::MAX_ERROR_RATE, value_name = "RATE")]
    max_error_rate: Fraction,

    /// Highest acceptable 95th percentile latency in milliseconds.
    #[arg(long, default_value = defaults::MAX_P95_MS, value_name = "MS")]
    max_p95_ms: u64,

    /// On failure, switch back to the previous slot, as the action's command rollback does
    /// (needs --app and the switch options); the previous slot must still run: monitor
    /// starts no slot.
    #[arg(long, requires = "app", conflicts_with = "access_log")]
    rollback_on_fail: bool,

    /// Also judge the requests this access log (the one the bluegreen include writes,
    /// LOG_DIR/APP.access.log) records during the window, per slot (needs --app and --canary).
    #[arg(long, value_name = "PATH", requires_all = ["app", "canary"])]
    access_log: Option<HostPath>,

    /// The slot whose share of the access log is judged against the other's.
    #[arg(long, value_name = "SLOT", requires = "access_log")]
    canary: Option<Slot>,

    /// The health path the previous slot must answer 2xx at before --rollback-on-fail
    /// sends traffic back to it.
    #[arg(long, default_value = defaults::HEALTH_PATH, value_name = "PATH")]
    health_path: HealthPath,

    /// How much higher than the other slot's the canary's error rate may be.
    #[arg(long, default_value = defaults::CANARY_ERROR_MARGIN, value_name = "RATE")]
    error_margin: Fraction,

    /// How much higher than the other slot's the canary's p95 may be, in milliseconds.
    #[arg(long, default_value = defaults::CANARY_P95_MARGIN_MS, value_name = "MS")]
    p95_margin_ms: u64,

    /// Fewer of the canary's requests than this in the log: judged on the probes only.
    #[arg(long, default_value = defaults::CANARY_MIN_REQUESTS, value_name = "N")]
    min_requests: u32,

    /// Application name, for --rollback-on-fail.
    #[arg(long)]
    app: Option<AppName>,

    /// State directory, for --rollback-on-fail [default: /var/lib/bluegreen/APP].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<HostPath>,

    #[command(flatten)]
    ports: PortArgs,

    #[command(flatten)]
    nginx: NginxArgs,

    #[command(flatten)]
    switch: SwitchArgs,

    /// The port setup gave nginx's own 503 server, for --rollback-on-fail: its answers in
    /// the access log are nginx's, not a slot's.
    #[arg(long, default_value = defaults::MAINTENANCE_PORT, value_name = "PORT")]
    maintenance_port: Port,

    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn run(cli: &Cli) -> Result<MonitorOutcome> {
    let monitor = Monitor {
        url: cli.url.clone(),
        // A canary's URL is its slot's own: no site to name.
        site_host: cli
            .canary
            .is_none()
            .then(|| cli.switch.site_host.clone())
            .flatten(),
        duration: cli.duration,
        interval: cli.interval,
        request_timeout: cli.request_timeout,
        accepted: cli.accept_status.clone(),
        max_error_rate: cli.max_error_rate.get(),
        max_p95_ms: cli.max_p95_ms,
    };
    let rollback = match (&cli.app, cli.rollback_on_fail) {
        (Some(app), true) => Some(rollback_plan(cli, app)?),
        _ => None,
    };
    let judged = match (&cli.access_log, cli.canary, &cli.app) {
        (Some(path), Some(canary), Some(app)) => {
            let store = crate::cli::state_store(app, cli.state_dir.as_ref());
            let ports = cli.ports.ports(app, &store)?;
            let log = AccessLog::new(path.as_path());
            Some((log.end(), log, ports, canary))
        }
        _ => None,
    };
    let progress = Progress::new(monitor.duration.as_millis() as u64);
    let report = monitor.run(&progress);
    let rollback = rollback.filter(|_| !report.passed).map(|mut plan| {
        plan.purpose = format!("monitor failed: {}", report.reasons.join("; "));
        progress.line(&format!("{}; rolling back", plan.purpose));
        roll_back(&plan)
    });
    let mut outcome = MonitorOutcome {
        report,
        rollback,
        canary: None,
    };
    if let Some((offset, log, ports, canary)) = judged {
        let traffic = log.since(offset, ports, canary)?;
        let limits = Thresholds {
            max_error_rate: cli.max_error_rate.get(),
            error_margin: cli.error_margin.get(),
            max_p95_ms: cli.max_p95_ms,
            p95_margin_ms: cli.p95_margin_ms,
            min_requests: cli.min_requests,
        };
        let verdict = judge(&traffic, None, &outcome.report, &limits);
        outcome.canary = Some(CanaryJudgement {
            slot: canary,
            traffic,
            verdict,
        });
    }
    Ok(outcome)
}

pub fn main(cli: Cli) -> ExitCode {
    finish(cli.json, run(&cli))
}

/// What an automatic rollback did.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackResult {
    /// Whether traffic went back to the previous slot.
    pub rolled_back: bool,
    /// The slot traffic went back to.
    pub to: Option<Slot>,
    /// Why the rollback did not happen or failed.
    pub error: Option<String>,
}

/// A watch and, when it failed and a rollback was asked for, the rollback.
#[derive(Debug, Clone, Serialize)]
pub struct MonitorOutcome {
    /// What the watch saw.
    #[serde(flatten)]
    pub report: MonitorReport,
    /// The rollback, when one was asked for and the watch failed.
    pub rollback: Option<RollbackResult>,
    /// The verdict on a slot's share of the access log, when one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryJudgement>,
}

/// What the access log says about a canary's share of the window, and the verdict on it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CanaryJudgement {
    /// The slot judged.
    pub slot: Slot,
    /// What the log says about each slot.
    pub traffic: StepTraffic,
    /// The verdict (the probes' reasons included).
    pub verdict: Verdict,
}

/// The plan of the rollback a failed watch runs: the engine's rollback (the action's
/// `command: rollback`), which starts no slot here (monitor knows the slots only by their
/// ports) and goes ahead only while the slot live now still is. A dry run of it now
/// refuses, before the watch, what the rollback would refuse (no previous slot, a canary in
/// progress). Refused as well: an app in maintenance, whose URLs nginx answers with 503, so
/// a watch through nginx would fail.
fn rollback_plan(cli: &Cli, app: &AppName) -> Result<DeployPlan> {
    let refuse = |why: String| Error::invalid("--rollback-on-fail", why);
    let hand = HandArgs {
        maintenance_port: cli.maintenance_port,
        ..HandArgs::with_defaults(
            AppArgs {
                app: app.clone(),
                state_dir: cli.state_dir.clone(),
            },
            cli.ports.clone(),
            cli.nginx.clone(),
            cli.switch.clone(),
        )
    };
    if hand
        .app
        .store()
        .read(app)
        .is_some_and(|state| state.maintenance.is_some())
    {
        return Err(refuse(format!(
            "{app} is in maintenance: nginx answers its URLs with 503, so a watch through nginx would roll back a healthy version; end maintenance first, or watch the slot's own health URL without --rollback-on-fail"
        )));
    }
    let mut plan = hand.plan(Operation::Rollback, "monitor failed")?;
    plan.runtime = plan.runtime.starting_no_slot();
    plan.health.path = cli.health_path.clone();
    plan.dry_run = true;
    crate::cli::hand::refuse_problems(&plan)?;
    let quiet = |_: &Event| {};
    let check = Engine::new(&plan, &SystemHost, &quiet).run();
    if let Some(error) = check.error {
        return Err(refuse(error.message));
    }
    plan.dry_run = false;
    plan.expect_live = check.active_slot;
    Ok(plan)
}

/// Runs the rollback `plan` (its progress on stderr) and says what it did.
fn roll_back(plan: &DeployPlan) -> RollbackResult {
    let result = Engine::new(plan, &SystemHost, &crate::cli::hand::print_progress).run();
    let rolled_back = result.result == Some(Outcome::RolledBack);
    RollbackResult {
        rolled_back,
        to: result.active_slot.filter(|_| rolled_back),
        error: result.error.map(|e| e.message),
    }
}

impl Report for MonitorOutcome {
    fn passed(&self) -> bool {
        self.canary
            .as_ref()
            .map_or(self.report.passed, |c| c.verdict.passed)
    }

    fn human(&self) -> String {
        let r = &self.report;
        let mut out = format!(
            "monitor {}: {} in {}\n  requests {}, failed {} ({:.2}%), p50 {} ms, p95 {} ms, p99 {} ms, longest gap without success {} ms\n",
            r.url,
            if r.passed { "passed" } else { "FAILED" },
            crate::cli::output::seconds(r.duration_ms),
            r.requests,
            r.failures,
            r.error_rate * 100.0,
            r.p50_ms,
            r.p95_ms,
            r.p99_ms,
            r.longest_gap_ms
        );
        for reason in &r.reasons {
            let _ = writeln!(out, "  {reason}");
        }
        if r.stopped_early {
            out.push_str("  stopped early: the failures already exceeded what the window allows\n");
        }
        if let Some(first) = &r.first_failure {
            let _ = writeln!(out, "  first failure: {first}");
        }
        match &self.rollback {
            Some(rb) if rb.rolled_back => {
                let _ = writeln!(
                    out,
                    "  rolled back to {}",
                    rb.to.map_or("?", |s| s.as_str())
                );
            }
            Some(rb) => {
                let _ = writeln!(
                    out,
                    "  rollback FAILED: {}",
                    rb.error.as_deref().unwrap_or("unknown error")
                );
            }
            None => {}
        }
        if let Some(c) = &self.canary {
            let (new, old) = (&c.traffic.canary, &c.traffic.stable);
            let _ = writeln!(
                out,
                "  access log: {} served {:.1}% of {} requests ({}; {}): {}{}",
                c.slot,
                c.traffic.canary_percent(),
                new.requests + old.requests,
                new.describe(c.slot),
                old.describe(c.slot.other()),
                if c.verdict.passed { "passed" } else { "FAILED" },
                if c.verdict.judged_on_traffic {
                    ""
                } else {
                    " (too few of its requests: judged on the probes)"
                }
            );
            for reason in &c.verdict.reasons {
                let _ = writeln!(out, "  {reason}");
            }
        }
        out
    }
}
