//! The steps the operations share, each a method of the [`Engine`]: validate, start and
//! inspect slots, health-check, switch, watch, retire. Every effect on the host goes
//! through the engine's [`super::Host`].

use std::time::Duration;

use crate::config::{self, defaults};
use crate::error::Error;
use crate::exec::CommandLine;
use crate::health::{HealthCheck, HealthCriteria};
use crate::input::{Image, ServiceName, Slot, StatusSet, Version};
use crate::monitor::Monitor;
use crate::progress::Progress;
use crate::runtime::{self, Compose, DETECT_TIMEOUT, Listing, Runtime, SlotCommands, SlotSpec};
use crate::state::{SlotRecord, parse_image_id};
use crate::switch::{Intent, LockPolicy, SwitchEvent, SwitchMode, SwitchReport, SwitchRequest};
use crate::upstream::{Template, UpstreamContext};
use crate::validate::{Audience, CheckResult, CheckStatus, ValidateRequest};

use super::engine::{Engine, Failure, RUNTIME_COMMAND_TIMEOUT};
use super::protocol::Phase;

/// How long reading a slot's log or labels may take.
const INSPECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How much longer than the stop timeout a stop command may take before it is killed.
const STOP_COMMAND_SLACK: Duration = Duration::from_secs(60);
/// First wait between health probes of a standby.
const STANDBY_POLL_INTERVAL: Duration = Duration::from_millis(25);
/// Longest wait between health probes of a standby: bounds how late a ready standby is
/// noticed (a loopback probe is cheap, so the standby is polled at this steady pace).
const STANDBY_POLL_MAX_INTERVAL: Duration = Duration::from_millis(25);
/// A quick "is this slot up?" probe: its whole budget, its first and longest wait, and the
/// budget of each request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const PROBE_INTERVAL: Duration = Duration::from_millis(200);
const PROBE_MAX_INTERVAL: Duration = Duration::from_secs(1);
const PROBE_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How many bytes of a failed slot's log a result keeps.
const LOG_TAIL_BYTES: usize = 4000;

impl<'a> Engine<'a> {
    /// The preflight checks; fails listing every failed check. A run that goes on (not a
    /// dry run, every check passed, and `may_claim`) claims the app name on the Docker host.
    pub(super) fn validate(&mut self, may_claim: bool) -> Result<(), Failure> {
        let plan = self.plan;
        let request = ValidateRequest {
            audience: Audience::Action,
            // Only reload mode reloads nginx on every switch.
            reload_cmd: (self.switch.mode == SwitchMode::Reload)
                .then(|| self.switch.reload_cmd.clone()),
            nginx_pid_file: self.switch.nginx_pid_file.as_path().to_path_buf(),
            app: plan.app.clone(),
            store: plan.store(),
            upstream_file: self.switch.upstream_file.as_path().to_path_buf(),
            test_cmd: self.switch.test_cmd.clone(),
            runtime: plan.runtime.runtime,
            docker_cmd: CommandLine::new([defaults::DOCKER_CMD]),
            min_free_disk_mb: plan.min_free_disk_mb,
            ports: plan.ports,
            tcp: Vec::new(),
            tcp_timeout: config::seconds(defaults::TCP_TIMEOUT),
            nft: self.switch.nft(&plan.app),
            boot: (self.switch.mode == SwitchMode::Nftables).then(|| self.boot_path()),
        };
        self.phase(Phase::Validate, |me| {
            let mut report = me.host.validate(&request);
            report.checks.extend(me.template_check());
            report.checks.extend(me.compose_check());
            if plan.runtime.runtime.uses_docker() {
                // The claim is made only by a run that goes on: a failed check changes nothing.
                let goes_on = may_claim
                    && !plan.dry_run
                    && report.checks.iter().all(|c| c.status != CheckStatus::Fail);
                report.checks.push(match me.claim_app(goes_on) {
                    Ok(()) => CheckResult::new(
                        "app-claim",
                        CheckStatus::Pass,
                        format!("{} on this Docker host is this deployment's", plan.app),
                    ),
                    Err(e) => CheckResult::new("app-claim", CheckStatus::Fail, e.to_string()),
                });
            }
            for c in &report.checks {
                me.log(&format!("{} {}: {}", c.status.as_str(), c.name, c.detail));
            }
            let failed: Vec<String> = report
                .checks
                .iter()
                .filter(|c| c.status == CheckStatus::Fail)
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect();
            if failed.is_empty() {
                Ok(((), format!("{} checks passed", report.checks.len())))
            } else {
                Err(Error::CheckFailed(format!(
                    "{} of {} checks failed: {}",
                    failed.len(),
                    report.checks.len(),
                    failed.join("; ")
                ))
                .into())
            }
        })
    }

