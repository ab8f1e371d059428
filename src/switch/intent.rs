//! What differs from one switch to the next: where traffic goes, under what condition, and
//! why ([`Intent`]).

use crate::error::{Error, Result};
use crate::input::{AppName, Image, Slot, SlotPorts, SwitchTarget, Version};
use crate::state::{CanaryRecord, MaintenanceRecord, State};

/// What a switch is recorded as in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchEvent {
    /// Traffic moves to a new version (or a slot named by hand).
    Switch,
    /// Traffic goes back to the slot that was live before.
    Rollback,
    /// nginx and state are made to agree after an interrupted run.
    Reconcile,
    /// A share of traffic moves to a canary (the live slot keeps the rest).
    Canary,
    /// Maintenance mode starts or ends (the live slot stays as it is).
    Maintenance,
}

impl SwitchEvent {
    /// The event's name in `history.jsonl`.
    pub fn as_str(self) -> &'static str {
        match self {
            SwitchEvent::Switch => "switch",
            SwitchEvent::Rollback => "rollback",
            SwitchEvent::Reconcile => "reconcile",
            SwitchEvent::Canary => "canary",
            SwitchEvent::Maintenance => "maintenance",
        }
    }
}

/// What a switch does to maintenance mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaintenanceChange {
    /// As state records it: on stays on (nginx keeps answering 503), off stays off.
    Keep,
    /// Turn it on.
    Start(MaintenanceRecord),
    /// Turn it off: nginx proxies to the target again.
    End,
}

impl MaintenanceChange {
    /// Maintenance mode after the switch, given `state` before it.
    pub fn after(&self, state: &State) -> Option<MaintenanceRecord> {
        match self {
            MaintenanceChange::Keep => state.maintenance.clone(),
            MaintenanceChange::Start(record) => Some(record.clone()),
            MaintenanceChange::End => None,
        }
    }
}

/// Where a switch goes, under what condition, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// Where traffic should go.
    pub target: SwitchTarget,
    /// Switch only if this slot is still the active one.
    pub only_if_active: Option<Slot>,
    /// What the history calls it.
    pub event: SwitchEvent,
    /// Why, for the history line.
    pub reason: Option<String>,
    /// The version now in the target slot, recorded in state.
    pub version: Option<Version>,
    /// The image now in the target slot, recorded in state.
    pub image: Option<Image>,
    /// That image's content ID, recorded in state for a later rollback.
    pub image_id: Option<Image>,
    /// A canary beside the target: it gets its share of new requests, the target the rest.
    /// `None` ends any canary: the target gets everything.
    pub split: Option<CanaryRecord>,
    /// What happens to maintenance mode.
    pub maintenance: MaintenanceChange,
}

impl Intent {
    /// The slot the target names, given `app`'s current state: refused for `previous`
    /// while a canary runs (the previous slot is the canary's) or with none recorded.
    pub fn resolve(&self, state: &State, app: &AppName) -> Result<Slot> {
        match self.target {
            SwitchTarget::Slot(s) => Ok(s),
            SwitchTarget::Previous if state.canary.is_some() => {
                let canary = state.canary.as_ref().expect("checked");
                Err(Error::invalid(
                    "--to previous",
                    format!(
                        "{} gets {} of new requests as a canary of {}: the previous slot is the canary's; end it with `switch-traffic --to {}` (or command abort) first",
                        canary.slot,
                        canary.share,
                        canary.version,
                        canary.slot.other()
                    ),
                ))
            }
            SwitchTarget::Previous => state.previous.ok_or_else(|| {
                Error::invalid(
                    "--to previous",
                    format!(
                        "no previous slot is recorded for {} (active: {})",
                        app,
                        state.active.map_or("none", Slot::as_str)
                    ),
                )
            }),
        }
    }

