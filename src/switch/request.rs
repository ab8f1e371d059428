//! One switch as it is asked ([`SwitchRequest`]: the app, its configuration, the intent,
//! the lock) and what it reports ([`SwitchReport`]); how it is carried out is the other
//! files' business.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::input::{AppName, Slot, SlotPorts, SwitchMode};
use crate::nginx;
use crate::state::StateStore;
use crate::upstream::Template;

use super::{Intent, SwitchConfig};

/// How long the nginx test and reload commands may take.
pub(super) const NGINX_COMMAND_TIMEOUT: Duration = nginx::COMMAND_TIMEOUT;
/// Pause between two probes of the verify URL.
pub(super) const VERIFY_POLL: Duration = Duration::from_millis(50);

/// One switch: the app's switch configuration, the intent, and how to lock.
#[derive(Debug, Clone)]
pub struct SwitchRequest {
    /// The app.
    pub app: AppName,
    /// Its state directory.
    pub store: StateStore,
    /// Ports of both slots.
    pub ports: SlotPorts,
    /// How this app's traffic is switched.
    pub config: SwitchConfig,
    /// The template the upstream include is rendered from.
    pub template: Template,
    /// Where to, under what condition, and why.
    pub intent: Intent,
    /// Show what would change and change nothing.
    pub dry_run: bool,
}

/// What a switch did.
#[derive(Debug, Clone, Serialize)]
pub struct SwitchReport {
    /// The app.
    pub app: String,
    /// The slot traffic left (None on a first switch).
    pub from: Option<Slot>,
    /// The slot traffic goes to.
    pub to: Slot,
    /// The target slot's port.
    pub port: u16,
    /// The target slot's version, when known.
    pub version: Option<String>,
    /// True when nothing was changed (`--dry-run`).
    pub dry_run: bool,
    /// The rendered upstream include.
    pub rendered: String,
    /// Unified diff against the include that was in place (empty when equal).
    pub diff: String,
    /// Whether nginx was seen replacing its workers after the reload.
    pub workers_restarted: bool,
    /// Whether the verify URL answered naming the target slot.
    pub verified_slot: bool,
    /// Whether the kernel confirmed it (nftables mode: the rule read back, and a new
    /// connection to the service port reached the target).
    pub kernel_confirmed: bool,
    /// Whether nginx answers with the maintenance page after it (the target is live behind
    /// it).
    pub maintenance: bool,
    /// How traffic was moved.
    pub mode: SwitchMode,
    /// Warnings (state rebuilt from disk, unconfirmable steps).
    pub warnings: Vec<String>,
    /// Time taken.
    pub elapsed_ms: u64,
    /// The reload of nginx the switch made, if it made one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<Reload>,
    /// nftables mode: the handshakes that the ports traffic left had not answered, which
    /// the kernel forgot so that their next SYN takes the rule as it is now.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub handshakes_forgotten: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A reload of nginx: it closes the idle keep-alive client connections of every site that
/// nginx serves, and a client that sends on one as it closes loses that request without a
/// line in the access log. The connections open at that moment are what was at risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reload {
    /// Client connections open to nginx just before the reload (`None`: nginx's master could
    /// not be found, so they could not be counted).
    pub clients_open: Option<u32>,
}
