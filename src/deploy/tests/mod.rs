//! The engine driven through a recording fake host: each test reads back one timeline of
//! what the engine did (phase starts from its events, then every command, health check,
//! switch and watch the fake was asked for) and asserts it exactly, so a change of phase
//! order, of a command line, or of a condition on a switch fails here. State, history and
//! the lock are real files in a temporary directory.

mod fake;

use std::time::Duration;

use crate::cancel::{Cancel, CancelReason};
use crate::error::ErrorKind;
use crate::input::Slot;
use crate::lock::AppLock;
use crate::runtime::Runtime;
use crate::switch::SwitchMode;

use super::{DeployPlan, Engine, Event, Operation, Outcome, Phase};
use fake::{FakeHost, live, plan};

/// Runs `plan` on `host`; the result and the timeline, phase starts included.
fn run(plan: &DeployPlan, host: &FakeHost) -> (super::DeployResult, Vec<String>) {
    run_cancellable(plan, host, Cancel::new())
}

/// Like [`run`], with `cancel` as the run's cancellation flag.
fn run_cancellable(
    plan: &DeployPlan,
    host: &FakeHost,
    cancel: Cancel,
) -> (super::DeployResult, Vec<String>) {
    let emit = |event: &Event| match event {
        Event::PhaseStart { phase } => host.note(format!("phase {}", phase.as_str())),
        Event::Result(r) => host.note(format!("result {}", r.result.unwrap().as_str())),
        _ => {}
    };
    let result = Engine::new(plan, host, &emit).cancellable(cancel).run();
    (result, host.timeline())
}

fn active_slot(plan: &DeployPlan) -> Option<Slot> {
    plan.store()
        .load(&plan.app, plan.switch.upstream_file.as_path(), plan.ports)
        .unwrap()
        .state
        .active
}

/// How every deploy starts: the lock, the reconcile check of where nginx routes, validation.
const OPENING: [&str; 4] = ["phase lock", "routed", "phase validate", "validate"];

/// `OPENING` followed by `rest`.
fn after_opening(rest: &[&str]) -> Vec<String> {
    OPENING.iter().chain(rest).map(|s| s.to_string()).collect()
}

const DOCKER_RUN_GREEN: &str = "run docker run --detach --name shop-green --pull never --publish 127.0.0.1:3002:8080 --restart unless-stopped --label bluegreen.app=shop --label bluegreen.slot=green --label bluegreen.version=v2 --env BLUEGREEN_APP=shop --env BLUEGREEN_SLOT=green --env BLUEGREEN_PORT=3002 --env BLUEGREEN_IMAGE=shop:2 --env BLUEGREEN_VERSION=v2 shop:2";

#[test]
fn a_first_deploy_goes_to_blue_and_retires_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Command);
    let host = FakeHost::new().healthy(Slot::Blue, &[true]);
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
    assert_eq!(
        timeline,
        after_opening(&[
            "phase deploy standby",
            "run sh -c ./slot.sh bluegreen-deploy-command",
            "phase health-check standby",
            "health http://127.0.0.1:3001/health x2",
            "phase switch",
            "switch to blue (switch)",
            "phase monitor",
            "watch http://127.0.0.1:8000/",
            "result deployed",
        ])
    );
    assert_eq!(active_slot(&plan), Some(Slot::Blue));
    assert_eq!(result.exit_code(), 0);
}

