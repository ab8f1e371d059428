//! The rollback operation (`command: rollback`): bring the previous slot's version back,
//! health-check it, and switch back to it, only while the slot it leaves is still the live
//! one. The slot is started again when it still holds that version; when a later deploy
//! replaced it (one that failed, or was stopped, before going live), that version is
//! re-created from its recorded image, or the rollback refuses before changing anything.
//! A previous slot's port that answers while the slot's own container does not run belongs
//! to another process: the rollback refuses it, as it refuses while a canary is in
//! progress (`command: abort` ends one). A plan that names the slot it expects live
//! (`monitor --rollback-on-fail`, after its watch) changes nothing once another is; one
//! with no way to start a slot (the command runtime without a command) switches back only
//! to a previous slot that still answers.

use crate::error::Error;
use crate::input::{Image, Slot, SwitchTarget, Version};
use crate::runtime::Pull;
use crate::state::SlotRecord;
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
    if let Some(expected) = plan.expect_live.filter(|slot| *slot != active) {
        return Err(Error::CheckFailed(format!(
            "{active} is live now, not {expected}: another run switched {} meanwhile; not rolling back",
            plan.app
        ))
        .into());
    }
    if let Some(canary) = &state.canary {
        // The previous slot holds the canary: bringing the old version back there would
        // replace it while it serves its share.
        return Err(Error::CheckFailed(format!(
            "a canary of {} is in progress in {} ({} of new requests): end it with command abort (or take it on with promote) before a rollback",
            canary.version, canary.slot, canary.share
        ))
        .into());
    }
    let record = state.slots.get(previous).clone();
    if plan.dry_run {
        let version = record.version.as_deref().unwrap_or("its version");
        let bring_back = if e.slot_holds(previous, &record) {
            format!("start {previous} ({version}) if stopped")
        } else if plan.runtime.runtime.uses_docker() {
            // What the real run would re-create from, or why it would refuse.
            let version: Version = version.parse()?;
            let image = rollback_image(e, previous, &record, &version)?;
            format!("re-create {version} in {previous} from image {image}")
        } else {
            format!("re-create {version} in {previous} with the deploy command")
        };
        e.log(&format!(
            "plan: {bring_back}, health-check it, switch from {active} to {previous}"
        ));
        return Ok(Outcome::Unchanged);
    }
    let started = e.phase(Phase::DeployStandby, |me| {
        if me.slot_holds(previous, &record) {
            return start_again(me, previous, &record);
        }
        recreate(me, previous, &record).map(|detail| (true, detail))
    })?;
    // A slot this run started and that never got healthy takes no traffic: stop it again.
    e.health_check(previous).inspect_err(|_| {
        if started {
            e.abandon_standby(previous)
        }
    })?;
    let back = Intent::back(active, SwitchTarget::Slot(previous)).because(plan.purpose.clone());
    e.switch_to(Phase::Switch, back)?;
    Ok(Outcome::RolledBack)
}

/// Starts `slot` again as it is, if it is not running: it still holds the version to go
/// back to. Says whether it started it, and what it did.
fn start_again(e: &mut Engine, slot: Slot, record: &SlotRecord) -> Result<(bool, String), Failure> {
    let version = record.version.clone().unwrap_or_default();
    let runs = e.slot_runs(slot);
    // One request tells a running slot. Only a slot that may be on its way up (its
    // containers run or, where the runtime lists none, something listens on its port) gets
    // the probe's budget: a retired slot is started at once.
    let may_be_starting = match runs {
        Some(runs) => runs,
        None => e.host.port_taken(e.plan.ports.port(slot)).is_some(),
    };
    if e.probe_once(slot).healthy || (may_be_starting && e.answers_healthy(slot)) {
        if runs == Some(false) {
            return Err(Error::CheckFailed(format!(
                "port {} of {slot} answers, but {slot}'s container is not running: another process holds the port; not rolling back to it",
                e.plan.ports.port(slot)
            ))
            .into());
        }
        return Ok((
            false,
            format!("{slot} is still running (version {version})"),
        ));
    }
    refuse_without_a_runtime(e, slot, &format!("{slot} does not answer healthy"))?;
    // The image is what a compose file or the user's command may name in its variables.
    let image = recorded_image(record);
    let commands = e.commands();
    let spec = e.slot_spec(slot, &version, image.as_ref());
    e.host
        .run(&commands.restart(&spec), RUNTIME_COMMAND_TIMEOUT)?;
    Ok((true, format!("started {slot} again (version {version})")))
}

