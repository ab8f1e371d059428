//! One deploy (or rollback, or status) of one app on the host it runs on, phase by phase,
//! reported as a stream of events.
//!
//! The runner's orchestrator sends a [`DeployPlan`] as JSON to `bluegreen deploy` over one
//! SSH channel and relays the [`Event`]s it prints, one JSON object per line. All phases run
//! in this one process, which holds the app lock for its whole life: if the connection drops
//! or the orchestrator is killed, the lock goes with this process and never outlives it.
//!
//! Failure semantics (see DESIGN.md): before the switch the live slot is never touched and a
//! failed standby is stopped with its log tail reported; a failed switch restores the
//! previous upstream; a failed watch after the switch switches back to the previous slot
//! (still running) when rollback is on; a failed retire is a warning only.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::exec::CommandLine;
use crate::health::{HealthCheck, HealthCriteria};
use crate::input::{AppName, HttpUrl, Image, Slot, SlotPorts, StatusSet, SwitchTarget, Version};
use crate::lock::AppLock;
use crate::monitor::{Monitor, MonitorReport};
use crate::nft::NftSwitch;
use crate::progress::Progress;
use crate::runtime::{Compose, Pull, Runtime, RuntimeConfig, SlotSpec};
use crate::state::{HistoryEvent, State, StateStore, now_rfc3339};
use crate::switch::{LockPolicy, SwitchMode, SwitchRequest};
use crate::upstream::Template;
use crate::validate::{CheckStatus, ValidateRequest};

/// How long one runtime command (docker run, compose up, the user's command) may take.
const RUNTIME_COMMAND_TIMEOUT: Duration = Duration::from_secs(600);
/// First wait between health probes of a standby.
const STANDBY_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Longest wait between health probes of a standby: bounds how late a ready standby is
/// noticed.
const STANDBY_POLL_MAX_INTERVAL: Duration = Duration::from_millis(200);
/// How many history lines `status` reports.
const STATUS_HISTORY_LINES: usize = 10;

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// Start the new version in the idle slot and switch to it.
    Deploy,
    /// Switch back to the previous slot.
    Rollback,
    /// Report the host's state.
    Status,
}

impl Operation {
    /// The operation's name, as the action's `command` input spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Deploy => "deploy",
            Operation::Rollback => "rollback",
            Operation::Status => "status",
        }
    }
}

/// What happens to the old slot after a successful deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Retire {
    /// Stop it gracefully; it stays on disk as the rollback target.
    Stop,
    /// Leave it running (instant rollback).
    Keep,
    /// Stop and remove it.
    Remove,
}

/// Everything the host needs for one run. Built and validated on the runner, sent as JSON,
/// and validated again here by deserialization into checked types and [`DeployPlan::check`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployPlan {
    /// deploy, rollback or status.
    pub operation: Operation,
    /// Validate and show the plan; change nothing.
    pub dry_run: bool,
    /// The app.
    pub app: AppName,
    /// The state directory (default `/var/lib/bluegreen/APP`).
    pub state_dir: Option<PathBuf>,
    /// Who is deploying and why, written into the lock and history.
    pub purpose: String,
    /// How slots run.
    pub runtime: Runtime,
    /// The image (docker and compose runtimes).
    pub image: Option<Image>,
    /// The version label.
    pub version: Version,
    /// The app's port inside its container.
    pub container_port: u16,
    /// The blue slot's loopback port.
    pub blue_port: u16,
    /// The green slot's loopback port.
    pub green_port: u16,
    /// An env file on the host for `docker run`.
    pub env_file: Option<PathBuf>,
    /// Extra `docker run` arguments, already split into words.
    pub docker_args: Vec<String>,
    /// The compose file on the host.
    pub compose_file: Option<PathBuf>,
    /// The user's command for the command runtime.
    pub deploy_command: Option<String>,
    /// The pull policy.
    pub pull: Pull,
    /// The health path on the slot's port, e.g. `/health`.
    pub health_path: String,
    /// How long the standby may take to become healthy, in seconds.
    pub health_timeout_secs: u64,
    /// Healthy answers needed in a row.
    pub healthy_threshold: u32,
    /// The nginx include we own (default `/etc/nginx/conf.d/bluegreen-APP.conf`).
    pub upstream_file: Option<PathBuf>,
    /// How traffic moves between slots.
    pub switch_mode: SwitchMode,
    /// The fixed port nginx proxies to in nftables mode.
    pub service_port: u16,
    /// The nginx test command.
    pub test_cmd: String,
    /// The nginx reload command.
    pub reload_cmd: String,
    /// nginx's pid file.
    pub nginx_pid_file: PathBuf,
    /// A URL through nginx that must answer from the new slot after the switch.
    pub verify_url: Option<HttpUrl>,
    /// The URL watched after the switch (default: the verify URL, else the new slot's
    /// health URL).
    pub monitor_url: Option<HttpUrl>,
    /// How long to watch, in seconds (0: no watch).
    pub monitor_duration_secs: u64,
    /// Highest acceptable error rate while watching.
    pub max_error_rate: f64,
    /// Highest acceptable p95 latency while watching.
    pub max_p95_ms: u64,
    /// Switch back when the watch fails.
    pub rollback_on_failure: bool,
    /// What happens to the old slot.
    pub retire: Retire,
    /// Seconds to let the old slot finish in-flight requests before stopping it.
    pub drain_seconds: u64,
    /// Seconds between SIGTERM and SIGKILL when stopping a slot.
    pub stop_timeout_secs: u64,
    /// Minimum free disk for validation, in MiB.
    pub min_free_disk_mb: u64,
}

