//! The switch's executor on an in-memory host: for every mode, mode change, canary and
//! maintenance case, the switch is carried out once to count its effects, then again
//! failing at each effect in turn. Every run must end all or nothing: either nginx serves
//! the decided include and the rule leads as decided, or the include, the rule and what
//! nginx serves are exactly as before and the error says so. When the undo's own effects
//! fail too, an error that claims "restored" must still be true.

use std::path::Path;
use std::time::Duration;

use tempfile::TempDir;

use crate::error::{Error, Result};
use crate::input::{Slot, SwitchMode};
use crate::nft::Route;
use crate::progress::Progress;
use crate::state::State;

use super::decide::{Decision, InPlace};
use super::execute::{Executor, Journal};
use super::fake_host::{FAKE_MASTER, Fail, FakeSwitchHost};
use super::fixtures::{self, canary, live_on_blue, maintenance, to};
use super::{Intent, MaintenanceChange, SwitchRequest};

/// The service port of nftables mode.
const SERVICE_PORT: u16 = 21000;

/// A switch to carry out: what the host holds before it, and the intent.
struct Case {
    name: &'static str,
    mode: SwitchMode,
    intent: Intent,
    state: State,
    include: Option<String>,
    rule: Option<Route>,
}

fn request(mode: SwitchMode, intent: Intent, dir: &Path) -> SwitchRequest {
    let mut config = crate::switch::test_config(mode);
    config.verify_url = Some("http://127.0.0.1:8080/health".parse().unwrap());
    // One probe: a probe that fails is a failed verify, not one to ask again.
    config.verify_timeout = Duration::ZERO;
    config.upstream_file = dir
        .join("bluegreen-shop.conf")
        .display()
        .to_string()
        .parse()
        .unwrap();
    fixtures::request(config, intent, dir)
}

/// Carries `case` out on a fresh in-memory host failing as `fail` says.
/// The host's files are in the returned directory.
fn carry_out(case: &Case, fail: Fail) -> (Result<()>, FakeSwitchHost, Decision, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let r = request(case.mode, case.intent.clone(), dir.path());
    let include_path = r.config.upstream_file.as_path();
    if let Some(text) = &case.include {
        std::fs::write(include_path, text).unwrap();
    }
    let host = FakeSwitchHost::new(include_path, r.ports, SERVICE_PORT, fail);
    *host.rule.borrow_mut() = case.rule;
    let rule_before = r.nft().map(|_| case.rule);
    let decision = r
        .decide(&InPlace {
            state: &case.state,
            include: case.include.as_deref(),
            rule: rule_before,
            access_log: None,
        })
        .unwrap();
    let mut report = r
        .report(&decision, case.include.as_deref(), Vec::new())
        .unwrap();
    let silent = |_: &str| {};
    let progress = Progress::lines(&silent);
    let result = Executor {
        request: &r,
        host: &host,
        progress: &progress,
        journal: Journal::new(case.include.clone(), Some(FAKE_MASTER)),
        report: &mut report,
    }
    .carry_out(&decision, rule_before);
    (result, host, decision, dir)
}

/// The include `mode`'s built-in template gives for traffic on `slot`.
fn include(mode: SwitchMode, slot: Slot) -> String {
    let dir = tempfile::tempdir().unwrap();
    let r = request(mode, to(slot), dir.path());
    r.decide(&InPlace {
        state: &live_on_blue(),
        include: None,
        rule: r.nft().map(|_| None),
        access_log: None,
    })
    .unwrap()
    .include
}