    /// The check of the user's upstream template: it reads and renders (for the standby),
    /// so a broken one stops the run before a standby starts. None without one.
    fn template_check(&self) -> Option<CheckResult> {
        let path = self.plan.upstream_template.as_ref()?;
        let ctx = UpstreamContext::new(&self.plan.app, Slot::Blue, self.plan.ports, None);
        let rendered = self.template().and_then(|t| t.render(&ctx));
        Some(match rendered {
            Ok(_) => CheckResult::new(
                "upstream-template",
                CheckStatus::Pass,
                format!("{path} renders"),
            ),
            Err(e) => CheckResult::new("upstream-template", CheckStatus::Fail, e.to_string()),
        })
    }

    /// The check of the compose file (compose runtime): compose reads it, and the services
    /// `compose-services` names are in it; without that input, a file of several services
    /// is a warning (each runs once per slot). None under other runtimes.
    fn compose_check(&mut self) -> Option<CheckResult> {
        let plan = self.plan;
        let commands = self.commands();
        let spec = self.slot_spec(
            Slot::Blue,
            plan.version.as_str(),
            plan.runtime.image.as_ref(),
        );
        let cmd = commands.services(&spec)?;
        let file = plan
            .runtime
            .compose_file
            .as_ref()
            .map_or("", |f| f.as_str());
        let check = |status, detail: String| Some(CheckResult::new("compose-file", status, detail));
        let listed = match self.host.run(&cmd, INSPECT_TIMEOUT) {
            Ok(out) => out.stdout,
            Err(e) => {
                return check(
                    CheckStatus::Fail,
                    format!("compose cannot read {file}: {e}"),
                );
            }
        };
        let services: Vec<&str> = listed.split_whitespace().collect();
        let wanted = &plan.runtime.compose_services;
        let missing: Vec<&str> = wanted
            .iter()
            .map(ServiceName::as_str)
            .filter(|w| !services.contains(w))
            .collect();
        if !missing.is_empty() {
            return check(
                CheckStatus::Fail,
                format!(
                    "compose-services names {} that {file} does not have (it has: {})",
                    missing.join(", "),
                    services.join(", ")
                ),
            );
        }
        if wanted.is_empty() && services.len() > 1 {
            return check(
                CheckStatus::Warn,
                format!(
                    "every service of {file} runs once per slot ({}): twice during a deploy, and for good with retire: keep, each slot with volumes of its own; name the services that take part with compose-services",
                    services.join(", ")
                ),
            );
        }
        check(
            CheckStatus::Pass,
            format!("{file} has the services {}", services.join(", ")),
        )
    }

