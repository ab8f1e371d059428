//! The switch by hand (`switch-traffic`, the operation `switch`): all traffic, or a share
//! of new requests, to a slot that already runs, once it answers healthy; confirmed and
//! recorded like every switch of a run. It starts and stops no slot: it knows the slots by
//! their ports.

use crate::canary::Share;
use crate::error::Error;
use crate::input::{Slot, Version};
use crate::state::{CanaryRecord, State};
use crate::switch::Intent;

use super::engine::{Engine, Failure};
use super::plan_parts::HandSwitchSpec;
use super::protocol::{Outcome, Phase};

/// Switches as the plan's `hand_switch` says.
pub(super) fn run(e: &mut Engine) -> Result<Outcome, Failure> {
    let plan = e.plan;
    let spec = plan.hand_switch.as_ref().ok_or_else(|| {
        Error::invalid(
            "plan",
            "command switch needs hand_switch: where traffic goes",
        )
    })?;
    if !plan.dry_run {
        // Bad input (no previous slot, a share to the live slot) is refused before the
        // lock, which creates the state directory: it changes nothing. Asked again under
        // the lock.
        let (before, _, _) = e.read_state()?;
        intent_of(e, spec, &before)?;
        e.lock()?;
    }
    let state = e.load_state()?;
    let (slot, intent) = intent_of(e, spec, &state)?;
    if plan.dry_run {
        let report = e.dry_switch(intent)?;
        e.run.result.upstream_diff = Some(report.diff.clone());
        e.run.result.switch = Some(report);
        return Ok(Outcome::Unchanged);
    }
    if spec.check_health {
        // A switch to a slot that does not answer would make nginx answer 502.
        e.health_check(slot).map_err(|failure| Failure {
            error: Error::CheckFailed(format!(
                "not switching: {slot} (port {}) does not answer healthy: {}; start it first, or pass --skip-health-check-dangerous",
                plan.ports.port(slot),
                failure.error
            )),
            ..failure
        })?;
    }
    let report = e.switch_to(Phase::Switch, intent)?;
    e.run.result.switch = Some(report);
    Ok(Outcome::Changed)
}

/// Where `spec` sends traffic given `state`: the slot, and the switch's intent.
fn intent_of(e: &Engine, spec: &HandSwitchSpec, state: &State) -> Result<(Slot, Intent), Failure> {
    let whole = Intent::switch_to(spec.to).recording(spec.version.clone(), None);
    let slot = whole.resolve(state, &e.plan.app)?;
    let intent = match spec.share {
        Some(share) => split_to(spec, state, slot, share)?,
        None => whole,
    };
    Ok((slot, intent))
}

/// The intent of a share: `share` of new requests to `slot`, the rest to the live slot,
/// which must be the other one.
fn split_to(
    spec: &HandSwitchSpec,
    state: &State,
    slot: Slot,
    share: Share,
) -> Result<Intent, Failure> {
    let live = state.active.filter(|live| *live != slot).ok_or_else(|| {
        Error::invalid(
            "--weight",
            format!(
                "a weight sends a share to the slot that is not live, beside the live one; the live slot is {}",
                state.active.map_or("none", Slot::as_str)
            ),
        )
    })?;
    let recorded = || {
        state
            .slots
            .get(slot)
            .version
            .as_deref()
            .and_then(|v| v.parse::<Version>().ok())
    };
    let version = spec.version.clone().or_else(recorded).ok_or_else(|| {
        Error::invalid(
            "--app-version",
            format!("state records no version for {slot}: say which it runs"),
        )
    })?;
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
