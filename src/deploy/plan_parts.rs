//! The typed parts of a run's plan ([`super::DeployPlan`]): how the standby is judged ready,
//! how the new version is watched, the user's commands, what happens to the old slot,
//! maintenance, the server block setup writes, and where a switch by hand goes.

use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::canary::Share;
use crate::config::serde_millis;
use crate::exec::CommandLine;
use crate::input::{
    AppName, Fraction, HealthPath, HostPath, HttpUrl, Listen, Port, ServerNames, StatusSet,
    SwitchTarget, Version,
};

/// What happens to the old slot after a successful deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Retire {
    /// Stop it gracefully; it stays on disk as the rollback target.
    Stop,
    /// Leave it running (instant rollback).
    Keep,
    /// Stop and remove it.
    Remove,
}

impl Retire {
    /// The choice's name, as the `retire` input spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Retire::Stop => "stop",
            Retire::Keep => "keep",
            Retire::Remove => "remove",
        }
    }
}

/// How the standby is judged ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSpec {
    /// The health path on the slot's port.
    pub path: HealthPath,
    /// How long the standby may take to become healthy.
    #[serde(with = "serde_millis")]
    pub timeout: Duration,
    /// Healthy answers needed in a row.
    pub healthy_threshold: NonZeroU32,
}

/// How the new version is watched after the switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchSpec {
    /// The URL watched (default: the verify URL, else the new slot's health URL).
    pub url: Option<HttpUrl>,
    /// How long to watch (zero: no watch).
    #[serde(with = "serde_millis")]
    pub duration: Duration,
    /// Highest acceptable error rate.
    pub max_error_rate: Fraction,
    /// Highest acceptable p95 latency, in milliseconds.
    pub max_p95_ms: u64,
    /// The statuses that count as a successful request.
    pub accept_status: StatusSet,
    /// Switch back to the previous slot when the watch fails.
    pub rollback_on_failure: bool,
    /// The most failed requests the run's receipt may hold at the end of the watch
    /// (`max-failed-requests`); above it the watch fails.
    #[serde(default)]
    pub max_failed_requests: Option<u64>,
    /// Failed requests already on the receipts of the fleet's other hosts (its earlier
    /// batches), counted against `max_failed_requests` with this host's own: the limit is
    /// the run's, not each host's.
    #[serde(default)]
    pub failed_elsewhere: u64,
}

/// Commands run on the host around the switch (`pre-switch-command`,
/// `post-switch-command`) and after each judgment of the new version (`step-command`), as
/// words, never through a shell the user did not write.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookSpec {
    /// Run once the standby is healthy, before any traffic reaches it; a failure abandons
    /// the standby.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_switch: Option<CommandLine>,
    /// Run after the watch passed; a failure is a warning unless `post_switch_rollback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_switch: Option<CommandLine>,
    /// Run after each traffic step's verdict and after the watch's, told the window and
    /// the verdict; a failure fails the step or the watch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<CommandLine>,
    /// How long each may take.
    #[serde(with = "serde_millis")]
    pub timeout: Duration,
    /// Switch back to the previous slot when the post-switch command fails.
    #[serde(default)]
    pub post_switch_rollback: bool,
}

/// What happens to the old slot after a good deploy, and how slots are stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetireSpec {
    /// Stop, keep or remove the old slot.
    pub old_slot: Retire,
    /// How long the old slot may finish in-flight requests before it is stopped.
    #[serde(with = "serde_millis")]
    pub drain: Duration,
    /// Time between SIGTERM and SIGKILL when a slot is stopped.
    #[serde(with = "serde_millis")]
    pub stop_timeout: Duration,
    /// How many of the app's newest images the host keeps (docker runtime; 0: no
    /// clean-up); the images the slots use or state records are kept besides.
    pub keep_images: u32,
}

/// Maintenance mode's settings (`command: maintenance-on`, and a deploy during it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceSpec {
    /// The loopback port of nginx's own server that answers 503 (also setup's placeholder).
    pub port: Port,
    /// What `Retry-After` tells clients, in seconds.
    pub retry_after_seconds: u32,
    /// The user's page on the host, else the built-in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<HostPath>,
    /// A deploy during maintenance ends it at its switch (else it stays on).
    pub end_on_deploy: bool,
}

/// The server block `command: setup` writes for the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSpec {
    /// Its `server_name`s.
    pub server_names: ServerNames,
    /// Its `listen` address.
    pub listen: Listen,
    /// The file it is written to.
    pub server_file: HostPath,
}

/// Where a switch by hand (`switch-traffic`, the operation `switch`) sends traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandSwitchSpec {
    /// The slot: blue, green, or the previous one.
    pub to: SwitchTarget,
    /// Only this share of new requests to it, the rest to the live slot: a canary by hand,
    /// recorded in state until the next switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<Share>,
    /// The version the slot runs, recorded in state and the include (else what state
    /// records for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// The slot must answer healthy (within the plan's health timeout) before traffic
    /// moves.
    pub check_health: bool,
}

impl HookSpec {
    /// No command, with the default timeout.
    pub fn none() -> HookSpec {
        HookSpec {
            timeout: crate::config::seconds(crate::config::defaults::HOOK_TIMEOUT),
            ..HookSpec::default()
        }
    }

    /// Whether there is no command to run.
    pub fn is_empty(&self) -> bool {
        self.pre_switch.is_none() && self.post_switch.is_none() && self.step.is_none()
    }
}

impl MaintenanceSpec {
    /// The defaults: the default port and Retry-After, the built-in page, kept on by a
    /// deploy.
    pub fn defaults() -> MaintenanceSpec {
        use crate::config::defaults;
        MaintenanceSpec {
            port: defaults::MAINTENANCE_PORT
                .parse()
                .expect("every default parses (tested)"),
            retry_after_seconds: defaults::MAINTENANCE_RETRY_AFTER
                .parse()
                .expect("every default parses (tested)"),
            page: None,
            end_on_deploy: false,
        }
    }
}

impl SiteSpec {
    /// The defaults for `app`, whose include is `upstream_file`: no server name, port 80,
    /// the file beside the include.
    pub fn defaults(app: &AppName, upstream_file: &HostPath) -> SiteSpec {
        use crate::config::defaults;
        SiteSpec {
            server_names: defaults::SERVER_NAME
                .parse()
                .expect("every default parses (tested)"),
            listen: defaults::LISTEN
                .parse()
                .expect("every default parses (tested)"),
            server_file: crate::config::default_server_file(app, upstream_file),
        }
    }
}
