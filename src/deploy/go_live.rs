//! The end of a deploy and of a promote: switch to the new slot, watch it, run the
//! post-switch command, and either leave the old slot to be retired once the result is out
//! or switch back to it (turning maintenance back on when the switch ended it).

use crate::error::RunError;
use crate::input::{Slot, SwitchTarget};
use crate::state::MaintenanceRecord;
use crate::switch::{Intent, MaintenanceChange};

use super::engine::{Engine, Failure};
use super::hooks::Hook;
use super::plan::Operation;
use super::protocol::{Outcome, Phase};

/// The end of a deploy (and of a promote): switch to `standby` as `intent` says, watch it,
/// and either retire `previous` once the result is out or switch back to it.
pub(super) fn run(
    e: &mut Engine,
    standby: Slot,
    previous: Option<Slot>,
    intent: Intent,
) -> Result<Outcome, Failure> {
    // A deploy keeps maintenance on unless told to end it: the new version then takes
    // the traffic at its switch, and a switch back puts the page back.
    let ended = e
        .plan
        .store()
        .read(&e.plan.app)
        .and_then(|state| state.maintenance)
        .filter(|_| e.plan.maintenance.end_on_deploy);
    let intent = if ended.is_some() {
        intent.changing_maintenance(MaintenanceChange::End)
    } else {
        intent
    };
    // The live slot's requests just before the switch, that the users' requests to the new
    // slot in the watch are judged against. After traffic steps (a promote's among them) the
    // window holds the new slot's share too: where the log cannot tell the slots apart it
    // would loosen the watch, so there is no window then.
    let after_steps =
        e.plan.operation == Operation::Promote || !e.run.result.canary_steps.is_empty();
    let before = e
        .live_window(standby)
        .and_then(|window| window.of_live_slot(after_steps));
    e.switch_to(Phase::Switch, intent)
        .map_err(|f| Failure::of_slot(f.error, standby))
        .inspect_err(|_| e.abandon_standby(standby))?;
    let passed = e.watch(standby, previous, before.as_ref());
    if let Err(failure) = passed {
        return switch_back(
            e,
            (
                standby,
                previous.filter(|_| e.plan.watch.rollback_on_failure),
            ),
            ended,
            failure,
            "watch",
        );
    }
    if let Err(failure) = e.hook(Hook::PostSwitch, standby, previous) {
        // With no slot to go back to (a first deploy), a rollback cannot be had: a warning.
        if e.plan.hooks.post_switch_rollback && previous.is_some() {
            return switch_back(
                e,
                (standby, previous),
                ended,
                failure,
                "post-switch command",
            );
        }
        // Reported, not rolled back: the new version is live and passed its watch.
        e.run.result.failed_phase = None;
        let warning = format!(
            "{}; {standby} stays live (post-switch-rollback is off, or there is no previous slot)",
            failure.error
        );
        e.log(&format!("warning: {warning}"));
        e.add_warnings(&[warning]);
    }
    if let Some(old) = previous {
        e.run.result.retire = Some(e.retire_plan(old));
        e.run.pending_retire = Some(old);
    }
    Ok(Outcome::Deployed)
}

/// After `failure` of the new version in `standby` (its watch, or the post-switch command
/// named `what`), switches back to `previous` and abandons the standby, turning the
/// maintenance the switch `ended` on again; without a slot to go back to, the failure
/// stands.
fn switch_back(
    e: &mut Engine,
    (standby, previous): (Slot, Option<Slot>),
    ended: Option<MaintenanceRecord>,
    failure: Failure,
    what: &str,
) -> Result<Outcome, Failure> {
    let Some(previous) = previous else {
        return Err(failure);
    };
    e.run.result.error = Some(RunError::from(&failure.error));
    let back = Intent::back(standby, SwitchTarget::Slot(previous))
        .because(format!("{what} failed: {}", failure.error));
    let back = match ended {
        Some(record) => back.changing_maintenance(MaintenanceChange::Start(record)),
        None => back,
    };
    e.switch_to(Phase::Rollback, back)?;
    e.run.result.log_tail = e.log_tail(standby);
    e.abandon_standby(standby);
    Ok(Outcome::RolledBack)
}
