//! Exact command lines of every builder under every runtime, and the validation queries.

use std::time::Duration;

use super::commands::{SlotCommands, SlotSpec};
use super::*;
use crate::exec::CommandLine;
use crate::input::{AppName, Slot};

fn spec(runtime: Runtime, pull: Pull) -> RuntimeSpec {
    RuntimeSpec {
        runtime,
        image: Some("shop:2".parse().unwrap()),
        container_port: "8080".parse().unwrap(),
        env_file: Some("/etc/shop.env".parse().unwrap()),
        docker_args: vec!["--memory".into(), "512m".into()],
        compose_file: Some("/srv/shop/compose.yml".parse().unwrap()),
        compose_services: Vec::new(),
        deploy_command: Some("./deploy.sh".into()),
        pull,
    }
}

fn commands(spec: &RuntimeSpec, compose: Option<Compose>) -> SlotCommands<'_> {
    SlotCommands {
        spec,
        docker: CommandLine::new(["docker"]),
        compose,
    }
}

fn green(app: &AppName) -> SlotSpec<'_> {
    SlotSpec {
        app,
        slot: Slot::Green,
        port: 3002,
        image: Some("shop:2"),
        version: "v2",
    }
}

fn argvs(cmds: &[CommandLine]) -> Vec<Vec<&str>> {
    cmds.iter().map(argv).collect()
}

fn argv(cmd: &CommandLine) -> Vec<&str> {
    cmd.argv().iter().map(String::as_str).collect()
}

const SLOT_VARIABLES: [(&str, &str); 5] = [
    ("BLUEGREEN_APP", "shop"),
    ("BLUEGREEN_SLOT", "green"),
    ("BLUEGREEN_PORT", "3002"),
    ("BLUEGREEN_IMAGE", "shop:2"),
    ("BLUEGREEN_VERSION", "v2"),
];

/// A compose command of the green slot of `shop`: `program`, the project and file, `more`.
fn compose_argv(program: &[&'static str], more: &[&'static str]) -> Vec<&'static str> {
    let project = ["-p", "shop-green", "-f", "/srv/shop/compose.yml"];
    program
        .iter()
        .chain(&project)
        .chain(more)
        .copied()
        .collect()
}

