//! The watch through the recording fake: judged on the users' requests nginx logged while
//! it ran as well as on its probes, and on the run's receipt (`max-failed-requests`); the
//! receipt itself, with the reloads it cannot see behind.

use super::canary::logged;
use super::*;

#[test]
fn users_requests_that_fail_in_the_watch_switch_back_though_the_probes_pass() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Docker);
    live(&plan, None, Slot::Blue, "v1");
    let host = FakeHost::new()
        .healthy(Slot::Green, &[true])
        .serving_in_watch(&plan, logged(0, 100, 20));
    let (result, timeline) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::RolledBack), "{result:?}");
    assert_eq!(result.failed_phase, Some(Phase::Monitor));
    let error = result.error.unwrap().message;
    assert!(
        error.contains("users' requests to the new slot failed 20.0% (20 of 100)"),
        "{error}"
    );
    assert!(timeline.contains(&"switch to blue only-if green (rollback)".to_owned()));
    assert_eq!(active_slot(&plan), Some(Slot::Blue));
    let users = result.users.unwrap();
    assert!(users.judged && !users.reasons.is_empty(), "{users:?}");
    // The run's receipt counts what nginx logged from its start: the watch's 100 lines.
    let receipt = result.receipt.unwrap();
    assert_eq!((receipt.requests, receipt.failed), (100, 20), "{receipt:?}");
    let history = std::fs::read_to_string(plan.store().dir().join("history.jsonl")).unwrap();
    let last = history.lines().last().unwrap();
    // Two reloads at risk, the switch's and the rollback's, with the client connections
    // open at each not counted (the fake's nginx does not say).
    assert!(
        last.contains(
            r#""receipt":{"requests":100,"failed":20,"longest_gap_ms":0,"at_risk":[null,null]}"#
        ),
        "{last}"
    );

    // The same watch with the users' requests answered goes live, and says what judged.
    let dir = tempfile::tempdir().unwrap();
    let answered = fixtures::plan(dir.path(), Runtime::Docker);
    live(&answered, None, Slot::Blue, "v1");
    let host = FakeHost::new()
        .healthy(Slot::Green, &[true])
        .serving_in_watch(&answered, logged(0, 100, 0));
    let (result, _) = run(&answered, &host);
    assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
    let monitor = result
        .phases
        .iter()
        .find(|p| p.phase == Phase::Monitor)
        .unwrap();
    assert!(
        monitor
            .detail
            .contains("users' requests: 0 of 100 failed, p95 2 ms (judged)"),
        "{}",
        monitor.detail
    );
}

#[test]
fn max_failed_requests_fails_the_watch_when_the_receipt_holds_more() {
    let deploy_after = |most: Option<u64>, elsewhere: u64| {
        let dir = tempfile::tempdir().unwrap();
        let mut plan = plan(dir.path(), Runtime::Docker);
        plan.watch.max_failed_requests = most;
        plan.watch.failed_elsewhere = elsewhere;
        live(&plan, None, Slot::Blue, "v1");
        // 1 of 100 failed: within max-error-rate 1%, so only the receipt's limit judges.
        let host = FakeHost::new()
            .healthy(Slot::Green, &[true])
            .serving_in_watch(&plan, logged(0, 100, 1));
        run(&plan, &host).0
    };
    let deploy = |most| deploy_after(most, 0);
    let strict = deploy(Some(0));
    assert_eq!(strict.result, Some(Outcome::RolledBack), "{strict:?}");
    let error = strict.error.unwrap().message;
    assert!(
        error.contains(
            "1 of 100 requests failed since the run started, above max-failed-requests 0"
        ),
        "{error}"
    );
    assert_eq!(deploy(Some(1)).result, Some(Outcome::Deployed));
    assert_eq!(deploy(None).result, Some(Outcome::Deployed));
    // In a fleet the limit is the run's: the failed requests of earlier hosts count too.
    let after_others = deploy_after(Some(3), 3);
    assert_eq!(after_others.result, Some(Outcome::RolledBack));
    let error = after_others.error.unwrap().message;
    assert!(
        error.contains("1 of 100 requests failed since the run started, and 3 on the fleet's other hosts before this one, above max-failed-requests 3"),
        "{error}"
    );
    assert_eq!(deploy_after(Some(3), 2).result, Some(Outcome::Deployed));
}

#[test]
fn max_failed_requests_without_an_access_log_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan(dir.path(), Runtime::Docker);
    plan.watch.max_failed_requests = Some(5);
    plan.switch.access_log = false;
    live(&plan, None, Slot::Blue, "v1");
    let host = FakeHost::new().healthy(Slot::Green, &[true]);
    let (result, _) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::RolledBack), "{result:?}");
    assert!(
        result
            .error
            .unwrap()
            .message
            .contains("max-failed-requests 5 cannot be checked"),
    );
    assert_eq!(result.receipt, None);
}

