//! The steps the operations share, each a method of the [`Engine`]: health-check a slot,
//! switch, watch (its probes, and the users' requests in nginx's access log). The
//! preflight checks are in `checks.rs`, starting, stopping and inspecting slots in
//! `slots.rs`. Every effect on the host goes through the engine's [`super::Host`]; the
//! access log, which only nginx writes, is read here directly.

use std::time::Duration;

use crate::canary::{AccessLog, SlotTraffic, StepTraffic, TrafficVerdict, judge_window, p95_limit};
use crate::clock::now_rfc3339;
use crate::config::{self, defaults};
use crate::error::Error;
use crate::health::{HealthCheck, HealthCriteria, HealthReport};
use crate::input::{Slot, StatusSet};
use crate::progress::Progress;
use crate::switch::{Intent, SwitchEvent, SwitchReport, SwitchRequest};
use crate::upstream::Template;

use super::engine::{Engine, Failure};
use super::hooks::Judged;
use super::protocol::Phase;

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

/// The window before the switch (or the first canary step) the live slot's requests are
/// read from: its last seconds,
const LIVE_WINDOW_SECONDS: f64 = 20.0;
/// and of those at most the log's last bytes (some thousands of requests), so that a busy
/// site's window is read in bounded time.
const LIVE_WINDOW_BYTES: u64 = 1024 * 1024;

