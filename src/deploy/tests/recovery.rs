//! The operations that go back, through the recording fake host: a rollback to the previous
//! slot, and the reconcile that makes state and nginx agree after an interrupted run. Both
//! trust a slot's port only while the slot's own container runs.

use super::*;
use std::sync::Mutex;

/// A rollback plan with green live (v2) and blue (v1) the previous slot.
pub(super) fn rollback_from_green_to_blue(dir: &std::path::Path) -> DeployPlan {
    let mut plan = plan(dir, Runtime::Docker);
    plan.operation = Operation::Rollback;
    live(&plan, Some((Slot::Blue, "v1")), Slot::Green, "v2");
    plan
}

/// What reads the version label of blue's container.
pub(super) const INSPECT_BLUE_VERSION: &str =
    "run docker inspect --format {{index .Config.Labels \"bluegreen.version\"}} shop-blue";

/// A deploy plan whose state says blue (v1) is live while nginx, after an interrupted
/// switch, routes to green (v2).
fn recorded_blue_routed_green(dir: &std::path::Path) -> DeployPlan {
    let plan = plan(dir, Runtime::Docker);
    live(&plan, Some((Slot::Green, "v2")), Slot::Blue, "v1");
    plan
}

#[test]
fn rollback_starts_the_stopped_previous_slot_then_switches_back() {
    let dir = tempfile::tempdir().unwrap();
    let plan = rollback_from_green_to_blue(dir.path());
    // Stopped at first, healthy once started again.
    let host = FakeHost {
        stopped: Mutex::new(Some(Slot::Blue)),
        ..FakeHost::new()
            .holding(Slot::Blue, "v1")
            .healthy(Slot::Blue, &[false, true])
    };
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::RolledBack), "{result:?}");
    assert_eq!(
        timeline,
        [
            "phase lock",
            "phase deploy standby",
            INSPECT_BLUE_VERSION,
            "run docker ps --quiet --filter label=bluegreen.app=shop --filter label=bluegreen.slot=blue",
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
    // History says the version that went live again, not the run's own label.
    let history = std::fs::read_to_string(plan.store().history_path()).unwrap();
    let run_line = history
        .lines()
        .find(|l| l.contains("\"event\":\"rollback-run\""))
        .unwrap();
    assert!(run_line.contains("\"version\":\"v1\""), "{run_line}");
    assert_eq!(result.active_version.as_deref(), Some("v1"));
    // A stopped slot is not waited for: one request of a single probe's timeout, then it
    // is started.
    assert_eq!(
        host.health_budgets.lock().unwrap()[0],
        Duration::from_secs(2)
    );
}

#[test]
fn rollback_waits_for_a_previous_slot_whose_container_runs_but_does_not_answer_yet() {
    let dir = tempfile::tempdir().unwrap();
    let plan = rollback_from_green_to_blue(dir.path());
    // Blue's container runs; its first answer is not healthy, the next one is.
    let host = FakeHost::new()
        .holding(Slot::Blue, "v1")
        .healthy(Slot::Blue, &[false, true]);
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::RolledBack), "{result:?}");
    assert!(
        !timeline.iter().any(|l| l.contains("docker start")),
        "a running slot is not started again: {timeline:?}"
    );
    assert_eq!(
        host.health_budgets.lock().unwrap()[..2],
        [Duration::from_secs(2), Duration::from_secs(5)]
    );
}

#[test]
fn rollback_refuses_a_previous_port_held_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let plan = rollback_from_green_to_blue(dir.path());
    // Blue's port answers healthy, but blue's container is not running.
    let host = FakeHost {
        squatted: Some(Slot::Blue),
        ..FakeHost::new()
            .holding(Slot::Blue, "v1")
            .healthy(Slot::Blue, &[true])
    };
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Failed), "{result:?}");
    assert_eq!(
        timeline,
        [
            "phase lock",
            "phase deploy standby",
            INSPECT_BLUE_VERSION,
            "run docker ps --quiet --filter label=bluegreen.app=shop --filter label=bluegreen.slot=blue",
            "health http://127.0.0.1:3001/health x1",
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
fn rollback_expecting_another_live_slot_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = rollback_from_green_to_blue(dir.path());
    // A watch began with blue live; another run has switched to green since.
    plan.expect_live = Some(Slot::Blue);
    let host = FakeHost::new()
        .holding(Slot::Blue, "v1")
        .healthy(Slot::Blue, &[true]);
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Failed), "{result:?}");
    assert_eq!(timeline, ["phase lock", "result failed"]);
    assert!(
        result
            .error
            .unwrap()
            .message
            .contains("green is live now, not blue: another run switched shop meanwhile"),
    );
    assert_eq!(active_slot(&plan), Some(Slot::Green));
}

#[test]
fn rollback_without_a_way_to_start_slots_refuses_a_previous_slot_that_does_not_answer() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = rollback_from_green_to_blue(dir.path());
    // What `monitor --rollback-on-fail` plans: the slots are known by their ports only.
    plan.runtime = plan.runtime.starting_no_slot();
    let host = FakeHost::new().healthy(Slot::Blue, &[false]);
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Failed), "{result:?}");
    assert!(
        !timeline.iter().any(|l| l.starts_with("run ")),
        "nothing is started: {timeline:?}"
    );
    let message = result.error.unwrap().message;
    assert!(
        message.contains("blue does not answer healthy, and this rollback names no runtime"),
        "{message}"
    );
    assert_eq!(active_slot(&plan), Some(Slot::Green));
}

#[test]
fn rollback_without_a_way_to_start_slots_goes_back_to_a_previous_slot_that_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = rollback_from_green_to_blue(dir.path());
    plan.runtime = plan.runtime.starting_no_slot();
    plan.expect_live = Some(Slot::Green);
    let host = FakeHost::new().healthy(Slot::Blue, &[true]);
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::RolledBack), "{result:?}");
    assert!(
        !timeline.iter().any(|l| l.starts_with("run ")),
        "nothing is started: {timeline:?}"
    );
    assert_eq!(active_slot(&plan), Some(Slot::Blue));
}

#[test]
fn reconcile_does_not_follow_a_routed_port_held_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let plan = recorded_blue_routed_green(dir.path());
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
    let plan = recorded_blue_routed_green(dir.path());
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
