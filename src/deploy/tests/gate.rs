//! What the restricted key's gate refuses of a plan (see [`crate::gate`]): a plan for a
//! named app with the default paths passes; each way out of a deploy is refused, one line
//! each.

use super::*;
use crate::exec::CommandLine;
use crate::gate::Policy;
use crate::state::State;

fn policy() -> Policy {
    Policy {
        dirs: vec!["/srv/shop/data".into()],
        env_files: vec!["/srv/shop/env".into()],
        images: vec!["shop".into()],
        ..Policy::defaults(vec!["shop".parse().unwrap()])
    }
}

/// The fixture's plan with every path at its default.
fn with_default_paths(mut plan: DeployPlan) -> DeployPlan {
    let default = |p: &str| p.parse().unwrap();
    plan.state_dir = crate::config::default_state_dir(&plan.app);
    plan.switch.upstream_file = crate::config::default_upstream_file(&plan.app);
    plan.switch.service_port = crate::config::default_service_port(&plan.app, plan.ports);
    plan.site.server_file =
        crate::config::default_server_file(&plan.app, &plan.switch.upstream_file);
    plan.switch.log_dir = default("/var/log/bluegreen");
    plan.systemd_unit_dir = default("/etc/systemd/system");
    plan.boot_helper_dir = default("/usr/local/lib/bluegreen");
    plan
}

