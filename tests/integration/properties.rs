//! Property tests of every parser that reads text we do not control: state.json, history
//! lines, the deploy plan a host receives, and the action's inputs. Random and truncated
//! input must never panic and must always give an error that says something.

use bluegreen::action::inputs::{Inputs, env_name};
use bluegreen::deploy::DeployPlan;
use bluegreen::input::{AppName, Slot, SlotPorts};
use bluegreen::state::{HistoryEvent, State};
use proptest::prelude::*;

use crate::support::valid_env;

fn app() -> AppName {
    "shop".parse().unwrap()
}

fn valid_state() -> String {
    let ports = SlotPorts::new(3001, 3002).unwrap();
    let state = State::new(&app())
        .after_switch(Slot::Blue, ports, Some("v1"), Some("shop:1"), "t1")
        .after_switch(Slot::Green, ports, Some("v2"), None, "t2");
    serde_json::to_string_pretty(&state).unwrap()
}

fn valid_history_line() -> String {
    r#"{"ts":"2026-11-23T10:00:00Z","event":"switch","app":"shop","from":"blue","to":"green","version":"v2","pid":42}"#.into()
}

const INPUTS: &[&str] = &[
    "host",
    "port",
    "username",
    "ssh-key",
    "known-hosts",
    "insecure-skip-host-key-check",
    "proxy-jump",
    "app",
    "image",
    "runtime",
    "container-port",
    "blue-port",
    "green-port",
    "env-file",
    "docker-args",
    "compose-file",
    "deploy-command",
    "pull",
    "image-transfer",
    "health-path",
    "health-timeout",
    "healthy-threshold",
    "upstream-file",
    "nginx-test-command",
    "nginx-reload-command",
    "nginx-pid-file",
    "verify-url",
    "monitor-url",
    "monitor-duration",
    "max-error-rate",
    "max-p95-ms",
    "monitor-accept-status",
    "rollback-on-failure",
    "retire",
    "drain-seconds",
    "stop-timeout",
    "min-free-disk-mb",
    "memory-check",
    "min-free-memory-mb",
    "lock-timeout",
    "systemd-unit-dir",
    "boot-helper-dir",
    "log-dir",
    "command",
    "dry-run",
    "version",
    "state-dir",
    "slack-webhook",
    "notify-on",
];

#[test]
fn every_truncation_of_valid_text_is_refused_with_a_reason() {
    let state = valid_state();
    for end in 0..state.len() {
        if let Err(why) = State::parse(&state[..end], &app()) {
            assert!(!why.is_empty());
        }
    }
    assert!(State::parse(&state, &app()).is_ok());
    let line = valid_history_line();
    for end in 0..line.len() {
        let why = HistoryEvent::parse(&line[..end]).unwrap_err();
        assert!(!why.is_empty());
    }
    assert!(HistoryEvent::parse(&line).is_ok());
}

proptest! {
    #[test]
    fn state_parser_never_panics(text in ".{0,400}") {
        if let Err(why) = State::parse(&text, &app()) {
            prop_assert!(!why.is_empty());
        }
    }

    #[test]
    fn state_parser_survives_mangled_state(cut in 0usize..2000, byte in any::<u8>(), at in 0usize..2000) {
        let mut bytes = valid_state().into_bytes();
        let at = at % bytes.len();
        bytes[at] = byte;
        bytes.truncate(cut.min(bytes.len()));
        let text = String::from_utf8_lossy(&bytes);
        if let Err(why) = State::parse(&text, &app()) {
            prop_assert!(!why.is_empty());
        }
    }

    #[test]
    fn history_parser_never_panics(text in ".{0,300}") {
        if let Err(why) = HistoryEvent::parse(&text) {
            prop_assert!(!why.is_empty());
        }
    }

    #[test]
    fn plan_parser_never_panics(text in ".{0,300}") {
        if let Ok(plan) = serde_json::from_str::<DeployPlan>(&text) {
            let _ = plan.problems();
        }
    }

    #[test]
    fn any_single_bad_input_is_a_clear_error(index in 0..INPUTS.len(), value in ".{0,60}") {
        let name = INPUTS[index];
        let mut env = valid_env();
        env.insert(env_name(name), value.clone());
        match Inputs::from_env(&env) {
            Ok(inputs) => {
                // Accepted values are ones the plan can carry back to a host.
                let json = serde_json::to_string(&inputs.plan).unwrap();
                let plan: DeployPlan = serde_json::from_str(&json).unwrap();
                prop_assert!(plan.problems().is_empty());
                prop_assert_eq!(plan, inputs.plan);
            }
            Err(bad) => {
                let text = bad.error.to_string();
                prop_assert!(bad.error.exit_code() == bluegreen::error::EXIT_BAD_INPUT, "{}", text);
                if name != "slack-webhook" {
                    prop_assert!(text.contains(name) || text.contains(&name.replace('-', " ")), "{} not named in {}", name, text);
                } else {
                    // A fixed message: the value, a secret, cannot be in it.
                    prop_assert_eq!(text, "invalid inputs: input `slack-webhook` is not an http(s) URL");
                }
            }
        }
    }
}