impl DeployPlan {
    /// Cross-field checks that types alone cannot express.
    pub fn check(&self) -> Result<(), Error> {
        SlotPorts::new(self.blue_port, self.green_port)?;
        if self.switch_mode == SwitchMode::Nftables
            && (self.service_port == 0
                || self.service_port == self.blue_port
                || self.service_port == self.green_port)
        {
            return Err(Error::invalid(
                "service-port",
                "must be a port of its own, not 0 and not a slot's port",
            ));
        }
        if self.container_port == 0 {
            return Err(Error::invalid(
                "container-port",
                "port 0 is not a usable port",
            ));
        }
        if !self.health_path.starts_with('/')
            || self
                .health_path
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Error::invalid(
                "health-path",
                format!(
                    "{:?}: must start with / and hold no spaces",
                    self.health_path
                ),
            ));
        }
        if self.healthy_threshold == 0 {
            return Err(Error::invalid("healthy-threshold", "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.max_error_rate) {
            return Err(Error::invalid("max-error-rate", "must be from 0 to 1"));
        }
        if self.operation == Operation::Deploy {
            match self.runtime {
                Runtime::Docker if self.image.is_none() => {
                    return Err(Error::invalid("image", "the docker runtime needs an image"));
                }
                Runtime::Compose if self.compose_file.is_none() => {
                    return Err(Error::invalid(
                        "compose-file",
                        "the compose runtime needs a compose file",
                    ));
                }
                Runtime::Command
                    if self
                        .deploy_command
                        .as_deref()
                        .is_none_or(|c| c.trim().is_empty()) =>
                {
                    return Err(Error::invalid(
                        "deploy-command",
                        "the command runtime needs a deploy command",
                    ));
                }
                _ => {}
            }
        }
        for (what, path) in [
            ("env-file", &self.env_file),
            ("compose-file", &self.compose_file),
        ] {
            if let Some(p) = path
                && (!p.is_absolute() || p.to_string_lossy().contains(['\n', '\r', '\0']))
            {
                return Err(Error::invalid(
                    what,
                    format!("{}: must be an absolute path", p.display()),
                ));
            }
        }
        CommandLine::parse(&self.test_cmd, "nginx-test-command")?;
        CommandLine::parse(&self.reload_cmd, "nginx-reload-command")?;
        Ok(())
    }

    fn ports(&self) -> SlotPorts {
        SlotPorts::new(self.blue_port, self.green_port).expect("checked by DeployPlan::check")
    }

    fn store(&self) -> StateStore {
        StateStore::new(
            self.state_dir
                .clone()
                .unwrap_or_else(|| StateStore::default_dir(&self.app)),
        )
    }

    fn upstream_file(&self) -> PathBuf {
        self.upstream_file.clone().unwrap_or_else(|| {
            PathBuf::from(format!("/etc/nginx/conf.d/bluegreen-{}.conf", self.app))
        })
    }

    fn nft(&self) -> Option<NftSwitch> {
        (self.switch_mode == SwitchMode::Nftables)
            .then(|| NftSwitch::new(&self.app, self.service_port))
    }

    fn health_url(&self, slot: Slot) -> HttpUrl {
        format!(
            "http://127.0.0.1:{}{}",
            self.ports().port(slot),
            self.health_path
        )
        .parse()
        .expect("loopback URL with a checked path is valid")
    }
}

