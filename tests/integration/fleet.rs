//! Fleets end to end, on three hosts of their own (network and mount namespaces made by
//! `scripts/fleet-target`, each with its sshd, nginx and slots), through the orchestrator
//! `action.yml` runs: all succeed in batches; a failing canary host stops the run before
//! any other host changes; a failing third host rolls back the first two; an unreachable
//! host stops the run before anything changes, unless allowed; a host whose sshd is killed
//! mid-run fails and the hosts already switched are rolled back; a canary left paused on one
//! host is aborted when a later host fails; a fleet that fails to start half-way leaves no
//! namespace behind; an nginx balancer in front of the fleet (no retries to hide a failure)
//! answers every request while the whole fleet deploys at once; `max-failed-requests` holds
//! the fleet's failed requests added up, and the fleet's receipt counts each host's deploy
//! and rollback. Every test ends with each host serving a healthy slot.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Fleet, Nginx, Traffic, free_port, wait_for_port};

/// Every host of `fleet` serves `version` from a healthy slot.
fn all_serve(fleet: &Fleet, version: &str) {
    for n in 1..=fleet.count {
        assert_eq!(fleet.serving(n).1, version, "host {n}");
    }
}

/// Each group of the job log holds one host's lines: hosts that run side by side (all of
/// them connecting, several going back together) write no groups, which would interleave.
fn groups_hold_one_host(log: &str) {
    let mut open: Option<&str> = None;
    for line in log.lines() {
        if let Some(title) = line.strip_prefix("::group::") {
            assert!(open.is_none(), "a group inside a group: {line}\n{log}");
            open = Some(title.split("] ").next().unwrap_or(title));
        } else if line == "::endgroup::" {
            open = None;
        } else if let Some(host) = open.filter(|_| line.starts_with('[')) {
            assert!(
                line.starts_with(&format!("{host}] ")),
                "a line of another host inside {host}]'s group: {line}\n{log}"
            );
        }
    }
}

#[test]
fn a_fleet_deploys_in_batches_with_one_summary() {
    require!(Root, Nginx, Sshd, Namespaces);
    let fleet = Fleet::serving_v1(3);
    let run = fleet.run(&[("VERSION", "v2"), ("BATCH_SIZE", "2")]);
    assert_eq!(run.output("result"), "deployed", "{}", run.log);
    all_serve(&fleet, "v2");
    for n in 1..=3 {
        let host = fleet.host(n);
        assert!(
            run.log.contains(&format!("[{host}:22] ok switch")),
            "prefixed: {}",
            run.log
        );
        assert!(
            run.summary.contains(&format!("| {host}:22 | deployed |")),
            "{}",
            run.summary
        );
    }
}

#[test]
fn a_failing_canary_host_stops_the_run_before_any_other_host_changes() {
    require!(Root, Nginx, Sshd, Namespaces);
    let fleet = Fleet::serving_v1(3);
    fleet.break_next_slot(1, "--health unhealthy");
    let before: Vec<String> = (2..=3).map(|n| fleet.history(n)).collect();
    let run = fleet.run(&[
        ("VERSION", "v2"),
        ("CANARY_HOSTS", "1"),
        ("BATCH_SIZE", "2"),
        ("HEALTH_TIMEOUT", "3"),
    ]);
    assert_eq!(run.output("result"), "failed", "{}", run.log);
    all_serve(&fleet, "v1");
    assert_eq!(
        (2..=3).map(|n| fleet.history(n)).collect::<Vec<_>>(),
        before,
        "the other hosts were not touched"
    );
    assert!(run.log.contains("not started"), "{}", run.log);
}

#[test]
fn a_failing_third_host_rolls_back_the_first_two() {
    require!(Root, Nginx, Sshd, Namespaces);
    let fleet = Fleet::serving_v1(3);
    fleet.break_next_slot(3, "--health unhealthy");
    let run = fleet.run(&[("VERSION", "v2"), ("HEALTH_TIMEOUT", "3")]);
    assert_eq!(run.output("result"), "failed", "{}", run.log);
    all_serve(&fleet, "v1");
    // One host at a time (batch-size 1) has groups; connecting, and the two going back
    // together, do not interleave them.
    assert!(run.log.contains("::group::"), "{}", run.log);
    groups_hold_one_host(&run.log);
    for n in 1..=2 {
        assert!(
            run.summary
                .contains(&format!("| {}:22 | rolled-back |", fleet.host(n))),
            "{}",
            run.summary
        );
        assert!(fleet.history(n).contains("fleet rollback"), "host {n}");
    }
}