/// Every mode, mode change, canary and maintenance case, live on blue.
fn cases() -> Vec<Case> {
    use SwitchMode::{Nftables, Reload};
    let canary = canary("10%");
    let case = |name, mode, intent, include: Option<String>, rule| Case {
        name,
        mode,
        intent,
        state: live_on_blue(),
        include,
        rule,
    };
    let blue = Some(Route::to(3001));
    vec![
        case(
            "reload mode",
            Reload,
            to(Slot::Green),
            Some(include(Reload, Slot::Blue)),
            None,
        ),
        case(
            "reload mode, first include",
            Reload,
            to(Slot::Green),
            None,
            None,
        ),
        case(
            "nftables mode",
            Nftables,
            to(Slot::Green),
            Some(include(Nftables, Slot::Blue)),
            blue,
        ),
        case(
            "nftables mode, first rule",
            Nftables,
            to(Slot::Green),
            Some(include(Reload, Slot::Blue)),
            None,
        ),
        case(
            "reload mode after nftables",
            Reload,
            to(Slot::Green),
            Some(include(Nftables, Slot::Blue)),
            blue,
        ),
        case(
            "canary in reload mode",
            Reload,
            Intent::split(Slot::Blue, canary.clone()),
            Some(include(Reload, Slot::Blue)),
            None,
        ),
        case(
            "canary in nftables mode",
            Nftables,
            Intent::split(Slot::Blue, canary),
            Some(include(Nftables, Slot::Blue)),
            blue,
        ),
        case(
            "maintenance on, reload mode",
            Reload,
            Intent::maintenance(Slot::Blue, Some(maintenance(3003))),
            Some(include(Reload, Slot::Blue)),
            None,
        ),
        case(
            "maintenance on, nftables mode",
            Nftables,
            Intent::maintenance(Slot::Blue, Some(maintenance(3003))),
            Some(include(Nftables, Slot::Blue)),
            blue,
        ),
        Case {
            state: live_on_blue().with_maintenance(Some(maintenance(3003))),
            ..case(
                "maintenance off",
                Reload,
                to(Slot::Blue).changing_maintenance(MaintenanceChange::End),
                None,
                None,
            )
        },
    ]
}

#[test]
fn the_handshakes_the_ports_traffic_left_never_answered_are_forgotten_once_confirmed() {
    let forgotten = |case: &Case| {
        let (result, host, _, _dir) = carry_out(case, Fail::Never);
        result.unwrap_or_else(|e| panic!("{}: {e}", case.name));
        host.forgotten.borrow().clone()
    };
    for case in cases() {
        // Only a switch that moves the rule away from a port: blue's, in nftables mode
        // from blue to green. A canary or maintenance keeps blue in the rule; a first rule
        // or reload mode leaves no rule behind.
        let expected: &[u16] = if case.name == "nftables mode" {
            &[3001]
        } else {
            &[]
        };
        assert_eq!(forgotten(&case), expected, "{}", case.name);
    }
    // A canary promoted leaves blue's port; one aborted leaves green's.
    let split = Route::split(3001, 3002, "10%".parse().unwrap());
    let from_split = |intent| Case {
        name: "from a canary",
        mode: SwitchMode::Nftables,
        intent,
        state: live_on_blue(),
        include: Some(include(SwitchMode::Nftables, Slot::Blue)),
        rule: Some(split),
    };
    assert_eq!(forgotten(&from_split(to(Slot::Green))), [3001]);
    assert_eq!(forgotten(&from_split(to(Slot::Blue))), [3002]);
    // A switch that failed forgets nothing.
    let nft = &cases()[2];
    let (result, host, _, _dir) = carry_out(nft, Fail::FirstOf("new connection"));
    assert!(result.is_err());
    assert!(host.forgotten.borrow().is_empty());
}

#[test]
fn carried_out_whole_nginx_serves_the_decision_and_the_rule_leads_as_decided() {
    for case in cases() {
        let (result, host, decision, _dir) = carry_out(&case, Fail::Never);
        result.unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let (include, rule, serving) = host.holds();
        assert_eq!(
            include.as_deref(),
            Some(decision.include.as_str()),
            "{}",
            case.name
        );
        assert_eq!(
            serving, include,
            "{}: nginx serves what was written",
            case.name
        );
        match case.mode {
            SwitchMode::Nftables => assert_eq!(rule, Some(decision.route), "{}", case.name),
            // A rule left by nftables mode leads to the target too, for old workers.
            _ => assert_eq!(rule, case.rule.map(|_| Route::to(3002)), "{}", case.name),
        }
    }
}