/// A step of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Take the app lock.
    Lock,
    /// Preflight checks.
    Validate,
    /// Start the new version in the idle slot.
    DeployStandby,
    /// Wait for the standby to be healthy.
    HealthCheck,
    /// Point nginx at the standby.
    Switch,
    /// Watch the live URL.
    Monitor,
    /// Switch back after a failed watch.
    Rollback,
    /// Make state, the upstream file and nginx agree after an interrupted run.
    Reconcile,
    /// Stop the old slot.
    Retire,
    /// Read the state (status).
    Status,
}

impl Phase {
    /// The phase's name as shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Lock => "lock",
            Phase::Validate => "validate",
            Phase::DeployStandby => "deploy standby",
            Phase::HealthCheck => "health-check standby",
            Phase::Switch => "switch",
            Phase::Monitor => "monitor",
            Phase::Rollback => "rollback",
            Phase::Reconcile => "reconcile",
            Phase::Retire => "retire",
            Phase::Status => "status",
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The new version is live.
    Deployed,
    /// The new version failed after the switch; the previous one is live again.
    RolledBack,
    /// Something failed; see the failed phase. The live slot is one that was healthy.
    Failed,
    /// Nothing needed doing (same version live and healthy, a dry run, status).
    Unchanged,
}

impl Outcome {
    /// The outcome's name, as used in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Deployed => "deployed",
            Outcome::RolledBack => "rolled-back",
            Outcome::Failed => "failed",
            Outcome::Unchanged => "unchanged",
        }
    }
}

/// One finished phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseRecord {
    /// Which phase.
    pub phase: Phase,
    /// Whether it succeeded.
    pub ok: bool,
    /// How long it took.
    pub ms: u64,
    /// What it did or why it failed.
    pub detail: String,
}

/// The outcome of a run, with what the action reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeployResult {
    /// How it ended.
    pub result: Option<Outcome>,
    /// The slot nginx routes to at the end.
    pub active_slot: Option<Slot>,
    /// The rollback target at the end.
    pub previous_slot: Option<Slot>,
    /// The version live at the end.
    pub active_version: Option<String>,
    /// The phase that failed.
    pub failed_phase: Option<Phase>,
    /// Why it failed.
    pub error: Option<String>,
    /// The last lines of the failed slot's log.
    pub log_tail: Option<String>,
    /// What the watch saw.
    pub monitor: Option<MonitorReport>,
    /// Every phase that ran.
    pub phases: Vec<PhaseRecord>,
    /// Warnings (state rebuilt, retire failed).
    pub warnings: Vec<String>,
    /// The upstream diff a switch would make (dry run).
    pub upstream_diff: Option<String>,
    /// The latest history lines (status).
    pub history: Vec<String>,
}

/// One line of a run's output stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A phase began.
    PhaseStart {
        /// Which phase.
        phase: Phase,
    },
    /// A line of progress.
    Log {
        /// The text.
        line: String,
    },
    /// A phase ended.
    PhaseEnd(PhaseRecord),
    /// The run ended; always the last event.
    Result(Box<DeployResult>),
}

/// A phase failure: why, and optionally the slot whose log tail to collect.
struct Failure {
    message: String,
    log_of: Option<Slot>,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure {
            message: e.to_string(),
            log_of: None,
        }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure {
            message,
            log_of: None,
        }
    }
}

/// Runs a plan, sending events to `emit`.
pub struct Deployer<'a> {
    plan: &'a DeployPlan,
    emit: &'a (dyn Fn(&Event) + Sync),
    runtime: RuntimeConfig,
    result: DeployResult,
}

impl<'a> Deployer<'a> {
    /// A deployer for a checked plan.
    pub fn new(plan: &'a DeployPlan, emit: &'a (dyn Fn(&Event) + Sync)) -> Self {
        let docker = CommandLine::new(["docker"]);
        let compose = (plan.runtime == Runtime::Compose)
            .then(|| Compose::detect(&docker))
            .flatten();
        let runtime = RuntimeConfig {
            runtime: plan.runtime,
            docker,
            compose,
            container_port: plan.container_port,
            env_file: plan.env_file.clone(),
            docker_args: plan.docker_args.clone(),
            compose_file: plan.compose_file.clone(),
            deploy_command: plan.deploy_command.clone(),
            pull: plan.pull,
        };
        Deployer {
            plan,
            emit,
            runtime,
            result: DeployResult::default(),
        }
    }

