//! The user's commands around the switch through the recording fake: where each runs in
//! the timeline, a failing pre-switch command abandons the standby before any traffic
//! reaches it, a failing post-switch command is a warning, or a rollback when asked, and
//! every run of one is in the history.

use super::*;
use crate::exec::CommandLine;

/// `plan` with the pre-switch command `./migrate up` and the post-switch command
/// `./smoke --live`.
fn with_hooks(mut plan: DeployPlan, rollback: bool) -> DeployPlan {
    plan.hooks.pre_switch = Some(CommandLine::parse("./migrate up", "pre-switch-command").unwrap());
    plan.hooks.post_switch =
        Some(CommandLine::parse("./smoke --live", "post-switch-command").unwrap());
    plan.hooks.post_switch_rollback = rollback;
    plan
}

fn hook_lines(plan: &DeployPlan) -> Vec<String> {
    std::fs::read_to_string(plan.store().dir().join("history.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("-hook\""))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_pre_switch_command_runs_before_the_switch_and_the_post_switch_command_after_the_watch() {
    let dir = tempfile::tempdir().unwrap();
    let plan = with_hooks(plan(dir.path(), Runtime::Command), false);
    live(&plan, None, Slot::Blue, "v1");
    let host = FakeHost::new().healthy(Slot::Green, &[true]);
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
    let from = timeline
        .iter()
        .position(|l| l == "phase pre-switch hook")
        .unwrap();
    assert_eq!(
        timeline[from - 2..from + 9],
        [
            "phase health-check standby",
            "health http://127.0.0.1:3002/health x2",
            "phase pre-switch hook",
            "run ./migrate up",
            "phase switch",
            "switch to green only-if blue (switch)",
            "phase monitor",
            "watch http://127.0.0.1:8000/",
            "phase post-switch hook",
            "run ./smoke --live",
            "result deployed",
        ]
    );
    let lines = hook_lines(&plan);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("\"event\":\"pre-switch-hook\"") && lines[0].contains("succeeded"));
}

#[test]
fn a_failing_pre_switch_command_abandons_the_standby_before_any_traffic_reaches_it() {
    let dir = tempfile::tempdir().unwrap();
    let plan = with_hooks(plan(dir.path(), Runtime::Docker), false);
    live(&plan, None, Slot::Blue, "v1");
    let host = FakeHost {
        failing: Some("./migrate"),
        ..FakeHost::new().healthy(Slot::Green, &[true])
    };
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Failed), "{result:?}");
    assert_eq!(result.failed_phase, Some(Phase::PreSwitch));
    assert!(
        result
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("refused by the fake"),
        "the command's output is in the error: {result:?}"
    );
    assert_eq!(
        timeline[timeline.len() - 4..],
        [
            "phase pre-switch hook",
            "run ./migrate up",
            "run docker stop --time 30 shop-green",
            "result failed",
        ]
    );
    assert!(
        !timeline.iter().any(|l| l.starts_with("switch")),
        "{timeline:?}"
    );
    assert_eq!(active_slot(&plan), Some(Slot::Blue));
    let lines = hook_lines(&plan);
    assert!(lines[0].contains("failed"), "{lines:?}");
}

#[test]
fn a_failing_post_switch_command_is_a_warning_unless_a_rollback_is_asked_for() {
    for rollback in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let plan = with_hooks(plan(dir.path(), Runtime::Command), rollback);
        live(&plan, None, Slot::Blue, "v1");
        let host = FakeHost {
            failing: Some("./smoke"),
            ..FakeHost::new().healthy(Slot::Green, &[true])
        };
        let (result, timeline) = run(&plan, &host);
        if rollback {
            assert_eq!(result.result, Some(Outcome::RolledBack), "{result:?}");
            assert_eq!(result.failed_phase, Some(Phase::PostSwitch));
            let after = timeline
                .iter()
                .position(|l| l == "run ./smoke --live")
                .unwrap();
            assert_eq!(
                timeline[after + 1..after + 3],
                ["phase rollback", "switch to blue only-if green (rollback)"]
            );
            assert_eq!(active_slot(&plan), Some(Slot::Blue));
        } else {
            assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
            assert_eq!(result.failed_phase, None);
            assert!(
                result
                    .warnings
                    .iter()
                    .any(|w| w.contains("the post-switch command failed")),
                "{result:?}"
            );
            assert_eq!(active_slot(&plan), Some(Slot::Green));
            assert_eq!(result.exit_code(), 0);
        }
    }
}

#[test]
fn a_dry_run_names_the_commands_without_their_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = with_hooks(plan(dir.path(), Runtime::Command), false);
    plan.hooks.pre_switch =
        Some(CommandLine::parse("./migrate --password hunter2", "pre-switch-command").unwrap());
    plan.dry_run = true;
    live(&plan, None, Slot::Blue, "v1");
    let lines = std::sync::Mutex::new(Vec::new());
    let emit = |event: &Event| {
        if let Event::Log { line } = event {
            lines.lock().unwrap().push(line.clone());
        }
    };
    let result = Engine::new(&plan, &FakeHost::new(), &emit).run();
    assert_eq!(result.result, Some(Outcome::Unchanged), "{result:?}");
    let lines = lines.into_inner().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("plan: run the pre-switch command before any traffic")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("plan: run the post-switch command after its watch")),
        "{lines:?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("hunter2") || l.contains("smoke")),
        "{lines:?}"
    );
}

#[test]
fn a_step_command_failing_after_the_watch_switches_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan(dir.path(), Runtime::Docker);
    plan.hooks.step = Some(CommandLine::parse("./gate", "step-command").unwrap());
    live(&plan, None, Slot::Blue, "v1");
    let host = FakeHost {
        failing: Some("BLUEGREEN_STEP=watch"),
        ..FakeHost::new().healthy(Slot::Green, &[true])
    };
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::RolledBack), "{result:?}");
    assert_eq!(result.failed_phase, Some(Phase::Monitor));
    let from = timeline.iter().position(|l| l == "phase monitor").unwrap();
    assert_eq!(
        timeline[from..from + 4],
        [
            "phase monitor",
            "watch http://127.0.0.1:8000/",
            "run ./gate",
            "phase rollback",
        ]
    );
    let watch = result.monitor.as_ref().unwrap();
    assert!(!watch.passed);
    assert_eq!(
        watch.reasons.last().map(String::as_str),
        Some("the step command failed (exit status 1): refused by the fake")
    );
    let commands = host.commands.lock().unwrap();
    let gate = commands.iter().find(|c| c.argv() == ["./gate"]).unwrap();
    let told = |name: &str| {
        gate.env()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        [
            told("BLUEGREEN_STEP"),
            told("BLUEGREEN_SHARE"),
            told("BLUEGREEN_VERDICT"),
            told("BLUEGREEN_PREVIOUS_SLOT")
        ],
        [
            Some("watch".into()),
            Some("100".into()),
            Some("passed".into()),
            Some("blue".into())
        ]
    );
    assert_eq!(active_slot(&plan), Some(Slot::Blue));
}