#[test]
fn a_failure_at_any_effect_puts_back_the_include_the_rule_and_what_nginx_serves() {
    for case in cases() {
        let before = (case.include.clone(), case.rule, case.include.clone());
        let (_, whole, _, _dir) = carry_out(&case, Fail::Never);
        let effects = whole.effects.borrow().clone();
        assert!(effects.len() >= 3, "{}: {effects:?}", case.name);
        for (n, effect) in effects.iter().enumerate() {
            let (result, host, decision, _dir) = carry_out(&case, Fail::At(n));
            let context = format!("{}, failing at {n} ({effect}) of {effects:?}", case.name);
            match result {
                // In reload mode a rule that cannot be read is one nftables mode did not
                // leave: nothing to move, and the switch goes on. The kernel's unanswered
                // handshakes are forgotten once the switch is confirmed: a failure there is
                // said, and the switch stands.
                Ok(()) => {
                    let observed = (*effect == "read rule" && case.mode == SwitchMode::Reload)
                        || *effect == "forget handshakes";
                    assert!(observed, "{context}");
                    if case.mode == SwitchMode::Nftables {
                        assert_eq!(host.holds().1, Some(decision.route), "{context}");
                    }
                    let (include, _, serving) = host.holds();
                    assert_eq!(
                        include.as_deref(),
                        Some(decision.include.as_str()),
                        "{context}"
                    );
                    assert_eq!(serving, include, "{context}");
                }
                Err(Error::SwitchFailed {
                    restored, reloads, ..
                }) => {
                    assert!(restored, "{context}");
                    assert_eq!(host.holds(), before, "{context}");
                    let reloaded = host
                        .effects
                        .borrow()
                        .iter()
                        .filter(|e| **e == "reload")
                        .count();
                    let at_risk = reloaded - usize::from(*effect == "reload");
                    assert_eq!(
                        reloads.len(),
                        at_risk,
                        "{context}: every reload that ran is at risk"
                    );
                }
                Err(e) => panic!("{context}: {e}"),
            }
        }
    }
}

/// Whether `result` claims what `host` holds: an error that says "restored" leaves the
/// host as it was `before`; one that does not says what failed to be put back.
fn check_claim(
    result: Result<()>,
    host: &FakeSwitchHost,
    before: &(Option<String>, Option<Route>, Option<String>),
    context: &str,
) -> bool {
    match result {
        Err(Error::SwitchFailed { restored: true, .. }) => {
            assert_eq!(host.holds(), *before, "{context}: claimed restored");
            true
        }
        Err(Error::SwitchFailed {
            restored: false,
            reason,
            ..
        }) => {
            // It says what could not be put back.
            let said = ["failed too", "reloading the restored configuration failed"];
            assert!(
                said.iter().any(|s| reason.contains(s)),
                "{context}: {reason}"
            );
            false
        }
        other => panic!("{context}: {other:?}"),
    }
}

#[test]
fn a_failure_while_putting_back_is_never_reported_as_restored() {
    let (mut restored, mut not_restored) = (0, 0);
    for case in cases() {
        let before = (case.include.clone(), case.rule, case.include.clone());
        let (_, whole, _, _dir) = carry_out(&case, Fail::Never);
        for first in 0..whole.effects.borrow().len() {
            // Forgetting the unanswered handshakes comes after the switch is confirmed: its
            // failure undoes nothing (the test above).
            if whole.effects.borrow()[first] == "forget handshakes" {
                continue;
            }
            let (_, failed_once, _, _dir) = carry_out(&case, Fail::At(first));
            let undo_effects = failed_once.effects.borrow().len();
            for second in first + 1..undo_effects {
                let (result, host, _, _dir) = carry_out(&case, Fail::Twice(first, second));
                let context = format!("{}, failing at {first} and {second}", case.name);
                match check_claim(result, &host, &before, &context) {
                    true => restored += 1,
                    false => not_restored += 1,
                }
            }
            let (result, host, _, _dir) = carry_out(&case, Fail::From(first));
            check_claim(
                result,
                &host,
                &before,
                &format!("{}, failing from {first} on", case.name),
            );
        }
    }
    assert!(
        restored > 0 && not_restored > 0,
        "{restored} restored, {not_restored} not"
    );
}

#[test]
fn a_rule_that_cannot_be_read_is_not_taken_for_none() {
    let dir = tempfile::tempdir().unwrap();
    let r = request(SwitchMode::Nftables, to(Slot::Green), dir.path());
    let path = r.config.upstream_file.as_path();
    let blue = include(SwitchMode::Nftables, Slot::Blue);
    std::fs::write(path, &blue).unwrap();
    let host = FakeSwitchHost::new(path, r.ports, SERVICE_PORT, Fail::FirstOf("read rule"));
    *host.rule.borrow_mut() = Some(Route::to(3001));
    let silent = |_: &str| {};
    let err = r.run_on(&host, &Progress::lines(&silent)).unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
    assert_eq!(
        *host.effects.borrow(),
        ["read rule"],
        "nothing else was tried"
    );
    assert_eq!(
        host.holds(),
        (Some(blue.clone()), Some(Route::to(3001)), Some(blue))
    );
}
