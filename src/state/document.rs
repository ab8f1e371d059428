//! The content of `state.json`: which slot is live, which was live before, each slot's
//! record, a canary or maintenance in progress, and how traffic was switched; and how a
//! switch, a canary and maintenance change it.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::input::{AppName, Image, Port, Slot, SlotPorts, SwitchMode, Version};

use super::records::{CanaryRecord, MaintenanceRecord, Slots};

/// The format number written into `state.json`; a file with another number is not trusted.
pub const STATE_FORMAT: u32 = 1;

/// The content of `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Always [`STATE_FORMAT`].
    pub format: u32,
    /// The app this state belongs to.
    pub app: String,
    /// The slot nginx routes to, if any switch has happened.
    pub active: Option<Slot>,
    /// The slot that was active before `active`: the rollback target.
    pub previous: Option<Slot>,
    /// When the last switch happened (RFC 3339, UTC).
    pub switched_at: Option<String>,
    /// Per-slot port and version.
    pub slots: Slots,
    /// How the last switch moved traffic: what a restore at boot re-creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch_mode: Option<SwitchMode>,
    /// The service port nginx proxies to in nftables mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_port: Option<u16>,
    /// The sha256 of the upstream file as the last switch wrote it: a file that no longer
    /// matches was edited by hand since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_sha256: Option<String>,
    /// The canary in progress, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryRecord>,
    /// The content IDs of the images this app's releases went live from, the latest first
    /// (at most [`DEPLOYED_IMAGES_KEPT`]): the only images the clean-up may remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployed_images: Vec<String>,
    /// The references (`REPOSITORY:TAG`) this app's releases went live as, the latest
    /// first (at most [`DEPLOYED_IMAGES_KEPT`]): the only tags the clean-up may remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployed_tags: Vec<String>,
    /// Maintenance mode, while it is on: every switch keeps nginx answering 503 until it
    /// is turned off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<MaintenanceRecord>,
}

/// How many image IDs [`State::deployed_images`] (and tags, [`State::deployed_tags`])
/// remembers.
pub const DEPLOYED_IMAGES_KEPT: usize = 50;

/// Puts `item` first in `list`, once, keeping at most [`DEPLOYED_IMAGES_KEPT`].
fn remember(list: &mut Vec<String>, item: &str) {
    list.retain(|known| known != item);
    list.insert(0, item.to_owned());
    list.truncate(DEPLOYED_IMAGES_KEPT);
}

impl State {
    /// State of an app that has never been switched.
    pub fn new(app: &AppName) -> Self {
        State {
            format: STATE_FORMAT,
            app: app.to_string(),
            active: None,
            previous: None,
            switched_at: None,
            slots: Slots::default(),
            switch_mode: None,
            service_port: None,
            upstream_sha256: None,
            canary: None,
            deployed_images: Vec::new(),
            deployed_tags: Vec::new(),
            maintenance: None,
        }
    }

    /// The state after traffic moved to `to`. Switching to the slot that is already active
    /// keeps `previous` as it was, so a repeated switch never loses the rollback target.
    pub fn after_switch(
        &self,
        to: Slot,
        ports: SlotPorts,
        version: Option<&str>,
        image: Option<&str>,
        now: &str,
    ) -> State {
        let mut next = self.clone();
        if self.active != Some(to) {
            next.previous = self.active;
        }
        next.active = Some(to);
        next.switched_at = Some(now.to_owned());
        for slot in [Slot::Blue, Slot::Green] {
            next.slots.get_mut(slot).port = Some(ports.port(slot));
        }
        let record = next.slots.get_mut(to);
        // Traffic reaches a slot whose version was replaced, and the switch does not say
        // what it runs: it runs the version that replaced it, whose image is not recorded.
        let replaced_by = record.replaced_by.clone();
        let version = version.or(replaced_by.as_deref());
        if let Some(v) = version {
            // A new release in the slot: nothing of the one before it is still true.
            if record.version.as_deref() != Some(v) || image.is_some() || replaced_by.is_some() {
                record.image = None;
                record.image_id = None;
            }
            record.version = Some(v.to_owned());
            record.replaced_by = None;
        }
        if let Some(i) = image {
            record.image = Some(i.to_owned());
        }
        next
    }

    /// The same state, recording `image_id` as the content ID of `slot`'s image, which a
    /// release went live from (and the slot's image reference as a tag this app deployed).
    pub fn with_image_id(mut self, slot: Slot, image_id: Option<&str>) -> State {
        if let Some(id) = image_id {
            self.slots.get_mut(slot).image_id = Some(id.to_owned());
            remember(&mut self.deployed_images, id);
            if let Some(reference) = self.slots.get(slot).image.clone() {
                remember(&mut self.deployed_tags, &reference);
            }
        }
        self
    }