    /// The command lines of the app's slots; the compose flavour is looked for by the first
    /// phase that needs it.
    pub(super) fn commands(&mut self) -> SlotCommands<'a> {
        let docker = CommandLine::new([defaults::DOCKER_CMD]);
        let runtime = &self.plan.runtime;
        if self.compose.is_none() {
            let found = (runtime.runtime == Runtime::Compose)
                .then(|| {
                    Compose::candidates(&docker)
                        .into_iter()
                        .find(|(_, probe)| self.host.run(probe, DETECT_TIMEOUT).is_ok())
                })
                .flatten()
                .map(|(compose, _)| compose);
            self.compose = Some(found);
        }
        SlotCommands {
            spec: runtime,
            docker,
            compose: self.compose.clone().flatten(),
        }
    }

    /// `slot` of this app as the runtime commands see it.
    pub(super) fn slot_spec<'v>(
        &'v self,
        slot: Slot,
        version: &'v str,
        image: Option<&'v Image>,
    ) -> SlotSpec<'v> {
        SlotSpec {
            app: &self.plan.app,
            slot,
            port: self.plan.ports.port(slot),
            image: image.map(Image::as_str),
            version,
        }
    }

    /// Makes sure `APP-blue` and `APP-green` on this Docker host are this deployment's: the
    /// first deployment of an app name claims it for its state directory; another
    /// deployment of the same name (another state directory) is refused, as its slots
    /// share the container names. Nothing to claim without Docker.
    /// Without `create`, only checks that no other deployment holds the claim.
    pub(super) fn claim_app(&self, create: bool) -> Result<(), Error> {
        if !self.plan.runtime.runtime.uses_docker() {
            return Ok(());
        }
        let docker = CommandLine::new([defaults::DOCKER_CMD]);
        let (app, ours) = (&self.plan.app, self.plan.state_dir.as_str());
        let owner = |me: &Self| {
            me.host
                .run(&runtime::claim_owner(&docker, app), INSPECT_TIMEOUT)
                .ok()
                .map(|out| out.stdout.trim().to_owned())
        };
        let owner = match owner(self) {
            Some(owner) => owner,
            None if !create => return Ok(()),
            None => {
                self.host
                    .run(&runtime::claim(&docker, app, ours), INSPECT_TIMEOUT)?;
                owner(self).unwrap_or_default()
            }
        };
        if owner == ours {
            return Ok(());
        }
        Err(Error::CheckFailed(format!(
            "another deployment of {app} on this Docker host keeps its state in {owner}, and its slots are the containers {app}-blue and {app}-green too: give this deployment another app name, or use state-dir {owner} (the claim is the Docker volume {})",
            runtime::claim_volume(app)
        )))
    }

    /// Starts `version` (from `image`) in `slot` afresh, removing whatever the slot held;
    /// relays what the start command printed and says what it started.
    pub(super) fn start_fresh(
        &mut self,
        slot: Slot,
        version: &Version,
        image: Option<&Image>,
    ) -> Result<String, Failure> {
        let commands = self.commands();
        let spec = self.slot_spec(slot, version.as_str(), image);
        for cmd in commands.prepare(&spec, self.plan.retire.stop_timeout) {
            self.host.run(&cmd, RUNTIME_COMMAND_TIMEOUT)?;
        }
        let out = self
            .host
            .run(&commands.start(&spec), RUNTIME_COMMAND_TIMEOUT)
            .map_err(|error| Failure::of_slot(error, slot))?;
        for line in out
            .stdout
            .lines()
            .chain(out.stderr.lines())
            .filter(|l| !l.trim().is_empty())
        {
            self.log(line);
        }
        Ok(format!(
            "started {} version {} on port {}",
            spec.name(),
            version.as_str(),
            spec.port
        ))
    }

    /// Waits for `slot` to answer healthy the plan's number of times in a row.
    pub(super) fn health_check(&mut self, slot: Slot) -> Result<(), Failure> {
        let plan = self.plan;
        let check = HealthCheck {
            url: plan.health_url(slot),
            timeout: plan.health.timeout,
            healthy_threshold: plan.health.healthy_threshold.get(),
            // Loopback probes are cheap: poll often so a ready standby is noticed fast.
            interval: STANDBY_POLL_INTERVAL,
            max_interval: STANDBY_POLL_MAX_INTERVAL,
            request_timeout: config::seconds(defaults::REQUEST_TIMEOUT),
            criteria: HealthCriteria::new(StatusSet::default(), false),
            cancel: self.cancel.clone(),
        };
        self.phase(Phase::HealthCheck, |me| {
            let report = me.with_progress(|p| me.host.health_check(&check, p));
            if report.healthy {
                return Ok((
                    (),
                    format!(
                        "{} healthy {} times in a row after {} ms (first healthy after {} ms)",
                        report.url,
                        report.consecutive_healthy,
                        report.elapsed_ms,
                        report.first_healthy_ms.unwrap_or(report.elapsed_ms)
                    ),
                ));
            }
            let why = Error::CheckFailed(format!(
                "{slot} did not become healthy within {}: last answer: {}",
                humantime::format_duration(check.timeout),
                report
                    .last_problem
                    .or(report.last_answer)
                    .unwrap_or_default()
            ));
            Err(Failure::of_slot(why, slot))
        })
    }

    /// One quick probe of a slot's health URL.
    pub(super) fn answers_healthy(&self, slot: Slot) -> bool {
        let check = HealthCheck {
            url: self.plan.health_url(slot),
            timeout: PROBE_TIMEOUT,
            healthy_threshold: 1,
            interval: PROBE_INTERVAL,
            max_interval: PROBE_MAX_INTERVAL,
            request_timeout: PROBE_REQUEST_TIMEOUT,
            criteria: HealthCriteria::new(StatusSet::default(), false),
            cancel: self.cancel.clone(),
        };
        let quiet = |_: &str| {};
        self.host
            .health_check(&check, &Progress::lines(&quiet))
            .healthy
    }

    /// One probe of `slot`'s health URL, for a report (no waiting for a slot that is down).
    pub(super) fn probe_once(&self, slot: Slot) -> crate::health::HealthReport {
        let check = HealthCheck {
            url: self.plan.health_url(slot),
            timeout: PROBE_REQUEST_TIMEOUT,
            healthy_threshold: 1,
            interval: PROBE_REQUEST_TIMEOUT,
            max_interval: PROBE_REQUEST_TIMEOUT,
            request_timeout: PROBE_REQUEST_TIMEOUT,
            criteria: HealthCriteria::new(StatusSet::default(), false),
            cancel: self.cancel.clone(),
        };
        let quiet = |_: &str| {};
        self.host.health_check(&check, &Progress::lines(&quiet))
    }

    /// The one way traffic moves in a run: a switch as `intent` says, inside `phase`.
    pub(super) fn switch_to(
        &mut self,
        phase: Phase,
        intent: Intent,
    ) -> Result<SwitchReport, Failure> {
        self.phase(phase, |me| {
            let request = me.switch_request(intent, false)?;
            let report = me.with_progress(|p| me.host.switch(&request, p))?;
            for w in &report.warnings {
                me.result.warnings.push(w.clone());
            }
            let (to, port) = (report.to, report.port);
            let detail = match (request.intent.event, &request.intent.reason) {
                (SwitchEvent::Switch, _) => {
                    format!("nginx routes {} to {to} (port {port})", me.plan.app)
                }
                (SwitchEvent::Rollback, _) => format!("switched back to {to} (port {port})"),
                (SwitchEvent::Reconcile, reason) => format!(
                    "{}: nginx and state now agree on {to} (port {port})",
                    reason
                        .as_deref()
                        .unwrap_or("an earlier run stopped half-way")
                ),
            };
            Ok((report, detail))
        })
    }

    /// The upstream template: the plan's `upstream-template`, else the mode's built-in one.
    pub(super) fn template(&self) -> Result<Template, Error> {
        match &self.plan.upstream_template {
            Some(path) => Template::from_file(path.as_path(), "upstream-template"),
            None => Ok(self.switch.builtin_template()),
        }
    }

    /// The request of a switch of this app as `intent` says, under the lock the run holds.
    pub(super) fn switch_request(
        &self,
        intent: Intent,
        dry_run: bool,
    ) -> Result<SwitchRequest, Error> {
        Ok(SwitchRequest {
            app: self.plan.app.clone(),
            store: self.plan.store(),
            ports: self.plan.ports,
            config: self.switch.clone(),
            template: self.template()?,
            intent,
            lock: LockPolicy::HeldByCaller,
            dry_run,
        })
    }

    /// Watches the live URL after the switch to `slot`; fails when a threshold breaks.
    pub(super) fn watch(&mut self, slot: Slot) -> Result<(), Failure> {
        let plan = self.plan;
        if plan.watch.duration.is_zero() {
            return Ok(());
        }
        let monitor = Monitor {
            url: plan
                .watch
                .url
                .clone()
                .or_else(|| self.switch.verify_url.clone())
                .unwrap_or_else(|| plan.health_url(slot)),
            duration: plan.watch.duration,
            interval: config::millis(defaults::MONITOR_INTERVAL),
            request_timeout: config::seconds(defaults::REQUEST_TIMEOUT),
            accepted: plan.watch.accept_status.clone(),
            max_error_rate: plan.watch.max_error_rate.get(),
            max_p95_ms: plan.watch.max_p95_ms,
        };
        self.phase(Phase::Monitor, |me| {
            let report = me.with_progress(|p| me.host.watch(&monitor, p));
            me.result.monitor = Some(report.clone());
            let summary = format!(
                "{} requests, {} failed, p95 {} ms, longest gap {} ms",
                report.requests, report.failures, report.p95_ms, report.longest_gap_ms
            );
            if report.passed {
                Ok(((), summary))
            } else {
                Err(Error::CheckFailed(format!("{}: {summary}", report.reasons.join("; "))).into())
            }
        })
    }

    /// Stops a standby that will not go live, keeping the live slot as it is.
    pub(super) fn abandon_standby(&mut self, standby: Slot) {
        if let Err(e) = self.stop_slot(standby, false) {
            self.log(&format!(
                "warning: could not stop the failed standby {standby}: {e}"
            ));
        }
    }

    /// Stops `slot` gracefully (and removes it when `remove`).
    pub(super) fn stop_slot(&mut self, slot: Slot, remove: bool) -> Result<(), Error> {
        let commands = self.commands();
        let plan = self.plan;
        let spec = self.slot_spec(slot, plan.version.as_str(), plan.runtime.image.as_ref());
        let grace = plan.retire.stop_timeout;
        for cmd in commands.stop(&spec, grace, remove) {
            self.host.run(&cmd, grace + STOP_COMMAND_SLACK)?;
        }
        Ok(())
    }

    /// The last lines of `slot`'s log, when the runtime keeps one.
    pub(super) fn log_tail(&mut self, slot: Slot) -> Option<String> {
        let commands = self.commands();
        let spec = self.slot_spec(slot, self.plan.version.as_str(), None);
        let out = self
            .host
            .run(&commands.logs(&spec)?, INSPECT_TIMEOUT)
            .ok()?;
        let text = format!("{}{}", out.stdout, out.stderr);
        Some(crate::exec::tail(text.trim(), LOG_TAIL_BYTES))
    }

    /// Whether `slot`'s own container (docker) or project (compose) is running; `None`
    /// under the command runtime, or when the runtime cannot say.
    pub(super) fn slot_runs(&mut self, slot: Slot) -> Option<bool> {
        self.slot_has_containers(slot, Listing::Running)
    }

    /// Whether `slot` has containers of its own, as `listing` counts them; `None` under the
    /// command runtime, or when the runtime cannot say.
    fn slot_has_containers(&mut self, slot: Slot, listing: Listing) -> Option<bool> {
        let commands = self.commands();
        let spec = self.slot_spec(slot, "", None);
        let out = self
            .host
            .run(&commands.containers(&spec, listing)?, INSPECT_TIMEOUT)
            .ok()?;
        Some(!out.stdout.trim().is_empty())
    }

    /// Whether `slot` answers healthy from its own container: a port that answers while the
    /// slot's container does not run is held by another process, and is not trusted.
    pub(super) fn slot_answers_healthy(&mut self, slot: Slot) -> bool {
        self.answers_healthy(slot) && self.slot_runs(slot) != Some(false)
    }

    /// The version label of `slot`'s container, when the runtime has one.
    pub(super) fn running_version(&mut self, slot: Slot) -> Option<Version> {
        let commands = self.commands();
        let spec = self.slot_spec(slot, "", None);
        let out = self
            .host
            .run(&commands.version_label(&spec)?, INSPECT_TIMEOUT)
            .ok()?;
        out.stdout.trim().parse().ok()
    }

    /// Whether `slot` still holds the version `record` names, as far as the host can tell:
    /// no deploy replaced it since, and its container (docker: by its version label) or
    /// project (compose) is still there. The command runtime has nothing to look at: its
    /// start command is given the version, so it holds whatever state says.
    pub(super) fn slot_holds(&mut self, slot: Slot, record: &SlotRecord) -> bool {
        if record.replaced_by.is_some() {
            return false;
        }
        let Some(version) = record.version.as_deref() else {
            return true;
        };
        match self.plan.runtime.runtime {
            Runtime::Docker => {
                self.running_version(slot).as_ref().map(Version::as_str) == Some(version)
            }
            Runtime::Compose => self.slot_has_containers(slot, Listing::All) != Some(false),
            Runtime::Command => true,
        }
    }

    /// The content ID of `image` on this host now, when the runtime uses images.
    pub(super) fn image_id(&mut self, image: &Image) -> Option<Image> {
        let commands = self.commands();
        let out = self
            .host
            .run(&commands.image_id(image.as_str())?, INSPECT_TIMEOUT)
            .ok()?;
        parse_image_id(out.stdout.trim()).ok()
    }
}