#[test]
fn a_second_deploy_goes_to_green_and_retires_blue_after_the_drain() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Docker);
    live(&plan, None, Slot::Blue, "v1");
    let host = FakeHost::new().healthy(Slot::Green, &[true]);
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
    assert_eq!(
        timeline,
        after_opening(&[
            "phase deploy standby",
            "run docker rm --force shop-green",
            DOCKER_RUN_GREEN,
            "phase health-check standby",
            "health http://127.0.0.1:3002/health x2",
            "phase switch",
            "switch to green only-if blue (switch)",
            "phase monitor",
            "watch http://127.0.0.1:8000/",
            "result deployed",
            "phase retire",
            "pause 5s",
            "run docker stop --time 30 shop-blue",
            "run nft list table ip bluegreen_shop",
        ])
    );
    let phases: Vec<Phase> = result.phases.iter().map(|p| p.phase).collect();
    assert_eq!(
        phases,
        [
            Phase::Lock,
            Phase::Validate,
            Phase::DeployStandby,
            Phase::HealthCheck,
            Phase::Switch,
            Phase::Monitor,
            Phase::Retire
        ]
    );
    assert!(
        result
            .phases
            .windows(2)
            .all(|w| w[0].start_ms <= w[1].start_ms)
    );
    assert_eq!(
        (result.active_slot, result.previous_slot),
        (Some(Slot::Green), Some(Slot::Blue))
    );
    assert_eq!(result.active_version.as_deref(), Some("v2"));
}

#[test]
fn a_standby_that_never_gets_healthy_is_stopped_once_and_never_switched_to() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Docker);
    live(&plan, None, Slot::Blue, "v1");
    let host = FakeHost::new().healthy(Slot::Green, &[false]);
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Failed));
    assert_eq!(result.failed_phase, Some(Phase::HealthCheck));
    assert_eq!(result.error.as_ref().unwrap().kind, ErrorKind::CheckFailed);
    assert_eq!(
        timeline[timeline.len() - 5..],
        [
            "phase health-check standby",
            "health http://127.0.0.1:3002/health x2",
            "run docker stop --time 30 shop-green",
            "run docker logs --tail 40 shop-green",
            "result failed",
        ]
    );
    assert!(
        !timeline.iter().any(|l| l.starts_with("switch")),
        "{timeline:?}"
    );
    assert_eq!(active_slot(&plan), Some(Slot::Blue));
    assert_eq!(result.exit_code(), 1);
}

#[test]
fn a_failed_watch_switches_back_only_while_the_new_slot_is_live() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Docker);
    live(&plan, None, Slot::Blue, "v1");
    let host = FakeHost {
        watch_passes: false,
        ..FakeHost::new().healthy(Slot::Green, &[true])
    };
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::RolledBack), "{result:?}");
    assert_eq!(
        timeline[timeline.len() - 8..],
        [
            "switch to green only-if blue (switch)",
            "phase monitor",
            "watch http://127.0.0.1:8000/",
            "phase rollback",
            "switch to blue only-if green (rollback)",
            "run docker logs --tail 40 shop-green",
            "run docker stop --time 30 shop-green",
            "result rolled-back",
        ]
    );
    assert!(result.error.unwrap().message.contains("error rate"));
    assert_eq!(active_slot(&plan), Some(Slot::Blue));
}

#[test]
fn with_rollback_off_a_failed_watch_leaves_the_new_slot_live() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan(dir.path(), Runtime::Docker);
    plan.watch.rollback_on_failure = false;
    live(&plan, None, Slot::Blue, "v1");
    let host = FakeHost {
        watch_passes: false,
        ..FakeHost::new().healthy(Slot::Green, &[true])
    };
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Failed));
    assert_eq!(result.failed_phase, Some(Phase::Monitor));
    assert_eq!(
        timeline[timeline.len() - 2..],
        ["watch http://127.0.0.1:8000/", "result failed"]
    );
    assert_eq!(active_slot(&plan), Some(Slot::Green));
}

#[test]
fn a_held_lock_fails_at_once_with_exit_code_3() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Docker);
    plan.store().ensure_dir().unwrap();
    let _held =
        AppLock::acquire(plan.store().dir(), "shop", "another deploy", Duration::ZERO).unwrap();
    let host = FakeHost::new();
    let (result, timeline) = run(&plan, &host);
    assert_eq!(timeline, ["phase lock", "result failed"]);
    let error = result.error.as_ref().unwrap();
    assert_eq!(error.kind, ErrorKind::LockHeld);
    assert!(
        error.message.contains("another deploy"),
        "{}",
        error.message
    );
    assert_eq!(result.exit_code(), 3);
}

