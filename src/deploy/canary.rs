//! A deploy in traffic steps, and the two operations that finish one: the new slot gets
//! each step's share of new requests while the live slot keeps the rest; each step is
//! judged on the requests the access log shows it served and on probes of its health URL;
//! a failing step sends everything back to the live slot at once and abandons the new one.
//!
//! State records the canary at every step (slot, share, version), so a run that dies
//! mid-step leaves both slots serving and the next deploy ends the canary before it starts.
//! A canary paused on purpose (`canary-pause-at`) is taken on by `command: promote`, or
//! ended by `command: abort`.
//!
//! A request to stop (see [`crate::cancel`]) ends the canary at the end of the step it
//! arrives in, the last and the pause step included: traffic goes back to the live slot and
//! the run reports `cancelled`. A promote asked to stop before it moved the share leaves the
//! canary as it was.

use std::time::Instant;

use crate::canary::{
    AccessLog, Baseline, Estimate, Share, SlotTraffic, StepTraffic, estimate, estimate_slow, judge,
};
use crate::clock::now_rfc3339;
use crate::error::{Error, RunError};
use crate::input::{Slot, SwitchTarget};
use crate::monitor::MonitorReport;
use crate::state::CanaryRecord;
use crate::switch::Intent;

use super::engine::{Engine, Failure};
use super::hooks::Judged;
use super::plan::Operation;
use super::protocol::{Outcome, Phase, StepReport};

/// How a run of canary steps ended when no step failed.
pub(super) enum StepsEnd {
    /// Every step passed: the switch to 100% comes next.
    Passed,
    /// The run stopped at the pause step on purpose.
    Paused,
}

impl Engine<'_> {
    /// Runs the plan's traffic steps that come after `canary.share` (all of them for a
    /// fresh canary, `from: None`) for `canary` beside `live`. Pauses after the plan's
    /// pause step unless `through` (a promote goes on to the end).
    pub(super) fn canary_steps(
        &mut self,
        live: Slot,
        mut canary: CanaryRecord,
        from: Option<Share>,
        through: bool,
    ) -> Result<StepsEnd, Failure> {
        let Some(spec) = self.plan.canary.as_ref() else {
            return Ok(StepsEnd::Passed);
        };
        // A fresh canary's steps are judged against the live slot alone just before them;
        // a promote has no such window (the paused split served until now).
        let before = match from {
            None => self.live_window(canary.slot).map(|window| window.all),
            Some(_) => None,
        };
        for share in spec.steps.after(from) {
            self.stop_if_asked()?;
            canary.share = share;
            canary.paused = false;
            self.canary_step(live, &canary, before.as_ref())?;
            if !through && spec.pause_at == Some(share) {
                self.stop_if_asked()?;
                canary.paused = true;
                self.update_state(|state| state.with_canary(Some(canary.clone())))?;
                self.log(&format!(
                    "paused at {share}: {} serves {share} of new requests until `command: promote` (or `command: abort`)",
                    canary.slot
                ));
                return Ok(StepsEnd::Paused);
            }
        }
        self.stop_if_asked()?;
        Ok(StepsEnd::Passed)
    }

    /// A request to stop, as the failure that ends the canary (traffic has moved, so the
    /// phases no longer stop on their own).
    fn stop_if_asked(&self) -> Result<(), Failure> {
        match self.cancel.requested() {
            Some(reason) => Err(Error::Cancelled(reason).into()),
            None => Ok(()),
        }
    }

    /// One step: the split, a step's worth of probes of the new slot, then the verdict on
    /// what the access log says each slot served in the meantime (or, where it cannot tell
    /// the slots apart, on the estimates from the kernel's counts against the live slot's
    /// window `before` the steps).
    fn canary_step(
        &mut self,
        live: Slot,
        canary: &CanaryRecord,
        before: Option<&SlotTraffic>,
    ) -> Result<(), Failure> {
        let plan = self.plan;
        let spec = plan.canary.as_ref().expect("steps run with a canary spec");
        let limits = plan.thresholds();
        let probes = plan.probes(plan.health_url(canary.slot), None, spec.step_duration);
        // Only a log the switch could have told nginx to write is read: a log directory it
        // refused (others could write there) says nothing to judge on.
        let log = self.access_log();
        let intent = Intent::split(live, canary.clone())
            .because(format!("canary step {} to {}", canary.share, canary.slot));
        self.phase(Phase::Canary, |me| {
            let started = Instant::now();
            let window_start = now_rfc3339();
            let request = me.switch_request(intent, false)?;
            let report = me.run_switch(&request)?;
            me.run.traffic_moved = true;
            me.add_warnings(&report.warnings);
            let offset = log.as_ref().map_or(0, AccessLog::end);
            let nft = me.switch.nft(&plan.app);
            let probed = me.with_progress(|p| me.host.watch(&probes, p));
            let traffic = match &log {
                Some(log) => log.since(offset, plan.ports, canary.slot)?,
                None => Default::default(),
            };
            let connections = nft.and_then(|nft| {
                let out = me
                    .host
                    .run(&nft.list_command(), probes.request_timeout)
                    .ok()?;
                Some(nft.connections_in(&out.stdout))
            });
            let estimated = connections
                .filter(|_| traffic.slots_unnamed)
                .and_then(|counts| {
                    let e = estimate(
                        &traffic.all,
                        counts,
                        before.map(Baseline::of),
                        limits.max_error_rate,
                        limits.error_margin,
                    )?;
                    let slow = estimate_slow(&traffic.all, counts, before, &limits);
                    Some(Estimate { slow, ..e })
                });
            let mut verdict = judge(&traffic, estimated.as_ref(), &probed, &limits);
            let detail = describe_step(
                (canary, live),
                &traffic,
                estimated.as_ref(),
                &probed,
                connections,
                spec.min_requests,
            );
            let gate = me.step_command(&Judged {
                what: "canary",
                slot: canary.slot,
                live: Some(live),
                share: canary.share.percent(),
                started: window_start,
                ended: now_rfc3339(),
                passed: verdict.passed,
            });
            if let Err(why) = gate {
                verdict.passed = false;
                verdict.reasons.push(why);
            }
            me.run.result.canary_steps.push(StepReport {
                share: canary.share.percent(),
                served_percent: traffic.canary_percent(),
                traffic: traffic.clone(),
                connections,
                estimate: estimated,
                probes: (probed.requests, probed.failures),
                verdict: verdict.clone(),
                ms: started.elapsed().as_millis() as u64,
            });
            if verdict.passed {
                Ok(((), detail))
            } else {
                Err(Failure::of_slot(
                    Error::CheckFailed(format!("{}: {detail}", verdict.reasons.join("; "))),
                    canary.slot,
                ))
            }
        })
    }

    /// Ends a canary in `slot` beside `live` after `failure`: everything back to `live`
    /// (when traffic had moved), the new slot stopped. A failed step or a failed check is
    /// `rolled-back` once traffic had moved; a request to stop stays `cancelled`.
    pub(super) fn give_up_canary(
        &mut self,
        live: Slot,
        slot: Slot,
        failure: Failure,
    ) -> Result<Outcome, Failure> {
        if !self.run.traffic_moved {
            if !failure.before_start {
                self.abandon_standby(slot);
            }
            return Err(failure);
        }
        self.run.result.error = Some(RunError::from(&failure.error));
        self.end_canary(
            Phase::Rollback,
            live,
            format!("canary failed: {}", failure.error),
        )?;
        if failure.log_of.is_some() {
            self.run.result.log_tail = self.log_tail(slot);
        }
        self.abandon_standby(slot);
        match failure.error {
            Error::Cancelled(_) => Err(failure),
            _ => Ok(Outcome::RolledBack),
        }
    }

    /// Sends every new request to `live` again (ending the canary in state), in `phase`.
    pub(super) fn end_canary(
        &mut self,
        phase: Phase,
        live: Slot,
        why: String,
    ) -> Result<(), Failure> {
        self.log(&why);
        let back = Intent::back(live, SwitchTarget::Slot(live)).because(why);
        self.switch_to(phase, back).map(drop)
    }
}