#[test]
fn a_canary_left_paused_on_one_host_is_aborted_when_a_later_host_fails() {
    require!(Root, Nginx, Sshd, Namespaces);
    let fleet = Fleet::serving_v1(2);
    fleet.break_next_slot(2, "--health unhealthy");
    let run = fleet.run(&[
        ("VERSION", "v2"),
        ("TRAFFIC_STEPS", "50"),
        ("CANARY_PAUSE_AT", "50"),
        ("STEP_SECONDS", "1"),
        ("HEALTH_TIMEOUT", "3"),
    ]);
    assert_eq!(run.output("result"), "failed", "{}", run.log);
    let host1 = fleet.host(1);
    assert!(
        run.log
            .contains(&format!("aborting the paused canaries of {host1}:22")),
        "{}",
        run.log
    );
    assert!(
        run.summary
            .contains(&format!("| {host1}:22 | rolled-back |")),
        "{}",
        run.summary
    );
    // No share of host 1's requests goes to the canary any more.
    for _ in 0..10 {
        all_serve(&fleet, "v1");
    }
}

#[test]
fn an_unreachable_host_stops_the_run_before_anything_changes_unless_allowed() {
    require!(Root, Nginx, Sshd, Namespaces);
    let fleet = Fleet::serving_v1(3);
    let hosts = format!(
        "{},{},{},127.0.0.1:{}",
        fleet.host(1),
        fleet.host(2),
        fleet.host(3),
        crate::support::free_port()
    );
    let before: Vec<String> = (1..=3).map(|n| fleet.history(n)).collect();
    let run = fleet.run(&[("VERSION", "v2"), ("HOST", &hosts)]);
    assert_eq!(run.output("result"), "failed", "{}", run.log);
    assert!(run.log.contains("1 of 4 hosts unreachable"), "{}", run.log);
    assert_eq!(
        (1..=3).map(|n| fleet.history(n)).collect::<Vec<_>>(),
        before
    );
    all_serve(&fleet, "v1");

    let allowed = fleet.run(&[
        ("VERSION", "v2"),
        ("HOST", &hosts),
        ("MAX_UNREACHABLE", "1"),
        ("BATCH_SIZE", "3"),
    ]);
    assert_eq!(allowed.output("result"), "deployed", "{}", allowed.log);
    all_serve(&fleet, "v2");
}

