//! Cancelling a run through the recording fake host: stopped at the start of any phase
//! before the switch, the run leaves the live slot alone and stops only a standby it
//! started; from the switch on it finishes.

use super::*;

/// Deploys v2 with docker over a live blue v1, the green standby answering `green_healthy`,
/// and raises the cancel flag when the engine does something whose timeline line starts
/// with `at`.
fn deploy_cancelled_at(
    dir: &std::path::Path,
    at: &'static str,
    green_healthy: bool,
) -> (DeployPlan, crate::deploy::DeployResult, Vec<String>) {
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
            CLAIM_CHECK,
            "phase deploy standby",
            "run docker rm --force shop-green",
            DOCKER_RUN_GREEN,
            CONTAINER_IMAGE_OF_GREEN,
            IMAGE_ID_OF_SHOP_2,
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