#[test]
fn failed_validation_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Docker);
    let host = FakeHost {
        validate_fails: true,
        ..FakeHost::new()
    };
    let (result, timeline) = run(&plan, &host);
    assert_eq!(timeline, after_opening(&["result failed"]));
    assert_eq!(result.failed_phase, Some(Phase::Validate));
    assert!(
        result
            .error
            .unwrap()
            .message
            .contains("nginx: the fake's verdict")
    );
}

#[test]
fn the_same_version_live_and_healthy_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Docker);
    live(&plan, None, Slot::Blue, "v2");
    let host = FakeHost::new().healthy(Slot::Blue, &[true]);
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Unchanged));
    assert_eq!(
        timeline,
        [
            "phase lock",
            "routed",
            "health http://127.0.0.1:3001/health x1",
            "result unchanged"
        ]
    );
}

#[test]
fn compose_is_looked_for_by_the_phase_that_starts_the_standby() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Compose);
    let host = FakeHost {
        failing: Some("docker compose version"),
        ..FakeHost::new().healthy(Slot::Blue, &[true])
    };
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
    let compose = format!(
        "docker-compose -p shop-blue -f {}",
        dir.path().join("compose.yml").display()
    );
    let start = timeline
        .iter()
        .position(|l| l == "phase deploy standby")
        .unwrap();
    assert_eq!(
        timeline[start..start + 5],
        [
            "phase deploy standby".to_owned(),
            "run docker compose version".to_owned(),
            "run docker-compose version".to_owned(),
            format!("run {compose} down --remove-orphans"),
            format!("run {compose} up --detach"),
        ]
    );
}

#[test]
fn a_failed_retire_is_a_warning_and_the_deploy_stands() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Docker);
    live(&plan, None, Slot::Blue, "v1");
    let host = FakeHost {
        failing: Some("docker stop"),
        ..FakeHost::new().healthy(Slot::Green, &[true])
    };
    let (result, _) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Deployed));
    assert_eq!(result.failed_phase, None);
    assert!(
        result.warnings[0].starts_with("retire of blue failed"),
        "{:?}",
        result.warnings
    );
}

#[test]
fn rollback_starts_the_stopped_previous_slot_then_switches_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan(dir.path(), Runtime::Docker);
    plan.operation = Operation::Rollback;
    live(&plan, Some((Slot::Blue, "v1")), Slot::Green, "v2");
    // Stopped at first, healthy once started again.
    let host = FakeHost::new().healthy(Slot::Blue, &[false, true]);
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::RolledBack), "{result:?}");
    assert_eq!(
        timeline,
        [
            "phase lock",
            "phase deploy standby",
            "health http://127.0.0.1:3001/health x1",
            "run docker start shop-blue",
            "phase health-check standby",
            "health http://127.0.0.1:3001/health x2",
            "phase switch",
            "switch to blue only-if green (rollback)",
            "result rolled-back",
        ]
    );
    assert_eq!(active_slot(&plan), Some(Slot::Blue));
}

#[test]
fn rollback_refuses_a_previous_port_held_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan(dir.path(), Runtime::Docker);
    plan.operation = Operation::Rollback;
    live(&plan, Some((Slot::Blue, "v1")), Slot::Green, "v2");
    // Blue's port answers healthy, but blue's container is not running.
    let host = FakeHost {
        squatted: Some(Slot::Blue),
        ..FakeHost::new().healthy(Slot::Blue, &[true])
    };
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Failed), "{result:?}");
    assert_eq!(
        timeline,
        [
            "phase lock",
            "phase deploy standby",
            "health http://127.0.0.1:3001/health x1",
            "run docker ps --quiet --filter label=bluegreen.app=shop --filter label=bluegreen.slot=blue",
            "result failed",
        ]
    );
    assert!(
        result
            .error
            .unwrap()
            .message
            .contains("port 3001 of blue answers, but blue's container is not running"),
    );
    assert_eq!(active_slot(&plan), Some(Slot::Green));
}

