//! How an app's slots run on the host: the command lines that start, stop, restart and
//! inspect a slot under each runtime (docker, compose, the user's own command). They are
//! built here as argv vectors by pure functions and run by [`crate::exec`]. Values reach
//! the programs as separate arguments or environment variables, never through a shell.
//!
//! - this file: the runtimes, the pull policy, the settings a plan carries ([`RuntimeSpec`]),
//!   the compose flavours, and the queries validation runs;
//! - `commands`: [`commands::SlotCommands`], the builders of each slot command per runtime.

pub mod commands;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::exec::CommandLine;
use crate::input::{AppName, HostPath, Image, Port, ServiceName, Slot};

/// Container label naming the app a container belongs to.
pub const LABEL_APP: &str = "bluegreen.app";
/// Container label naming the slot a container runs in.
pub const LABEL_SLOT: &str = "bluegreen.slot";
/// Container label naming the version a container runs.
pub const LABEL_VERSION: &str = "bluegreen.version";

/// How many lines of a failed slot's log are kept.
pub const LOG_TAIL_LINES: u32 = 40;

/// How long `docker compose version` may take.
pub const DETECT_TIMEOUT: Duration = Duration::from_secs(30);

/// What starts and stops an app's slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// `docker run`, one container per slot named APP-SLOT.
    Docker,
    /// `docker compose`, one project per slot named APP-SLOT.
    Compose,
    /// The user's own command; no Docker needed.
    Command,
}

impl Runtime {
    /// Whether this runtime needs a Docker daemon.
    pub fn uses_docker(self) -> bool {
        matches!(self, Runtime::Docker | Runtime::Compose)
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Runtime::Docker => "docker",
            Runtime::Compose => "compose",
            Runtime::Command => "command",
        })
    }
}

/// `docker info` printing only the daemon's data root: answers only when the daemon does.
pub fn docker_root_dir(docker: &CommandLine) -> CommandLine {
    docker.with_args(["info", "--format", "{{.DockerRootDir}}"])
}

/// Which containers of a slot a listing names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Only the running ones.
    Running,
    /// Stopped ones too.
    All,
}

/// The name of `app`'s `slot`: its container (docker) or its compose project, `APP-SLOT`.
pub fn slot_name(app: &AppName, slot: Slot) -> String {
    format!("{app}-{slot}")
}

/// The command that prints once what `app`'s `slot` container uses of memory now
/// (`12MiB / 1.944GiB`).
pub fn memory_usage(docker: &CommandLine, app: &AppName, slot: Slot) -> CommandLine {
    docker.with_args([
        "stats".to_owned(),
        "--no-stream".to_owned(),
        "--format".to_owned(),
        "{{.MemUsage}}".to_owned(),
        slot_name(app, slot),
    ])
}

/// `docker ps` listing the containers of `app`'s `slot` under `runtime` (by our labels for
/// docker, by compose's project label for compose). `None` for the command runtime, which
/// has no containers we can recognise.
pub fn slot_containers(
    docker: &CommandLine,
    runtime: Runtime,
    app: &AppName,
    slot: Slot,
    listing: Listing,
) -> Option<CommandLine> {
    let filters = match runtime {
        Runtime::Docker => vec![
            format!("label={LABEL_APP}={app}"),
            format!("label={LABEL_SLOT}={slot}"),
        ],
        Runtime::Compose => vec![format!(
            "label=com.docker.compose.project={}",
            slot_name(app, slot)
        )],
        Runtime::Command => return None,
    };
    let mut argv = vec!["ps".to_owned(), "--quiet".to_owned()];
    if listing == Listing::All {
        argv.push("--all".into());
    }
    for f in filters {
        argv.push("--filter".into());
        argv.push(f);
    }
    Some(docker.with_args(argv))
}

/// Docker label of the claim volume naming the state directory of the deployment that owns
/// an app name on this Docker host.
pub const LABEL_STATE_DIR: &str = "bluegreen.state-dir";

/// The name of the volume by which one deployment claims `app`'s container names
/// (`APP-blue`, `APP-green`) on a Docker host; it holds no data.
pub fn claim_volume(app: &AppName) -> String {
    format!("bluegreen-claim-{app}")
}

/// `docker volume inspect` printing the state directory that claimed `app` (fails when no
/// deployment has).
pub fn claim_owner(docker: &CommandLine, app: &AppName) -> CommandLine {
    docker.with_args([
        "volume".to_owned(),
        "inspect".into(),
        "--format".into(),
        format!("{{{{index .Labels \"{LABEL_STATE_DIR}\"}}}}"),
        claim_volume(app),
    ])
}

