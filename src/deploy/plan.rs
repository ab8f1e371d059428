//! The plan of one run: everything the host needs, built and checked on the runner from the
//! action's inputs, sent as JSON, and read back on the host through the same typed parsers
//! (every field is a checked type), plus [`DeployPlan::problems`] for the rules that span
//! fields.

use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::canary::{CanarySpec, Share, Thresholds};
use crate::config::{self, defaults, serde_millis};
use crate::exec::CommandLine;
use crate::input::{
    AppName, Fraction, HealthPath, HostPath, HostPort, HttpUrl, Listen, Port, ServerNames, Slot,
    SlotPorts, StatusSet, SwitchTarget, Version,
};
use crate::monitor::Monitor;
use crate::runtime::RuntimeSpec;
use crate::state::StateStore;
use crate::switch::SwitchConfig;
use crate::validate::MemoryCheck;

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// Start the new version in the idle slot and switch to it.
    Deploy,
    /// Switch back to the previous slot.
    Rollback,
    /// Report the host's state.
    Status,
    /// Take a paused canary on through its remaining steps and the switch.
    Promote,
    /// End a canary: all traffic back to the live slot, the new version stopped.
    Abort,
    /// Prepare a host for the app's first deploy: state directory, include, server block,
    /// boot path.
    Setup,
    /// nginx answers 503 with the maintenance page; the live slot keeps running.
    #[serde(rename = "maintenance-on")]
    MaintenanceOn,
    /// nginx proxies to the live slot again.
    #[serde(rename = "maintenance-off")]
    MaintenanceOff,
    /// Send traffic, or a share of new requests, to a slot that already runs: a switch by
    /// hand (`switch-traffic`), not a command of the action.
    #[value(skip)]
    Switch,
}

impl Operation {
    /// The operation's name, as the action's `command` input spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Deploy => "deploy",
            Operation::Rollback => "rollback",
            Operation::Status => "status",
            Operation::Promote => "promote",
            Operation::Abort => "abort",
            Operation::Setup => "setup",
            Operation::MaintenanceOn => "maintenance-on",
            Operation::MaintenanceOff => "maintenance-off",
            Operation::Switch => "switch",
        }
    }
}

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

/// Everything the host needs for one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployPlan {
    /// What to do.
    pub operation: Operation,
    /// Validate and show the plan; change nothing.
    pub dry_run: bool,
    /// Who is deploying and why, written into the lock and history.
    pub purpose: String,
    /// The app.
    pub app: AppName,
    /// The version label.
    pub version: Version,
    /// The state directory.
    pub state_dir: HostPath,
    /// The two slots' loopback ports.
    pub ports: SlotPorts,
    /// How slots run.
    pub runtime: RuntimeSpec,
    /// How the standby is judged ready.
    pub health: HealthSpec,
    /// How traffic is switched.
    pub switch: SwitchConfig,
    /// The user's template for the upstream file, on the host (else the built-in one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_template: Option<HostPath>,
    /// How the new version is watched.
    pub watch: WatchSpec,
    /// The traffic steps a deploy goes through before the switch (none: switch at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySpec>,
    /// What happens to the old slot.
    pub retire: RetireSpec,
    /// Maintenance mode's settings.
    pub maintenance: MaintenanceSpec,
    /// The server block setup writes.
    pub site: SiteSpec,
    /// The commands run around the switch.
    #[serde(default = "HookSpec::none", skip_serializing_if = "HookSpec::is_empty")]
    pub hooks: HookSpec,
    /// Minimum free disk for validation, in MiB.
    pub min_free_disk_mb: u64,
    /// What a standby that would not fit in memory does to the run.
    #[serde(default)]
    pub memory_check: MemoryCheck,
    /// The memory, in MiB, that must stay available with both slots running.
    #[serde(default = "default_min_free_memory_mb")]
    pub min_free_memory_mb: u64,
    /// TCP dependencies validation connects to (a database, a queue).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub check_tcp: Vec<HostPort>,
    /// How long to wait for the app lock while another run holds it.
    #[serde(with = "serde_millis")]
    pub lock_timeout: Duration,
    /// Where the boot path of the nftables mode (a systemd unit) is installed.
    pub systemd_unit_dir: HostPath,
    /// The root-owned directory holding the helper the boot unit runs.
    #[serde(default = "default_boot_helper_dir")]
    pub boot_helper_dir: HostPath,
    /// A rollback changes nothing unless this slot is still the live one (`monitor
    /// --rollback-on-fail`: the slot that was live when its watch began).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_live: Option<Slot>,
    /// Where the operation `switch` sends traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hand_switch: Option<HandSwitchSpec>,
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

