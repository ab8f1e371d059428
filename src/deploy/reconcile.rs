//! Reconcile: make state, the upstream file and nginx agree again when an earlier run died
//! between writing the upstream file and recording state (`kill -9`, a power cut), so that
//! nginx may be serving either slot. The file's slot wins if it answers healthy from its own
//! container, else the recorded one; either way nginx is reloaded onto it and state
//! records it.

use crate::state::State;
use crate::switch::Intent;

use super::engine::{Engine, Failure};
use super::protocol::Phase;

/// Reconciles when the routed and the recorded slot differ; returns the state to go on
/// from.
pub(super) fn run(e: &mut Engine, state: State) -> Result<State, Failure> {
    let plan = e.plan;
    let routed = e.host.routed(&e.switch, &plan.app, plan.ports)?;
    let (Some(routed), Some(recorded)) = (routed, state.active) else {
        return Ok(state);
    };
    if routed == recorded {
        return Ok(state);
    }
    let target = if e.slot_answers_healthy(routed) {
        routed
    } else {
        recorded
    };
    let reason = format!(
        "state said {recorded} but nginx routed to {routed}; an earlier run stopped half-way"
    );
    e.log(&reason);
    // What the slot runs: its label, else what state says is in it (a version that
    // replaced the recorded one, if any).
    let record = state.slots.get(target);
    let version = e.running_version(target).or_else(|| {
        record
            .replaced_by
            .as_deref()
            .or(record.version.as_deref())?
            .parse()
            .ok()
    });
    e.switch_to(
        Phase::Reconcile,
        Intent::reconcile(target)
            .because(reason)
            .recording(version, None),
    )?;
    e.load_state()
}