    /// A switch to `target`.
    pub fn switch_to(target: SwitchTarget) -> Intent {
        Intent {
            target,
            only_if_active: None,
            event: SwitchEvent::Switch,
            reason: None,
            version: None,
            image: None,
            image_id: None,
            split: None,
            maintenance: MaintenanceChange::Keep,
        }
    }

    /// `canary`'s share of new requests to its slot, the rest to `live`, only while `live`
    /// is still the active slot.
    pub fn split(live: Slot, canary: CanaryRecord) -> Intent {
        Intent {
            only_if_active: Some(live),
            event: SwitchEvent::Canary,
            split: Some(canary),
            ..Intent::switch_to(SwitchTarget::Slot(live))
        }
    }

    /// Back to `to`, but only while `from` is still live: a rollback must never undo a
    /// switch somebody made in the meantime.
    pub fn back(from: Slot, to: SwitchTarget) -> Intent {
        Intent {
            only_if_active: Some(from),
            event: SwitchEvent::Rollback,
            ..Intent::switch_to(to)
        }
    }

    /// Maintenance mode turned on (`Some`) or off in front of `live`, only while `live` is
    /// still the active slot.
    pub fn maintenance(live: Slot, record: Option<MaintenanceRecord>) -> Intent {
        Intent {
            only_if_active: Some(live),
            event: SwitchEvent::Maintenance,
            ..Intent::switch_to(SwitchTarget::Slot(live))
        }
        .changing_maintenance(match record {
            Some(record) => MaintenanceChange::Start(record),
            None => MaintenanceChange::End,
        })
    }

    /// The same, doing `change` to maintenance mode.
    pub fn changing_maintenance(self, change: MaintenanceChange) -> Intent {
        Intent {
            maintenance: change,
            ..self
        }
    }

    /// nginx and state made to agree on `slot` after an interrupted run.
    pub fn reconcile(slot: Slot) -> Intent {
        Intent {
            event: SwitchEvent::Reconcile,
            ..Intent::switch_to(SwitchTarget::Slot(slot))
        }
    }

    /// The same, only if `slot` (when there is one) is still the active slot.
    pub fn only_if_active(self, slot: Option<Slot>) -> Intent {
        Intent {
            only_if_active: slot,
            ..self
        }
    }

    /// The same, with the reason recorded in the history.
    pub fn because(self, reason: impl Into<String>) -> Intent {
        Intent {
            reason: Some(reason.into()),
            ..self
        }
    }

    /// The same, recording the version (and image) the target slot now runs.
    pub fn recording(self, version: Option<Version>, image: Option<Image>) -> Intent {
        Intent {
            version,
            image,
            ..self
        }
    }

    /// The same, recording the content ID of the target slot's image.
    pub fn identified_by(self, image_id: Option<Image>) -> Intent {
        Intent { image_id, ..self }
    }

    /// `state` after this switch moved traffic to `to`, recording what the intent says the
    /// slot now runs, and the canary beside it if any.
    pub fn recorded_in(&self, state: &State, to: Slot, ports: SlotPorts, now: &str) -> State {
        state
            .clone()
            .with_canary(self.split.clone())
            .with_maintenance(self.maintenance.after(state))
            .after_switch(
                to,
                ports,
                self.version.as_ref().map(Version::as_str),
                self.image.as_ref().map(Image::as_str),
                now,
            )
            .with_image_id(to, self.image_id.as_ref().map(Image::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_switch_back_is_conditional_on_the_slot_it_leaves() {
        let back = Intent::back(Slot::Green, SwitchTarget::Previous).because("watch failed");
        assert_eq!(back.only_if_active, Some(Slot::Green));
        assert_eq!(back.event, SwitchEvent::Rollback);
        assert_eq!(back.reason.as_deref(), Some("watch failed"));
        let plain = Intent::switch_to(SwitchTarget::Slot(Slot::Blue));
        assert_eq!(
            (plain.only_if_active, plain.event),
            (None, SwitchEvent::Switch)
        );
        assert_eq!(Intent::reconcile(Slot::Blue).event.as_str(), "reconcile");
    }
}