#[test]
fn a_host_whose_sshd_is_killed_mid_run_fails_and_the_switched_hosts_roll_back() {
    require!(Root, Nginx, Sshd, Namespaces);
    let fleet = Fleet::serving_v1(3);
    // Host 2's new version takes a while to become healthy: time to cut it off.
    fleet.break_next_slot(2, "--ready-after 5s");
    let log = std::env::temp_dir().join(format!("fleet-kill-{}.log", std::process::id()));
    let mut child = fleet.spawn(&[("VERSION", "v2"), ("HEALTH_TIMEOUT", "30")], &log);
    let host2 = format!("[{}:22] ok deploy standby", fleet.host(2));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains(&host2)
    {
        assert!(
            Instant::now() < deadline,
            "host 2 never started its standby"
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    fleet.kill_sshd(2);
    let status = child.wait().unwrap();
    let run = fleet.finished(status, &log);
    assert_eq!(run.output("result"), "failed", "{}", run.log);
    // The log says why host 2 failed, in one error annotation.
    let said: Vec<&str> = run
        .log
        .lines()
        .filter(|l| l.starts_with(&format!("::error::[{}:22]", fleet.host(2))))
        .collect();
    assert_eq!(said.len(), 1, "{}", run.log);
    assert!(said[0].contains("ended without a result"), "{}", run.log);
    assert!(
        run.summary
            .contains(&format!("| {}:22 | rolled-back |", fleet.host(1))),
        "{}",
        run.summary
    );
    // Host 2's own run saw its connection close and stopped before its switch.
    let deadline = Instant::now() + Duration::from_secs(30);
    while fleet
        .history(2)
        .lines()
        .last()
        .is_none_or(|l| !l.contains("cancelled"))
    {
        assert!(Instant::now() < deadline, "{}", fleet.history(2));
        std::thread::sleep(Duration::from_millis(100));
    }
    all_serve(&fleet, "v1");
    let _ = std::fs::remove_file(log);
}

#[test]
fn a_fleet_that_fails_to_start_half_way_leaves_no_namespace_behind() {
    require!(Root, Nginx, Sshd, Namespaces);
    // An nginx that never starts: every host's namespace is made, then no sshd comes up.
    let shims = tempfile::tempdir().unwrap();
    let nginx = shims.path().join("nginx");
    std::fs::write(&nginx, "#!/bin/sh\nexit 1\n").unwrap();
    std::fs::set_permissions(&nginx, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tempfile::tempdir().unwrap().keep();
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/fleet-target"))
        .arg("start")
        .arg(&dir)
        .arg("2")
        .env(
            "PATH",
            format!(
                "{}:{}",
                shims.path().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("DEMO_APP", env!("CARGO_BIN_EXE_demo-app"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let made: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.split("network namespace ").nth(1))
        .map(|ns| ns.trim_end_matches(')'))
        .collect();
    assert_eq!(made.len(), 2, "{stderr}");
    let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    for ns in &made {
        assert!(
            !listed
                .lines()
                .any(|l| l.split_whitespace().next() == Some(ns)),
            "{ns} is left: {listed}"
        );
    }
    assert!(!dir.exists(), "the fleet's directory is left");
}

#[test]
fn a_balancer_in_front_of_the_fleet_answers_every_request_while_all_hosts_deploy_at_once() {
    require!(Root, Nginx, Sshd, Namespaces);
    let fleet = Fleet::serving_v1(3);
    // nginx as the balancer, on this machine, in front of the three hosts' sites; a failed
    // request is not retried on another host (`proxy_next_upstream off`), so a host that
    // dropped one shows as a failed request.
    let dir = tempfile::tempdir().unwrap();
    let balancer = Nginx::start_bare(dir.path(), "balancer");
    let port = free_port();
    let servers: String = (1..=fleet.count)
        .map(|n| format!("    server {}:8080;\n", fleet.host(n)))
        .collect();
    std::fs::write(
        dir.path().join("conf.d/balancer.conf"),
        format!(
            "upstream fleet_hosts {{\n{servers}}}\nserver {{\n    listen 127.0.0.1:{port};\n    location / {{\n        proxy_pass http://fleet_hosts;\n        proxy_next_upstream off;\n    }}\n}}\n"
        ),
    )
    .unwrap();
    balancer.reload();
    wait_for_port(port, Duration::from_secs(10));
    let traffic = Traffic::start(format!("http://127.0.0.1:{port}/"));
    for version in ["v2", "v3"] {
        let run = fleet.run(&[("VERSION", version), ("BATCH_SIZE", "100%")]);
        assert_eq!(run.output("result"), "deployed", "{}", run.log);
        all_serve(&fleet, version);
    }
    let (requests, bad) = traffic.finish();
    assert!(
        requests > 50,
        "only {requests} requests went through the balancer"
    );
    assert!(
        bad.is_empty(),
        "{} of {requests} requests failed through the balancer: {bad:?}",
        bad.len()
    );
}

#[test]
fn max_failed_requests_is_the_fleets_and_its_receipt_adds_up_each_hosts() {
    require!(Root, Nginx, Sshd, Namespaces);
    let fleet = Fleet::serving_v1(2);
    // The new version fails every page while its health URL answers. Each host's
    // post-switch command, after that host's watch, asks its own site twice: 2 failed
    // requests on each host's receipt, within max-failed-requests 3 there, 4 across the
    // fleet. The old slots keep running (retire: keep), untouched by the fault.
    for n in 1..=2 {
        fleet.break_next_slot(n, "--error-rate 1");
    }
    let inputs = |fleet_rollback: &'static str| {
        [
            ("VERSION", "v2"),
            ("RETIRE", "keep"),
            ("MAX_FAILED_REQUESTS", "3"),
            ("FLEET_ROLLBACK", fleet_rollback),
            (
                "POST_SWITCH_COMMAND",
                "curl --silent --output /dev/null --output /dev/null http://127.0.0.1:8080/one http://127.0.0.1:8080/two",
            ),
        ]
    };
    let host = |n: usize| format!("{}:22", fleet.host(n));

    // One host after another: the second makes the fleet's count 4, and both go back.
    let run = fleet.run(&inputs("true"));
    assert_eq!(run.output("result"), "rolled-back", "{}", run.log);
    all_serve(&fleet, "v1");
    assert!(
        run.log.contains("stopping the fleet here: the users' failed requests across the fleet so far (4) are above max-failed-requests 3"),
        "{}",
        run.log
    );
    // Each host's deploy and its rollback are counted: the rollbacks failed none.
    assert_eq!(run.output("failed-requests"), "4", "{}", run.summary);
    let requests: u64 = run.output("requests").parse().unwrap();
    assert!(requests >= 4, "{}", run.summary);
    assert!(
        run.summary.contains(&format!(
            "Users' requests across the fleet (nginx's logs of 2 hosts): {requests} requests, 4 failed ({} 2, {} 2)",
            host(1),
            host(2)
        )),
        "{}",
        run.summary
    );
    for n in 1..=2 {
        assert!(
            run.summary
                .contains(&format!("| {} | rolled-back |", host(n))),
            "{}",
            run.summary
        );
    }
    assert_eq!(
        run.summary
            .matches("Users' requests of the deploy, from its start to its end (nginx's log): ")
            .count(),
        2,
        "{}",
        run.summary
    );
    assert_eq!(
        run.summary
            .matches("Users' requests of the fleet's rollback (nginx's log): ")
            .count(),
        2,
        "{}",
        run.summary
    );

    // Without fleet-rollback the hosts keep the new version, and the run fails, saying so.
    let kept = fleet.run(&inputs("false"));
    assert_eq!(kept.output("result"), "failed", "{}", kept.log);
    let error = format!(
        "the users' failed requests across the fleet so far (4) are above max-failed-requests 3; {}, {} kept the new version",
        host(1),
        host(2)
    );
    assert!(kept.log.contains(&error), "{}", kept.log);
    assert!(
        kept.summary.contains(&format!("**Error:** {error}")),
        "{}",
        kept.summary
    );
    let back = fleet.run(&[("COMMAND", "rollback")]);
    assert_eq!(back.output("result"), "rolled-back", "{}", back.log);
    all_serve(&fleet, "v1");
}
