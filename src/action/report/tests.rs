//! Unit tests of the run report: outputs, the job summary, Slack; its receipts in
//! `tests/receipts.rs`.

mod receipts;

use super::*;
use crate::deploy::{Phase, PhaseRecord};

fn report(outcome: Outcome, error: Option<&str>) -> RunReport {
    RunReport {
        app: "shop".into(),
        command: "deploy".into(),
        version: "v2".into(),
        hosts: vec![HostReport {
            host: "web1".into(),
            result: DeployResult {
                result: Some(outcome),
                active_slot: Some(crate::input::Slot::Blue),
                failed_phase: error.map(|_| Phase::HealthCheck),
                error: error.map(|message| crate::error::RunError {
                    kind: crate::error::ErrorKind::CheckFailed,
                    message: message.to_owned(),
                }),
                phases: vec![PhaseRecord {
                    phase: Phase::HealthCheck,
                    ok: error.is_none(),
                    start_ms: 400,
                    ms: 1200,
                    detail: "a | b".into(),
                }],
                ..Default::default()
            },
            runner_phases: vec![PhaseRecord {
                phase: Phase::Connect,
                ok: true,
                start_ms: 0,
                ms: 80,
                detail: "ok".into(),
            }],
            skipped: false,
            fleet_rolled_back: false,
            deploy_receipt: None,
        }],
        duration: Duration::from_millis(4200),
        run_error: None,
        dry_run: false,
    }
}

#[test]
fn a_host_is_named_with_its_port() {
    let host = crate::action::fleet::SshTarget::parse("web1:2222", 22).unwrap();
    let r = HostReport::new(&host, DeployResult::default(), Vec::new());
    assert_eq!(r.host, "web1:2222");
    let run = RunReport {
        hosts: vec![r],
        ..report(Outcome::Deployed, None)
    };
    assert!(run.summary().unwrap().contains("web1:2222"));
}

#[test]
fn outputs_follow_the_outcome() {
    let r = report(Outcome::Deployed, None);
    let out = r.outputs();
    assert_eq!(out[0], ("active-slot", "blue".to_owned()));
    assert_eq!(out[3], ("result", "deployed".to_owned()));
    assert_eq!(out[4], ("duration-seconds", "4.200".to_owned()));
    assert_eq!(
        report(Outcome::RolledBack, Some("x")).outcome(),
        Outcome::RolledBack
    );
}

#[test]
fn summary_has_a_row_per_phase_with_escaped_cells() {
    let text = report(Outcome::Failed, Some("boom")).summary().unwrap();
    assert!(text.contains("| connect | yes | 80 ms | ok |"), "{text}");
    assert!(
        text.contains("| health-check standby | **no** | 1200 ms | a \\| b |"),
        "{text}"
    );
    assert!(text.contains("**Error:** boom"), "{text}");
}

#[test]
fn slot_outputs_come_from_the_last_host_that_knows_its_slots() {
    let mut r = report(Outcome::Deployed, None);
    let mut unreachable = r.hosts[0].clone();
    unreachable.host = "web2".into();
    unreachable.result = DeployResult {
        result: Some(Outcome::Failed),
        ..Default::default()
    };
    r.hosts.push(unreachable);
    let out = r.outputs();
    assert_eq!(out[0], ("active-slot", "blue".to_owned()));
    assert_eq!(out[3], ("result", "failed".to_owned()));
}

#[test]
fn host_text_in_the_summary_is_inert() {
    let answer =
        "unhealthy: <a href=\"https://evil.example\">login</a> [x](https://evil.example) & more";
    let text = report(Outcome::Failed, Some(answer)).summary().unwrap();
    assert!(
        text.contains(
            "**Error:** unhealthy: &lt;a href=\"https://evil.example\"&gt;login&lt;/a&gt; \\[x\\](https://evil.example) &amp; more"
        ),
        "{text}"
    );
    assert!(!text.contains("<a href"), "{text}");
}

#[test]
fn summary_draws_each_hosts_phases_as_a_timeline_above_the_table() {
    let text = report(Outcome::Failed, Some("boom")).summary().unwrap();
    let timeline = "```mermaid\ngantt\n    dateFormat x\n    axisFormat %M:%S\n    tickInterval 200millisecond\n    section web1\n    connect :done, 0, 80\n    health-check standby :crit, 400, 1600\n```";
    assert!(text.contains(timeline), "{text}");
    assert!(
        text.find("```mermaid").unwrap() < text.find("| host |").unwrap(),
        "{text}"
    );
    assert_eq!(super::super::summary::timeline_tick(9_000), "1second");
    assert_eq!(super::super::summary::timeline_tick(45_000), "5second");
}

