//! Canary steps of a deploy through the recording fake: the steps and their splits in order
//! before the switch; a step whose logged traffic fails sends everything back and never
//! switches; one judged on probes; a request to stop mid-canary and in its last step; a
//! deploy that finds a canary (or a split state does not record) left behind. The
//! fixtures here serve `promote.rs` too.

use std::time::Duration;

use super::*;
use crate::canary::CanarySpec;
use crate::state::CanaryRecord;

/// `plan` with traffic steps 20,50 of a second each, pausing at `pause`.
pub(super) fn with_steps(mut plan: DeployPlan, pause: Option<u8>) -> DeployPlan {
    plan.canary = Some(CanarySpec {
        steps: "20,50".parse().unwrap(),
        step_duration: Duration::from_secs(1),
        pause_at: pause.map(|p| p.try_into().unwrap()),
        error_margin: "0.01".parse().unwrap(),
        p95_margin_ms: 100,
        min_requests: 20,
    });
    plan
}

/// Access log lines: `blue` answers from blue, `green` from green of which `failed` are 500s.
pub(super) fn logged(blue: usize, green: usize, failed: usize) -> String {
    let line = |port: u16, status: u16| {
        format!(r#"{{"addr":"127.0.0.1:{port}","status":"{status}","ms":"0.002","slot":""}}"#)
    };
    let mut lines: Vec<String> = (0..blue).map(|_| line(3001, 200)).collect();
    lines.extend((0..green).map(|i| line(3002, if i < failed { 500 } else { 200 })));
    lines.join("\n")
}

/// A canary of v2 in green at `share`, paused, beside blue.
pub(super) fn paused_canary(plan: &DeployPlan, share: u8) {
    let state = state_of(plan).with_canary(Some(CanaryRecord {
        slot: Slot::Green,
        share: share.try_into().unwrap(),
        version: "v2".parse().unwrap(),
        image: Some("shop:2".parse().unwrap()),
        image_id: None,
        paused: true,
    }));
    plan.store().save(&state).unwrap();
}

/// What each canary step does: the split, then the probes of green.
pub(super) fn step(share: u8) -> [String; 3] {
    [
        "phase canary step".into(),
        format!("switch to blue only-if blue with {share}% to green (canary)"),
        "watch http://127.0.0.1:3002/health".into(),
    ]
}

/// The timeline from the first canary step on.
fn from_first_step(timeline: &[String]) -> &[String] {
    let first = timeline
        .iter()
        .position(|l| l == "phase canary step")
        .expect("a canary step ran");
    &timeline[first..]
}

/// The lines of the steps of `shares`, then `rest`.
pub(super) fn steps_then(shares: &[u8], rest: &[&str]) -> Vec<String> {
    shares
        .iter()
        .flat_map(|share| step(*share))
        .chain(rest.iter().map(|l| l.to_string()))
        .collect()
}

#[test]
fn the_steps_split_traffic_in_order_then_the_deploy_switches() {
    let dir = tempfile::tempdir().unwrap();
    let plan = with_steps(plan(dir.path(), Runtime::Command), None);
    live(&plan, None, Slot::Blue, "v1");
    let host = FakeHost::new()
        .healthy(Slot::Green, &[true])
        .serving_in_steps(&plan, logged(80, 20, 0));
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
    let expected = steps_then(
        &[20, 50],
        &[
            "phase switch",
            "switch to green only-if blue (switch)",
            "phase monitor",
            "watch http://127.0.0.1:8000/",
            "result deployed",
        ],
    );
    assert_eq!(from_first_step(&timeline)[..expected.len()], expected);
    assert_eq!(result.canary_steps.len(), 2);
    let first = &result.canary_steps[0];
    assert_eq!((first.share, first.served_percent), (20, 20.0));
    assert!(first.verdict.passed && first.verdict.judged_on_traffic);
    let state = state_of(&plan);
    assert_eq!((state.active, state.canary), (Some(Slot::Green), None));
}

#[test]
fn a_step_whose_traffic_fails_sends_everything_back_and_never_switches() {
    let dir = tempfile::tempdir().unwrap();
    let plan = with_steps(plan(dir.path(), Runtime::Docker), None);
    live(&plan, None, Slot::Blue, "v1");
    // The probes pass: the canary's health URL is fine, its real requests are not.
    let host = FakeHost::new()
        .healthy(Slot::Green, &[true])
        .serving_in_steps(&plan, logged(80, 20, 4));
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::RolledBack), "{result:?}");
    assert_eq!(result.failed_phase, Some(Phase::Canary));
    let error = &result.error.as_ref().unwrap().message;
    assert!(error.contains("error rate 20.0% (4 of 20)"), "{error}");
    let expected = steps_then(
        &[20],
        &[
            "phase rollback",
            "switch to blue only-if blue (rollback)",
            "run docker logs --tail 40 shop-green",
            "run docker stop --time 30 shop-green",
            "result rolled-back",
        ],
    );
    assert_eq!(from_first_step(&timeline), expected);
    let state = state_of(&plan);
    assert_eq!((state.active, state.canary), (Some(Slot::Blue), None));
    assert_eq!(result.exit_code(), 1);
}

