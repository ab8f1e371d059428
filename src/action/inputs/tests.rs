//! The inputs' parsing: defaults, all problems at once, rules across inputs, and what a
//! failed run may report.

use std::collections::HashMap;

use super::source::parse_hosts;
use super::*;
use crate::canary::CanarySpec;
use crate::input::{HostPort, SlotPorts};

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let mut m: HashMap<String, String> = [
        ("host", "203.0.113.7"),
        ("username", "deploy"),
        ("ssh-key", "KEY"),
        ("known-hosts", "203.0.113.7 ssh-ed25519 AAAA"),
        ("app", "shop"),
        ("image", "ghcr.io/acme/shop:1"),
    ]
    .iter()
    .map(|(k, v)| (env_name(k), v.to_string()))
    .collect();
    for (k, v) in pairs {
        m.insert(env_name(k), v.to_string());
    }
    m
}

fn error_of(pairs: &[(&str, &str)]) -> String {
    Inputs::from_env(&env(pairs)).unwrap_err().error.to_string()
}

#[test]
fn defaults_fill_the_plan() {
    let i = Inputs::from_env(&env(&[])).unwrap();
    assert_eq!(i.hosts, [SshTarget::parse("203.0.113.7", 22).unwrap()]);
    assert_eq!(
        i.fleet,
        FleetSpec {
            batch: "1".parse().unwrap(),
            canary_hosts: 0,
            max_unreachable: 0,
            rollback: true
        }
    );
    let p = &i.plan;
    assert_eq!(p.ports, SlotPorts::new(3001, 3002).unwrap());
    assert_eq!(p.runtime.container_port.get(), 8080);
    assert_eq!(p.health.path.as_str(), "/health");
    assert_eq!(p.version.as_str(), "unversioned");
    assert_eq!(p.state_dir.as_str(), "/var/lib/bluegreen/shop");
    assert_eq!(
        p.switch.upstream_file.as_str(),
        "/etc/nginx/conf.d/bluegreen-shop.conf"
    );
    assert_eq!(p.switch.test_cmd.argv(), ["nginx", "-t"]);
    assert_eq!(
        p.switch.reload_timeout,
        crate::config::seconds(defaults::RELOAD_TIMEOUT)
    );
    assert!(p.watch.rollback_on_failure);
    // A 404 from a mistyped monitor URL is a failed request, not a success.
    assert!(p.watch.accept_status.contains(302) && !p.watch.accept_status.contains(404));
    assert_eq!(i.notify_on, NotifyOn::Failure);
    assert_eq!(i.image_transfer, ImageTransfer::Registry);
}

#[test]
fn hosts_lists_and_ports() {
    let h = parse_hosts("a.example.com, b:2222\n[::1]:2200\ndeploy@c\n", 22).unwrap();
    assert_eq!(
        h.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["a.example.com:22", "b:2222", "[::1]:2200", "deploy@c:22"]
    );
    let twice = parse_hosts("web1, deploy@WEB1:22", 22)
        .unwrap_err()
        .to_string();
    assert!(twice.contains("WEB1:22 is named twice"), "{twice}");
    assert!(
        parse_hosts("web1, web1:2222", 22).is_ok(),
        "another port is another host"
    );
    for bad in ["", "-oProxyCommand=x", "a b", "[::1", "x:0"] {
        assert!(parse_hosts(bad, 22).is_err(), "{bad}");
    }
}

#[test]
fn every_bad_input_is_reported_at_once() {
    let e = error_of(&[
        ("app", "Bad App"),
        ("blue-port", "70000"),
        ("runtime", "podman"),
        ("max-error-rate", "5"),
        ("retire", "later"),
        ("known-hosts", ""),
        ("nginx-test-command", "nginx 'unterminated"),
        ("health-timeout", "0"),
    ]);
    for needle in [
        "`app`",
        "`blue-port`",
        "`runtime`",
        "`max-error-rate`",
        "`retire`",
        "`known-hosts`",
        "`nginx-test-command`",
        "`health-timeout`",
    ] {
        assert!(e.contains(needle), "{needle} missing from {e}");
    }
    assert!(
        e.contains("expected one of docker, compose, command"),
        "{e}"
    );
}