/// `command: promote`: takes the paused canary through its remaining steps, then switches
/// to it, watches it and retires the old slot like a deploy.
pub(super) fn promote(e: &mut Engine) -> Result<Outcome, Failure> {
    e.lock()?;
    let state = e.load_state()?;
    let (live, canary) = canary_in(&state, "promote")?;
    e.run.acted_on = Some((canary.version.clone(), canary.image.clone()));
    // The canary serves its share already: whatever fails from here sends it back.
    e.run.traffic_moved = true;
    let checked = e
        .health_check(canary.slot)
        .and_then(|()| e.canary_steps(live, canary.clone(), Some(canary.share), true));
    match checked {
        // Asked to stop before this run moved the share: the canary stays as it was.
        Err(failure)
            if matches!(failure.error, Error::Cancelled(_))
                && e.run.result.canary_steps.is_empty() =>
        {
            return Err(failure);
        }
        Err(failure) => return e.give_up_canary(live, canary.slot, failure),
        Ok(_) => {}
    }
    let intent = Intent::switch_to(SwitchTarget::Slot(canary.slot))
        .only_if_active(Some(live))
        .because(format!("promote {} ({})", canary.version, e.plan.purpose))
        .recording(Some(canary.version.clone()), canary.image.clone())
        .identified_by(canary.image_id.clone());
    super::go_live::run(e, canary.slot, Some(live), intent)
}

/// `command: abort`: all traffic back to the live slot, the canary stopped.
pub(super) fn abort(e: &mut Engine) -> Result<Outcome, Failure> {
    e.lock()?;
    let state = e.load_state()?;
    let (live, canary) = canary_in(&state, "abort")?;
    e.run.acted_on = Some((canary.version.clone(), canary.image.clone()));
    e.end_canary(
        Phase::Rollback,
        live,
        format!("canary of {} aborted ({})", canary.version, e.plan.purpose),
    )?;
    e.abandon_standby(canary.slot);
    e.log(&format!(
        "aborted the canary of {} in {}: {live} serves everything again",
        canary.version, canary.slot
    ));
    Ok(Outcome::RolledBack)
}