impl Engine<'_> {
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
        self.probe(slot, PROBE_TIMEOUT, PROBE_INTERVAL, PROBE_MAX_INTERVAL)
            .healthy
    }

    /// One probe of `slot`'s health URL, for a report (no waiting for a slot that is down).
    pub(super) fn probe_once(&self, slot: Slot) -> HealthReport {
        let once = PROBE_REQUEST_TIMEOUT;
        self.probe(slot, once, once, once)
    }

    /// Probes `slot`'s health URL until it answers healthy once or `budget` is spent,
    /// waiting `interval` (growing to `max_interval`) between requests, quietly.
    fn probe(
        &self,
        slot: Slot,
        budget: Duration,
        interval: Duration,
        max_interval: Duration,
    ) -> HealthReport {
        let check = HealthCheck {
            url: self.plan.health_url(slot),
            timeout: budget,
            healthy_threshold: 1,
            interval,
            max_interval,
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
            let report = me.run_switch(&request)?;
            me.add_warnings(&report.warnings);
            me.run.traffic_moved |= matches!(phase, Phase::Switch | Phase::Rollback | Phase::Canary);
            let (to, port) = (report.to, report.port);
            let detail = match (request.intent.event, &request.intent.reason) {
                (SwitchEvent::Maintenance, _) if report.maintenance => format!(
                    "maintenance on: nginx answers {} with 503 and the maintenance page; {to} (port {port}) runs behind it",
                    me.plan.app
                ),
                (SwitchEvent::Maintenance, _) => format!(
                    "maintenance off: nginx routes {} to {to} (port {port})",
                    me.plan.app
                ),
                (_, _) if report.maintenance && phase != Phase::Canary => format!(
                    "{to} (port {port}) is live behind the maintenance page, which nginx still answers with"
                ),
                (SwitchEvent::Switch, _) => {
                    format!("nginx routes {} to {to} (port {port})", me.plan.app)
                }
                (SwitchEvent::Rollback, _) => format!("switched back to {to} (port {port})"),
                (SwitchEvent::Canary, _) => match &request.intent.split {
                    Some(c) => format!(
                        "{} of new requests to {} ({}), the rest to {to} (port {port})",
                        c.share, c.slot, c.version
                    ),
                    None => format!("nginx routes {} to {to} (port {port})", me.plan.app),
                },
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

    /// What a switch as `intent` says would change, changing nothing (a dry run); its
    /// warnings are the run's.
    pub(super) fn dry_switch(&mut self, intent: Intent) -> Result<SwitchReport, Failure> {
        let request = self.switch_request(intent, true)?;
        let quiet = |_: &str| {};
        let report = self.host.switch(&request, &Progress::lines(&quiet))?;
        self.add_warnings(&report.warnings);
        Ok(report)
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
            dry_run,
        })
    }

    /// What the access log's last [`LIVE_WINDOW_SECONDS`] say, `new_slot` being the slot
    /// about to get traffic: the live slot's requests a canary's steps and the watch are
    /// judged against. `None` without a log nginx could write, or one that cannot be read
    /// (said in the log: the verdicts then go without it).
    pub(super) fn live_window(&self, new_slot: Slot) -> Option<StepTraffic> {
        let log = self.access_log()?;
        let ports = self.plan.ports;
        match log.recent(LIVE_WINDOW_SECONDS, LIVE_WINDOW_BYTES, ports, new_slot) {
            Ok(window) => Some(window),
            Err(e) => {
                self.log(&format!("the live slot's window cannot be read: {e}"));
                None
            }
        }
    }

    /// The verdict on the users' requests to `slot` that `log` holds from `offset` (the
    /// watch's window), against the live slot's `before` the switch; `None` when the log
    /// cannot be read (said in the log: the probes then judge alone).
    fn judge_users(
        &self,
        log: &AccessLog,
        offset: u64,
        slot: Slot,
        before: Option<&SlotTraffic>,
    ) -> Option<TrafficVerdict> {
        let window = match log.since(offset, self.plan.ports, slot) {
            Ok(window) => window,
            Err(e) => {
                self.log(&format!("the users' requests cannot be read: {e}"));
                return None;
            }
        };
        Some(judge_window(
            window.after_switch(),
            before,
            &self.plan.thresholds(),
        ))
    }

    /// With no watch (`monitor-duration: 0`), the run's receipt so far still has to keep to
    /// `max-failed-requests` when it is given: a phase of its own.
    fn receipt_check_without_watch(&mut self) -> Result<(), Failure> {
        let Some(most) = self.plan.watch.max_failed_requests else {
            return Ok(());
        };
        self.phase(Phase::Monitor, |me| match me.too_many_failed_requests() {
            None => Ok((
                (),
                format!("no watch (monitor-duration 0); the receipt so far is within max-failed-requests {most}"),
            )),
            Some(why) => Err(Error::CheckFailed(why).into()),
        })
    }

    /// Why the run's receipt so far breaks `max-failed-requests`, if it does; a limit the
    /// receipt cannot be read for (no access log) breaks it too, since nothing says it held.
    fn too_many_failed_requests(&self) -> Option<String> {
        let most = self.plan.watch.max_failed_requests?;
        let elsewhere = self.plan.watch.failed_elsewhere;
        match self.receipt_so_far() {
            Some(Ok(receipt)) if receipt.failed + elsewhere <= most => None,
            Some(Ok(receipt)) => Some(format!(
                "{} of {} requests failed since the run started{}, above max-failed-requests {most}",
                receipt.failed,
                receipt.requests,
                match elsewhere {
                    0 => String::new(),
                    n => format!(", and {n} on the fleet's other hosts before this one"),
                }
            )),
            Some(Err(e)) => Some(format!("max-failed-requests {most} cannot be checked: {e}")),
            None => Some(format!(
                "max-failed-requests {most} cannot be checked: nginx writes no access log for this app (access-log, log-dir)"
            )),
        }
    }

    /// The app's access log, when nginx is told to write one (`access-log`) where it may: a
    /// log directory the switch refused (others could write there) says nothing to judge on.
    pub(super) fn access_log(&self) -> Option<AccessLog> {
        let plan = self.plan;
        let path = plan.switch.access_log(&plan.app, true).ok()?;
        plan.switch
            .access_log
            .then(|| AccessLog::new(path).beside_maintenance(plan.maintenance.port.get()))
    }

    /// Watches the live URL after the switch to `slot` from `previous` (its health URL in
    /// maintenance), and the users' requests to it in the access log against the live
    /// slot's `before` the switch; fails when a threshold breaks, or the plan's step command
    /// after it.
    pub(super) fn watch(
        &mut self,
        slot: Slot,
        previous: Option<Slot>,
        before: Option<&SlotTraffic>,
    ) -> Result<(), Failure> {
        let plan = self.plan;
        if plan.watch.duration.is_zero() {
            return self.receipt_check_without_watch();
        }
        let in_maintenance = plan
            .store()
            .read(&plan.app)
            .is_some_and(|state| state.maintenance.is_some());
        let site_url = plan
            .watch
            .url
            .clone()
            .or_else(|| self.switch.verify_url.clone());
        let (url, site_host) = match site_url {
            _ if in_maintenance => {
                self.log(&format!(
                    "maintenance is on: watching {slot}'s health URL, since nginx answers the site's URLs with the maintenance page"
                ));
                (plan.health_url(slot), None)
            }
            Some(url) => (url, self.switch.site_host.clone()),
            None => (plan.health_url(slot), None),
        };
        let mut monitor = plan.probes(url, site_host, plan.watch.duration);
        monitor.max_p95_ms = p95_limit(before, &plan.thresholds());
        let log = self.access_log();
        self.phase(Phase::Monitor, |me| {
            let started = now_rfc3339();
            let offset = log.as_ref().map(AccessLog::end);
            let mut report = me.with_progress(|p| me.host.watch(&monitor, p));
            // In maintenance the users get the page: only the probes can judge.
            let users = match (&log, offset) {
                (Some(log), Some(offset)) if !in_maintenance => {
                    me.judge_users(log, offset, slot, before)
                }
                _ => None,
            };
            if let Some(users) = users.as_ref().filter(|u| !u.reasons.is_empty()) {
                report.passed = false;
                report.reasons.extend(users.reasons.iter().cloned());
            }
            if let Some(why) = me.too_many_failed_requests() {
                report.passed = false;
                report.reasons.push(why);
            }
            let gate = me.step_command(&Judged {
                what: "watch",
                slot,
                live: previous,
                share: 100,
                started,
                ended: now_rfc3339(),
                passed: report.passed,
            });
            if let Err(why) = gate {
                report.passed = false;
                report.reasons.push(why);
            }
            me.run.result.monitor = Some(report.clone());
            let mut summary = format!(
                "probes: {} requests, {} failed, p95 {} ms, longest gap {} ms",
                report.requests, report.failures, report.p95_ms, report.longest_gap_ms
            );
            summary.push_str(&match &users {
                Some(users) => format!("; {}", users.describe(plan.thresholds().min_requests)),
                None if in_maintenance => "; maintenance is on: judged on the probes".to_owned(),
                None => "; no access log to read: judged on the probes".to_owned(),
            });
            me.run.result.users = users;
            if report.passed {
                Ok(((), summary))
            } else {
                Err(Error::CheckFailed(format!("{}: {summary}", report.reasons.join("; "))).into())
            }
        })
    }
}