#[test]
fn slack_payload_is_json_with_escaped_text() {
    let ctx = GithubContext {
        repository: "acme/shop".into(),
        actor: "<script>&".into(),
        run_url: Some("https://github.com/acme/shop/actions/runs/1".into()),
        ..Default::default()
    };
    let payload = report(Outcome::Failed, Some("standby <crashed> & burned"))
        .slack_payload(&ctx)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .contains("deploy of shop failed")
    );
    assert_eq!(v["attachments"][0]["color"], "#d40e0d");
    let fields = v["blocks"][1]["fields"].to_string();
    assert!(fields.contains("&lt;script&gt;&amp;"), "{fields}");
    assert!(fields.contains("Failed phase"), "{fields}");
    let detail = v["attachments"][0]["text"].as_str().unwrap();
    assert!(
        detail.starts_with("standby &lt;crashed&gt; &amp; burned"),
        "{detail}"
    );
}

#[test]
fn a_run_that_did_as_asked_is_no_alarm_and_reports_the_version_that_went_live() {
    let github = GithubContext::default();
    // A canary paused as asked: a success, with no failed host.
    let paused = report(Outcome::Paused, None);
    let payload: serde_json::Value =
        serde_json::from_str(&paused.slack_payload(&github).unwrap()).unwrap();
    let text = payload.to_string();
    assert!(
        payload["text"]
            .as_str()
            .unwrap()
            .starts_with("✅ deploy of shop paused"),
        "{text}"
    );
    assert!(!text.contains("Failed host"), "{text}");
    assert_eq!(payload["attachments"][0]["color"], "#2eb886");

    // An abort and a rollback go back to what the host runs, not the run's version label.
    for command in ["abort", "rollback"] {
        let mut back = report(Outcome::RolledBack, None);
        back.command = command.into();
        back.version = "0123456789abcdef".into();
        back.hosts[0].result.active_version = Some("v4".into());
        let outputs = back.outputs();
        assert!(
            outputs.contains(&("version", "v4".to_owned())),
            "{outputs:?}"
        );
        let payload = back.slack_payload(&github).unwrap();
        assert!(
            payload.contains("✅ ") && payload.contains("v4"),
            "{payload}"
        );
        assert!(!payload.contains("0123456789abcdef") && !payload.contains("Failed host"));
        assert!(back.summary().unwrap().contains("Version `v4`"));
    }

    // A failure still is one.
    let failed = report(Outcome::Failed, Some("unhealthy"));
    let payload = failed.slack_payload(&github).unwrap();
    assert!(payload.contains("🚨 deploy of shop failed") && payload.contains("Failed host"));
}

#[test]
fn a_dry_run_says_nothing_was_changed_where_the_outcome_is_named() {
    let mut run = report(Outcome::Unchanged, None);
    assert_eq!(run.outcome_words(), "unchanged");
    run.dry_run = true;
    let words = run.outcome_words();
    assert!(
        words.starts_with("unchanged (dry run: nothing was changed;"),
        "{words}"
    );
    assert!(run.summary().unwrap().contains(&words));
    assert_eq!(
        run.outputs()
            .iter()
            .find(|(k, _)| *k == "result")
            .unwrap()
            .1,
        "unchanged"
    );
}

/// A run of `command` on web1, which ended `first`, and web2, which ended `second`.
fn two_hosts(command: &str, first: Outcome, second: Outcome) -> RunReport {
    let mut run = report(first, None);
    run.command = command.into();
    let mut other = run.hosts[0].clone();
    other.host = "web2".into();
    other.result.result = Some(second);
    run.hosts.push(other);
    run
}