/// `dry-run` of promote and abort: says what the run would do; changes nothing.
pub(super) fn dry_run(e: &mut Engine) -> Result<Outcome, Failure> {
    let plan = e.plan;
    let state = e.load_state()?;
    let (live, canary) = canary_in(&state, plan.operation.as_str())?;
    let line = match plan.operation {
        Operation::Abort => format!(
            "plan: send every new request to {live} again and stop {} ({}, now at {})",
            canary.slot, canary.version, canary.share
        ),
        _ => {
            let steps: Vec<String> = plan
                .canary
                .as_ref()
                .map(|spec| {
                    spec.steps
                        .after(Some(canary.share))
                        .map(|s| s.to_string())
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "plan: health-check {} ({}, now at {}), {}, switch from {live} to {}, watch {}, then {} {live}",
                canary.slot,
                canary.version,
                canary.share,
                if steps.is_empty() {
                    "no further steps".to_owned()
                } else {
                    format!(
                        "steps {} of {} each",
                        steps.join(", "),
                        humantime::format_duration(
                            plan.canary
                                .as_ref()
                                .map(|c| c.step_duration)
                                .unwrap_or_default()
                        )
                    )
                },
                canary.slot,
                humantime::format_duration(plan.watch.duration),
                plan.retire.old_slot.as_str()
            )
        }
    };
    e.log(&line);
    Ok(Outcome::Unchanged)
}

/// The live slot and the canary state records, or why `command` has nothing to act on.
fn canary_in(state: &crate::state::State, command: &str) -> Result<(Slot, CanaryRecord), Failure> {
    match (state.active, &state.canary) {
        (Some(live), Some(canary)) => Ok((live, canary.clone())),
        _ => Err(Error::CheckFailed(format!(
            "nothing to {command}: no canary is in progress for {} (see command: status)",
            state.app
        ))
        .into()),
    }
}

/// What a canary step saw, for its phase line: the share each slot served in the access log
/// (or, where the log cannot tell the slots apart, all it logged and the `estimated` new
/// slot's error rate), the connections nftables sent each way, and what the verdict was
/// judged on.
fn describe_step(
    (canary, live): (&CanaryRecord, Slot),
    traffic: &StepTraffic,
    estimated: Option<&Estimate>,
    probed: &MonitorReport,
    connections: Option<(u64, u64)>,
    min_requests: u32,
) -> String {
    let (new, old) = (&traffic.canary, &traffic.stable);
    let mut detail = if traffic.slots_unnamed {
        format!(
            "{} to {}: nginx logged {} requests, {} failed, and {} named no slot (the app sends no X-Bluegreen-Slot header)",
            canary.share,
            canary.slot,
            traffic.all.requests,
            traffic.all.errors,
            traffic.unplaced + traffic.unplaced_failures,
        )
    } else {
        format!(
            "{} to {}: it served {:.1}% of {} logged requests ({}; {})",
            canary.share,
            canary.slot,
            traffic.canary_percent(),
            new.requests + old.requests,
            new.describe(canary.slot),
            old.describe(live),
        )
    };
    if let Some((to_new, to_old)) = connections {
        detail.push_str(&format!(
            "; nftables sent {to_new} new connections to {} and {to_old} to {live}",
            canary.slot
        ));
    }
    if traffic.unplaced_failures > 0 && !traffic.slots_unnamed {
        detail.push_str(&format!(
            "; {} failures named no slot and count against {}",
            traffic.unplaced_failures, canary.slot
        ));
    }
    let probes = format!("{} of {} failed", probed.failures, probed.requests);
    detail.push_str(&match estimated {
        _ if !traffic.slots_unnamed && new.requests >= u64::from(min_requests) => {
            format!("; probes {probes}")
        }
        Some(e) if e.new_requests >= f64::from(min_requests) => match &e.slow {
            Some(slow) => format!("; {}; {}; probes {probes}", e.describe(), slow.describe()),
            None => format!(
                "; {}; no request carried a time, so its latency is judged on its probes ({probes})",
                e.describe()
            ),
        },
        Some(_) => format!(
            "; the access log cannot tell the slots apart and the kernel's counts gave {} too few requests (fewer than canary-min-requests {min_requests}): judged on its probes ({probes})",
            canary.slot
        ),
        None if traffic.slots_unnamed => format!(
            "; the access log cannot tell the slots apart and the kernel's counts could not be read: judged on the probes of {} ({probes})",
            canary.slot
        ),
        _ => format!(
            "; too few requests of {} in the access log (fewer than canary-min-requests {min_requests}): judged on its probes ({probes})",
            canary.slot
        ),
    });
    detail
}
