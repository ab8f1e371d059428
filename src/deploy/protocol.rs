//! What a host-side run says while it runs: one JSON [`Event`] per line on stdout, the last
//! one the [`DeployResult`]. The runner's orchestrator relays the events into the job log
//! and reports the result; both sides are the same build, so this is the one definition.

use serde::{Deserialize, Serialize};

use crate::canary::{Estimate, Receipt, StepTraffic, TrafficVerdict, Verdict};
use crate::error::RunError;
use crate::input::{Slot, SwitchMode};
use crate::monitor::MonitorReport;
use crate::state::{CanaryRecord, MaintenanceRecord};
use crate::switch::SwitchReport;

/// A step of a run: the runner's own (connect, image transfer, and ship helpers when the
/// host asks for an upload as the run starts), then the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Open the SSH connection (runner).
    Connect,
    /// Get the helper binary onto the host (runner).
    ShipHelpers,
    /// Stream the image over SSH (runner, `image-transfer: ssh`).
    ImageTransfer,
    /// Take the app lock.
    Lock,
    /// Preflight checks.
    Validate,
    /// Start the new version in the idle slot.
    DeployStandby,
    /// Wait for the standby to be healthy.
    HealthCheck,
    /// Point nginx at the standby.
    Switch,
    /// Watch the live URL.
    Monitor,
    /// The user's command before any traffic reaches the standby.
    PreSwitch,
    /// Send a share of new requests to the new slot and judge it.
    Canary,
    /// The user's command after the watch passed.
    PostSwitch,
    /// Switch back after a failed watch.
    Rollback,
    /// Make state, the upstream file and nginx agree after an interrupted run.
    Reconcile,
    /// Stop the old slot.
    Retire,
    /// Read the state (status).
    Status,
    /// Turn maintenance mode on or off.
    Maintenance,
    /// Prepare the host for the app (setup).
    Setup,
}

impl Phase {
    /// The phase's name as shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::ShipHelpers => "ship helpers",
            Phase::ImageTransfer => "image transfer",
            Phase::Lock => "lock",
            Phase::Validate => "validate",
            Phase::DeployStandby => "deploy standby",
            Phase::HealthCheck => "health-check standby",
            Phase::Switch => "switch",
            Phase::Monitor => "monitor",
            Phase::PreSwitch => "pre-switch hook",
            Phase::Canary => "canary step",
            Phase::PostSwitch => "post-switch hook",
            Phase::Rollback => "rollback",
            Phase::Reconcile => "reconcile",
            Phase::Retire => "retire",
            Phase::Status => "status",
            Phase::Maintenance => "maintenance",
            Phase::Setup => "setup",
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The new version is live.
    Deployed,
    /// The new version failed after the switch; the previous one is live again.
    RolledBack,
    /// Something failed; see the failed phase. The live slot is one that was healthy.
    Failed,
    /// Nothing needed doing (same version live and healthy, a dry run, status).
    Unchanged,
    /// Asked to stop before traffic moved, it stopped: the standby abandoned, the live slot
    /// untouched.
    Cancelled,
    /// The canary stopped at its `canary-pause-at` step on purpose, serving its share until
    /// `command: promote` or `command: abort`.
    Paused,
    /// The host was changed as asked (setup, maintenance on or off); no version moved.
    Changed,
}

impl Outcome {
    /// The outcome's name, as used in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Deployed => "deployed",
            Outcome::RolledBack => "rolled-back",
            Outcome::Failed => "failed",
            Outcome::Unchanged => "unchanged",
            Outcome::Cancelled => "cancelled",
            Outcome::Paused => "paused",
            Outcome::Changed => "changed",
        }
    }
}

/// One finished phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseRecord {
    /// Which phase.
    pub phase: Phase,
    /// Whether it succeeded.
    pub ok: bool,
    /// When it started: milliseconds since the start of the run that recorded it.
    pub start_ms: u64,
    /// How long it took.
    pub ms: u64,
    /// What it did or why it failed.
    pub detail: String,
}

