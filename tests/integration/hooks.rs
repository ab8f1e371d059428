//! The commands around the switch end to end, through act, sshd, nginx and Docker: the
//! pre-switch command sees the healthy standby before any traffic reaches it, with its
//! variables; a failing one abandons the standby; a failing post-switch command is a
//! warning, or a rollback when asked; the step command is told each traffic step's window
//! and verdict, and failing at the second step sends everything back.

use crate::support::{Target, assert_result, demo_image};

#[test]
fn the_pre_switch_command_sees_the_standby_before_any_traffic_reaches_it() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-hooks");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    t.settled();
    let seen = t.site.tmp.path().join("pre-switch.txt");
    let state = t.state_dir().join("state.json");
    let at_hook = t.site.tmp.path().join("state-at-hook.json");
    let hook = format!(
        "sh -c 'printf \"%s %s %s %s \" \"$BLUEGREEN_SLOT\" \"$BLUEGREEN_PORT\" \"$BLUEGREEN_VERSION\" \"$BLUEGREEN_PREVIOUS_SLOT\" > {seen}; curl -fsS \"$BLUEGREEN_URL/health\" >> {seen}; cp {state} {at_hook}; echo migrated'",
        seen = seen.display(),
        state = state.display(),
        at_hook = at_hook.display()
    );
    let run = t.run(&[
        ("IMAGE", &image),
        ("VERSION", "v2"),
        ("PRE_SWITCH_COMMAND", &hook),
    ]);
    assert_result(&run, "deployed");
    assert!(
        run.log.contains("migrated"),
        "its output is in the log: {}",
        run.log
    );
    let seen = std::fs::read_to_string(&seen).unwrap();
    assert!(
        seen.starts_with(&format!("green {} v2 blue ", t.site.green_port)),
        "{seen}"
    );
    assert!(
        seen.contains("\"slot\":\"green\""),
        "the standby answered: {seen}"
    );
    let then: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&at_hook).unwrap()).unwrap();
    assert_eq!(
        then["active"], "blue",
        "no traffic had reached green yet: {then}"
    );
    assert_eq!(t.live(), ("green".into(), "v2".into()));
}

#[test]
fn a_failing_pre_switch_command_abandons_the_standby_and_leaves_the_live_slot() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-prefail");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    t.settled();
    let run = t.run(&[
        ("IMAGE", &image),
        ("VERSION", "v2"),
        (
            "PRE_SWITCH_COMMAND",
            "sh -c 'echo the migration broke >&2; exit 3'",
        ),
    ]);
    assert_result(&run, "failed");
    assert!(run.log.contains("the migration broke"), "{}", run.log);
    assert!(run.log.contains("FAILED pre-switch hook"), "{}", run.log);
    assert_eq!(t.live(), ("blue".into(), "v1".into()));
    t.settled();
    assert!(!t.container_running("green"), "the standby is stopped");
    let history = std::fs::read_to_string(t.state_dir().join("history.jsonl")).unwrap();
    assert!(
        history.contains("\"event\":\"pre-switch-hook\""),
        "{history}"
    );
}

#[test]
fn a_failing_post_switch_command_warns_or_rolls_back_when_asked() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-postfail");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    t.settled();
    let failing = "sh -c 'echo smoke test failed; exit 1'";
    let warned = t.run(&[
        ("IMAGE", &image),
        ("VERSION", "v2"),
        ("POST_SWITCH_COMMAND", failing),
    ]);
    assert_result(&warned, "deployed");
    assert!(
        warned.log.contains("the post-switch command failed"),
        "{}",
        warned.log
    );
    assert_eq!(t.live(), ("green".into(), "v2".into()));
    t.settled();
    let rolled = t.run(&[
        ("IMAGE", &image),
        ("VERSION", "v3"),
        ("POST_SWITCH_COMMAND", failing),
        ("POST_SWITCH_ROLLBACK", "true"),
    ]);
    assert_result(&rolled, "rolled-back");
    assert!(rolled.log.contains("smoke test failed"), "{}", rolled.log);
    assert_eq!(t.live(), ("green".into(), "v2".into()));
}

#[test]
fn a_step_command_is_told_each_step_and_failing_at_the_second_rolls_back() {
    require!(Root, Nginx, Sshd, Docker, Act);
    let image = demo_image("v", &[]);
    let t = Target::new("e2e-stepcmd");
    assert_result(&t.run(&[("IMAGE", &image), ("VERSION", "v1")]), "deployed");
    t.settled();
    let told = t.site.tmp.path().join("steps.txt");
    let gate = format!(
        "sh -c 'echo \"$BLUEGREEN_HOOK $BLUEGREEN_STEP $BLUEGREEN_SLOT $BLUEGREEN_PREVIOUS_SLOT $BLUEGREEN_SHARE $BLUEGREEN_VERDICT $BLUEGREEN_VERSION $BLUEGREEN_STEP_START $BLUEGREEN_STEP_END\" >> {told}; echo gate asked about $BLUEGREEN_SHARE; [ \"$BLUEGREEN_SHARE\" != 50 ]'",
        told = told.display()
    );
    let run = t.run(&[
        ("IMAGE", &image),
        ("VERSION", "v2"),
        ("TRAFFIC_STEPS", "20,50"),
        ("STEP_SECONDS", "2"),
        ("STEP_COMMAND", &gate),
    ]);
    assert_result(&run, "rolled-back");
    assert!(
        run.log.contains("gate asked about 20") && run.log.contains("the step command failed"),
        "its output and its failure are in the log: {}",
        run.log
    );
    assert!(
        !run.log.contains("[ \"$BLUEGREEN_SHARE\""),
        "its text is not: {}",
        run.log
    );
    let told = std::fs::read_to_string(&told).unwrap();
    let lines: Vec<Vec<&str>> = told.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 2, "{told}");
    for (line, share) in lines.iter().zip(["20", "50"]) {
        assert_eq!(
            line[..7],
            ["step", "canary", "green", "blue", share, "passed", "v2"],
            "{told}"
        );
        let start = humantime::parse_rfc3339(line[7]).unwrap();
        let end = humantime::parse_rfc3339(line[8]).unwrap();
        let window = end.duration_since(start).unwrap();
        assert!(
            window >= std::time::Duration::from_secs(1),
            "the window holds the step's two seconds: {told}"
        );
    }
    assert_eq!(t.live(), ("blue".into(), "v1".into()));
    t.settled();
    assert!(!t.container_running("green"), "the canary is stopped");
}
