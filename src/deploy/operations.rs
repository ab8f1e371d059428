//! Which operation a plan runs: the one place that maps a plan's operation (and dry run)
//! to its sequence of steps, then hands the outcome to the engine to finish the run. A run
//! that moves traffic gets a receipt of the users' requests from here to its end.

use super::engine::Engine;
use super::plan::Operation;
use super::protocol::DeployResult;

impl Engine<'_> {
    /// Runs the plan's operation; emits the result as soon as the outcome is decided, then
    /// retires the old slot (a deploy that went live), still holding the lock; returns the
    /// result.
    pub fn run(mut self) -> DeployResult {
        if self.plan.operation != Operation::Status {
            self.resolve_switch_mode();
        }
        let moves_traffic = matches!(
            self.plan.operation,
            Operation::Deploy | Operation::Rollback | Operation::Promote | Operation::Abort
        );
        if moves_traffic && !self.plan.dry_run {
            self.start_receipt();
        }
        let outcome = match (self.plan.operation, self.plan.dry_run) {
            (Operation::Status, _) => super::status::run(&mut self),
            (Operation::Deploy, false) => super::release::run(&mut self),
            (Operation::Deploy, true) => super::release::dry_run(&mut self),
            (Operation::Rollback, _) => super::rollback::run(&mut self),
            (Operation::Promote | Operation::Abort, true) => super::canary::dry_run(&mut self),
            (Operation::Promote, false) => super::canary::promote(&mut self),
            (Operation::Abort, false) => super::canary::abort(&mut self),
            (Operation::MaintenanceOn, _) => super::maintenance::run(&mut self, true),
            (Operation::MaintenanceOff, _) => super::maintenance::run(&mut self, false),
            (Operation::Setup, _) => super::setup::run(&mut self),
            (Operation::Switch, _) => super::hand_switch::run(&mut self),
        };
        self.finish(outcome)
    }
}