#[test]
fn slack_names_the_hosts_that_did_not_do_as_the_command_asked() {
    let github = GithubContext::default();
    let two = |command: &str, first: Outcome, second: Outcome| {
        two_hosts(command, first, second)
            .slack_payload(&github)
            .unwrap()
    };
    // A rollback that went back on both hosts did as asked: no host is named.
    let back = two("rollback", Outcome::RolledBack, Outcome::RolledBack);
    assert!(!back.contains("Hosts not on the new version"), "{back}");
    assert!(!back.contains("did not succeed"), "{back}");
    // One that failed on a host names it, in the rollback's words.
    let half = two("rollback", Outcome::RolledBack, Outcome::Failed);
    assert!(
        half.contains("Hosts where rollback did not succeed") && half.contains("web2 (failed)"),
        "{half}"
    );
    assert!(!half.contains("new version"), "{half}");
    // A deploy that a host rolled back: that host is not on the new version.
    let deploy = two("deploy", Outcome::Deployed, Outcome::RolledBack);
    assert!(
        deploy.contains("Hosts not on the new version") && deploy.contains("web2 (rolled-back)"),
        "{deploy}"
    );
}

#[test]
fn a_fleet_stopped_by_a_host_that_rolled_itself_back_reads_rolled_back() {
    // web1 rolled itself back; web2 was then not started.
    let deploy = two_hosts("deploy", Outcome::RolledBack, Outcome::Cancelled);
    assert_eq!(deploy.outcome(), Outcome::RolledBack);
    assert!(!deploy.succeeded());
    // A rollback that went back on web1 and was cancelled before web2 did not finish.
    let rollback = two_hosts("rollback", Outcome::RolledBack, Outcome::Cancelled);
    assert_eq!(rollback.outcome(), Outcome::Cancelled);
    assert!(!rollback.succeeded());
    assert_eq!(
        two_hosts("deploy", Outcome::Failed, Outcome::Cancelled).outcome(),
        Outcome::Failed
    );
}

#[test]
fn a_summary_of_twenty_hosts_stays_a_table_with_each_hosts_detail_folded() {
    let mut run = report(Outcome::Deployed, None);
    let first = run.hosts[0].clone();
    run.hosts = (1..=20)
        .map(|n| {
            let mut host = first.clone();
            host.host = format!("web{n}");
            if n == 19 {
                // Not started: cancelled, with an error, but nothing failed there.
                host.result.result = Some(Outcome::Cancelled);
                host.result.error = Some(crate::error::RunError {
                    kind: crate::error::ErrorKind::Cancelled,
                    message: "not started".into(),
                });
            }
            if n == 20 {
                host.host = "[::1]:2222".into();
                host.result.result = Some(Outcome::Failed);
                host.result.failed_phase = Some(Phase::HealthCheck);
                host.result.error = Some(crate::error::RunError {
                    kind: crate::error::ErrorKind::CheckFailed,
                    message: "boom".into(),
                });
            }
            host
        })
        .collect();
    let text = run.summary().unwrap();
    assert_eq!(text.matches("\n| web").count(), 19, "{text}");
    assert!(text.contains("\n| \\[::1\\]:2222 | failed |"), "{text}");
    assert!(
        text.contains("\n20 hosts: 18 deployed, 1 cancelled, 1 failed.\n"),
        "{text}"
    );
    assert!(
        text.contains("<details><summary>Timeline of the 20 hosts</summary>\n\n```mermaid"),
        "{text}"
    );
    // Folded, the one not started too; the host that failed is open, titled as HTML text.
    assert_eq!(text.matches("<details><summary>web").count(), 19, "{text}");
    assert!(
        text.contains("<details><summary>web19: cancelled</summary>"),
        "{text}"
    );
    assert!(
        text.contains("<details open><summary>[::1]:2222: failed</summary>\n\n| phase |"),
        "{text}"
    );
    assert!(!text.contains("### web"), "{text}");
    assert_eq!(
        text.matches("<details").count(),
        text.matches("</details>").count(),
        "{text}"
    );

    // Two hosts: folded detail, the timeline in view; one host: a heading, no tally.
    let two = two_hosts("deploy", Outcome::Deployed, Outcome::Deployed)
        .summary()
        .unwrap();
    assert!(two.contains("\n2 hosts: 2 deployed.\n"), "{two}");
    assert!(two.contains("\n```mermaid"), "{two}");
    assert!(!two.contains("Timeline of"), "{two}");
    assert!(
        two.contains("<details><summary>web2: deployed</summary>"),
        "{two}"
    );
    let one = report(Outcome::Deployed, None).summary().unwrap();
    assert!(one.contains("### web1\n"), "{one}");
    assert!(
        !one.contains("hosts:") && !one.contains("<details"),
        "{one}"
    );
}