#[test]
fn reconcile_does_not_follow_a_routed_port_held_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Docker);
    live(&plan, Some((Slot::Green, "v2")), Slot::Blue, "v1");
    let host = FakeHost {
        routed: Some(Slot::Green),
        squatted: Some(Slot::Green),
        ..FakeHost::new().healthy(Slot::Green, &[true])
    };
    let (_, timeline) = run(&plan, &host);
    // nginx goes back to the recorded slot; the deploy then goes on from there.
    assert!(
        timeline.contains(&"switch to blue (reconcile)".to_owned())
            && !timeline.contains(&"switch to green (reconcile)".to_owned()),
        "{timeline:?}"
    );
}

#[test]
fn reconcile_follows_the_routed_slot_when_it_answers() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Docker);
    live(&plan, Some((Slot::Green, "v2")), Slot::Blue, "v1");
    let host = FakeHost {
        routed: Some(Slot::Green),
        ..FakeHost::new().healthy(Slot::Green, &[true])
    };
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Unchanged), "{result:?}");
    assert_eq!(
        timeline,
        [
            "phase lock",
            "routed",
            "health http://127.0.0.1:3002/health x1",
            "run docker ps --quiet --filter label=bluegreen.app=shop --filter label=bluegreen.slot=green",
            "run docker inspect --format {{index .Config.Labels \"bluegreen.version\"}} shop-green",
            "phase reconcile",
            "switch to green (reconcile)",
            "health http://127.0.0.1:3002/health x1",
            "result unchanged",
        ]
    );
    assert_eq!(result.active_version.as_deref(), Some("v2"));
}

#[test]
fn a_dry_run_takes_no_lock_and_switches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan(dir.path(), Runtime::Docker);
    plan.dry_run = true;
    live(&plan, None, Slot::Blue, "v1");
    let host = FakeHost::new();
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Unchanged));
    assert_eq!(
        timeline,
        [
            "phase validate",
            "validate",
            "switch to green (switch) dry-run",
            "result unchanged"
        ]
    );
    assert!(result.upstream_diff.unwrap().contains("3002"));
    assert!(!plan.store().dir().join("lock").exists());
    assert_eq!(active_slot(&plan), Some(Slot::Blue));
}

#[test]
fn an_operation_that_fails_records_its_outcome_in_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Docker);
    let host = FakeHost {
        validate_fails: true,
        ..FakeHost::new()
    };
    run(&plan, &host);
    let history = std::fs::read_to_string(plan.store().history_path()).unwrap();
    assert!(
        history.contains("failed at validate") && history.contains("deploy v2 by test"),
        "{history}"
    );
}

