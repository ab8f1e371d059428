//! What validation is asked and what it answers: the request (what to check, for whom),
//! each check's verdict, and the report. The checks themselves are `validate.rs`'s and its
//! other files'.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::boot::BootPath;
use crate::exec::CommandLine;
use crate::input::{AppName, HostPort, Slot, SlotPorts};
use crate::nft::NftSwitch;
use crate::runtime::Runtime;
use crate::state::StateStore;

/// How long a Docker or nginx command may take during validation.
pub(super) const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Fine.
    Pass,
    /// Worth knowing; does not fail validation.
    Warn,
    /// Blocks a deploy.
    Fail,
}

impl CheckStatus {
    /// The verdict as a word: pass, warn or fail.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "fail",
        }
    }
}

/// One check's name, verdict and explanation.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// Short name, e.g. `nginx`, `standby-port`, `tcp db:5432`.
    pub name: String,
    /// The verdict.
    pub status: CheckStatus,
    /// What was found.
    pub detail: String,
}

impl CheckResult {
    /// A check named `name` with its verdict and what was found.
    pub fn new(name: impl Into<String>, status: CheckStatus, detail: impl Into<String>) -> Self {
        CheckResult {
            name: name.into(),
            status,
            detail: detail.into(),
        }
    }

    pub(super) fn from_result(name: impl Into<String>, result: Result<String, String>) -> Self {
        match result {
            Ok(d) => CheckResult::new(name, CheckStatus::Pass, d),
            Err(d) => CheckResult::new(name, CheckStatus::Fail, d),
        }
    }
}

/// What to check.
#[derive(Debug, Clone)]
pub struct ValidateRequest {
    /// Who reads the report (names settings in its advice).
    pub audience: Audience,
    /// The app.
    pub app: AppName,
    /// Its state directory.
    pub store: StateStore,
    /// The nginx include switch-traffic will write.
    pub upstream_file: PathBuf,
    /// The nginx configuration test command.
    pub test_cmd: CommandLine,
    /// How the slots run.
    pub runtime: Runtime,
    /// The docker command (`docker`, `sudo docker`).
    pub docker_cmd: CommandLine,
    /// Minimum free space at the state dir and Docker's data root, in MiB.
    pub min_free_disk_mb: u64,
    /// Ports of both slots.
    pub ports: SlotPorts,
    /// TCP dependencies that must accept connections.
    pub tcp: Vec<HostPort>,
    /// Connect timeout per dependency.
    pub tcp_timeout: Duration,
    /// The nftables switch, when that is the switch mode.
    pub nft: Option<NftSwitch>,
    /// The boot path of the nftables switch, when that is the switch mode.
    pub boot: Option<BootPath>,
    /// The command that reloads nginx, when the switch will run it: checked for permission
    /// without reloading.
    pub reload_cmd: Option<CommandLine>,
    /// nginx's pid file (whose master a plain reload command signals, and whose reload
    /// the switch watches).
    pub nginx_pid_file: PathBuf,
    /// The port of the URL the switch verifies through nginx, by which nginx's master is
    /// found when the pid file names none.
    pub verify_port: Option<u16>,
    /// How a standby that would not fit in memory is treated.
    pub memory_check: MemoryCheck,
    /// The memory, in MiB, that must stay available with both slots running.
    pub min_free_memory_mb: u64,
}

/// All results, and which slot a deploy would use.
#[derive(Debug, Clone, Serialize)]
pub struct ValidateReport {
    /// True when no check failed.
    pub passed: bool,
    /// The app.
    pub app: String,
    /// The slot a deploy would start the new version in.
    pub standby: Slot,
    /// Every check, in order.
    pub checks: Vec<CheckResult>,
}

/// Who reads a report, so that its advice names the settings they set: the action's
/// inputs, or the helpers' flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// A workflow's `uses:` (inputs like `nginx-test-command`).
    Action,
    /// Someone at the host (flags like `--test-cmd`).
    Helper,
}

impl Audience {
    /// The name of a setting: the action's `input`, or the helpers' `flag`.
    pub fn name(self, input: &'static str, flag: &'static str) -> &'static str {
        match self {
            Audience::Action => input,
            Audience::Helper => flag,
        }
    }
}

/// How the memory preflight treats a standby that would not fit.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum MemoryCheck {
    /// The check fails, and the run stops before the standby starts.
    #[default]
    Fail,
    /// The check warns, and the run goes on.
    Warn,
    /// No check.
    Off,
}