fn env_of(cmd: &CommandLine) -> Vec<(&str, &str)> {
    cmd.env()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn docker_runtime_commands() {
    let app: AppName = "shop".parse().unwrap();
    let spec = spec(Runtime::Docker, Pull::Missing);
    let c = commands(&spec, None);
    let slot = green(&app);
    assert_eq!(
        argvs(&c.prepare(&slot, Duration::from_secs(30))),
        [["docker", "rm", "--force", "shop-green"]]
    );
    assert_eq!(
        argvs(&[c.start(&slot)]),
        [[
            "docker",
            "run",
            "--detach",
            "--name",
            "shop-green",
            "--pull",
            "missing",
            "--publish",
            "127.0.0.1:3002:8080",
            "--restart",
            "unless-stopped",
            "--label",
            "bluegreen.app=shop",
            "--label",
            "bluegreen.slot=green",
            "--label",
            "bluegreen.version=v2",
            "--env",
            "BLUEGREEN_APP=shop",
            "--env",
            "BLUEGREEN_SLOT=green",
            "--env",
            "BLUEGREEN_PORT=3002",
            "--env",
            "BLUEGREEN_IMAGE=shop:2",
            "--env",
            "BLUEGREEN_VERSION=v2",
            "--env-file",
            "/etc/shop.env",
            "--memory",
            "512m",
            "shop:2"
        ]]
    );
    let grace = Duration::from_secs(30);
    assert_eq!(
        argvs(&c.stop(&slot, grace, false)),
        [["docker", "stop", "--time", "30", "shop-green"]]
    );
    assert_eq!(
        argvs(&c.stop(&slot, grace, true)),
        [
            vec!["docker", "stop", "--time", "30", "shop-green"],
            vec!["docker", "rm", "--force", "shop-green"]
        ]
    );
    assert_eq!(
        argvs(&[c.restart(&slot)]),
        [["docker", "start", "shop-green"]]
    );
    assert_eq!(
        argvs(&[c.version_label(&slot).unwrap()]),
        [[
            "docker",
            "inspect",
            "--format",
            "{{index .Config.Labels \"bluegreen.version\"}}",
            "shop-green"
        ]]
    );
    assert_eq!(
        argvs(&[c.logs(&slot).unwrap()]),
        [["docker", "logs", "--tail", "40", "shop-green"]]
    );
    assert!(
        c.start(&slot).env().is_empty(),
        "docker gets values as --env"
    );
}

#[test]
fn compose_plugin_runtime_commands() {
    let app: AppName = "shop".parse().unwrap();
    let spec = spec(Runtime::Compose, Pull::Always);
    let docker = CommandLine::new(["docker"]);
    let plugin = Compose::candidates(&docker)[0].0.clone();
    let c = commands(&spec, Some(plugin));
    let slot = green(&app);
    let with = |more: &[&'static str]| compose_argv(&["docker", "compose"], more);
    assert_eq!(
        argvs(&c.prepare(&slot, Duration::from_secs(30))),
        [with(&["down", "--timeout", "30", "--remove-orphans"])]
    );
    let start = c.start(&slot);
    assert_eq!(
        [argv(&start)],
        [with(&["up", "--detach", "--pull", "always"])]
    );
    assert_eq!(env_of(&start), SLOT_VARIABLES);
    let grace = Duration::from_secs(30);
    assert_eq!(
        argvs(&c.stop(&slot, grace, false)),
        [with(&["stop", "--timeout", "30"])]
    );
    assert_eq!(
        argvs(&c.stop(&slot, grace, true)),
        [with(&["down", "--timeout", "30"])]
    );
    assert_eq!(argvs(&[c.restart(&slot)]), [with(&["start"])]);
    assert!(c.version_label(&slot).is_none());
    assert_eq!(
        argvs(&[c.logs(&slot).unwrap()]),
        [with(&["logs", "--no-color", "--tail", "40"])]
    );
}

#[test]
fn compose_standalone_runtime_commands() {
    let app: AppName = "shop".parse().unwrap();
    let spec = spec(Runtime::Compose, Pull::Always);
    let docker = CommandLine::new(["docker"]);
    let [(plugin, plugin_probe), (standalone, standalone_probe)] = Compose::candidates(&docker);
    assert_eq!(argvs(&[plugin_probe]), [["docker", "compose", "version"]]);
    assert_eq!(argvs(&[standalone_probe]), [["docker-compose", "version"]]);
    assert!(matches!(plugin, Compose::Plugin(_)));
    let c = commands(&spec, Some(standalone));
    let slot = green(&app);
    let with = |more: &[&'static str]| compose_argv(&["docker-compose"], more);
    // docker-compose 1.x has no `up --pull`: pulls are a command of their own.
    assert_eq!(
        argvs(&c.prepare(&slot, Duration::from_secs(30))),
        [
            with(&["down", "--timeout", "30", "--remove-orphans"]),
            with(&["pull"])
        ]
    );
    assert_eq!(argvs(&[c.start(&slot)]), [with(&["up", "--detach"])]);
    let missing = RuntimeSpec {
        pull: Pull::Missing,
        ..spec.clone()
    };
    let c = SlotCommands {
        spec: &missing,
        ..c
    };
    assert_eq!(
        argvs(&c.prepare(&slot, Duration::from_secs(30))),
        [with(&["down", "--timeout", "30", "--remove-orphans"])]
    );
}

#[test]
fn command_runtime_commands() {
    let app: AppName = "shop".parse().unwrap();
    let spec = spec(Runtime::Command, Pull::Missing);
    let c = commands(&spec, None);
    let slot = green(&app);
    assert!(c.prepare(&slot, Duration::from_secs(30)).is_empty());
    let script = ["sh", "-c", "./deploy.sh", "bluegreen-deploy-command"];
    let grace = Duration::from_secs(30);
    for (cmd, action) in [
        (c.start(&slot), "start"),
        (c.stop(&slot, grace, false).remove(0), "stop"),
        (c.stop(&slot, grace, true).remove(0), "remove"),
        (c.restart(&slot), "start"),
    ] {
        assert_eq!([argv(&cmd)], [script]);
        let mut expected = vec![("BLUEGREEN_ACTION", action)];
        expected.extend(SLOT_VARIABLES);
        assert_eq!(env_of(&cmd), expected, "{action}");
    }
    assert!(c.version_label(&slot).is_none());
    assert!(c.logs(&slot).is_none());
}

#[test]
fn what_each_runtime_needs_to_deploy() {
    let full = spec(Runtime::Docker, Pull::Missing);
    assert_eq!(full.missing_for_deploy(), None);
    for (runtime, needs) in [
        (Runtime::Docker, "image"),
        (Runtime::Compose, "compose-file"),
        (Runtime::Command, "deploy-command"),
    ] {
        let bare = RuntimeSpec {
            runtime,
            image: None,
            compose_file: None,
            compose_services: Vec::new(),
            deploy_command: Some("  ".into()),
            ..full.clone()
        };
        assert!(
            bare.missing_for_deploy().unwrap().starts_with(needs),
            "{runtime}"
        );
    }
}

#[test]
fn slot_container_queries() {
    let docker = CommandLine::new(["docker"]);
    let app: AppName = "shop".parse().unwrap();
    let green = slot_containers(
        &docker,
        Runtime::Docker,
        &app,
        Slot::Green,
        Listing::Running,
    )
    .unwrap();
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
    let blue = slot_containers(&docker, Runtime::Compose, &app, Slot::Blue, Listing::All).unwrap();
    assert_eq!(
        blue.argv()[1..],
        [
            "ps",
            "--quiet",
            "--all",
            "--filter",
            "label=com.docker.compose.project=shop-blue"
        ]
    );
    assert!(slot_containers(&docker, Runtime::Command, &app, Slot::Blue, Listing::All).is_none());
    assert_eq!(
        docker_root_dir(&CommandLine::new(["sudo", "docker"])).argv(),
        ["sudo", "docker", "info", "--format", "{{.DockerRootDir}}"]
    );
}

#[test]
fn claim_commands() {
    let docker = CommandLine::new(["docker"]);
    let app: AppName = "shop".parse().unwrap();
    assert_eq!(
        claim_owner(&docker, &app).argv(),
        [
            "docker",
            "volume",
            "inspect",
            "--format",
            "{{index .Labels \"bluegreen.state-dir\"}}",
            "bluegreen-claim-shop"
        ]
    );
    assert_eq!(
        claim(&docker, &app, "/var/lib/bluegreen/shop").argv(),
        [
            "docker",
            "volume",
            "create",
            "--label",
            "bluegreen.app=shop",
            "--label",
            "bluegreen.state-dir=/var/lib/bluegreen/shop",
            "bluegreen-claim-shop"
        ]
    );
}

#[test]
fn compose_services_start_alone() {
    let app: AppName = "shop".parse().unwrap();
    let spec = RuntimeSpec {
        compose_services: crate::input::parse_list("web, api").unwrap(),
        ..spec(Runtime::Compose, Pull::Missing)
    };
    let docker = CommandLine::new(["docker"]);
    let [(plugin, _), (standalone, _)] = Compose::candidates(&docker);
    let slot = green(&app);
    let c = commands(&spec, Some(standalone));
    assert_eq!(
        argv(&c.start(&slot)),
        compose_argv(
            &["docker-compose"],
            &["up", "--detach", "--no-deps", "web", "api"]
        )
    );
    let c = commands(&spec, Some(plugin));
    assert_eq!(
        argv(&c.start(&slot)),
        compose_argv(
            &["docker", "compose"],
            &[
                "up",
                "--detach",
                "--pull",
                "missing",
                "--no-deps",
                "web",
                "api"
            ]
        )
    );
    assert_eq!(
        argv(&c.services(&slot).unwrap()),
        compose_argv(&["docker", "compose"], &["config", "--services"])
    );
}

#[test]
fn image_clean_up_commands() {
    let docker = spec(Runtime::Docker, Pull::Missing);
    let c = commands(&docker, None);
    assert_eq!(
        argv(&c.images_of("ghcr.io/acme/shop").unwrap()),
        [
            "docker",
            "image",
            "ls",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Repository}}:{{.Tag}}",
            "ghcr.io/acme/shop"
        ]
    );
    assert_eq!(
        argv(&c.image_size("sha256:ab")),
        [
            "docker",
            "image",
            "inspect",
            "--format",
            "{{.Size}}",
            "sha256:ab"
        ]
    );
    assert_eq!(
        argv(&c.remove_image("shop:1")),
        ["docker", "image", "rm", "shop:1"]
    );
    for runtime in [Runtime::Compose, Runtime::Command] {
        let other = spec(runtime, Pull::Missing);
        assert!(
            commands(&other, None).images_of("shop").is_none(),
            "{runtime:?}"
        );
    }
}
