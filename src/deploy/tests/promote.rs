//! A canary after its run through the recording fake: a pause then a promote, an abort, a
//! promote asked to stop before its first step, dry runs of both, a promote without steps
//! or without a canary, and a rollback refused while a canary is in progress.

use super::canary::{logged, paused_canary, steps_then, with_steps};
use super::*;

#[test]
fn a_pause_leaves_the_canary_serving_and_a_promote_takes_it_on() {
    let dir = tempfile::tempdir().unwrap();
    let plan = with_steps(plan(dir.path(), Runtime::Command), Some(20));
    live(&plan, None, Slot::Blue, "v1");
    let host = FakeHost::new()
        .healthy(Slot::Green, &[true])
        .serving_in_steps(&plan, logged(80, 20, 0));
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Paused), "{result:?}");
    assert_eq!(result.exit_code(), 0);
    assert_eq!(timeline.last().unwrap(), "result paused");
    let canary = state_of(&plan).canary.expect("the canary stays");
    assert_eq!(
        (canary.slot, canary.share.percent(), canary.paused),
        (Slot::Green, 20, true)
    );
    assert_eq!(state_of(&plan).active, Some(Slot::Blue));

    let promote = DeployPlan {
        operation: Operation::Promote,
        ..plan.clone()
    };
    let host = FakeHost::new()
        .healthy(Slot::Green, &[true])
        .serving_in_steps(&plan, logged(50, 50, 0));
    let (result, timeline) = run(&promote, &host);
    assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
    assert_eq!(
        timeline[..3],
        [
            "phase lock",
            "phase health-check standby",
            "health http://127.0.0.1:3002/health x2"
        ]
    );
    let expected = steps_then(
        &[50],
        &[
            "phase switch",
            "switch to green only-if blue (switch)",
            "phase monitor",
            "watch http://127.0.0.1:8000/",
            "result deployed",
        ],
    );
    assert_eq!(timeline[3..3 + expected.len()], expected);
    let state = state_of(&plan);
    assert_eq!(state.active, Some(Slot::Green));
    assert_eq!(state.slots.green.version.as_deref(), Some("v2"));
    assert_eq!(state.slots.green.image.as_deref(), Some("shop:2"));
    assert_eq!(state.canary, None);
}

#[test]
fn an_abort_sends_everything_back_and_stops_the_canary() {
    let dir = tempfile::tempdir().unwrap();
    let plan = DeployPlan {
        operation: Operation::Abort,
        ..plan(dir.path(), Runtime::Docker)
    };
    live(&plan, None, Slot::Blue, "v1");
    paused_canary(&plan, 20);
    let host = FakeHost::new();
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::RolledBack), "{result:?}");
    assert_eq!(
        timeline,
        [
            "phase lock",
            "phase rollback",
            "switch to blue only-if blue (rollback)",
            "run docker stop --time 30 shop-green",
            "result rolled-back",
        ]
    );
    assert_eq!(state_of(&plan).canary, None);
}

#[test]
fn a_promote_asked_to_stop_before_its_first_step_leaves_the_canary_paused() {
    let dir = tempfile::tempdir().unwrap();
    let plan = DeployPlan {
        operation: Operation::Promote,
        ..with_steps(plan(dir.path(), Runtime::Command), None)
    };
    live(&plan, None, Slot::Blue, "v1");
    paused_canary(&plan, 20);
    let cancel = Cancel::new();
    let host = FakeHost::new()
        .healthy(Slot::Green, &[true])
        .cancelling_at("health http://127.0.0.1:3002/health", &cancel);
    let (result, timeline) = run_cancellable(&plan, &host, cancel);
    assert_eq!(result.result, Some(Outcome::Cancelled), "{result:?}");
    assert!(
        !timeline.iter().any(|l| l.starts_with("switch")),
        "{timeline:?}"
    );
    let canary = state_of(&plan).canary.expect("still there");
    assert_eq!((canary.share.percent(), canary.paused), (20, true));
}

#[test]
fn dry_runs_of_promote_and_abort_change_nothing() {
    for operation in [Operation::Promote, Operation::Abort] {
        let dir = tempfile::tempdir().unwrap();
        let plan = DeployPlan {
            operation,
            dry_run: true,
            ..with_steps(plan(dir.path(), Runtime::Docker), None)
        };
        live(&plan, None, Slot::Blue, "v1");
        paused_canary(&plan, 20);
        let before = state_of(&plan);
        let host = FakeHost::new();
        let (result, timeline) = run(&plan, &host);
        assert_eq!(result.result, Some(Outcome::Unchanged), "{result:?}");
        assert_eq!(timeline, ["result unchanged"], "{operation:?}");
        assert_eq!(state_of(&plan), before);
    }
}

#[test]
fn a_promote_needs_the_steps_it_goes_on_through() {
    let dir = tempfile::tempdir().unwrap();
    let promote = DeployPlan {
        operation: Operation::Promote,
        ..plan(dir.path(), Runtime::Docker)
    };
    assert!(
        promote
            .problems()
            .iter()
            .any(|p| p.contains("promote needs traffic-steps")),
        "{:?}",
        promote.problems()
    );
    let with = DeployPlan {
        operation: Operation::Promote,
        ..with_steps(plan(dir.path(), Runtime::Docker), None)
    };
    assert!(with.problems().is_empty(), "{:?}", with.problems());
}

#[test]
fn a_promote_without_a_canary_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plan = DeployPlan {
        operation: Operation::Promote,
        ..plan(dir.path(), Runtime::Docker)
    };
    live(&plan, None, Slot::Blue, "v1");
    let host = FakeHost::new();
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Failed));
    assert!(
        result.error.unwrap().message.contains("nothing to promote"),
        "{timeline:?}"
    );
    assert_eq!(timeline, ["phase lock", "result failed"]);
}

#[test]
fn a_rollback_during_a_canary_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plan = DeployPlan {
        operation: Operation::Rollback,
        ..plan(dir.path(), Runtime::Docker)
    };
    live(&plan, Some((Slot::Green, "v0")), Slot::Blue, "v1");
    paused_canary(&plan, 20);
    let before = state_of(&plan);
    let host = FakeHost::new();
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Failed));
    let error = result.error.unwrap().message;
    assert!(error.contains("end it with command abort"), "{error}");
    assert_eq!(timeline, ["phase lock", "result failed"]);
    assert_eq!(state_of(&plan), before);
}
