//! One deploy, rollback or status of one app on the host it runs on (`bluegreen deploy`),
//! phase by phase, reported as a stream of events.
//!
//! The runner's orchestrator sends a [`DeployPlan`] as JSON to `bluegreen deploy` over one
//! SSH channel and relays the [`Event`]s it prints, one JSON object per line. All phases run
//! in this one process, which holds the app lock for its whole life: if the connection drops
//! or the orchestrator is killed, the lock goes with this process and never outlives it.
//!
//! Failure semantics: before the switch the live slot is never touched and a failed standby
//! is stopped with its log tail reported; a failed switch restores the previous upstream; a
//! failed watch after the switch switches back to the previous slot (still running) when
//! rollback is on; a failed retire is a warning only. A run asked to stop (the runner's
//! `cancel` line, its connection closing, a signal) stops before the switch like a failed
//! one, reporting `cancelled`; after the switch it runs its watch and rollback to the end.
//!
//! Layout:
//! - `protocol`: the events and the result, shared with the runner's relay.
//! - `plan`: the plan and its cross-field rules; `plan_parts`: its typed parts;
//!   `defaults`: the plan an empty input means.
//! - `effects`: what the engine does to the host ([`Host`]), and [`SystemHost`], the real one.
//! - `engine`: the context a phase runs in, the phase runner, the lock and state steps.
//! - `checks`: the preflight checks (validate, and the checks that need the plan).
//! - `slots`: starting, stopping and inspecting the slots.
//! - `steps`: the other steps the operations share (health, switch, watch).
//! - `hooks`: the user's commands before and after the switch.
//! - `retire`: what a run does after its result is out (retire the old slot, tidy up);
//!   `cleanup`: removing the app's old images then.
//! - `release` (the deploy operation), `canary` (its traffic steps, and the promote and
//!   abort operations), `rollback`, `reconcile`, `status`, `maintenance` (on and off),
//!   `setup`, `hand_switch` (a switch by hand): one file per operation, each a short
//!   sequence of the engine's steps;
//!   `go_live`: the switch, watch and switch back that a deploy and a promote end with.
//! - `operations`: which operation a plan runs ([`Engine::run`]); the engine names none, so
//!   no module here imports one that imports it back.

mod canary;
mod checks;
mod cleanup;
mod defaults;
mod effects;
mod engine;
mod go_live;
mod hand_switch;
mod hooks;
mod maintenance;
mod operations;
mod plan;
mod plan_parts;
mod protocol;
mod reconcile;
mod release;
mod retire;
mod rollback;
mod setup;
mod slots;
mod status;
mod steps;
#[cfg(test)]
mod tests;

use crate::cancel::Cancel;

pub use effects::{Host, SystemHost};
pub use engine::Engine;
pub use plan::{DeployPlan, Operation};
pub use plan_parts::{
    HandSwitchSpec, HealthSpec, HookSpec, MaintenanceSpec, Retire, RetireSpec, SiteSpec, WatchSpec,
};
pub use protocol::{
    DeployResult, Event, Outcome, Phase, PhaseRecord, SlotStatus, StatusReport, StepReport,
};

/// Runs `plan` on this host, announcing events to `emit` and stopping early when `cancel`
/// is raised before traffic has moved; returns the result (also emitted as the last event).
pub fn run(plan: &DeployPlan, emit: &(dyn Fn(&Event) + Sync), cancel: Cancel) -> DeployResult {
    Engine::new(plan, &SystemHost, emit)
        .cancellable(cancel)
        .run()
}
