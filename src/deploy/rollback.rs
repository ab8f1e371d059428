//! The rollback operation (`command: rollback`): start the previous slot again if it was
//! stopped, health-check it, and switch back to it, only while the slot it leaves is still
//! the live one. A previous slot's port that answers while the slot's own container does
//! not run belongs to another process: the rollback refuses it.

use crate::error::Error;
use crate::input::{Image, SwitchTarget};
use crate::switch::Intent;

use super::engine::{Engine, Failure, RUNTIME_COMMAND_TIMEOUT};
use super::protocol::{Outcome, Phase};

/// Rolls back to the previous slot.
pub(super) fn run(e: &mut Engine) -> Result<Outcome, Failure> {
    let plan = e.plan;
    if !plan.dry_run {
        e.lock()?;
    }
    let state = e.load_state()?;
    let (Some(active), Some(previous)) = (state.active, state.previous) else {
        return Err(Error::CheckFailed(format!(
            "{} has no previous slot to roll back to",
            plan.app
        ))
        .into());
    };
    if plan.dry_run {
        e.log(&format!(
            "plan: start {previous} if stopped, health-check it, switch from {active} to {previous}"
        ));
        return Ok(Outcome::Unchanged);
    }
    let record = state.slots.get(previous).clone();
    let version = record.version.unwrap_or_default();
    let image: Option<Image> = record.image.and_then(|i| i.parse().ok());
    e.phase(Phase::DeployStandby, |me| {
        if me.answers_healthy(previous) {
            if me.slot_runs(previous) == Some(false) {
                return Err(Error::CheckFailed(format!(
                    "port {} of {previous} answers, but {previous}'s container is not running: another process holds the port; not rolling back to it",
                    plan.ports.port(previous)
                ))
                .into());
            }
            return Ok(((), format!("{previous} is still running")));
        }
        let commands = me.commands();
        let spec = me.slot_spec(previous, &version, image.as_ref());
        me.host
            .run(&commands.restart(&spec), RUNTIME_COMMAND_TIMEOUT)?;
        Ok(((), format!("started {previous} again (version {version})")))
    })?;
    e.health_check(previous)?;
    let back = Intent::back(active, SwitchTarget::Slot(previous)).because(plan.purpose.clone());
    e.switch_to(Phase::Switch, back)?;
    Ok(Outcome::RolledBack)
}
