//! A run across the fleet. Every host is connected, its key checked, before any host
//! changes (a bounded number at a time); an unreachable host stops the run there unless `max-unreachable` allows it (it
//! is then skipped). Then the hosts go in batches (see `plan`): the canary hosts first,
//! which must pass their watch before any other starts, then `batch-size` hosts at a time,
//! side by side. When a host fails, no later batch starts, and with `fleet-rollback` the
//! hosts this run switched are rolled back (`command: rollback` on each), so the fleet ends
//! on one version; their reports say so. In a deploy or promote of several hosts,
//! `max-failed-requests` is the run's, not each host's: each host is told the failed
//! requests its earlier batches' receipts hold, and when a batch's receipts (each to its
//! host's end) take the sum over it, the fleet stops as it does for a failed host. A
//! cancelled run stops starting hosts and rolls nothing back.

mod plan;

pub use plan::{BatchSize, FleetSpec, SshTarget};

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use crate::deploy::{DeployPlan, Operation, Outcome};

use super::context::RunContext;
use super::github::JobLog;
use super::host_run::{self, Connection, cancelled_result};
use super::report::HostReport;

/// What a run across the fleet came to.
pub(super) struct FleetRun {
    /// A report per host, in the order of the `host` input.
    pub(super) reports: Vec<HostReport>,
    /// Why the run failed as a whole while its hosts kept the new version: their failed
    /// requests together went over `max-failed-requests` and the fleet did not go back.
    pub(super) error: Option<String>,
}

/// Runs the plan on every host as the fleet spec says.
pub(super) async fn run(ctx: &RunContext<'_>) -> FleetRun {
    let inputs = ctx.inputs;
    let mut plan = inputs.plan.clone();
    let targets = &inputs.hosts;
    let spec = inputs.fleet;
    let everyone: Vec<usize> = (0..targets.len()).collect();
    let (logs, connect_logs) = host_logs(ctx, &everyone);
    let mut connections: Vec<Connection> = join_all(
        targets
            .iter()
            .zip(&connect_logs)
            .map(|(t, log)| host_run::connect(t, ctx, log)),
    )
    .await;
    let unreachable: Vec<usize> = (0..targets.len())
        .filter(|&i| connections[i].remote.is_err())
        .collect();
    let mut reports: Vec<Option<HostReport>> = vec![None; targets.len()];
    // Why no further batch starts, and whether a host failed (rather than a cancel).
    let mut stop = skip_unreachable(ctx, &connections, &unreachable, &mut reports);
    let mut failed = false;
    let mut over_budget = None;

    // The batches go through the hosts that answered: a skipped canary host's place goes
    // to the next one.
    let reachable: Vec<usize> = everyone
        .into_iter()
        .filter(|i| !unreachable.contains(i))
        .collect();
    let batches = spec.batches(&reachable, targets.len());
    for batch in &batches {
        let batch: Vec<usize> = batch
            .iter()
            .copied()
            .filter(|i| reports[*i].is_none())
            .collect();
        if batch.is_empty() {
            continue;
        }
        if stop.is_none() && ctx.interrupts.received() > 0 {
            stop = Some("the run was cancelled".into());
        }
        if let Some(why) = &stop {
            ctx.log
                .warning(&format!("not started: {} ({why})", names(targets, &batch)));
            for &i in &batch {
                reports[i] = Some(HostReport::new(
                    &targets[i],
                    cancelled_result(&format!("not started: {why}")),
                    connections[i].phases.clone(),
                ));
            }
            continue;
        }
        if fleet_budget(&plan, reachable.len()).is_some() {
            plan.watch.failed_elsewhere = failed_requests(&reports);
        }
        let done = run_batch(ctx, &batch, &mut connections, &logs, &plan).await;
        let outcomes: Vec<Outcome> = done.iter().map(HostReport::outcome).collect();
        let (stopper, batch_failed) = batch_verdict(inputs.plan.operation, &outcomes);
        failed |= batch_failed;
        if let Some(report) = stopper.map(|at| &done[at]).filter(|_| stop.is_none()) {
            let why = format!("{} ended {}", report.host, report.outcome().as_str());
            ctx.log.warning(&format!("stopping the fleet here: {why}"));
            stop = Some(why);
        }
        for (i, report) in batch.iter().zip(done) {
            reports[*i] = Some(report);
        }
        let over = budget_broken(&plan, reachable.len(), &reports);
        if let Some(why) = over.filter(|_| stop.is_none()) {
            ctx.log.warning(&format!("stopping the fleet here: {why}"));
            failed = true;
            stop = Some(why.clone());
            over_budget = Some(why);
        }
    }

    if let Some(why) = stop.as_ref().filter(|_| spec.rollback && failed) {
        roll_back(ctx, &mut reports, &mut connections, &logs, why).await;
    }
    for connection in connections {
        if let Ok(remote) = connection.remote {
            remote.close().await;
        }
    }
    let reports: Vec<HostReport> = reports
        .into_iter()
        .map(|r| r.expect("every host has a report"))
        .collect();
    // Observed, not assumed: hosts the fleet did not roll back are still on the new version.
    let stayed: Vec<&str> = reports
        .iter()
        .filter(|r| matches!(r.outcome(), Outcome::Deployed | Outcome::Paused))
        .map(|r| r.host.as_str())
        .collect();
    let error = over_budget.filter(|_| !stayed.is_empty()).map(|why| {
        format!(
            "{why}; {} kept the new version (fleet-rollback is off)",
            stayed.join(", ")
        )
    });
    FleetRun { reports, error }
}