#[test]
fn too_few_logged_requests_are_judged_on_the_probes_and_said() {
    let dir = tempfile::tempdir().unwrap();
    let plan = with_steps(plan(dir.path(), Runtime::Command), None);
    live(&plan, None, Slot::Blue, "v1");
    let host = FakeHost {
        watch_passes: false,
        ..FakeHost::new()
            .healthy(Slot::Green, &[true])
            .serving_in_steps(&plan, logged(10, 2, 2))
    };
    let (result, _) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::RolledBack), "{result:?}");
    let step = &result.canary_steps[0];
    assert!(!step.verdict.judged_on_traffic, "{step:?}");
    assert!(
        step.verdict.reasons[0].starts_with("probes of the new slot"),
        "{step:?}"
    );
    let detail = &result
        .phases
        .iter()
        .find(|p| p.phase == Phase::Canary)
        .unwrap()
        .detail;
    assert!(detail.contains("too few requests of green"), "{detail}");
}

#[test]
fn a_stop_request_mid_canary_ends_it_after_its_step_and_reports_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let plan = with_steps(plan(dir.path(), Runtime::Command), None);
    live(&plan, None, Slot::Blue, "v1");
    let cancel = Cancel::new();
    let host = FakeHost::new()
        .healthy(Slot::Green, &[true])
        .serving_in_steps(&plan, logged(80, 20, 0))
        .cancelling_at("watch http://127.0.0.1:3002/health", &cancel);
    let (result, timeline) = run_cancellable(&plan, &host, cancel);
    assert_eq!(result.result, Some(Outcome::Cancelled), "{result:?}");
    let expected = steps_then(
        &[20],
        &[
            "phase rollback",
            "switch to blue only-if blue (rollback)",
            "run sh -c ./slot.sh bluegreen-deploy-command",
            "result cancelled",
        ],
    );
    assert_eq!(from_first_step(&timeline), expected);
    assert_eq!(state_of(&plan).canary, None);
}

#[test]
fn a_deploy_ends_a_canary_left_behind_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Command);
    live(&plan, None, Slot::Blue, "v1");
    paused_canary(&plan, 20);
    let host = FakeHost::new().healthy(Slot::Green, &[true]);
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
    // After validation: a deploy refused there leaves the canary as it was.
    assert_eq!(
        timeline[..7],
        [
            "phase lock",
            "routed",
            "phase validate",
            "validate",
            "phase reconcile",
            "switch to blue only-if blue (rollback)",
            "phase deploy standby",
        ]
    );
    assert_eq!(state_of(&plan).canary, None);
}

#[test]
fn a_deploy_refused_at_validation_leaves_the_canary_serving() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Command);
    live(&plan, None, Slot::Blue, "v1");
    paused_canary(&plan, 20);
    let host = FakeHost {
        validate_fails: true,
        ..FakeHost::new()
    };
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Failed));
    assert!(
        !timeline.iter().any(|l| l.starts_with("switch")),
        "{timeline:?}"
    );
    assert!(state_of(&plan).canary.is_some());
}

