//! The deploy operation: start the new version in the idle slot, health-check it, run the
//! pre-switch command (`hooks.rs`), take it through the traffic steps when the plan has them
//! (`canary.rs`), switch to it, watch it, run the post-switch command, retire the old slot;
//! or switch back when a step, the watch (or, when asked, the post-switch command) fails. Before the
//! switch the live slot is never touched: a standby that fails is stopped and its log tail
//! reported. During maintenance the new version goes live behind the maintenance page,
//! unless the plan ends maintenance at the switch.

use crate::error::Error;
use crate::input::{Image, Slot, SwitchTarget};
use crate::state::{CanaryRecord, State};
use crate::switch::{Intent, MaintenanceChange};

use super::canary::StepsEnd;
use super::engine::{Engine, Failure};
use super::hooks::Hook;
use super::protocol::{Outcome, Phase};

/// Deploys the plan's version.
pub(super) fn run(e: &mut Engine) -> Result<Outcome, Failure> {
    let plan = e.plan;
    lock_or_list_problems(e)?;
    let state = e.load_state()?;
    let mut state = super::reconcile::run(e, state)?;
    // A split this deploy must end before it replaces the slot that gets the share: a
    // canary that paused, or that a run left when it died mid-step; or one nginx routes
    // while state does not know it (a run died between the split and recording it).
    let split_left = match (state.active, state.canary.take()) {
        (Some(live), Some(canary)) => Some((
            live,
            format!(
                "a deploy of {} replaces the canary of {} in {}",
                plan.version.as_str(),
                canary.version,
                canary.slot
            ),
        )),
        (Some(live), None) => e
            .host
            .split_routed(&e.switch, &plan.app, plan.ports)?
            .map(|slot| {
                (
                    live,
                    format!(
                        "nginx sends a share of new requests to {slot}, which state does not record (a run stopped between a split and recording it)"
                    ),
                )
            }),
        _ => None,
    };
    let in_maintenance = state.maintenance.is_some();
    if let Some(active) = state.active
        && !(in_maintenance && plan.maintenance.end_on_deploy)
        && state.slots.get(active).holds_its_version()
        && state.slots.get(active).version.as_deref() == Some(plan.version.as_str())
        && runs_the_plans_image(e, &state, active)
        && e.answers_healthy(active)
    {
        e.log(&format!(
            "version {}{} is already live in {active} and healthy: nothing to do",
            plan.version.as_str(),
            plan.runtime
                .image
                .as_ref()
                .map_or(String::new(), |i| format!(" (image {i})"))
        ));
        return Ok(Outcome::Unchanged);
    }
    e.validate(true)?;
    if let Some((live, why)) = split_left {
        e.end_canary(Phase::Reconcile, live, why)?;
    }
    let standby = state.active.map_or(Slot::Blue, Slot::other);
    // A standby that was never started is left as it was (it may be a kept rollback target).
    let image_id = start_standby(e, standby).inspect_err(|f| {
        if !f.before_start {
            e.abandon_standby(standby)
        }
    })?;
    e.health_check(standby)
        .inspect_err(|_| e.abandon_standby(standby))?;
    e.hook(Hook::PreSwitch, standby, state.active)
        .inspect_err(|_| e.abandon_standby(standby))?;
    if in_maintenance && plan.canary.is_some() {
        e.log(
            "maintenance is on: no request reaches a canary behind the page, so the deploy switches at once, without traffic steps",
        );
    } else if let (Some(live), Some(spec)) = (state.active, &plan.canary) {
        let canary = CanaryRecord {
            slot: standby,
            share: spec.steps.shares()[0],
            version: plan.version.clone(),
            image: plan.runtime.image.clone(),
            image_id: image_id.clone(),
            paused: false,
        };
        match e.canary_steps(live, canary, None, false) {
            Ok(StepsEnd::Passed) => {}
            Ok(StepsEnd::Paused) => return Ok(Outcome::Paused),
            Err(failure) => return e.give_up_canary(live, standby, failure),
        }
    } else if plan.canary.is_some() {
        e.log("no live slot yet: the first deploy switches at once, without traffic steps");
    }
    let intent = Intent::switch_to(SwitchTarget::Slot(standby))
        .only_if_active(state.active)
        .because(plan.purpose.clone())
        .recording(Some(plan.version.clone()), plan.runtime.image.clone())
        .identified_by(image_id);
    super::go_live::run(e, standby, state.active, intent)
}

