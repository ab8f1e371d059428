//! The deploy operation: start the new version in the idle slot, health-check it, switch to
//! it, watch it, retire the old slot; or switch back when the watch fails. Before the
//! switch the live slot is never touched: a standby that fails is stopped and its log tail
//! reported.

use crate::error::RunError;
use crate::input::{Slot, SwitchTarget};
use crate::switch::Intent;

use super::engine::{Engine, Failure, RUNTIME_COMMAND_TIMEOUT};
use super::protocol::{Outcome, Phase};

/// Deploys the plan's version.
pub(super) fn run(e: &mut Engine) -> Result<Outcome, Failure> {
    let plan = e.plan;
    e.lock()?;
    let state = e.load_state()?;
    let state = super::reconcile::run(e, state)?;
    if let Some(active) = state.active
        && state.slots.get(active).version.as_deref() == Some(plan.version.as_str())
        && e.answers_healthy(active)
    {
        e.log(&format!(
            "version {} is already live in {active} and healthy: nothing to do",
            plan.version.as_str()
        ));
        return Ok(Outcome::Unchanged);
    }
    e.validate()?;
    let standby = state.active.map_or(Slot::Blue, Slot::other);
    // A standby that was never started is left as it was (it may be a kept rollback target).
    start_standby(e, standby).inspect_err(|f| {
        if !f.before_start {
            e.abandon_standby(standby)
        }
    })?;
    e.health_check(standby)
        .inspect_err(|_| e.abandon_standby(standby))?;
    let intent = Intent::switch_to(SwitchTarget::Slot(standby))
        .only_if_active(state.active)
        .because(plan.purpose.clone())
        .recording(Some(plan.version.clone()), plan.runtime.image.clone());
    e.switch_to(Phase::Switch, intent)
        .map_err(|f| Failure::of_slot(f.error, standby))
        .inspect_err(|_| e.abandon_standby(standby))?;

    if let Err(failure) = e.watch(standby) {
        let Some(previous) = state.active.filter(|_| plan.watch.rollback_on_failure) else {
            return Err(failure);
        };
        e.result.error = Some(RunError::from(&failure.error));
        let back = Intent::back(standby, SwitchTarget::Slot(previous))
            .because(format!("watch failed: {}", failure.error));
        e.switch_to(Phase::Rollback, back)?;
        e.result.log_tail = e.log_tail(standby);
        e.abandon_standby(standby);
        return Ok(Outcome::RolledBack);
    }
    if let Some(old) = state.active {
        e.result.retire = Some(e.retire_plan(old));
        e.pending_retire = Some(old);
    }
    Ok(Outcome::Deployed)
}

/// Starts the new version in `standby`, replacing whatever that slot held.
fn start_standby(e: &mut Engine, standby: Slot) -> Result<(), Failure> {
    let plan = e.plan;
    e.phase(Phase::DeployStandby, |me| {
        let commands = me.commands();
        let spec = me.slot_spec(standby, plan.version.as_str(), plan.runtime.image.as_ref());
        for cmd in commands.prepare(&spec) {
            me.host.run(&cmd, RUNTIME_COMMAND_TIMEOUT)?;
        }
        let out = me
            .host
            .run(&commands.start(&spec), RUNTIME_COMMAND_TIMEOUT)
            .map_err(|error| Failure::of_slot(error, standby))?;
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
}

/// Connects, validates and shows what a deploy would do, with the upstream diff; changes
/// nothing.
pub(super) fn dry_run(e: &mut Engine) -> Result<Outcome, Failure> {
    let plan = e.plan;
    let state = e.load_state()?;
    e.validate()?;
    let standby = state.active.map_or(Slot::Blue, Slot::other);
    let intent =
        Intent::switch_to(SwitchTarget::Slot(standby)).recording(Some(plan.version.clone()), None);
    let request = e.switch_request(intent, true);
    let quiet = |_: &str| {};
    let report = e
        .host
        .switch(&request, &crate::progress::Progress::lines(&quiet))?;
    e.log(&format!(
        "plan: start {} version {} in {standby} (port {}), switch nginx from {} to {standby}, watch {}, then {} the old slot",
        plan.app,
        plan.version.as_str(),
        report.port,
        report.from.map_or("nothing", Slot::as_str),
        humantime::format_duration(plan.watch.duration),
        plan.retire.old_slot.as_str()
    ));
    e.result.upstream_diff = Some(report.diff);
    Ok(Outcome::Unchanged)
}
