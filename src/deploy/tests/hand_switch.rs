//! The switch by hand (`switch-traffic`'s plan, the operation `switch`) through the
//! recording fake host: it checks the slot's health under the lock, switches once, records
//! one line of history (the switch's own), and refuses bad input before touching anything.

use super::*;
use crate::deploy::HandSwitchSpec;
use crate::input::SwitchTarget;

/// A switch by hand of `plan`'s app to `to`, blue live (v1) after green (v2).
fn hand_switch(dir: &std::path::Path, to: SwitchTarget, share: Option<u8>) -> DeployPlan {
    let mut plan = plan(dir, Runtime::Docker);
    plan.runtime = plan.runtime.starting_no_slot();
    plan.operation = Operation::Switch;
    plan.health.healthy_threshold = std::num::NonZeroU32::MIN;
    plan.hand_switch = Some(HandSwitchSpec {
        to,
        share: share.map(|s| s.try_into().unwrap()),
        version: None,
        check_health: true,
    });
    live(&plan, Some((Slot::Green, "v2")), Slot::Blue, "v1");
    plan
}

#[test]
fn a_switch_by_hand_checks_the_slot_then_switches_once() {
    let dir = tempfile::tempdir().unwrap();
    let plan = hand_switch(dir.path(), SwitchTarget::Previous, None);
    assert!(plan.problems().is_empty(), "{:?}", plan.problems());
    let host = FakeHost::new().healthy(Slot::Green, &[true]);
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Changed), "{result:?}");
    assert_eq!(
        timeline,
        [
            "phase lock",
            "phase health-check standby",
            "health http://127.0.0.1:3002/health x1",
            "phase switch",
            "switch to previous (switch)",
            "result changed",
        ]
    );
    let report = result.switch.expect("the switch's report");
    assert_eq!((report.from, report.to), (Some(Slot::Blue), Slot::Green));
    assert_eq!(active_slot(&plan), Some(Slot::Green));
    let history = std::fs::read_to_string(plan.store().history_path()).unwrap();
    assert_eq!(
        history
            .lines()
            .last()
            .map(|l| l.contains("\"event\":\"switch\"")),
        Some(true)
    );
    assert!(!history.contains("\"event\":\"deploy\""), "{history}");
}

#[test]
fn a_switch_by_hand_to_a_slot_that_does_not_answer_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plan = hand_switch(dir.path(), SwitchTarget::Slot(Slot::Green), None);
    let host = FakeHost::new().healthy(Slot::Green, &[false]);
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Failed), "{result:?}");
    assert!(
        !timeline.iter().any(|l| l.starts_with("switch ")),
        "{timeline:?}"
    );
    let message = result.error.unwrap().message;
    assert!(
        message.starts_with("not switching: green (port 3002) does not answer healthy"),
        "{message}"
    );
    assert_eq!(active_slot(&plan), Some(Slot::Blue));
}

#[test]
fn a_share_by_hand_goes_beside_the_live_slot_with_the_version_state_records() {
    let dir = tempfile::tempdir().unwrap();
    let plan = hand_switch(dir.path(), SwitchTarget::Slot(Slot::Green), Some(10));
    let host = FakeHost::new().healthy(Slot::Green, &[true]);
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Changed), "{result:?}");
    assert!(
        timeline.contains(&"switch to blue only-if blue with 10% to green (canary)".to_owned()),
        "{timeline:?}"
    );
    let canary = state_of(&plan).canary.expect("the share is recorded");
    assert_eq!((canary.slot, canary.version.as_str()), (Slot::Green, "v2"));

    // A share to the live slot itself is bad input: refused before the lock.
    let to_live = hand_switch(dir.path(), SwitchTarget::Slot(Slot::Blue), Some(10));
    let (result, timeline) = run(&to_live, &FakeHost::new());
    let error = result.error.unwrap();
    assert_eq!(error.kind, ErrorKind::InvalidInput, "{error:?}");
    assert!(
        error.message.contains("the live slot is blue"),
        "{}",
        error.message
    );
    assert_eq!(timeline, ["result failed"]);
}

#[test]
fn a_hand_switch_goes_with_the_operation_switch_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = hand_switch(dir.path(), SwitchTarget::Previous, None);
    plan.operation = Operation::Rollback;
    assert!(
        plan.problems()
            .iter()
            .any(|p| p.contains("hand_switch goes with command switch")),
        "{:?}",
        plan.problems()
    );
    plan.operation = Operation::Switch;
    plan.hand_switch = None;
    assert!(!plan.problems().is_empty());
}