#[test]
fn a_switch_that_failed_after_its_reload_leaves_both_reloads_in_the_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Docker);
    live(&plan, None, Slot::Blue, "v1");
    // nginx writes the app's access log from the run's start on.
    let log = plan.switch.access_log_path(&plan.app);
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::write(&log, "").unwrap();
    let host = FakeHost {
        reload_with_clients: Some(7),
        switch_fails_after_reload: true,
        ..FakeHost::new().healthy(Slot::Green, &[true])
    };
    let (result, _) = run(&plan, &host);
    assert_eq!(result.failed_phase, Some(Phase::Switch), "{result:?}");
    let receipt = result.receipt.unwrap();
    assert_eq!(
        receipt.at_risk,
        [Some(7), Some(7)],
        "the switch's reload and the one that put the previous include back"
    );
}

#[test]
fn the_receipt_says_each_reload_with_the_client_connections_it_put_at_risk() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), Runtime::Docker);
    live(&plan, None, Slot::Blue, "v1");
    let host = FakeHost {
        reload_with_clients: Some(7),
        ..FakeHost::new()
            .healthy(Slot::Green, &[true])
            .serving_in_watch(&plan, logged(0, 30, 0))
    };
    let (result, _) = run(&plan, &host);
    assert_eq!(result.result, Some(Outcome::Deployed), "{result:?}");
    let receipt = result.receipt.unwrap();
    assert_eq!(receipt.at_risk, [Some(7)], "one switch, one reload");
    let line = receipt.describe();
    assert!(
        line.starts_with("30 requests, 0 failed")
            && line.ends_with("1 reload of nginx with 7 client connections open"),
        "{line}"
    );
}

#[test]
fn max_failed_requests_holds_without_a_watch_and_needs_a_log_to_count_on() {
    let deploy = |log_written: bool| {
        let dir = tempfile::tempdir().unwrap();
        let mut plan = plan(dir.path(), Runtime::Docker);
        plan.watch.duration = std::time::Duration::ZERO;
        plan.watch.max_failed_requests = Some(0);
        live(&plan, None, Slot::Blue, "v1");
        if log_written {
            let path = plan.switch.access_log_path(&plan.app);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "").unwrap();
        }
        let host = FakeHost::new().healthy(Slot::Green, &[true]);
        run(&plan, &host).0
    };
    let counted = deploy(true);
    assert_eq!(counted.result, Some(Outcome::Deployed), "{counted:?}");
    let monitor = counted
        .phases
        .iter()
        .find(|p| p.phase == Phase::Monitor)
        .unwrap();
    assert!(
        monitor.detail.contains("no watch (monitor-duration 0)"),
        "{}",
        monitor.detail
    );
    // nginx never wrote the log: nothing says no request failed.
    let blind = deploy(false);
    assert_eq!(blind.result, Some(Outcome::RolledBack), "{blind:?}");
    let error = blind.error.unwrap().message;
    assert!(error.contains("nginx has written no access log"), "{error}");
}

#[test]
fn the_watchs_probes_may_be_as_slow_as_the_live_slot_was_before_the_switch() {
    // Probes at p95 950 ms on a host where blue answered its users at 900 ms before the
    // switch: the limit is 900 + canary-p95-margin-ms 100, not max-p95-ms 500.
    let deploy = |live_p95: Option<&str>| {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(dir.path(), Runtime::Docker);
        live(&plan, None, Slot::Blue, "v1");
        let path = plan.switch.access_log_path(&plan.app);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let now = crate::clock::now_epoch_seconds();
        let lines: Vec<String> = (0..30)
            .map(|_| {
                format!(
                    r#"{{"t":"{now:.3}","code":"200","addr":"127.0.0.1:3001","status":"200","ms":"{}","slot":""}}"#,
                    live_p95.unwrap_or("0.002")
                )
            })
            .collect();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let mut host = FakeHost::new().healthy(Slot::Green, &[true]);
        host.probes_p95_ms = Some(950);
        run(&plan, &host)
    };
    let (slow_before, _) = deploy(Some("0.900"));
    assert_eq!(
        slow_before.result,
        Some(Outcome::Deployed),
        "{slow_before:?}"
    );
    let (fast_before, timeline) = deploy(None);
    assert_eq!(
        fast_before.result,
        Some(Outcome::RolledBack),
        "{fast_before:?}"
    );
    assert!(
        timeline.contains(&"p95 latency 950 ms is above the limit 500 ms".to_owned()),
        "{timeline:?}"
    );
}