#[test]
fn a_plan_for_a_named_app_at_the_default_paths_passes_and_each_way_out_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let base = with_default_paths(plan(dir.path(), Runtime::Docker));
    assert_eq!(policy().refusals(&base, None), Vec::<String>::new());
    for operation in [
        Operation::Rollback,
        Operation::Status,
        Operation::Promote,
        Operation::Abort,
        Operation::MaintenanceOn,
        Operation::MaintenanceOff,
    ] {
        let plan = DeployPlan {
            operation,
            ..base.clone()
        };
        assert_eq!(
            policy().refusals(&plan, None),
            Vec::<String>::new(),
            "{operation:?}"
        );
    }
    type Change = fn(&mut DeployPlan);
    let cases: [(Change, &str); 17] = [
        (
            |p| p.site.server_file = "/home/deploy/.ssh/id_ed25519".parse().unwrap(),
            "server-file /home/deploy/.ssh/id_ed25519: this key uses /etc/nginx/conf.d/bluegreen-shop.server.conf only",
        ),
        (
            |p| p.operation = Operation::Setup,
            "command setup: setting a host up is root's, not this key's",
        ),
        (
            |p| p.operation = Operation::Switch,
            "command switch: a switch by hand is run on the host, not through this key",
        ),
        (
            |p| p.state_dir = "/var/lib/bluegreen/api".parse().unwrap(),
            "state-dir /var/lib/bluegreen/api: this key uses /var/lib/bluegreen/shop only",
        ),
        (
            |p| p.switch.upstream_file = "/etc/nginx/nginx.conf".parse().unwrap(),
            "upstream-file /etc/nginx/nginx.conf: this key uses /etc/nginx/conf.d/bluegreen-shop.conf only",
        ),
        (
            |p| p.switch.log_dir = "/tmp".parse().unwrap(),
            "log-dir /tmp: this key uses /var/log/bluegreen only",
        ),
        (
            |p| p.systemd_unit_dir = "/tmp".parse().unwrap(),
            "systemd-unit-dir /tmp: this key uses /etc/systemd/system only",
        ),
        (
            |p| p.switch.reload_cmd = CommandLine::new(["sh", "-c", "id"]),
            "reload-command: this key runs `nginx -s reload` only",
        ),
        (
            |p| p.switch.nft_cmd = CommandLine::new(["./nft"]),
            "nft-command: this key runs `nft` only",
        ),
        (
            |p| p.switch.service_port = "5432".parse().unwrap(),
            "service-port 5432: this key takes 25107 only (the one the app's state records, else the default)",
        ),
        (
            |p| p.runtime.image = Some("billing:prod".parse().unwrap()),
            "image billing:prod: not of a repository this key deploys (shop)",
        ),
        (
            |p| p.upstream_template = Some("/tmp/t.j2".parse().unwrap()),
            "upstream-template: a template of the key's choosing is not taken",
        ),
        (
            |p| p.hooks.pre_switch = Some(CommandLine::new(["id"])),
            "pre-switch-command: commands on the host are not run for this key",
        ),
        (
            |p| p.hooks.step = Some(CommandLine::new(["id"])),
            "step-command: commands on the host are not run for this key",
        ),
        (
            |p| p.maintenance.page = Some("/root/.ssh/id_ed25519".parse().unwrap()),
            "maintenance-page: a file of the host is not served for this key (the built-in page is)",
        ),
        (
            |p| p.runtime.runtime = Runtime::Command,
            "runtime command: this key deploys with the docker runtime only",
        ),
        (
            |p| p.runtime.env_file = Some("/root/.env".parse().unwrap()),
            "env-file /root/.env: not one this key may give a container (/srv/shop/env)",
        ),
    ];
    for (change, said) in cases {
        let mut plan = base.clone();
        change(&mut plan);
        assert_eq!(policy().refusals(&plan, None), [said], "{said}");
    }
    // Once state records ports, they are the only ones.
    let recorded = State::new(&base.app)
        .after_switch(Slot::Blue, base.ports, Some("v1"), None, "t1")
        .switched_by(crate::input::SwitchMode::Nftables, 3000);
    let mut at_recorded = base.clone();
    at_recorded.switch.service_port = "3000".parse().unwrap();
    assert_eq!(
        policy().refusals(&at_recorded, Some(&recorded)),
        Vec::<String>::new()
    );
    assert_eq!(
        policy().refusals(&base, Some(&recorded)),
        [format!(
            "service-port {}: this key takes 3000 only (the one the app's state records, else the default)",
            base.switch.service_port
        )]
    );
    let mut other_ports = at_recorded.clone();
    other_ports.ports = crate::input::SlotPorts::new(2375, 3002).unwrap();
    other_ports.switch.service_port = "3000".parse().unwrap();
    assert_eq!(
        policy().refusals(&other_ports, Some(&recorded)),
        [
            "blue-port 2375 and green-port 3002: this key takes 3001 and 3002 only (the ones the app's state records, else those given with bluegreen gate --ports, else the defaults)"
        ]
    );
    let mut probing_out = base.clone();
    probing_out.watch.url = Some("http://169.254.169.254/latest/meta-data/".parse().unwrap());
    assert_eq!(
        policy().refusals(&probing_out, None),
        [
            "monitor-url http://169.254.169.254/latest/meta-data/: this key's probes stay on the host (localhost, 127.0.0.1, [::1]): an answer's text can reach the log"
        ]
    );
    // Before state records ports: the defaults, or those root gave the gate.
    let mut elsewhere = base.clone();
    elsewhere.ports = crate::input::SlotPorts::new(4001, 4002).unwrap();
    elsewhere.switch.service_port =
        crate::config::default_service_port(&elsewhere.app, elsewhere.ports);
    assert_eq!(
        policy().refusals(&elsewhere, None),
        [
            "blue-port 4001 and green-port 4002: this key takes 3001 and 3002 only (the ones the app's state records, else those given with bluegreen gate --ports, else the defaults)"
        ]
    );
    let given = Policy {
        ports: vec![(elsewhere.app.clone(), elsewhere.ports)],
        ..policy()
    };
    assert_eq!(given.refusals(&elsewhere, None), Vec::<String>::new());
    let other_app = DeployPlan {
        app: "api".parse().unwrap(),
        ..base.clone()
    };
    assert_eq!(
        policy().refusals(&other_app, None)[0],
        "app api: this key deploys shop only"
    );
    let mut escaping = base.clone();
    escaping.runtime.docker_args = vec!["--privileged".into(), "-v".into(), "/:/host".into()];
    assert_eq!(policy().refusals(&escaping, None).len(), 2);
    let mut allowed = base;
    allowed.runtime.env_file = Some("/srv/shop/env".parse().unwrap());
    allowed.runtime.docker_args = vec!["-v".into(), "/srv/shop/data:/data".into()];
    assert_eq!(policy().refusals(&allowed, None), Vec::<String>::new());
}