impl DeployPlan {
    /// The limits real traffic is judged against, in a canary step and in the watch: the
    /// watch's ceilings, and the canary's margins and least requests (their defaults
    /// without traffic steps).
    pub fn thresholds(&self) -> Thresholds {
        let default = |text: &str| text.parse::<u64>().expect("a tested default");
        let (error_margin, p95_margin_ms, min_requests) = match &self.canary {
            Some(spec) => (
                spec.error_margin.get(),
                spec.p95_margin_ms,
                spec.min_requests,
            ),
            None => (
                defaults::CANARY_ERROR_MARGIN
                    .parse::<Fraction>()
                    .expect("a tested default")
                    .get(),
                default(defaults::CANARY_P95_MARGIN_MS),
                default(defaults::CANARY_MIN_REQUESTS) as u32,
            ),
        };
        Thresholds {
            max_error_rate: self.watch.max_error_rate.get(),
            error_margin,
            max_p95_ms: self.watch.max_p95_ms,
            p95_margin_ms,
            min_requests,
        }
    }

    /// The problems of rules that span fields (each field is checked by its type), as one
    /// line each, for the caller to report with its own.
    pub fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = self.switch.problem_with(self.ports).into_iter().collect();
        if self.operation == Operation::Deploy {
            problems.extend(self.runtime.missing_for_deploy());
        }
        problems.extend(self.canary.as_ref().and_then(CanarySpec::problem));
        // A switch by hand never reads the maintenance port (and cannot be given one).
        let maintenance_port = self.maintenance.port.get();
        if self.operation != Operation::Switch
            && (self.ports.slot_of(maintenance_port).is_some()
                || maintenance_port == self.switch.service_port.get())
        {
            problems.push(format!(
                "maintenance-port {maintenance_port} is a slot's port or the service port: nginx's maintenance server needs a port of its own"
            ));
        }
        if self.expect_live.is_some() && self.operation != Operation::Rollback {
            problems.push(format!(
                "expect_live applies to a rollback only, not to command {}",
                self.operation.as_str()
            ));
        }
        if (self.operation == Operation::Switch) != self.hand_switch.is_some() {
            problems.push(format!(
                "hand_switch goes with command switch, and only with it (command {}, hand_switch {})",
                self.operation.as_str(),
                if self.hand_switch.is_some() { "given" } else { "missing" }
            ));
        }
        if self.operation == Operation::Promote && self.canary.is_none() {
            problems.push(
                "command promote needs traffic-steps: the steps the canary goes on through (the steps at or below its share are skipped; its own share alone switches at once)"
                    .into(),
            );
        }
        problems
    }

    /// The plan with what the app's state on this host records put before the plan's
    /// defaults: the service port (see [`SwitchConfig::settle_service_port`]). Run on the
    /// host before anything else; fails, changing nothing, on a port the user named that
    /// state contradicts.
    pub fn settle_with_state(&mut self) -> crate::error::Result<()> {
        let store = self.store();
        let recorded = store.read(&self.app).and_then(|s| s.service_port);
        self.switch.settle_service_port(recorded, store.dir())?;
        self.settle_site_host();
        Ok(())
    }

    /// The name the app's site is asked as by the verify and monitor URLs (see
    /// [`SwitchConfig::site_host`]): the plan's first plain `server-name`, else the one of
    /// the server block setup wrote (a deploy step need not repeat setup's `server-name`).
    pub(crate) fn settle_site_host(&mut self) {
        if self.switch.site_host.is_some() {
            return;
        }
        let from_block = || {
            let text = std::fs::read_to_string(self.site.server_file.as_path()).ok()?;
            let names = ServerNames::in_server_block(&text)?;
            names.host_name().map(str::to_owned)
        };
        self.switch.site_host = self
            .site
            .server_names
            .host_name()
            .map(str::to_owned)
            .or_else(from_block);
    }

    /// The app's state directory.
    pub fn store(&self) -> StateStore {
        StateStore::new(self.state_dir.as_path())
    }

    /// The watch's probes of `url` (asked as `site_host`) for `duration`, on the plan's
    /// accepted statuses and thresholds: after a switch and in each canary step.
    pub fn probes(&self, url: HttpUrl, site_host: Option<String>, duration: Duration) -> Monitor {
        Monitor {
            url,
            site_host,
            duration,
            interval: config::millis(defaults::MONITOR_INTERVAL),
            request_timeout: config::seconds(defaults::REQUEST_TIMEOUT),
            accepted: self.watch.accept_status.clone(),
            max_error_rate: self.watch.max_error_rate.get(),
            max_p95_ms: self.watch.max_p95_ms,
        }
    }

    /// The health URL of `slot` on its loopback port.
    pub fn health_url(&self, slot: Slot) -> HttpUrl {
        format!(
            "http://127.0.0.1:{}{}",
            self.ports.port(slot),
            self.health.path.as_str()
        )
        .parse()
        .expect("a loopback URL with a checked path is valid")
    }
}

/// `min-free-memory-mb` for a plan that does not say (one from an earlier runner).
fn default_min_free_memory_mb() -> u64 {
    crate::config::defaults::MIN_FREE_MEMORY_MB
        .parse()
        .expect("the default parses (tested)")
}

/// `boot-helper-dir` for a plan that does not say (one from an earlier runner).
fn default_boot_helper_dir() -> HostPath {
    crate::config::defaults::BOOT_HELPER_DIR
        .parse()
        .expect("the default parses (tested)")
}