/// Re-creates the version `record` names in `slot`, which holds something else now (a
/// later deploy replaced it), from the image it ran: its content ID where state has one,
/// so a tag that has moved to another build does not bring that build back. Refuses before
/// changing anything when that image is gone.
fn recreate(e: &mut Engine, slot: Slot, record: &SlotRecord) -> Result<String, Failure> {
    let plan = e.plan;
    let version: Version = record.version.as_deref().unwrap_or_default().parse()?;
    let why = record.replaced_by.as_deref().map_or_else(
        || "its container is gone or runs another version".to_owned(),
        |v| format!("a deploy of {v} that did not go live took its place"),
    );
    refuse_without_a_runtime(
        e,
        slot,
        &format!("{slot} no longer holds {version} ({why})"),
    )?;
    let image = if plan.runtime.runtime.uses_docker() {
        Some(rollback_image(e, slot, record, &version)?)
    } else {
        recorded_image(record)
    };
    e.log(&format!(
        "{slot} no longer holds {version} ({why}): re-creating {version}{}",
        image
            .as_ref()
            .map_or(String::new(), |i| format!(" from image {i}"))
    ));
    e.claim_app(true)?;
    // The image is on the host (checked above), and an image ID cannot be pulled.
    let detail = e.start_fresh(slot, &version, image.as_ref(), Pull::Never)?;
    e.update_state(|state| state.restored(slot))?;
    Ok(format!("re-created {slot}: {detail}"))
}

/// Refuses, changing nothing, to start or re-create `slot` (whose state `problem` says)
/// under a plan that names no way to: the command runtime with no deploy command, as
/// `monitor --rollback-on-fail` plans, which knows the slots only by their ports.
fn refuse_without_a_runtime(e: &Engine, slot: Slot, problem: &str) -> Result<(), Failure> {
    if e.plan.runtime.starts_slots() {
        return Ok(());
    }
    Err(Error::CheckFailed(format!(
        "{problem}, and this rollback names no runtime to start it with: start {slot} (port {}) yourself, or roll back with the action's command rollback, which starts it",
        e.plan.ports.port(slot)
    ))
    .into())
}

/// The image state records for the slot's version (its tag), when it is a valid one.
fn recorded_image(record: &SlotRecord) -> Option<Image> {
    record.image.as_deref().and_then(|i| i.parse().ok())
}

/// The image to re-create `version` in `slot` from: its recorded content ID while the host
/// still has it; else (a state written before IDs were recorded) its recorded tag, with a
/// warning that the tag may have moved. Fails when neither is on the host.
fn rollback_image(
    e: &mut Engine,
    slot: Slot,
    record: &SlotRecord,
    version: &Version,
) -> Result<Image, Failure> {
    let gone = |what: String| -> Failure {
        Error::CheckFailed(format!(
            "{slot} no longer holds {version} and {what}: nothing to roll back to; deploy {version} again"
        ))
        .into()
    };
    if let Some(id) = record.image_id.as_deref() {
        let id: Image = id.parse()?;
        return match e.image_id(&id) {
            Some(found) if found == id => Ok(id),
            _ => Err(gone(format!("its image {id} is no longer on this host"))),
        };
    }
    let Some(tag) = record.image.as_deref() else {
        return Err(gone("state records no image for it".into()));
    };
    let tag: Image = tag.parse()?;
    let Some(tag_id) = e.image_id(&tag) else {
        return Err(gone(format!("its image {tag} is not on this host")));
    };
    // The slot's container, when there is one, runs the build that replaced it.
    if e.slot_image_id(slot, None) == Some(tag_id) {
        return Err(gone(format!(
            "its tag {tag} now names the build that replaced it"
        )));
    }
    let w = format!(
        "state records no image ID for {version} (written by an older release): re-creating it from {tag}, which may now name another build"
    );
    e.log(&format!("warning: {w}"));
    e.run.result.warnings.push(w);
    Ok(tag)
}
