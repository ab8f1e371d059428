//! The engine driven through a recording fake host: each test reads back one timeline of
//! what the engine did (phase starts from its events, then every command, health check,
//! switch and watch the fake was asked for) and asserts it exactly, so a change of phase
//! order, of a command line, or of a condition on a switch fails here. State, history and
//! the lock are real files in a temporary directory.

mod canary;
mod cancel;
mod checks;
mod cleanup;
mod fake;
mod fake_answers;
mod fixtures;
mod gate;
mod hand_switch;
mod hooks;
mod maintenance;
mod promote;
mod recovery;
mod replaced;
mod watch;

use std::time::Duration;

use crate::cancel::{Cancel, CancelReason};
use crate::error::ErrorKind;
use crate::input::{Slot, SwitchMode};
use crate::lock::AppLock;
use crate::runtime::Runtime;

use super::{DeployPlan, Engine, Event, Operation, Outcome, Phase};
use fake::FakeHost;
use fixtures::{live, plan};

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
    host.claim_for(plan);
    let result = Engine::new(plan, host, &emit).cancellable(cancel).run();
    (result, host.timeline())
}

/// The state `plan`'s run left.
fn state_of(plan: &DeployPlan) -> crate::state::State {
    plan.store()
        .load(&plan.app, plan.switch.upstream_file.as_path(), plan.ports)
        .unwrap()
        .state
}

fn active_slot(plan: &DeployPlan) -> Option<Slot> {
    state_of(plan).active
}

/// How every deploy starts: the lock, the reconcile check of where nginx routes, validation.
const OPENING: [&str; 4] = ["phase lock", "routed", "phase validate", "validate"];

/// `OPENING` followed by `rest`.
fn after_opening(rest: &[&str]) -> Vec<String> {
    OPENING.iter().chain(rest).map(|s| s.to_string()).collect()
}

/// What finds which deployment claimed the app name on the Docker host.
const CLAIM_CHECK: &str = "run docker volume inspect --format {{index .Labels \"bluegreen.state-dir\"}} bluegreen-claim-shop";

/// What records the content ID of the image green's standby started from: its
/// container's, and (the fake's containers do not say) its tag's.
const CONTAINER_IMAGE_OF_GREEN: &str = "run docker inspect --format {{.Image}} shop-green";

const IMAGE_ID_OF_SHOP_2: &str = "run docker image inspect --format {{.Id}} shop:2";

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
            CLAIM_CHECK,
            "phase deploy standby",
            "run docker rm --force shop-green",
            DOCKER_RUN_GREEN,
            CONTAINER_IMAGE_OF_GREEN,
            IMAGE_ID_OF_SHOP_2,
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
fn the_same_version_label_with_another_image_is_deployed() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Docker);
    // v2 went live from shop:1; this run deploys shop:2 under the same label.
    let state = crate::state::State::new(&plan.app).after_switch(
        Slot::Blue,
        plan.ports,
        Some("v2"),
        Some("shop:1"),
        "t1",
    );
    plan.store().save(&state).unwrap();
    let host = FakeHost::new()
        .healthy(Slot::Blue, &[true])
        .healthy(Slot::Green, &[true]);
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
    assert!(
        timeline.iter().any(|l| l.starts_with("switch to green")),
        "{timeline:?}"
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

/// The retire phase's line after a deploy of `plan` over blue's v1.
fn retire_line(plan: &DeployPlan) -> String {
    live(plan, None, Slot::Blue, "v1");
    let host = FakeHost::new().healthy(Slot::Green, &[true]);
    let (result, _) = run(plan, &host);
    assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
    let retire = result.phases.last().unwrap();
    assert_eq!(retire.phase, Phase::Retire);
    retire.detail.clone()
}

#[test]
fn the_retire_says_what_the_stop_did_and_what_a_rollback_can_still_reach() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan(dir.path(), Runtime::Docker);
    let line = retire_line(&plan);
    assert!(
        line.starts_with("stopped blue (v1) after 5s of draining; the stop took 0.0s; a rollback starts blue again"),
        "{line}"
    );
    // A stop that takes the whole stop-timeout ended in SIGKILL, and says so.
    plan.retire.stop_timeout = Duration::ZERO;
    plan.retire.old_slot = super::Retire::Remove;
    let line = retire_line(&plan);
    assert!(
        line.contains("it did not exit within stop-timeout (0s) and was killed"),
        "{line}"
    );
    assert!(
        line.contains("a rollback cannot re-create v1: no image is recorded"),
        "{line}"
    );
    plan.retire.old_slot = super::Retire::Keep;
    let line = retire_line(&plan);
    assert!(
        line.starts_with("kept blue (v1) running: a rollback switches to it at once"),
        "{line}"
    );
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
            CLAIM_CHECK,
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
        let state = state_of(&plan);
        assert_eq!(state.switch_mode, Some(mode), "state records the mode used");
    }
    // A mode that is given is not probed, and the reason says where such a mode comes from.
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Command);
    let (result, timeline) = run(&plan, &FakeHost::new().healthy(Slot::Blue, &[true]));
    assert_eq!(timeline[0], "phase lock");
    assert_eq!(
        result.switch_mode_reason.as_deref(),
        Some("given (switch-mode; by hand --mode, else the mode state.json records)")
    );
}
