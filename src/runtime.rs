//! How an app's slots run on the host: the command lines that start, stop, restart and
//! inspect a slot under each runtime (docker, compose, the user's own command). They are
//! built here as argv vectors by pure functions and run by [`crate::exec`]. Values reach
//! the programs as separate arguments or environment variables, never through a shell.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::exec::CommandLine;
use crate::input::{AppName, Slot};

/// Container label naming the app a container belongs to.
pub const LABEL_APP: &str = "bluegreen.app";
/// Container label naming the slot a container runs in.
pub const LABEL_SLOT: &str = "bluegreen.slot";
/// Container label naming the version a container runs.
pub const LABEL_VERSION: &str = "bluegreen.version";

/// How many lines of a failed slot's log are kept.
pub const LOG_TAIL_LINES: u32 = 40;

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

/// `docker ps` listing the running containers of `app`'s `slot` under `runtime` (by our
/// labels for docker, by compose's project label for compose). `None` for the command
/// runtime, which has no containers we can recognise.
pub fn slot_containers(
    docker: &CommandLine,
    runtime: Runtime,
    app: &AppName,
    slot: Slot,
) -> Option<CommandLine> {
    let filters = match runtime {
        Runtime::Docker => vec![
            format!("label={LABEL_APP}={app}"),
            format!("label={LABEL_SLOT}={slot}"),
        ],
        Runtime::Compose => vec![format!("label=com.docker.compose.project={app}-{slot}")],
        Runtime::Command => return None,
    };
    let mut argv = vec!["ps".to_owned(), "--quiet".to_owned()];
    for f in filters {
        argv.push("--filter".into());
        argv.push(f);
    }
    Some(docker.with_args(argv))
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
    /// The plugin when `docker compose version` works, else `docker-compose` when it does.
    pub fn detect(docker: &CommandLine) -> Option<Compose> {
        let timeout = Duration::from_secs(30);
        let plugin = docker.with_args(["compose"]);
        if plugin.with_args(["version"]).run(timeout).is_ok() {
            return Some(Compose::Plugin(plugin));
        }
        let standalone = CommandLine::new(["docker-compose"]);
        standalone
            .with_args(["version"])
            .run(timeout)
            .is_ok()
            .then_some(Compose::Standalone(standalone))
    }

    fn base(&self) -> &CommandLine {
        match self {
            Compose::Plugin(c) | Compose::Standalone(c) => c,
        }
    }
}

/// One slot of one app, as the runtime commands see it.
#[derive(Debug, Clone)]
pub struct SlotSpec<'a> {
    /// The app.
    pub app: &'a AppName,
    /// The slot.
    pub slot: Slot,
    /// Its loopback port.
    pub port: u16,
    /// The image it runs, when the runtime uses one.
    pub image: Option<&'a str>,
    /// The version it runs.
    pub version: &'a str,
}

impl SlotSpec<'_> {
    /// The container (docker) or project (compose) name: `APP-SLOT`.
    pub fn name(&self) -> String {
        format!("{}-{}", self.app, self.slot)
    }

    /// The variables every runtime passes to the slot's commands.
    fn variables(&self) -> Vec<(&'static str, String)> {
        vec![
            ("BLUEGREEN_APP", self.app.to_string()),
            ("BLUEGREEN_SLOT", self.slot.to_string()),
            ("BLUEGREEN_PORT", self.port.to_string()),
            ("BLUEGREEN_IMAGE", self.image.unwrap_or("").to_owned()),
            ("BLUEGREEN_VERSION", self.version.to_owned()),
        ]
    }
}

/// Everything the runtime commands need besides the slot.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Which runtime.
    pub runtime: Runtime,
    /// The docker command.
    pub docker: CommandLine,
    /// The compose command, for the compose runtime.
    pub compose: Option<Compose>,
    /// The port the app listens on inside its container.
    pub container_port: u16,
    /// An env file on the host passed to `docker run`.
    pub env_file: Option<PathBuf>,
    /// Extra `docker run` arguments, already split into words.
    pub docker_args: Vec<String>,
    /// The compose file on the host.
    pub compose_file: Option<PathBuf>,
    /// The user's command, run by `sh -c` with the slot's variables in its environment.
    pub deploy_command: Option<String>,
    /// The pull policy.
    pub pull: Pull,
}

impl RuntimeConfig {
    fn compose(&self, spec: &SlotSpec, args: &[&str]) -> CommandLine {
        let base = self
            .compose
            .as_ref()
            .map_or_else(|| self.docker.with_args(["compose"]), |c| c.base().clone());
        let file = self
            .compose_file
            .as_ref()
            .map_or_else(String::new, |f| f.display().to_string());
        let mut cmd = base
            .with_args(["-p", &spec.name(), "-f", &file])
            .with_args(args.iter().copied());
        for (name, value) in spec.variables() {
            cmd = cmd.with_env(name, &value);
        }
        cmd
    }

    fn user_command(&self, spec: &SlotSpec, action: &str) -> CommandLine {
        let script = self.deploy_command.clone().unwrap_or_default();
        let mut cmd = CommandLine::new(["sh", "-c", script.as_str(), "bluegreen-deploy-command"])
            .with_env("BLUEGREEN_ACTION", action);
        for (name, value) in spec.variables() {
            cmd = cmd.with_env(name, &value);
        }
        cmd
    }

