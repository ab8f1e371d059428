//! Unit tests of the fleet's decisions: when a batch calls for going back, and the
//! failed requests held to the run's limit.

use super::*;

#[test]
fn the_failed_requests_of_the_hosts_so_far_are_held_to_the_runs_limit() {
    let host = |failed: Option<u64>| {
        let result = crate::deploy::DeployResult {
            receipt: failed.map(|failed| crate::canary::Receipt {
                requests: 100,
                failed,
                ..Default::default()
            }),
            ..Default::default()
        };
        let target = SshTarget::parse("web1", 22).unwrap();
        Some(HostReport::new(&target, result, Vec::new()))
    };
    // Two hosts with 2 failed each, one without a receipt, one not run yet.
    let reports = [host(Some(2)), host(None), host(Some(2)), None];
    assert_eq!(failed_requests(&reports), 4);
    let app = "shop".parse().unwrap();
    let ports = crate::input::SlotPorts::new(3001, 3002).unwrap();
    let mut plan = DeployPlan::defaults(&app, ports);
    assert_eq!(budget_broken(&plan, 4, &reports), None, "no limit given");
    plan.watch.max_failed_requests = Some(4);
    assert_eq!(budget_broken(&plan, 4, &reports), None, "at the limit");
    plan.watch.max_failed_requests = Some(3);
    assert_eq!(
        budget_broken(&plan, 4, &reports).as_deref(),
        Some(
            "the users' failed requests across the fleet so far (4) are above max-failed-requests 3"
        )
    );
    // One host's own watch holds the limit; a rollback or abort is never stopped by it.
    assert_eq!(budget_broken(&plan, 1, &reports), None);
    for operation in [Operation::Rollback, Operation::Abort] {
        plan.operation = operation;
        assert_eq!(budget_broken(&plan, 4, &reports), None, "{operation:?}");
    }
    plan.operation = Operation::Promote;
    assert!(budget_broken(&plan, 4, &reports).is_some());
}

#[test]
fn a_batch_calls_for_going_back_whichever_of_its_hosts_is_read_first() {
    use Outcome::{Cancelled, Deployed, Failed, RolledBack};
    let deploy = Operation::Deploy;
    // A host cancelled as its neighbour failed: the failure counts, in either order.
    assert_eq!(batch_verdict(deploy, &[Cancelled, Failed]), (Some(0), true));
    assert_eq!(batch_verdict(deploy, &[Failed, Cancelled]), (Some(0), true));
    assert_eq!(
        batch_verdict(deploy, &[Deployed, RolledBack]),
        (Some(1), true)
    );
    // Cancels alone stop the run without going back.
    assert_eq!(
        batch_verdict(deploy, &[Cancelled, Cancelled]),
        (Some(0), false)
    );
    assert_eq!(batch_verdict(deploy, &[Deployed, Deployed]), (None, false));
    // A rollback command rolls back on purpose.
    assert_eq!(
        batch_verdict(Operation::Rollback, &[RolledBack, RolledBack]),
        (None, false)
    );
}