#[test]
fn a_split_state_does_not_record_is_ended_before_the_standby_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Command);
    live(&plan, None, Slot::Blue, "v1");
    let host = FakeHost {
        split_left: Some(Slot::Green),
        ..FakeHost::new().healthy(Slot::Green, &[true])
    };
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
    assert_eq!(
        timeline[2..7],
        [
            "phase validate",
            "validate",
            "phase reconcile",
            "switch to blue only-if blue (rollback)",
            "phase deploy standby",
        ]
    );
    let reconcile = &result
        .phases
        .iter()
        .find(|p| p.phase == Phase::Reconcile)
        .unwrap();
    assert!(reconcile.ok, "{reconcile:?}");
}

#[test]
fn a_stop_request_in_the_last_step_still_ends_the_canary() {
    let dir = tempfile::tempdir().unwrap();
    let plan = with_steps(plan(dir.path(), Runtime::Command), None);
    live(&plan, None, Slot::Blue, "v1");
    let cancel = Cancel::new();
    let host = FakeHost::new()
        .healthy(Slot::Green, &[true])
        .serving_in_steps(&plan, logged(50, 50, 0))
        .cancelling_at("switch to blue only-if blue with 50% to green", &cancel);
    let (result, timeline) = run_cancellable(&plan, &host, cancel);
    assert_eq!(result.result, Some(Outcome::Cancelled), "{result:?}");
    assert_eq!(result.canary_steps.len(), 2);
    assert!(
        !timeline.iter().any(|l| l.contains("(switch)")),
        "never switched: {timeline:?}"
    );
    assert_eq!(state_of(&plan).active, Some(Slot::Blue));
    assert_eq!(state_of(&plan).canary, None);
}

#[test]
fn a_step_command_failing_at_the_second_step_rolls_back_and_is_told_each_window_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = with_steps(plan(dir.path(), Runtime::Docker), None);
    plan.hooks.step =
        Some(crate::exec::CommandLine::parse("./gate --strict", "step-command").unwrap());
    live(&plan, None, Slot::Blue, "v1");
    let mut host = FakeHost::new()
        .healthy(Slot::Green, &[true])
        .serving_in_steps(&plan, logged(80, 20, 0));
    host.failing = Some("BLUEGREEN_SHARE=50");
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::RolledBack), "{result:?}");
    let mut expected = step(20).to_vec();
    expected.push("run ./gate --strict".into());
    expected.extend(step(50));
    expected.push("run ./gate --strict".into());
    assert_eq!(from_first_step(&timeline)[..expected.len()], expected);
    assert!(
        !timeline
            .iter()
            .any(|l| l == "switch to green only-if blue (switch)")
    );
    let steps = &result.canary_steps;
    assert_eq!(steps.len(), 2);
    assert!(steps[0].verdict.passed, "{:?}", steps[0].verdict);
    assert!(!steps[1].verdict.passed);
    assert_eq!(
        steps[1].verdict.reasons,
        ["the step command failed (exit status 1): refused by the fake"]
    );
    let state = state_of(&plan);
    assert_eq!((state.active, state.canary), (Some(Slot::Blue), None));

    let commands = host.commands.lock().unwrap();
    let gates: Vec<_> = commands
        .iter()
        .filter(|c| c.argv() == ["./gate", "--strict"])
        .collect();
    assert_eq!(gates.len(), 2);
    let env: Vec<(&str, &str)> = gates[0]
        .env()
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let (start, end) = (env[10].1, env[11].1);
    assert_eq!(
        env,
        [
            ("BLUEGREEN_HOOK", "step"),
            ("BLUEGREEN_APP", "shop"),
            ("BLUEGREEN_SLOT", "green"),
            ("BLUEGREEN_PORT", "3002"),
            ("BLUEGREEN_URL", "http://127.0.0.1:3002"),
            ("BLUEGREEN_VERSION", "v2"),
            ("BLUEGREEN_IMAGE", "shop:2"),
            ("BLUEGREEN_PREVIOUS_SLOT", "blue"),
            ("BLUEGREEN_STEP", "canary"),
            ("BLUEGREEN_SHARE", "20"),
            ("BLUEGREEN_STEP_START", start),
            ("BLUEGREEN_STEP_END", end),
            ("BLUEGREEN_VERDICT", "passed"),
        ]
    );
    let parsed = |t: &str| humantime::parse_rfc3339(t).unwrap();
    assert!(parsed(start) <= parsed(end), "{start} .. {end}");
}