/// Takes the app lock. A lock that cannot be taken for another reason than another run
/// holding it (a state directory this user cannot create, or one left by root) is often
/// one set-up problem of several: the checks run anyway, changing nothing, so that one run
/// lists them all.
fn lock_or_list_problems(e: &mut Engine) -> Result<(), Failure> {
    let Err(failure) = e.lock() else {
        return Ok(());
    };
    if matches!(failure.error, Error::LockHeld { .. } | Error::Cancelled(_)) {
        return Err(failure);
    }
    let Err(also) = e.validate(false) else {
        return Err(failure);
    };
    e.run.result.failed_phase = Some(Phase::Lock);
    Err(Error::CheckFailed(format!("{}; and {}", failure.error, also.error)).into())
}

/// Starts the new version in `standby`, replacing whatever that slot held; returns the
/// content ID of the image it started from, when the runtime has one.
///
/// State says the slot's old version is gone before it goes: a rollback to the slot later
/// re-creates that version instead of starting what the slot then holds.
fn start_standby(e: &mut Engine, standby: Slot) -> Result<Option<Image>, Failure> {
    let plan = e.plan;
    e.phase(Phase::DeployStandby, |me| {
        me.update_state(|state| state.replacing(standby, plan.version.as_str()))?;
        let detail = me.start_fresh(
            standby,
            &plan.version,
            plan.runtime.image.as_ref(),
            plan.runtime.pull,
        )?;
        let image_id = me.slot_image_id(standby, plan.runtime.image.as_ref());
        Ok((image_id, detail))
    })
}

/// Connects, validates and shows what a deploy would do, with the upstream diff; changes
/// nothing.
pub(super) fn dry_run(e: &mut Engine) -> Result<Outcome, Failure> {
    let plan = e.plan;
    let state = e.load_state()?;
    e.validate(false)?;
    let standby = state.active.map_or(Slot::Blue, Slot::other);
    let intent =
        Intent::switch_to(SwitchTarget::Slot(standby)).recording(Some(plan.version.clone()), None);
    let intent = if plan.maintenance.end_on_deploy {
        intent.changing_maintenance(MaintenanceChange::End)
    } else {
        intent
    };
    let report = e.dry_switch(intent)?;
    e.log(&format!(
        "plan: start {} version {} in {standby} (port {}), switch nginx from {} to {standby}, watch {}, then {} the old slot",
        plan.app,
        plan.version.as_str(),
        report.port,
        report.from.map_or("nothing", Slot::as_str),
        humantime::format_duration(plan.watch.duration),
        plan.retire.old_slot.as_str()
    ));
    let hooks = &plan.hooks;
    for (name, when, command) in [
        (
            "pre-switch",
            "before any traffic reaches it",
            &hooks.pre_switch,
        ),
        ("post-switch", "after its watch", &hooks.post_switch),
        (
            "step",
            "after each traffic step's verdict and the watch's",
            &hooks.step,
        ),
    ] {
        if command.is_some() {
            // Named, never shown: a command's text may hold what a log should not.
            e.log(&format!(
                "plan: run the {name} command {when} (within {})",
                humantime::format_duration(hooks.timeout)
            ));
        }
    }
    if let Some(spec) = &plan.canary {
        e.log(&format!(
            "plan: before the switch, steps of {} of new requests to {standby}, {} each",
            spec.steps,
            humantime::format_duration(spec.step_duration)
        ));
    }
    e.run.result.upstream_diff = Some(report.diff);
    Ok(Outcome::Unchanged)
}

/// Whether `slot` runs the plan's image, as far as state and the host tell: the same
/// reference where state records one, and, where the host has that reference now, the
/// content state recorded. A
/// version label alone does not make a deploy of another image "nothing to do". True for
/// a plan without an image (compose, command).
fn runs_the_plans_image(e: &mut Engine, state: &State, slot: Slot) -> bool {
    let Some(image) = e.plan.runtime.image.clone() else {
        return true;
    };
    let record = state.slots.get(slot);
    if record
        .image
        .as_deref()
        .is_some_and(|recorded| recorded != image.as_str())
    {
        return false;
    }
    let Some(recorded) = record.image_id.clone() else {
        return true;
    };
    e.image_id(&image)
        .is_none_or(|now| now.as_str() == recorded.as_str())
}
