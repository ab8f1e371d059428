//! Unit tests of the users' requests in the report: each host's receipts, and the fleet's
//! total in the outputs, the summary and Slack.

use super::*;

/// A receipt of `requests`, `failed` of them, with a longest gap of `gap_ms` and a reload
/// with `open` client connections open at it.
fn receipt(requests: u64, failed: u64, gap_ms: u64, open: Option<u32>) -> crate::canary::Receipt {
    crate::canary::Receipt {
        requests,
        failed,
        longest_gap_ms: gap_ms,
        per_second: vec![
            [(requests / 2) as u32, 0],
            [(requests / 2) as u32, failed as u32],
        ],
        at_risk: vec![open],
    }
}

/// The value of Slack's "Users' requests" field in `run`'s message.
fn slack_requests(run: &RunReport) -> String {
    let slack = run.slack_payload(&GithubContext::default()).unwrap();
    let payload: serde_json::Value = serde_json::from_str(&slack).unwrap();
    payload["blocks"][1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["text"].as_str()?.strip_prefix("*Users' requests*\n"))
        .map(str::to_owned)
        .next()
        .unwrap_or_default()
}

#[test]
fn the_receipts_of_the_hosts_add_up_in_the_outputs_the_summary_and_slack() {
    let mut r = report(Outcome::Deployed, None);
    // No receipt (no access log): empty outputs, no line.
    let out = r.outputs();
    assert_eq!(out[6], ("requests", String::new()));
    assert_eq!(out[7], ("failed-requests", String::new()));
    assert_eq!(slack_requests(&r), "");
    r.hosts[0].result.receipt = Some(receipt(120, 2, 40, Some(7)));
    let one = r.summary().unwrap();
    assert!(
        one.contains("| web1 | deployed | blue | - | - | - | 1.6 s | 120 (2 failed) |"),
        "{one}"
    );
    assert!(!one.contains("across the fleet"), "{one}");
    let mut second = r.hosts[0].clone();
    second.host = "web2".into();
    second.result.receipt = Some(receipt(80, 0, 0, None));
    r.hosts.push(second);
    let out = r.outputs();
    assert_eq!(out[6], ("requests", "200".to_owned()));
    assert_eq!(out[7], ("failed-requests", "2".to_owned()));
    let text = r.summary().unwrap();
    assert!(
        text.contains("Users' requests from the run's start to its end (nginx's log): 120 requests, 2 failed, longest without a successful answer 40 ms; at risk, beyond the log's sight: 1 reload of nginx with 7 client connections open."),
        "{text}"
    );
    assert!(
        text.contains("requests ██  (a column a second, peak 60)\nfailures ·x"),
        "{text}"
    );
    assert!(
        text.contains("| web2 | deployed | blue | - | - | - | 1.6 s | 80 (0 failed) |"),
        "{text}"
    );
    assert!(
        text.contains("\nUsers' requests across the fleet (nginx's logs of 2 hosts): 200 requests, 2 failed (web1 2), longest without a successful answer 40 ms (web1); at risk, beyond the logs' sight: 2 reloads of nginx with 7 client connections open (and 1 reload not counted).\n"),
        "{text}"
    );
    assert_eq!(slack_requests(&r), "200, 2 failed (web1 2)");
}

#[test]
fn a_fleet_total_names_the_hosts_it_does_not_count() {
    let mut run = two_hosts("deploy", Outcome::Deployed, Outcome::Cancelled);
    run.hosts[0].result.receipt = Some(receipt(50, 1, 10, Some(0)));
    let mut third = run.hosts[1].clone();
    third.host = "web3".into();
    third.skipped = true;
    run.hosts.push(third);
    let total = run.receipt_total().unwrap();
    assert_eq!((total.requests, total.failed, total.counted), (50, 1, 1));
    assert_eq!(total.coverage(), "1 of 3 hosts");
    let text = run.summary().unwrap();
    assert!(
        text.contains("Users' requests across the fleet (nginx's logs of 1 of 3 hosts): 50 requests, 1 failed (web1 1), longest without a successful answer 10 ms (web1); at risk, beyond the logs' sight: 1 reload of nginx with 0 client connections open; no receipt from web2 (cancelled), web3 (unreachable, skipped)."),
        "{text}"
    );
    assert!(
        text.contains("| web2 | cancelled | blue | - | - | - | 1.6 s | - |"),
        "{text}"
    );
    assert_eq!(slack_requests(&run), "50, 1 failed (web1 1) (1 of 3 hosts)");
}

#[test]
fn a_host_the_fleet_rolled_back_keeps_its_deploys_receipt_beside_the_rollbacks() {
    let mut run = two_hosts("deploy", Outcome::Deployed, Outcome::Failed);
    run.hosts[0].result.receipt = Some(receipt(100, 0, 0, Some(3)));
    let mut back = run.hosts[0].clone();
    back.result.result = Some(Outcome::RolledBack);
    back.result.receipt = Some(receipt(30, 4, 900, Some(2)));
    run.hosts[0].fleet_rollback(back, "web2 ended failed");
    assert_eq!(run.hosts[0].outcome(), Outcome::RolledBack);
    assert_eq!(run.hosts[0].receipts().count(), 2);
    let out = run.outputs();
    assert_eq!(out[6], ("requests", "130".to_owned()));
    assert_eq!(out[7], ("failed-requests", "4".to_owned()));
    let text = run.summary().unwrap();
    for line in [
        "| web1 | rolled-back | blue | - | - | - | 1.6 s | 130 (4 failed) |",
        "Users' requests of the deploy, from its start to its end (nginx's log): 100 requests, 0 failed, longest without a successful answer 0 ms; at risk, beyond the log's sight: 1 reload of nginx with 3 client connections open.",
        "Users' requests of the fleet's rollback (nginx's log): 30 requests, 4 failed, longest without a successful answer 900 ms; at risk, beyond the log's sight: 1 reload of nginx with 2 client connections open.",
        "(nginx's logs of 1 of 2 hosts): 130 requests, 4 failed (web1 4), longest without a successful answer 900 ms (web1); at risk, beyond the logs' sight: 2 reloads of nginx with 5 client connections open; no receipt from web2 (failed).",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }

    // A deploy without a receipt (no access log then): the rollback's is named as such.
    let mut run = two_hosts("deploy", Outcome::Deployed, Outcome::Failed);
    let mut back = run.hosts[0].clone();
    back.result.result = Some(Outcome::RolledBack);
    back.result.receipt = Some(receipt(30, 4, 900, None));
    run.hosts[0].fleet_rollback(back, "web2 ended failed");
    let text = run.summary().unwrap();
    assert!(
        text.contains("Users' requests of the fleet's rollback (nginx's log): 30 requests"),
        "{text}"
    );
    assert!(!text.contains("from the run's start"), "{text}");
    assert!(!text.contains("of the deploy"), "{text}");
}

#[test]
fn a_run_error_fails_the_run_and_is_in_the_summary_and_slack() {
    let mut run = two_hosts("deploy", Outcome::Deployed, Outcome::Deployed);
    run.run_error = Some("the users' failed requests across the fleet so far (3) are above max-failed-requests 2; web1, web2 kept the new version".into());
    assert_eq!(run.outcome(), Outcome::Failed);
    assert!(!run.succeeded());
    let text = run.summary().unwrap();
    assert!(
        text.contains("\n**Error:** the users' failed requests across the fleet so far (3) are above max-failed-requests 2; web1, web2 kept the new version\n"),
        "{text}"
    );
    let slack = run.slack_payload(&GithubContext::default()).unwrap();
    assert!(slack.contains("above max-failed-requests 2"), "{slack}");
}