    /// Commands that clear the slot before a new version starts in it (the previous
    /// container or project of that slot, pulls that must happen first).
    pub fn prepare(&self, spec: &SlotSpec) -> Vec<CommandLine> {
        match self.runtime {
            Runtime::Docker => vec![self.docker.with_args(["rm", "--force", &spec.name()])],
            Runtime::Compose => {
                let mut cmds = vec![self.compose(spec, &["down", "--remove-orphans"])];
                if self.pull == Pull::Always && matches!(self.compose, Some(Compose::Standalone(_)))
                {
                    cmds.push(self.compose(spec, &["pull"]));
                }
                cmds
            }
            Runtime::Command => Vec::new(),
        }
    }

    /// The command that starts the new version in the slot.
    pub fn start(&self, spec: &SlotSpec) -> CommandLine {
        match self.runtime {
            Runtime::Docker => {
                let name = spec.name();
                let mut argv: Vec<String> = vec![
                    "run".into(),
                    "--detach".into(),
                    "--name".into(),
                    name,
                    "--pull".into(),
                    self.pull.as_str().into(),
                    "--publish".into(),
                    format!("127.0.0.1:{}:{}", spec.port, self.container_port),
                ];
                for (label, value) in [
                    (LABEL_APP, spec.app.to_string()),
                    (LABEL_SLOT, spec.slot.to_string()),
                    (LABEL_VERSION, spec.version.to_owned()),
                ] {
                    argv.push("--label".into());
                    argv.push(format!("{label}={value}"));
                }
                for (name, value) in spec.variables() {
                    argv.push("--env".into());
                    argv.push(format!("{name}={value}"));
                }
                if let Some(file) = &self.env_file {
                    argv.push("--env-file".into());
                    argv.push(file.display().to_string());
                }
                argv.extend(self.docker_args.iter().cloned());
                // `--` is not accepted by docker run; the image is validated not to start
                // with a dash, so it cannot be taken for an option.
                argv.push(spec.image.unwrap_or("").to_owned());
                self.docker.with_args(argv)
            }
            Runtime::Compose => match (&self.compose, self.pull) {
                (Some(Compose::Standalone(_)), _) => self.compose(spec, &["up", "--detach"]),
                (_, pull) => self.compose(spec, &["up", "--detach", "--pull", pull.as_str()]),
            },
            Runtime::Command => self.user_command(spec, "start"),
        }
    }

    /// Commands that stop the slot gracefully (SIGTERM, then SIGKILL after `grace`), and
    /// remove it when `remove`.
    pub fn stop(&self, spec: &SlotSpec, grace: Duration, remove: bool) -> Vec<CommandLine> {
        let seconds = grace.as_secs().to_string();
        match self.runtime {
            Runtime::Docker => {
                let mut cmds =
                    vec![
                        self.docker
                            .with_args(["stop", "--time", &seconds, &spec.name()]),
                    ];
                if remove {
                    cmds.push(self.docker.with_args(["rm", "--force", &spec.name()]));
                }
                cmds
            }
            Runtime::Compose if remove => {
                vec![self.compose(spec, &["down", "--timeout", &seconds])]
            }
            Runtime::Compose => vec![self.compose(spec, &["stop", "--timeout", &seconds])],
            Runtime::Command => {
                vec![self.user_command(spec, if remove { "remove" } else { "stop" })]
            }
        }
    }

    /// The command that starts a stopped slot again as it was (a rollback target).
    pub fn restart(&self, spec: &SlotSpec) -> CommandLine {
        match self.runtime {
            Runtime::Docker => self.docker.with_args(["start", &spec.name()]),
            Runtime::Compose => self.compose(spec, &["start"]),
            Runtime::Command => self.user_command(spec, "start"),
        }
    }

    /// The command printing the version label of the slot's container (docker runtime).
    pub fn version_label(&self, spec: &SlotSpec) -> Option<CommandLine> {
        (self.runtime == Runtime::Docker).then(|| {
            self.docker.with_args([
                "inspect",
                "--format",
                &format!("{{{{index .Config.Labels \"{LABEL_VERSION}\"}}}}"),
                &spec.name(),
            ])
        })
    }

    /// The command printing the last lines of the slot's log, when the runtime has one.
    pub fn logs(&self, spec: &SlotSpec) -> Option<CommandLine> {
        let tail = LOG_TAIL_LINES.to_string();
        match self.runtime {
            Runtime::Docker => Some(
                self.docker
                    .with_args(["logs", "--tail", &tail, &spec.name()]),
            ),
            Runtime::Compose => Some(self.compose(spec, &["logs", "--no-color", "--tail", &tail])),
            Runtime::Command => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_container_queries() {
        let docker = CommandLine::new(["docker"]);
        let app: AppName = "shop".parse().unwrap();
        let green = slot_containers(&docker, Runtime::Docker, &app, Slot::Green).unwrap();
        assert_eq!(
            green.argv(),
            [
                "docker",
                "ps",
                "--quiet",
                "--filter",
                "label=bluegreen.app=shop",
                "--filter",
                "label=bluegreen.slot=green"
            ]
        );
        let blue = slot_containers(&docker, Runtime::Compose, &app, Slot::Blue).unwrap();
        assert_eq!(
            blue.argv()[3..],
            ["--filter", "label=com.docker.compose.project=shop-blue"]
        );
        assert!(slot_containers(&docker, Runtime::Command, &app, Slot::Blue).is_none());
        assert_eq!(
            docker_root_dir(&CommandLine::new(["sudo", "docker"])).argv(),
            ["sudo", "docker", "info", "--format", "{{.DockerRootDir}}"]
        );
    }
}