    fn log(&self, line: &str) {
        (self.emit)(&Event::Log {
            line: line.to_owned(),
        });
    }

    /// Runs one phase: emits its start and end and records it.
    fn phase<T>(
        &mut self,
        phase: Phase,
        body: impl FnOnce(&mut Self) -> Result<(T, String), Failure>,
    ) -> Result<T, Failure> {
        (self.emit)(&Event::PhaseStart { phase });
        let started = Instant::now();
        let outcome = body(self);
        let (ok, detail) = match &outcome {
            Ok((_, detail)) => (true, detail.clone()),
            Err(f) => (false, f.message.clone()),
        };
        let record = PhaseRecord {
            phase,
            ok,
            ms: started.elapsed().as_millis() as u64,
            detail,
        };
        (self.emit)(&Event::PhaseEnd(record.clone()));
        self.result.phases.push(record);
        if !ok {
            self.result.failed_phase = Some(phase);
        }
        outcome.map(|(value, _)| value)
    }

    /// Runs the plan to the end and returns (and emits) the result.
    pub fn run(mut self) -> DeployResult {
        let outcome = match self.plan.operation {
            Operation::Status => self.status(),
            Operation::Deploy => self.deploy(),
            Operation::Rollback => self.rollback(),
        };
        match outcome {
            Ok(outcome) => self.result.result = Some(outcome),
            Err(failure) => {
                self.result.result = Some(Outcome::Failed);
                self.result.error = Some(failure.message);
                if let Some(slot) = failure.log_of {
                    self.result.log_tail = self.log_tail(slot);
                }
            }
        }
        if let Ok(loaded) = self.plan.store().load(
            &self.plan.app,
            &self.plan.upstream_file(),
            self.plan.ports(),
        ) {
            let state = loaded.state;
            self.result.active_slot = state.active;
            self.result.previous_slot = state.previous;
            self.result.active_version = state
                .active
                .and_then(|s| state.slots.get(s).version.clone());
        }
        if !self.plan.dry_run && self.plan.operation != Operation::Status {
            self.record_history();
        }
        (self.emit)(&Event::Result(Box::new(self.result.clone())));
        self.result
    }

    fn record_history(&self) {
        let outcome = self.result.result.unwrap_or(Outcome::Failed);
        let detail = match (&self.result.failed_phase, &self.result.error) {
            (Some(phase), Some(error)) => {
                format!("{} at {}: {error}", outcome.as_str(), phase.as_str())
            }
            _ => outcome.as_str().to_owned(),
        };
        let _ = self.plan.store().record(&HistoryEvent {
            ts: now_rfc3339(),
            event: match self.plan.operation {
                Operation::Rollback => "rollback-run".into(),
                _ => "deploy".into(),
            },
            app: self.plan.app.to_string(),
            from: None,
            to: self.result.active_slot,
            version: Some(self.plan.version.as_str().to_owned()),
            detail: Some(format!("{detail} ({})", self.plan.purpose)),
            pid: std::process::id(),
        });
    }

    fn lock(&mut self) -> Result<AppLock, Failure> {
        let store = self.plan.store();
        let purpose = self.plan.purpose.clone();
        self.phase(Phase::Lock, |_| {
            store.ensure_dir()?;
            let lock = AppLock::acquire(
                store.dir(),
                self.plan.app.as_str(),
                &purpose,
                Duration::ZERO,
            )?;
            Ok((lock, format!("locked {}", store.dir().display())))
        })
    }

    fn load_state(&mut self) -> Result<State, Failure> {
        let loaded = self.plan.store().load(
            &self.plan.app,
            &self.plan.upstream_file(),
            self.plan.ports(),
        )?;
        if let Some(w) = loaded.warning {
            self.log(&format!("warning: {w}"));
            self.result.warnings.push(w);
        }
        let mut state = loaded.state;
        // In nftables mode the upstream file does not say which slot is live: the rule does.
        if loaded.source != crate::state::StateSource::File
            && let Some(nft) = self.plan.nft()
            && let Some(slot) = nft
                .current_target()
                .and_then(|p| self.plan.ports().slot_of(p))
        {
            self.log(&format!(
                "the nftables rule routes to {slot}: taking it as the live slot"
            ));
            state.active = Some(slot);
        }
        Ok(state)
    }