#[test]
fn rules_that_span_inputs_are_checked_once_the_inputs_parse() {
    let e = error_of(&[("switch-mode", "nftables"), ("service-port", "3001")]);
    assert!(e.contains("service-port 3001 is a slot's port"), "{e}");
    let e = error_of(&[("runtime", "command")]);
    assert!(e.contains("deploy-command"), "{e}");
    let e = error_of(&[("blue-port", "3005"), ("green-port", "3005")]);
    assert!(e.contains("different"), "{e}");
    // The maintenance port is checked whatever the command, and said once.
    for command in ["deploy", "setup", "rollback"] {
        let e = error_of(&[("command", command), ("maintenance-port", "3001")]);
        assert_eq!(
            e.matches("maintenance-port 3001 is a slot's port").count(),
            1,
            "{command}: {e}"
        );
    }
}

#[test]
fn a_failure_keeps_only_valid_values_to_report_with() {
    let bad = Inputs::from_env(&env(&[
        ("version", "v2$(touch /tmp/x)"),
        ("slack-webhook", "hooks.example/T000/SECRET"),
        ("command", "rollback"),
    ]))
    .unwrap_err();
    let text = bad.error.to_string();
    assert!(
        !text.contains("SECRET"),
        "the webhook never appears in errors: {text}"
    );
    assert!(bad.known.version.is_none());
    assert!(bad.known.slack_webhook.is_none());
    assert_eq!(bad.known.operation, Some(Operation::Rollback));
    assert_eq!(bad.known.app.unwrap().as_str(), "shop");
}