/// The failed requests on the receipts of the hosts that have ended so far.
fn failed_requests(reports: &[Option<HostReport>]) -> u64 {
    reports
        .iter()
        .flatten()
        .filter_map(HostReport::receipt_figures)
        .map(|(_, failed)| failed)
        .sum()
}

/// The plan's `max-failed-requests` as the fleet's limit: for a deploy or promote that runs
/// on more than one host, `hosts` being those that run (the skipped do not; one host's own
/// watch holds it; a rollback or abort is how a fleet gets back, and is never stopped for
/// what the version it leaves cost).
fn fleet_budget(plan: &DeployPlan, hosts: usize) -> Option<u64> {
    let deploys = matches!(plan.operation, Operation::Deploy | Operation::Promote);
    plan.watch
        .max_failed_requests
        .filter(|_| deploys && hosts > 1)
}

/// Why the failed requests of the hosts so far break the fleet's limit, if they do.
fn budget_broken(
    plan: &DeployPlan,
    hosts: usize,
    reports: &[Option<HostReport>],
) -> Option<String> {
    let most = fleet_budget(plan, hosts)?;
    let failed = failed_requests(reports);
    (failed > most).then(|| {
        format!("the users' failed requests across the fleet so far ({failed}) are above max-failed-requests {most}")
    })
}

/// Each host's log, and the log it connects with: with a group of its own where a host
/// runs by itself (one host, or batches of one, as planned before anyone is found
/// unreachable); the hosts connect side by side, without groups, unless there is only one.
fn host_logs(ctx: &RunContext<'_>, everyone: &[usize]) -> (Vec<JobLog>, Vec<JobLog>) {
    let targets = &ctx.inputs.hosts;
    let alone = targets.len() == 1;
    let planned = ctx.inputs.fleet.batches(everyone, targets.len());
    let logs: Vec<JobLog> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let by_itself = planned.iter().any(|b| b == &[i]);
            if alone {
                ctx.log.clone()
            } else {
                ctx.log.for_host(&t.to_string(), by_itself)
            }
        })
        .collect();
    let connect_logs = logs
        .iter()
        .map(|log| {
            if alone {
                log.clone()
            } else {
                log.side_by_side()
            }
        })
        .collect();
    (logs, connect_logs)
}

/// Reports each `unreachable` host as failed; returns why nothing more may start when more
/// are unreachable than `max-unreachable` allows, else marks them skipped (with a warning).
fn skip_unreachable(
    ctx: &RunContext<'_>,
    connections: &[Connection],
    unreachable: &[usize],
    reports: &mut [Option<HostReport>],
) -> Option<String> {
    let targets = &ctx.inputs.hosts;
    let spec = ctx.inputs.fleet;
    for &i in unreachable {
        if let Err(error) = &connections[i].remote {
            reports[i] = Some(HostReport::failed(
                &targets[i],
                error.clone(),
                connections[i].phases.clone(),
            ));
        }
    }
    if unreachable.is_empty() {
        return None;
    }
    let names = names(targets, unreachable);
    if unreachable.len() > spec.max_unreachable {
        return Some(format!(
            "{} of {} hosts unreachable ({names}); max-unreachable is {}: nothing was changed",
            unreachable.len(),
            targets.len(),
            spec.max_unreachable
        ));
    }
    ctx.log.warning(&format!(
        "skipping {names}: unreachable, and max-unreachable allows {}",
        spec.max_unreachable
    ));
    for &i in unreachable {
        if let Some(r) = reports[i].as_mut() {
            r.skipped = true;
        }
    }
    None
}