/// The outcome of a run, with what the action reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeployResult {
    /// How it ended.
    pub result: Option<Outcome>,
    /// The slot nginx routes to at the end.
    pub active_slot: Option<Slot>,
    /// The rollback target at the end.
    pub previous_slot: Option<Slot>,
    /// The version live at the end.
    pub active_version: Option<String>,
    /// The phase that failed.
    pub failed_phase: Option<Phase>,
    /// Why it failed (or, for a rollback, why the new version was rolled back).
    pub error: Option<RunError>,
    /// The last lines of the failed slot's log.
    pub log_tail: Option<String>,
    /// What the watch saw.
    pub monitor: Option<MonitorReport>,
    /// What the users' requests in the watch window said, from the access log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<TrafficVerdict>,
    /// What the run cost the users, from the access log (a run that moves traffic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
    /// Every phase that ran.
    pub phases: Vec<PhaseRecord>,
    /// Warnings (state rebuilt, retire failed).
    pub warnings: Vec<String>,
    /// The upstream diff a switch would make (dry run).
    pub upstream_diff: Option<String>,
    /// The latest history lines (status).
    pub history: Vec<String>,
    /// What happens to the old slot after this result: the host does it on its own, still
    /// holding the lock, and records it in history.jsonl.
    pub retire: Option<String>,
    /// How traffic was switched (`auto` decided).
    pub switch_mode: Option<crate::input::SwitchMode>,
    /// Why that mode.
    pub switch_mode_reason: Option<String>,
    /// What the host holds and serves (status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusReport>,
    /// Each canary step that ran, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canary_steps: Vec<StepReport>,
    /// What the switch of a switch by hand did, or would do (a dry run); printed by
    /// `switch-traffic` on the host, never sent to the runner.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub switch: Option<SwitchReport>,
}

/// One canary step: the share it gave the new slot, what the access log and the probes saw,
/// and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// The share of new requests sent to the new slot, in percent.
    pub share: u8,
    /// The share of the logged requests it actually served, in percent.
    pub served_percent: f64,
    /// What the access log says about each slot.
    pub traffic: StepTraffic,
    /// New connections each nftables rule sent on (new slot, old slot), nftables mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<(u64, u64)>,
    /// The new slot's error rate estimated from those counts, where the log could not tell
    /// the slots apart (see [`crate::canary::estimate`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<Estimate>,
    /// Probes of the new slot's health URL during the step: (requests, failures).
    pub probes: (u32, u32),
    /// How it was judged.
    pub verdict: Verdict,
    /// How long it lasted.
    pub ms: u64,
}

/// What `status` found: what state records, what nginx routes to, what each slot runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The app.
    pub app: String,
    /// The live slot state records.
    pub active: Option<Slot>,
    /// The rollback target state records.
    pub previous: Option<Slot>,
    /// The slot nginx routes to now (the upstream file, or the nftables rule).
    pub routed: Option<Slot>,
    /// How the last switch moved traffic, as state records it.
    pub switch_mode: Option<SwitchMode>,
    /// Each slot.
    pub slots: Vec<SlotStatus>,
    /// The latest history lines.
    pub history: Vec<String>,
    /// What is wrong: nginx and state disagree, the live slot does not answer.
    pub problems: Vec<String>,
    /// The canary in progress, as state records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryRecord>,
    /// Maintenance mode, while it is on, as state records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<MaintenanceRecord>,
    /// What the site answered at the verify URL, asked as the site's name, where that
    /// agrees with nginx's files (where it does not, it is a problem instead); none without
    /// a verify URL, a live slot, or with the maintenance page on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_answer: Option<String>,
}

/// One slot as status sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotStatus {
    /// Which slot.
    pub slot: Slot,
    /// Its loopback port.
    pub port: u16,
    /// The version last live in it, as state records it.
    pub version: Option<String>,
    /// That version's image.
    pub image: Option<String>,
    /// A version that replaced it there without going live.
    pub replaced_by: Option<String>,
    /// Whether its container (docker) or project (compose) runs; `None` when the runtime
    /// cannot tell (command runtime).
    pub running: Option<bool>,
    /// The version label of its container (docker).
    pub running_version: Option<String>,
    /// Whether its health URL answered healthy.
    pub healthy: bool,
    /// The answer of its health URL.
    pub answer: String,
}

impl DeployResult {
    /// The exit code of the run: 0 when it did what a deploy is for (deployed, or nothing
    /// to do), else the documented code of its error (3 for a held lock), else 1.
    pub fn exit_code(&self) -> u8 {
        use crate::error::{EXIT_CHECK_FAILED, EXIT_OK};
        match (self.result, &self.error) {
            (
                Some(Outcome::Deployed | Outcome::Unchanged | Outcome::Paused | Outcome::Changed),
                _,
            ) => EXIT_OK,
            (Some(Outcome::Failed) | None, Some(e)) => e.kind.exit_code(),
            _ => EXIT_CHECK_FAILED,
        }
    }
}

/// One line of a run's output stream. The result comes as soon as the outcome is decided;
/// a deploy that went live goes on to retire the old slot, whose events follow it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A phase began.
    PhaseStart {
        /// Which phase.
        phase: Phase,
    },
    /// A line of progress.
    Log {
        /// The text.
        line: String,
    },
    /// A phase ended.
    PhaseEnd(PhaseRecord),
    /// The outcome; only a retire's events come after it.
    Result(Box<DeployResult>),
}