/// `docker volume create` claiming `app` for the deployment whose state is in `state_dir`
/// (a no-op that keeps the first claim when the volume exists).
pub fn claim(docker: &CommandLine, app: &AppName, state_dir: &str) -> CommandLine {
    docker.with_args([
        "volume".to_owned(),
        "create".into(),
        "--label".into(),
        format!("{LABEL_APP}={app}"),
        "--label".into(),
        format!("{LABEL_STATE_DIR}={state_dir}"),
        claim_volume(app),
    ])
}

/// When to pull the image before starting a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pull {
    /// Pull only when the host lacks the image.
    Missing,
    /// Always pull.
    Always,
    /// Never pull; the image must be on the host.
    Never,
}

impl Pull {
    fn as_str(self) -> &'static str {
        match self {
            Pull::Missing => "missing",
            Pull::Always => "always",
            Pull::Never => "never",
        }
    }
}

/// The `docker compose` flavour found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compose {
    /// The `docker compose` plugin (v2): `up` takes `--pull`.
    Plugin(CommandLine),
    /// The standalone `docker-compose` (v1): pulls are a separate command.
    Standalone(CommandLine),
}

impl Compose {
    /// The flavours to look for, in order of preference, each with the command that
    /// answers only when that flavour is installed.
    pub fn candidates(docker: &CommandLine) -> [(Compose, CommandLine); 2] {
        let plugin = docker.with_args(["compose"]);
        let standalone = CommandLine::new(["docker-compose"]);
        [
            (
                Compose::Plugin(plugin.clone()),
                plugin.with_args(["version"]),
            ),
            (
                Compose::Standalone(standalone.clone()),
                standalone.with_args(["version"]),
            ),
        ]
    }

    /// The first candidate whose version command answers, run here.
    pub fn detect(docker: &CommandLine) -> Option<Compose> {
        Compose::candidates(docker)
            .into_iter()
            .find(|(_, probe)| probe.run(DETECT_TIMEOUT).is_ok())
            .map(|(compose, _)| compose)
    }

    fn base(&self) -> &CommandLine {
        match self {
            Compose::Plugin(c) | Compose::Standalone(c) => c,
        }
    }
}

/// How an app's slots run: the runtime and its settings, as the plan a host receives
/// carries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSpec {
    /// Which runtime.
    pub runtime: Runtime,
    /// The image to deploy (docker and compose runtimes).
    pub image: Option<Image>,
    /// The port the app listens on inside its container.
    pub container_port: Port,
    /// An env file on the host passed to `docker run`.
    pub env_file: Option<HostPath>,
    /// Extra `docker run` arguments, already split into words.
    pub docker_args: Vec<String>,
    /// The compose file on the host.
    pub compose_file: Option<HostPath>,
    /// The compose services that take part in blue-green (all of the file's when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compose_services: Vec<ServiceName>,
    /// The user's command, run by `sh -c` with the slot's variables in its environment.
    pub deploy_command: Option<String>,
    /// The pull policy.
    pub pull: Pull,
}

impl RuntimeSpec {
    /// This spec, made to start no slot: the command runtime without a command, for a run
    /// by hand that knows the slots by their ports only (a switch by hand, monitor's
    /// rollback).
    pub fn starting_no_slot(self) -> RuntimeSpec {
        RuntimeSpec {
            runtime: Runtime::Command,
            deploy_command: None,
            ..self
        }
    }

    /// Whether a run has a way to start a slot (see [`RuntimeSpec::starting_no_slot`]).
    pub fn starts_slots(&self) -> bool {
        self.runtime != Runtime::Command || self.deploy_command.is_some()
    }

    /// What the runtime lacks to deploy a new version, if anything.
    pub fn missing_for_deploy(&self) -> Option<String> {
        match self.runtime {
            Runtime::Docker if self.image.is_none() => {
                Some("image: the docker runtime needs an image".into())
            }
            Runtime::Compose if self.compose_file.is_none() => {
                Some("compose-file: the compose runtime needs a compose file".into())
            }
            Runtime::Command
                if self
                    .deploy_command
                    .as_deref()
                    .is_none_or(|c| c.trim().is_empty()) =>
            {
                Some("deploy-command: the command runtime needs a deploy command".into())
            }
            _ => None,
        }
    }
}
