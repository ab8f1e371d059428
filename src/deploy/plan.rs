//! The plan of one run: everything the host needs, built and checked on the runner from the
//! action's inputs, sent as JSON, and read back on the host through the same typed parsers
//! (every field is a checked type), plus [`DeployPlan::problems`] for the rules that span
//! fields.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::canary::{CanarySpec, Thresholds};
use crate::config::{self, defaults, serde_millis};
use crate::input::{
    AppName, Fraction, HostPath, HostPort, HttpUrl, ServerNames, Slot, SlotPorts, Version,
};
use crate::monitor::Monitor;
use crate::runtime::RuntimeSpec;
use crate::state::StateStore;
use crate::switch::SwitchConfig;
use crate::validate::MemoryCheck;

use super::plan_parts::{
    HandSwitchSpec, HealthSpec, HookSpec, MaintenanceSpec, RetireSpec, SiteSpec, WatchSpec,
};

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
        // A switch by hand never reads the maintenance port (and cannot be given one); every
        // other operation does, if only to tell nginx's own 503s from the slots' answers
        // in the access log.
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
