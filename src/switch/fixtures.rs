//! What the switch's tests (`decide.rs`, `execute_tests.rs`) start from: app `shop` live on
//! blue (port 3001, v1) with green on 3002, and the intents and records they switch with.

use std::path::Path;

use crate::canary::Share;
use crate::input::{Slot, SlotPorts, SwitchTarget, Version};
use crate::state::{CanaryRecord, MaintenanceRecord, State, StateStore};

use super::{Intent, SwitchConfig, SwitchRequest};

/// A switch of app `shop` (blue on 3001, green on 3002) with `config` and its state in
/// `state_dir`, the lock held by the caller.
pub(super) fn request(config: SwitchConfig, intent: Intent, state_dir: &Path) -> SwitchRequest {
    SwitchRequest {
        app: "shop".parse().unwrap(),
        store: StateStore::new(state_dir),
        ports: SlotPorts::new(3001, 3002).unwrap(),
        template: config.builtin_template(),
        config,
        intent,
        dry_run: false,
    }
}

/// A switch to `slot`, recording v2.
pub(super) fn to(slot: Slot) -> Intent {
    Intent {
        version: Some("v2".parse::<Version>().unwrap()),
        ..Intent::switch_to(SwitchTarget::Slot(slot))
    }
}

/// App `shop` live on blue (v1).
pub(super) fn live_on_blue() -> State {
    let ports = SlotPorts::new(3001, 3002).unwrap();
    State::new(&"shop".parse().unwrap()).after_switch(Slot::Blue, ports, Some("v1"), None, "then")
}

/// Maintenance with nginx's server on `port`.
pub(super) fn maintenance(port: u16) -> MaintenanceRecord {
    MaintenanceRecord {
        since: Some("then".into()),
        port,
        retry_after_seconds: 120,
    }
}

/// A canary of v2 in green with `share` of new requests.
pub(super) fn canary(share: &str) -> CanaryRecord {
    CanaryRecord {
        slot: Slot::Green,
        share: share.parse::<Share>().unwrap(),
        version: "v2".parse().unwrap(),
        image: None,
        image_id: None,
        paused: false,
    }
}