    fn spec(&self, slot: Slot, version: &'a str, image: Option<&'a str>) -> SlotSpec<'a> {
        SlotSpec {
            app: &self.plan.app,
            slot,
            port: self.plan.ports().port(slot),
            image,
            version,
        }
    }

    fn log_tail(&self, slot: Slot) -> Option<String> {
        let spec = self.spec(slot, self.plan.version.as_str(), None);
        let out = self
            .runtime
            .logs(&spec)?
            .run_unchecked(Duration::from_secs(30))
            .ok()?;
        let text = format!("{}{}", out.stdout, out.stderr);
        Some(crate::exec::tail(text.trim(), 4000))
    }

    fn stop_slot(&self, slot: Slot, remove: bool) -> Result<(), String> {
        let spec = self.spec(
            slot,
            self.plan.version.as_str(),
            self.plan.image.as_ref().map(Image::as_str),
        );
        for cmd in self.runtime.stop(
            &spec,
            Duration::from_secs(self.plan.stop_timeout_secs),
            remove,
        ) {
            let timeout = Duration::from_secs(self.plan.stop_timeout_secs + 60);
            cmd.run(timeout).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn validate(&mut self) -> Result<(), Failure> {
        let plan = self.plan;
        self.phase(Phase::Validate, |_| {
            let report = ValidateRequest {
                app: plan.app.clone(),
                store: plan.store(),
                upstream_file: plan.upstream_file(),
                test_cmd: CommandLine::parse(&plan.test_cmd, "nginx-test-command")?,
                runtime: plan.runtime,
                docker_cmd: CommandLine::new(["docker"]),
                min_free_disk_mb: plan.min_free_disk_mb,
                ports: plan.ports(),
                tcp: Vec::new(),
                tcp_timeout: Duration::from_secs(3),
                nft: plan.nft(),
            }
            .run();
            let failed: Vec<String> = report
                .checks
                .iter()
                .filter(|c| c.status == CheckStatus::Fail)
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect();
            for c in &report.checks {
                (self.emit)(&Event::Log {
                    line: format!("{:?} {}: {}", c.status, c.name, c.detail).to_lowercase(),
                });
            }
            if failed.is_empty() {
                Ok(((), format!("{} checks passed", report.checks.len())))
            } else {
                Err(Failure::from(format!(
                    "{} of {} checks failed: {}",
                    failed.len(),
                    report.checks.len(),
                    failed.join("; ")
                )))
            }
        })
    }

    fn switch_request(&self, target: SwitchTarget, dry_run: bool) -> Result<SwitchRequest, Error> {
        let plan = self.plan;
        Ok(SwitchRequest {
            app: plan.app.clone(),
            store: plan.store(),
            target,
            ports: plan.ports(),
            upstream_file: plan.upstream_file(),
            nft: plan.nft(),
            template: Template::load(None, plan.switch_mode == SwitchMode::Nftables)?,
            test_cmd: CommandLine::parse(&plan.test_cmd, "nginx-test-command")?,
            reload_cmd: CommandLine::parse(&plan.reload_cmd, "nginx-reload-command")?,
            nginx_pid_file: plan.nginx_pid_file.clone(),
            reload_timeout: Duration::from_secs(10),
            verify_url: plan.verify_url.clone(),
            verify_timeout: Duration::from_secs(10),
            version: None,
            image: None,
            lock: LockPolicy::HeldByCaller,
            dry_run,
            only_if_active: None,
            event: "switch",
            reason: None,
        })
    }

    fn health_check(&mut self, slot: Slot) -> Result<(), Failure> {
        let plan = self.plan;
        let emit = self.emit;
        self.phase(Phase::HealthCheck, |_| {
            let check = HealthCheck {
                url: plan.health_url(slot),
                timeout: Duration::from_secs(plan.health_timeout_secs),
                healthy_threshold: plan.healthy_threshold,
                // Loopback probes are cheap: poll often so a ready standby is noticed fast.
                interval: STANDBY_POLL_INTERVAL,
                max_interval: STANDBY_POLL_MAX_INTERVAL,
                request_timeout: Duration::from_secs(5),
                criteria: HealthCriteria::new(StatusSet::default(), false),
            };
            let sink = |line: &str| {
                emit(&Event::Log {
                    line: line.to_owned(),
                })
            };
            let report = check.run(&Progress::lines(&sink));
            if report.healthy {
                Ok((
                    (),
                    format!(
                        "{} healthy {} times in a row after {} ms (first healthy after {} ms)",
                        report.url,
                        report.consecutive_healthy,
                        report.elapsed_ms,
                        report.first_healthy_ms.unwrap_or(report.elapsed_ms)
                    ),
                ))
            } else {
                Err(Failure {
                    message: format!(
                        "{slot} did not become healthy within {} s: last answer: {}",
                        plan.health_timeout_secs,
                        report
                            .last_problem
                            .or(report.last_answer)
                            .unwrap_or_default()
                    ),
                    log_of: Some(slot),
                })
            }
        })
    }

    fn deploy(&mut self) -> Result<Outcome, Failure> {
        let plan = self.plan;
        if plan.dry_run {
            return self.dry_run();
        }
        let _lock = self.lock()?;
        let state = self.load_state()?;
        let state = self.reconcile(state)?;
        if let Some(active) = state.active
            && state.slots.get(active).version.as_deref() == Some(plan.version.as_str())
            && self.answers_healthy(active)
        {
            self.log(&format!(
                "version {} is already live in {active} and healthy: nothing to do",
                plan.version.as_str()
            ));
            return Ok(Outcome::Unchanged);
        }
        self.validate()?;
        let standby = state.active.map_or(Slot::Blue, Slot::other);
        let image = plan.image.as_ref().map(Image::as_str);
        let spec = self.spec(standby, plan.version.as_str(), image);
        self.phase(Phase::DeployStandby, |me| {
            for cmd in me.runtime.prepare(&spec) {
                cmd.run(RUNTIME_COMMAND_TIMEOUT)?;
            }
            let out = me
                .runtime
                .start(&spec)
                .run(RUNTIME_COMMAND_TIMEOUT)
                .map_err(|e| Failure {
                    message: e.to_string(),
                    log_of: Some(standby),
                })?;
            for line in out
                .stdout
                .lines()
                .chain(out.stderr.lines())
                .filter(|l| !l.trim().is_empty())
            {
                me.log(line);
            }
            Ok((
                (),
                format!(
                    "started {} version {} on port {}",
                    spec.name(),
                    plan.version.as_str(),
                    spec.port
                ),
            ))
        })
        .inspect_err(|_| self.abandon_standby(standby))?;
        self.health_check(standby)
            .inspect_err(|_| self.abandon_standby(standby))?;

        let mut request = self.switch_request(SwitchTarget::Slot(standby), false)?;
        request.version = Some(plan.version.clone());
        request.image = image.map(str::to_owned);
        request.only_if_active = state.active;
        request.reason = Some(plan.purpose.clone());
        let emit = self.emit;
        self.phase(Phase::Switch, |_| {
            let sink = |line: &str| {
                emit(&Event::Log {
                    line: line.to_owned(),
                })
            };
            let report = request.run(&Progress::lines(&sink))?;
            Ok((
                (),
                format!(
                    "nginx routes {} to {} (port {})",
                    plan.app, report.to, report.port
                ),
            ))
        })
        .map_err(|f| Failure {
            log_of: Some(standby),
            ..f
        })
        .inspect_err(|_| self.abandon_standby(standby))?;

        if let Err(failure) = self.watch(standby) {
            let Some(previous) = state.active.filter(|_| plan.rollback_on_failure) else {
                return Err(failure);
            };
            self.result.error = Some(failure.message.clone());
            self.switch_back(standby, previous, &failure.message)?;
            self.result.log_tail = self.log_tail(standby);
            self.abandon_standby(standby);
            return Ok(Outcome::RolledBack);
        }
        if let Some(old) = state.active {
            self.retire(old);
        }
        Ok(Outcome::Deployed)
    }

    /// Makes state, the upstream file and nginx agree again when an earlier run died between
    /// writing the upstream file and recording state (`kill -9`, a power cut): nginx may be
    /// serving either slot. The file's slot wins if it answers healthy, else the recorded
    /// one; either way nginx is reloaded onto it and state records it.
    fn reconcile(&mut self, state: State) -> Result<State, Failure> {
        let plan = self.plan;
        let text = crate::fsutil::read_optional(&plan.upstream_file())?;
        let routed = self
            .switch_request(SwitchTarget::Previous, true)?
            .routed(text.as_deref());
        let (Some(routed), Some(recorded)) = (routed, state.active) else {
            return Ok(state);
        };
        if routed == recorded {
            return Ok(state);
        }
        let target = if self.answers_healthy(routed) {
            routed
        } else {
            recorded
        };
        let version = self
            .running_version(target)
            .or_else(|| state.slots.get(target).version.clone());
        let mut request = self.switch_request(SwitchTarget::Slot(target), false)?;
        request.version = version.as_deref().and_then(|v| v.parse().ok());
        request.event = "reconcile";
        request.reason = Some(format!(
            "state said {recorded} but the upstream file routed to {routed}; an earlier run stopped half-way"
        ));
        let emit = self.emit;
        self.phase(Phase::Reconcile, |_| {
            let sink = |line: &str| emit(&Event::Log { line: line.to_owned() });
            let report = request.run(&Progress::lines(&sink))?;
            Ok(((), format!(
                "state said {recorded}, the upstream file {routed}: nginx and state now agree on {}",
                report.to
            )))
        })?;
        self.load_state()
    }

    /// The version label of the container running in `slot`, when the runtime has one.
    fn running_version(&self, slot: Slot) -> Option<String> {
        let spec = self.spec(slot, "", None);
        let out = self
            .runtime
            .version_label(&spec)?
            .run(Duration::from_secs(30))
            .ok()?;
        Some(out.stdout.trim().to_owned()).filter(|v| !v.is_empty() && v.parse::<Version>().is_ok())
    }

    /// One quick probe of a slot's health URL.
    fn answers_healthy(&self, slot: Slot) -> bool {
        let check = HealthCheck {
            url: self.plan.health_url(slot),
            timeout: Duration::from_secs(5),
            healthy_threshold: 1,
            interval: Duration::from_millis(200),
            max_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
            criteria: HealthCriteria::new(StatusSet::default(), false),
        };
        let quiet = |_: &str| {};
        check.run(&Progress::lines(&quiet)).healthy
    }

    /// Stops a standby that will not go live, keeping the live slot as it is.
    fn abandon_standby(&self, standby: Slot) {
        if let Err(e) = self.stop_slot(standby, false) {
            self.log(&format!(
                "warning: could not stop the failed standby {standby}: {e}"
            ));
        }
    }

    fn watch(&mut self, slot: Slot) -> Result<(), Failure> {
        let plan = self.plan;
        if plan.monitor_duration_secs == 0 {
            return Ok(());
        }
        let url = plan
            .monitor_url
            .clone()
            .or_else(|| plan.verify_url.clone())
            .unwrap_or_else(|| plan.health_url(slot));
        let emit = self.emit;
        let report = self.phase(Phase::Monitor, |me| {
            let monitor = Monitor {
                url,
                duration: Duration::from_secs(plan.monitor_duration_secs),
                interval: Duration::from_millis(200),
                request_timeout: Duration::from_secs(5),
                accepted: "200-499".parse().expect("static status set"),
                max_error_rate: plan.max_error_rate,
                max_p95_ms: plan.max_p95_ms,
            };
            let sink = |line: &str| {
                emit(&Event::Log {
                    line: line.to_owned(),
                })
            };
            let report = monitor.run(&Progress::lines(&sink));
            me.result.monitor = Some(report.clone());
            let summary = format!(
                "{} requests, {} failed, p95 {} ms, longest gap {} ms",
                report.requests, report.failures, report.p95_ms, report.longest_gap_ms
            );
            if report.passed {
                Ok((report, summary))
            } else {
                Err(Failure::from(format!(
                    "{}: {summary}",
                    report.reasons.join("; ")
                )))
            }
        });
        report.map(|_| ())
    }

    fn switch_back(&mut self, from: Slot, to: Slot, why: &str) -> Result<(), Failure> {
        let mut request = self.switch_request(SwitchTarget::Slot(to), false)?;
        request.only_if_active = Some(from);
        request.event = "rollback";
        request.reason = Some(format!("watch failed: {why}"));
        let emit = self.emit;
        self.phase(Phase::Rollback, |_| {
            let sink = |line: &str| {
                emit(&Event::Log {
                    line: line.to_owned(),
                })
            };
            let report = request.run(&Progress::lines(&sink))?;
            Ok((
                (),
                format!("switched back to {} (port {})", report.to, report.port),
            ))
        })
    }

    fn retire(&mut self, old: Slot) {
        let plan = self.plan;
        let result = self.phase(Phase::Retire, |me| {
            if plan.retire == Retire::Keep {
                return Ok(((), format!("kept {old} running for instant rollback")));
            }
            std::thread::sleep(Duration::from_secs(plan.drain_seconds));
            me.stop_slot(old, plan.retire == Retire::Remove)?;
            let verb = if plan.retire == Retire::Remove {
                "stopped and removed"
            } else {
                "stopped"
            };
            Ok((
                (),
                format!("{verb} {old} after {} s of draining", plan.drain_seconds),
            ))
        });
        if let Err(f) = result {
            // The deploy itself succeeded: a retire failure is a warning.
            self.result.failed_phase = None;
            let w = format!("retire of {old} failed: {}", f.message);
            self.log(&format!("warning: {w}"));
            self.result.warnings.push(w);
        }
    }

    fn dry_run(&mut self) -> Result<Outcome, Failure> {
        let state = self.load_state()?;
        self.validate()?;
        let standby = state.active.map_or(Slot::Blue, Slot::other);
        let mut request = self.switch_request(SwitchTarget::Slot(standby), true)?;
        request.version = Some(self.plan.version.clone());
        let report = request.run(&Progress::lines(&|_: &str| {}))?;
        self.log(&format!(
            "plan: start {} version {} in {standby} (port {}), switch nginx from {} to {standby}, watch {} s, then {} the old slot",
            self.plan.app,
            self.plan.version.as_str(),
            report.port,
            report.from.map_or("nothing", Slot::as_str),
            self.plan.monitor_duration_secs,
            match self.plan.retire {
                Retire::Stop => "stop",
                Retire::Keep => "keep",
                Retire::Remove => "remove",
            }
        ));
        self.result.upstream_diff = Some(report.diff);
        Ok(Outcome::Unchanged)
    }

    fn rollback(&mut self) -> Result<Outcome, Failure> {
        let _lock = if self.plan.dry_run {
            None
        } else {
            Some(self.lock()?)
        };
        let state = self.load_state()?;
        let (Some(active), Some(previous)) = (state.active, state.previous) else {
            return Err(Failure::from(format!(
                "{} has no previous slot to roll back to",
                self.plan.app
            )));
        };
        if self.plan.dry_run {
            self.log(&format!("plan: start {previous} if stopped, health-check it, switch from {active} to {previous}"));
            return Ok(Outcome::Unchanged);
        }
        let record = state.slots.get(previous).clone();
        let version = record.version.unwrap_or_default();
        let image = record.image;
        self.phase(Phase::DeployStandby, |me| {
            if me.answers_healthy(previous) {
                return Ok(((), format!("{previous} is still running")));
            }
            let spec = SlotSpec {
                app: &me.plan.app,
                slot: previous,
                port: me.plan.ports().port(previous),
                image: image.as_deref(),
                version: &version,
            };
            me.runtime.restart(&spec).run(RUNTIME_COMMAND_TIMEOUT)?;
            Ok(((), format!("started {previous} again (version {version})")))
        })?;
        self.health_check(previous)?;
        let mut request = self.switch_request(SwitchTarget::Slot(previous), false)?;
        request.only_if_active = Some(active);
        request.event = "rollback";
        request.reason = Some(self.plan.purpose.clone());
        let emit = self.emit;
        self.phase(Phase::Switch, |_| {
            let sink = |line: &str| {
                emit(&Event::Log {
                    line: line.to_owned(),
                })
            };
            let report = request.run(&Progress::lines(&sink))?;
            Ok((
                (),
                format!("switched back to {} (port {})", report.to, report.port),
            ))
        })?;
        Ok(Outcome::RolledBack)
    }

    fn status(&mut self) -> Result<Outcome, Failure> {
        let store = self.plan.store();
        let history = self.phase(Phase::Status, |me| {
            let state = me.load_state()?;
            let text = crate::fsutil::read_optional(&store.history_path())?.unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let first = lines.len().saturating_sub(STATUS_HISTORY_LINES);
            let tail: Vec<String> = lines[first..]
                .iter()
                .enumerate()
                .map(|(i, line)| match HistoryEvent::parse(line) {
                    Ok(event) => event.describe(),
                    Err(e) => format!(
                        "(line {} of history.jsonl is unreadable: {e})",
                        first + i + 1
                    ),
                })
                .collect();
            for line in &tail {
                me.log(line);
            }
            let describe = |slot: Slot| {
                let r = state.slots.get(slot);
                format!(
                    "{slot}: port {}, version {}",
                    r.port.map_or("-".into(), |p| p.to_string()),
                    r.version.as_deref().unwrap_or("-")
                )
            };
            Ok((
                tail,
                format!(
                    "active {}, previous {}; {}; {}",
                    state.active.map_or("none", Slot::as_str),
                    state.previous.map_or("none", Slot::as_str),
                    describe(Slot::Blue),
                    describe(Slot::Green)
                ),
            ))
        })?;
        self.result.history = history;
        Ok(Outcome::Unchanged)
    }
}
