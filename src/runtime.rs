//! How an app's slots run on the host, and the Docker command lines that ask about them.
//! Command lines are built here as argv vectors by pure functions and run by
//! [`crate::exec`].

use std::fmt;

use crate::exec::CommandLine;
use crate::input::{AppName, Slot};

/// Container label naming the app a container belongs to.
pub const LABEL_APP: &str = "bluegreen.app";
/// Container label naming the slot a container runs in.
pub const LABEL_SLOT: &str = "bluegreen.slot";

/// What starts and stops an app's slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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

/// `docker compose version`: checks the compose plugin is installed.
pub fn compose_version(docker: &CommandLine) -> CommandLine {
    docker.with_args(["compose", "version"])
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