#[test]
fn dependencies_and_compose_services_are_lists() {
    let i = Inputs::from_env(&env(&[
        ("check-tcp", "127.0.0.1:5432, db:6379\n[::1]:11211"),
        ("compose-services", "web worker"),
    ]))
    .unwrap();
    let deps: Vec<String> = i.plan.check_tcp.iter().map(HostPort::to_string).collect();
    assert_eq!(deps, ["127.0.0.1:5432", "db:6379", "[::1]:11211"]);
    assert_eq!(i.plan.runtime.compose_services.len(), 2);
    assert!(
        Inputs::from_env(&env(&[]))
            .unwrap()
            .plan
            .check_tcp
            .is_empty()
    );
    let error = error_of(&[("check-tcp", "db")]);
    assert!(
        error.contains("check-tcp") && error.contains("missing :PORT"),
        "{error}"
    );
    // The plan a host receives reads them back through the same parsers.
    let json = serde_json::to_string(&i.plan).unwrap();
    assert!(json.contains(r#""check_tcp":["127.0.0.1:5432","db:6379","[::1]:11211"]"#));
    let back: DeployPlan = serde_json::from_str(&json).unwrap();
    assert_eq!(back.check_tcp, i.plan.check_tcp);
}

#[test]
fn traffic_steps_and_their_companions() {
    let i = Inputs::from_env(&env(&[
        ("traffic-steps", "5, 25 50,100"),
        ("step-seconds", "30"),
        ("canary-pause-at", "25"),
        ("canary-min-requests", "50"),
    ]))
    .unwrap();
    let canary = i.plan.canary.expect("a canary spec");
    assert_eq!(canary.steps.to_string(), "5,25,50");
    assert_eq!(canary.step_duration, std::time::Duration::from_secs(30));
    assert_eq!(canary.pause_at.map(|s| s.percent()), Some(25));
    assert_eq!((canary.min_requests, canary.p95_margin_ms), (50, 100));
    assert!(Inputs::from_env(&env(&[])).unwrap().plan.canary.is_none());

    let e = error_of(&[("canary-pause-at", "25")]);
    assert!(e.contains("`canary-pause-at` needs `traffic-steps`"), "{e}");
    let e = error_of(&[("traffic-steps", "5,25"), ("canary-pause-at", "50")]);
    assert!(e.contains("is not one of the traffic-steps (5,25)"), "{e}");
    let e = error_of(&[("traffic-steps", "50,25")]);
    assert!(e.contains("the steps must rise"), "{e}");
    let e = error_of(&[("command", "promote")]);
    assert!(e.contains("promote needs traffic-steps"), "{e}");
}

/// The inputs of action.yml, each with its default ("" where it has none).
fn action_yml_inputs() -> Vec<(String, String)> {
    let text = include_str!("../../../action.yml");
    let action = yaml_rust2::YamlLoader::load_from_str(text)
        .unwrap()
        .remove(0);
    action["inputs"]
        .as_hash()
        .unwrap()
        .iter()
        .map(|(name, input)| {
            let default = input["default"].as_str().unwrap_or("");
            (name.as_str().unwrap().to_owned(), default.to_owned())
        })
        .collect()
}

/// The inputs read before the plan is built (see `table`).
const READ_BEFORE_THE_PLAN: &[&str] = &[
    "host",
    "port",
    "batch-size",
    "canary-hosts",
    "max-unreachable",
    "fleet-rollback",
    "username",
    "ssh-key",
    "known-hosts",
    "insecure-skip-host-key-check",
    "proxy-jump",
    "app",
    "command",
    "version",
    "blue-port",
    "green-port",
    "image-transfer",
    "slack-webhook",
    "notify-on",
];

#[test]
fn every_input_of_action_yml_has_one_row_or_is_read_before_the_plan() {
    let mut declared: Vec<&str> = table::PLAN_INPUTS.iter().map(|i| i.name).collect();
    declared.extend(READ_BEFORE_THE_PLAN);
    let mut sorted = declared.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), declared.len(), "an input is declared twice");
    let action = action_yml_inputs();
    let mut in_action: Vec<&str> = action.iter().map(|(name, _)| name.as_str()).collect();
    in_action.sort_unstable();
    assert_eq!(sorted, in_action);
    for row in table::PLAN_INPUTS {
        let (_, default) = action.iter().find(|(name, _)| name == row.name).unwrap();
        assert_eq!(row.default, default, "the default of {}", row.name);
    }
}

#[test]
fn every_rows_default_is_the_plans_default() {
    let app: AppName = "shop".parse().unwrap();
    let ports = SlotPorts::new(3001, 3002).unwrap();
    let defaults = DeployPlan::defaults(&app, ports);
    let mut with_steps = defaults.clone();
    with_steps.canary = Some(CanarySpec::defaults("5,50".parse().unwrap()));
    for plan in [defaults, with_steps] {
        let mut applied = plan.clone();
        for row in table::PLAN_INPUTS
            .iter()
            .filter(|row| !row.default.is_empty())
        {
            let value = Value {
                name: row.name,
                raw: row.default,
            };
            (row.apply)(&mut applied, &value).unwrap();
            assert_eq!(applied, plan, "the default of {}", row.name);
        }
    }
}

#[test]
fn a_given_include_moves_the_server_blocks_default_beside_it_unless_one_is_given() {
    let beside = Inputs::from_env(&env(&[("upstream-file", "/etc/nginx/sites/shop.conf")]))
        .unwrap()
        .plan;
    assert_eq!(
        beside.site.server_file.as_str(),
        "/etc/nginx/sites/bluegreen-shop.server.conf"
    );
    let named = Inputs::from_env(&env(&[
        ("upstream-file", "/etc/nginx/sites/shop.conf"),
        ("server-file", "/etc/nginx/sites-enabled/shop"),
    ]))
    .unwrap()
    .plan;
    assert_eq!(
        named.site.server_file.as_str(),
        "/etc/nginx/sites-enabled/shop"
    );
}
