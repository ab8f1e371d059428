//! What `state.json` records of each slot ([`SlotRecord`], both in [`Slots`]), of a canary
//! in progress ([`CanaryRecord`]) and of maintenance mode ([`MaintenanceRecord`]).

use serde::{Deserialize, Serialize};

use crate::canary::Share;
use crate::input::{Image, Slot, Version};

/// What is known about one slot.
///
/// `version`, `image` and `image_id` describe the release that last went live in the slot:
/// what a rollback to it brings back. `replaced_by` says the slot no longer holds it: a
/// later deploy cleared the slot for a new version that never went live there (it failed,
/// or the run was stopped), so a rollback must re-create `version` rather than start what
/// the slot now holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRecord {
    /// The loopback port the slot listens on.
    pub port: Option<u16>,
    /// The version last switched to in this slot.
    pub version: Option<String>,
    /// The image that version runs, when a deploy recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The content ID (`sha256:...`) of that image when the version started: what a
    /// rollback re-creates it from, even after its tag has moved to another build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// The version a deploy put in the slot in place of `version`, which is gone from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
}

impl SlotRecord {
    /// Whether the slot still holds the version recorded for it.
    pub fn holds_its_version(&self) -> bool {
        self.version.is_some() && self.replaced_by.is_none()
    }
}

/// Both slots' records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slots {
    /// The blue slot.
    pub blue: SlotRecord,
    /// The green slot.
    pub green: SlotRecord,
}

impl Slots {
    /// The record of `slot`.
    pub fn get(&self, slot: Slot) -> &SlotRecord {
        match slot {
            Slot::Blue => &self.blue,
            Slot::Green => &self.green,
        }
    }

    pub(super) fn get_mut(&mut self, slot: Slot) -> &mut SlotRecord {
        match slot {
            Slot::Blue => &mut self.blue,
            Slot::Green => &mut self.green,
        }
    }
}

/// A canary in progress: the new version in `slot` gets `share` of new requests, the live
/// slot (`active`) the rest. What a later `command: promote` continues from, or `abort`
/// ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryRecord {
    /// The slot the new version runs in.
    pub slot: Slot,
    /// Its share of new requests now.
    pub share: Share,
    /// The new version.
    pub version: Version,
    /// Its image, when the deploy had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
    /// That image's content ID, recorded in the slot once the version goes live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<Image>,
    /// Whether the run that made it stopped at this share on purpose (`canary-pause-at`).
    #[serde(default)]
    pub paused: bool,
}

/// Maintenance mode in effect: nginx answers every request of the app with 503, the
/// maintenance page and `Retry-After`, from a server of its own on a loopback port, while
/// the live slot (`active`) keeps running behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceRecord {
    /// When it was turned on (RFC 3339, UTC); unknown when state was rebuilt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The loopback port of nginx's maintenance server.
    pub port: u16,
    /// The seconds `Retry-After` tells clients to wait.
    pub retry_after_seconds: u32,
}
