//! The command lines that prepare, start, stop, restart and inspect one slot under each
//! runtime: pure functions of the slot and the settings, returning argv vectors (values go
//! in as separate words or environment variables, never through a shell). Run by the
//! engine through its host; tested by asserting each exact command.

use std::time::Duration;

use crate::exec::CommandLine;
use crate::input::{AppName, HostPath, ServiceName, Slot};

use super::{
    Compose, LABEL_APP, LABEL_SLOT, LABEL_VERSION, LOG_TAIL_LINES, Listing, Pull, Runtime,
    RuntimeSpec,
};

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
        super::slot_name(self.app, self.slot)
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

/// The command lines of one app's slots: its runtime settings, the docker command, and the
/// compose flavour found on the host (compose runtime).
#[derive(Debug, Clone)]
pub struct SlotCommands<'a> {
    /// The runtime settings.
    pub spec: &'a RuntimeSpec,
    /// The docker command.
    pub docker: CommandLine,
    /// The compose command, for the compose runtime.
    pub compose: Option<Compose>,
}

impl SlotCommands<'_> {
    fn compose(&self, spec: &SlotSpec, args: &[&str]) -> CommandLine {
        let base = self
            .compose
            .as_ref()
            .map_or_else(|| self.docker.with_args(["compose"]), |c| c.base().clone());
        let file = self.spec.compose_file.as_ref().map_or("", HostPath::as_str);
        let mut cmd = base
            .with_args(["-p", &spec.name(), "-f", file])
            .with_args(args.iter().copied());
        for (name, value) in spec.variables() {
            cmd = cmd.with_env(name, &value);
        }
        cmd
    }

    fn user_command(&self, spec: &SlotSpec, action: &str) -> CommandLine {
        let script = self.spec.deploy_command.as_deref().unwrap_or_default();
        let mut cmd = CommandLine::new(["sh", "-c", script, "bluegreen-deploy-command"])
            .with_env("BLUEGREEN_ACTION", action);
        for (name, value) in spec.variables() {
            cmd = cmd.with_env(name, &value);
        }
        cmd
    }

    /// Commands that clear the slot before a new version starts in it (the previous
    /// container or project of that slot, pulls that must happen first). The slot takes no
    /// traffic: a docker container is removed at once; a compose project's containers get
    /// `grace` to stop.
    pub fn prepare(&self, spec: &SlotSpec, grace: Duration) -> Vec<CommandLine> {
        match self.spec.runtime {
            Runtime::Docker => vec![self.docker.with_args(["rm", "--force", &spec.name()])],
            Runtime::Compose => {
                let seconds = grace.as_secs().to_string();
                let mut cmds =
                    vec![self.compose(spec, &["down", "--timeout", &seconds, "--remove-orphans"])];
                if self.spec.pull == Pull::Always
                    && matches!(self.compose, Some(Compose::Standalone(_)))
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
        match self.spec.runtime {
            Runtime::Docker => {
                let name = spec.name();
                let mut argv: Vec<String> = vec![
                    "run".into(),
                    "--detach".into(),
                    "--name".into(),
                    name,
                    "--pull".into(),
                    self.spec.pull.as_str().into(),
                    "--publish".into(),
                    format!("127.0.0.1:{}:{}", spec.port, self.spec.container_port),
                    // Back after a crash or a reboot; a retired slot (stopped on purpose)
                    // stays stopped.
                    "--restart".into(),
                    "unless-stopped".into(),
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
                if let Some(file) = &self.spec.env_file {
                    argv.push("--env-file".into());
                    argv.push(file.to_string());
                }
                argv.extend(self.spec.docker_args.iter().cloned());
                // `--` is not accepted by docker run; the image is validated not to start
                // with a dash, so it cannot be taken for an option.
                argv.push(spec.image.unwrap_or("").to_owned());
                self.docker.with_args(argv)
            }
            Runtime::Compose => {
                let mut args = vec!["up", "--detach"];
                if !matches!(self.compose, Some(Compose::Standalone(_))) {
                    args.extend(["--pull", self.spec.pull.as_str()]);
                }
                // Only the named services, without the ones they depend on: those (a
                // database, a queue) are the user's, outside the slots.
                if !self.spec.compose_services.is_empty() {
                    args.push("--no-deps");
                    args.extend(self.spec.compose_services.iter().map(ServiceName::as_str));
                }
                self.compose(spec, &args)
            }
            Runtime::Command => self.user_command(spec, "start"),
        }
    }

    /// Commands that stop the slot gracefully (SIGTERM, then SIGKILL after `grace`), and
    /// remove it when `remove`.
    pub fn stop(&self, spec: &SlotSpec, grace: Duration, remove: bool) -> Vec<CommandLine> {
        let seconds = grace.as_secs().to_string();
        match self.spec.runtime {
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
        match self.spec.runtime {
            Runtime::Docker => self.docker.with_args(["start", &spec.name()]),
            Runtime::Compose => self.compose(spec, &["start"]),
            Runtime::Command => self.user_command(spec, "start"),
        }
    }

    /// The command listing the slot's containers (docker, compose), running ones only or
    /// stopped ones too; none under the command runtime, which has nothing of ours to
    /// recognise.
    pub fn containers(&self, spec: &SlotSpec, listing: Listing) -> Option<CommandLine> {
        super::slot_containers(
            &self.docker,
            self.spec.runtime,
            spec.app,
            spec.slot,
            listing,
        )
    }

    /// The command printing the content ID (`sha256:...`) of `image` as the host has it
    /// now (docker, compose); none under the command runtime.
    pub fn image_id(&self, image: &str) -> Option<CommandLine> {
        self.spec.runtime.uses_docker().then(|| {
            self.docker
                .with_args(["image", "inspect", "--format", "{{.Id}}", image])
        })
    }

    /// The command listing the images of `repository` the host has, newest first, one
    /// `ID REPOSITORY:TAG` per line (docker runtime, which starts slots from an image).
    pub fn images_of(&self, repository: &str) -> Option<CommandLine> {
        (self.spec.runtime == Runtime::Docker).then(|| {
            self.docker.with_args([
                "image",
                "ls",
                "--no-trunc",
                "--format",
                "{{.ID}} {{.Repository}}:{{.Tag}}",
                repository,
            ])
        })
    }

    /// The command printing the size in bytes of the image with content ID `id`.
    pub fn image_size(&self, id: &str) -> CommandLine {
        self.docker
            .with_args(["image", "inspect", "--format", "{{.Size}}", id])
    }

    /// The command removing the image reference `reference` (a tag, or an image ID). Docker
    /// only untags an image other tags still name, and refuses to remove the last tag of an
    /// image a container uses.
    pub fn remove_image(&self, reference: &str) -> CommandLine {
        self.docker.with_args(["image", "rm", reference])
    }

    /// The command printing the version label of the slot's container (docker runtime).
    pub fn version_label(&self, spec: &SlotSpec) -> Option<CommandLine> {
        (self.spec.runtime == Runtime::Docker).then(|| {
            self.docker.with_args([
                "inspect",
                "--format",
                &format!("{{{{index .Config.Labels \"{LABEL_VERSION}\"}}}}"),
                &spec.name(),
            ])
        })
    }

    /// The command listing the services of the compose file (compose runtime).
    pub fn services(&self, spec: &SlotSpec) -> Option<CommandLine> {
        (self.spec.runtime == Runtime::Compose)
            .then(|| self.compose(spec, &["config", "--services"]))
    }

    /// The command printing the content ID of the image the slot's container was created
    /// from (docker runtime): exactly what it runs, whatever its tag names by now.
    pub fn container_image(&self, spec: &SlotSpec) -> Option<CommandLine> {
        (self.spec.runtime == Runtime::Docker).then(|| {
            self.docker
                .with_args(["inspect", "--format", "{{.Image}}", &spec.name()])
        })
    }

    /// The command printing the last lines of the slot's log, when the runtime has one.
    pub fn logs(&self, spec: &SlotSpec) -> Option<CommandLine> {
        let tail = LOG_TAIL_LINES.to_string();
        match self.spec.runtime {
            Runtime::Docker => Some(
                self.docker
                    .with_args(["logs", "--tail", &tail, &spec.name()]),
            ),
            Runtime::Compose => Some(self.compose(spec, &["logs", "--no-color", "--tail", &tail])),
            Runtime::Command => None,
        }
    }
}