    /// The same state, no longer remembering the images `gone` (removed from the host).
    pub fn without_images(mut self, gone: &[String]) -> State {
        self.deployed_images.retain(|id| !gone.contains(id));
        self
    }

    /// The same state, recording that `slot` no longer holds its version: `version` is
    /// taking its place. Said before the slot's old container is removed.
    pub fn replacing(mut self, slot: Slot, version: &str) -> State {
        let record = self.slots.get_mut(slot);
        record.replaced_by = record.version.as_ref().map(|_| version.to_owned());
        self
    }

    /// The same state, recording that `slot` holds its version again (a rollback
    /// re-created it).
    pub fn restored(mut self, slot: Slot) -> State {
        self.slots.get_mut(slot).replaced_by = None;
        self
    }

    /// The same state, recording that traffic is switched by `mode` (on `service_port` in
    /// nftables mode).
    pub fn switched_by(mut self, mode: SwitchMode, service_port: u16) -> State {
        self.switch_mode = Some(mode);
        self.service_port = (mode == SwitchMode::Nftables).then_some(service_port);
        self
    }

    /// The same state, recording the canary in progress (`None`: there is none).
    pub fn with_canary(mut self, canary: Option<CanaryRecord>) -> State {
        self.canary = canary;
        self
    }

    /// The same state, recording maintenance mode as on (`Some`) or off.
    pub fn with_maintenance(mut self, maintenance: Option<MaintenanceRecord>) -> State {
        self.maintenance = maintenance;
        self
    }

    /// The same state, recording `upstream` as the upstream file's content just written.
    pub fn with_upstream(mut self, upstream: &str) -> State {
        self.upstream_sha256 = Some(crate::fsutil::sha256_hex(upstream.as_bytes()));
        self
    }

    /// Parses and checks `state.json` content for `app`.
    pub fn parse(text: &str, app: &AppName) -> std::result::Result<State, String> {
        let state: State = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if state.format != STATE_FORMAT {
            return Err(format!(
                "format {} is not the supported format {STATE_FORMAT}",
                state.format
            ));
        }
        if state.app != app.as_str() {
            return Err(format!(
                "it belongs to app {:?}, not {app:?}",
                state.app,
                app = app.as_str()
            ));
        }
        if state.previous.is_some() && state.previous == state.active {
            return Err("active and previous name the same slot".into());
        }
        if state.previous.is_some() && state.active.is_none() {
            return Err("it has a previous slot but no active one".into());
        }
        // What state holds reaches the nginx include and the runtime's commands: it passes
        // the parsers the same values pass as inputs.
        for slot in [Slot::Blue, Slot::Green] {
            let record = state.slots.get(slot);
            let checked = [
                record.port.map(|p| Port::try_from(p).map(drop)),
                record
                    .version
                    .as_deref()
                    .map(|v| v.parse::<Version>().map(drop)),
                record
                    .image
                    .as_deref()
                    .map(|i| i.parse::<Image>().map(drop)),
                record
                    .image_id
                    .as_deref()
                    .map(|i| parse_image_id(i).map(drop)),
                record
                    .replaced_by
                    .as_deref()
                    .map(|v| v.parse::<Version>().map(drop)),
            ];
            if let Some(Err(e)) = checked.into_iter().flatten().find(|c| c.is_err()) {
                return Err(format!("slot {slot}: {e}"));
            }
        }
        if let Some(sum) = &state.upstream_sha256
            && (sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(format!("upstream_sha256 {sum:?} is not a sha256"));
        }
        if let Some(canary) = &state.canary
            && state.active.is_none_or(|live| live == canary.slot)
        {
            return Err(format!(
                "the canary in {} is not beside a live slot",
                canary.slot
            ));
        }
        if let Some(Err(e)) = state
            .deployed_images
            .iter()
            .map(|id| parse_image_id(id))
            .find(Result::is_err)
        {
            return Err(format!("deployed_images: {e}"));
        }
        if let Some(Err(e)) = state.service_port.map(Port::try_from) {
            return Err(format!("service port: {e}"));
        }
        if let Some(m) = &state.maintenance {
            if let Err(e) = Port::try_from(m.port) {
                return Err(format!("maintenance port: {e}"));
            }
            if state.active.is_none() {
                return Err("it is in maintenance with no live slot".into());
            }
        }
        Ok(state)
    }
}

/// Checks an image content ID as Docker prints it: `sha256:` and 64 lower-case hex digits.
pub fn parse_image_id(text: &str) -> Result<Image> {
    let hex = text.strip_prefix("sha256:").unwrap_or("");
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(Error::invalid(
            "image ID",
            format!("{text:?}: expected sha256: and 64 hex digits"),
        ));
    }
    text.parse()
}