/// Runs `plan` on the hosts of `batch` side by side.
async fn run_batch(
    ctx: &RunContext<'_>,
    batch: &[usize],
    connections: &mut [Connection],
    logs: &[super::github::JobLog],
    plan: &DeployPlan,
) -> Vec<HostReport> {
    let targets = &ctx.inputs.hosts;
    let runs = connections
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| batch.contains(i))
        .filter_map(|(i, c)| {
            let phases = c.phases.clone();
            let remote = c.remote.as_mut().ok()?;
            Some(host_run::run_on(
                &targets[i],
                remote,
                phases,
                plan,
                ctx,
                &logs[i],
            ))
        });
    join_all(runs).await
}

/// What the outcomes of one batch say, whichever host's is read first: the first that stops
/// the fleet (its index), and whether any of them is a failure, which calls for going back,
/// rather than a cancel, which only stops the run.
fn batch_verdict(operation: Operation, outcomes: &[Outcome]) -> (Option<usize>, bool) {
    let stoppers = || {
        outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| stops_the_fleet(operation, **o))
    };
    let first = stoppers().map(|(at, _)| at).next();
    let failed = stoppers().any(|(_, o)| *o != Outcome::Cancelled);
    (first, failed)
}

/// Whether a host that ended with `outcome` stops the rest of the fleet: a failure, a
/// cancel, or a deploy that was rolled back (a rollback or an abort rolls back on purpose).
/// A status reads every host whatever it finds.
fn stops_the_fleet(operation: Operation, outcome: Outcome) -> bool {
    if operation == Operation::Status {
        return false;
    }
    match outcome {
        Outcome::Failed | Outcome::Cancelled => true,
        Outcome::RolledBack => !matches!(operation, Operation::Rollback | Operation::Abort),
        _ => false,
    }
}

/// Rolls back the hosts this run deployed (a deploy or a promote whose host ended
/// `deployed`), and aborts the canaries it left paused (`paused`), because of `why`, so the
/// fleet ends on one version.
async fn roll_back(
    ctx: &RunContext<'_>,
    reports: &mut [Option<HostReport>],
    connections: &mut [Connection],
    logs: &[super::github::JobLog],
    why: &str,
) {
    let plan = &ctx.inputs.plan;
    if !matches!(plan.operation, Operation::Deploy | Operation::Promote) || plan.dry_run {
        return;
    }
    for (ended, back, doing) in [
        (Outcome::Deployed, Operation::Rollback, "rolling back"),
        (
            Outcome::Paused,
            Operation::Abort,
            "aborting the paused canaries of",
        ),
    ] {
        let hosts: Vec<usize> = (0..reports.len())
            .filter(|&i| reports[i].as_ref().is_some_and(|r| r.outcome() == ended))
            .collect();
        if hosts.is_empty() {
            continue;
        }
        let names = names(&ctx.inputs.hosts, &hosts);
        ctx.log
            .warning(&format!("{doing} {names}: {why} (fleet-rollback)"));
        let going_back = DeployPlan {
            operation: back,
            purpose: format!("fleet rollback, {why} ({})", plan.purpose),
            ..plan.clone()
        };
        // Hosts going back together do so side by side: no groups.
        let side_by_side: Vec<_> = logs.iter().map(|log| log.side_by_side()).collect();
        let logs = if hosts.len() > 1 {
            side_by_side.as_slice()
        } else {
            logs
        };
        let done = run_batch(ctx, &hosts, connections, logs, &going_back).await;
        for (i, went) in hosts.iter().zip(done) {
            if let Some(report) = reports[*i].as_mut() {
                report.fleet_rollback(went, why);
            }
        }
    }
}

/// The names of the hosts `which`, for a message.
fn names(targets: &[SshTarget], which: &[usize]) -> String {
    which
        .iter()
        .map(|&i| targets[i].to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `futures` side by side on this thread; their outputs, in order.
async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

#[cfg(test)]
mod tests;