#[test]
fn auto_picks_nftables_where_nft_answers_and_reload_where_it_does_not() {
    for (failing, mode, why) in [
        (
            None,
            SwitchMode::Nftables,
            "auto: `nft list tables` answers",
        ),
        (
            Some("nft list tables"),
            SwitchMode::Reload,
            "auto: nftables cannot be used here",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut plan = plan(dir.path(), Runtime::Command);
        plan.switch.mode = SwitchMode::Auto;
        let host = FakeHost {
            failing,
            ..FakeHost::new().healthy(Slot::Blue, &[true])
        };
        let (result, timeline) = run(&plan, &host);
        assert_eq!(timeline[..2], ["run nft list tables", "phase lock"]);
        assert_eq!(result.switch_mode, Some(mode));
        let reason = result.switch_mode_reason.unwrap();
        assert!(reason.starts_with(why), "{reason}");
        let state = plan
            .store()
            .load(&plan.app, plan.switch.upstream_file.as_path(), plan.ports)
            .unwrap()
            .state;
        assert_eq!(state.switch_mode, Some(mode), "state records the mode used");
    }
}

/// Deploys v2 with docker over a live blue v1, the green standby answering `green_healthy`,
/// and raises the cancel flag when the engine does something whose timeline line starts
/// with `at`.
fn deploy_cancelled_at(
    dir: &std::path::Path,
    at: &'static str,
    green_healthy: bool,
) -> (DeployPlan, super::DeployResult, Vec<String>) {
    let plan = plan(dir, Runtime::Docker);
    live(&plan, None, Slot::Blue, "v1");
    let cancel = Cancel::new();
    let host = FakeHost::new()
        .healthy(Slot::Green, &[green_healthy])
        .cancelling_at(at, &cancel);
    let (result, timeline) = run_cancellable(&plan, &host, cancel);
    (plan, result, timeline)
}

#[test]
fn a_cancel_before_the_switch_abandons_the_standby_and_leaves_the_live_slot() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, result, timeline) = deploy_cancelled_at(dir.path(), "health", false);
    assert_eq!(result.result, Some(Outcome::Cancelled), "{result:?}");
    assert_eq!(
        timeline,
        after_opening(&[
            "phase deploy standby",
            "run docker rm --force shop-green",
            DOCKER_RUN_GREEN,
            "phase health-check standby",
            "health http://127.0.0.1:3002/health x2",
            "run docker stop --time 30 shop-green",
            "result cancelled",
        ])
    );
    let error = result.error.as_ref().unwrap();
    assert_eq!(error.kind, ErrorKind::Cancelled);
    assert_eq!(error.message, "cancelled by the runner");
    assert_eq!(result.exit_code(), 1);
    assert_eq!(active_slot(&plan), Some(Slot::Blue));
}

#[test]
fn a_cancel_before_the_lock_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Docker);
    live(&plan, None, Slot::Blue, "v1");
    let cancel = Cancel::new();
    cancel.request(CancelReason::RunnerGone);
    let (result, timeline) = run_cancellable(&plan, &FakeHost::new(), cancel);
    assert_eq!(result.result, Some(Outcome::Cancelled), "{result:?}");
    assert_eq!(timeline, ["result cancelled"]);
    assert_eq!(
        result.error.unwrap().message,
        "cancelled: the runner's connection closed"
    );
}

#[test]
fn a_cancel_after_the_switch_lets_the_watch_and_the_retire_finish() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, result, timeline) = deploy_cancelled_at(dir.path(), "watch", true);
    assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
    let after_switch = timeline
        .iter()
        .skip_while(|l| *l != "phase monitor")
        .map(String::as_str)
        .collect::<Vec<_>>();
    assert_eq!(
        after_switch,
        [
            "phase monitor",
            "watch http://127.0.0.1:8000/",
            "result deployed",
            "phase retire",
            "pause 5s",
            "run docker stop --time 30 shop-blue",
            "run nft list table ip bluegreen_shop",
        ]
    );
    assert_eq!(active_slot(&plan), Some(Slot::Green));
}

#[test]
fn a_cancel_at_each_phase_boundary_stops_before_the_switch_and_not_after() {
    for (at, outcome) in [
        ("phase lock", Outcome::Cancelled),
        ("phase validate", Outcome::Cancelled),
        ("phase deploy standby", Outcome::Cancelled),
        ("phase health-check standby", Outcome::Cancelled),
        ("phase switch", Outcome::Deployed),
        ("phase monitor", Outcome::Deployed),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (plan, result, timeline) = deploy_cancelled_at(dir.path(), at, true);
        assert_eq!(
            result.result,
            Some(outcome),
            "cancelled at {at}: {timeline:?}"
        );
        let live = active_slot(&plan);
        if outcome == Outcome::Cancelled {
            assert_eq!(live, Some(Slot::Blue), "cancelled at {at}");
            let started = timeline.iter().any(|l| l == DOCKER_RUN_GREEN);
            let stopped = timeline
                .iter()
                .any(|l| l == "run docker stop --time 30 shop-green");
            assert_eq!(started, stopped, "cancelled at {at}: {timeline:?}");
        } else {
            assert_eq!(live, Some(Slot::Green), "cancelled at {at}");
        }
    }
}
