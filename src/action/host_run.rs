//! One host's run, runner side: connect (every host before any changes, see `fleet`), get
//! the helper there (and the image, with `image-transfer: ssh`), start the host-side run
//! with the plan and relay its events, uploading the helper when the host lacks it, and
//! turn what came back (or did not) into the host's report.

use std::time::Instant;

use crate::deploy::{DeployPlan, DeployResult, Outcome, Phase, PhaseRecord};
use crate::error::{Error, ErrorKind, RunError};

use super::context::RunContext;
use super::fleet::SshTarget;
use super::github::JobLog;
use super::relay::Relay;
use super::remote::{ConnectOptions, Remote};
use super::report::HostReport;
use super::ship::{Helpers, Need};

/// Runs one runner-side phase inside a log group, recording it with its start relative to
/// `run_started`.
async fn runner_phase<T>(
    log: &JobLog,
    phases: &mut Vec<PhaseRecord>,
    phase: Phase,
    run_started: Instant,
    body: impl std::future::Future<Output = Result<(T, String), Error>>,
) -> Result<T, Error> {
    let name = phase.as_str();
    log.group(name);
    let started = Instant::now();
    let outcome = body.await;
    let ms = started.elapsed().as_millis() as u64;
    let (ok, detail) = match &outcome {
        Ok((_, d)) => (true, d.clone()),
        Err(e) => (false, e.to_string()),
    };
    log.relay(&[format!(
        "{} {name} ({ms} ms): {detail}",
        if ok { "ok" } else { "FAILED" }
    )]);
    log.end_group();
    if !ok {
        log.error(&format!("{name} failed: {detail}"));
    }
    phases.push(PhaseRecord {
        phase,
        ok,
        start_ms: started.duration_since(run_started).as_millis() as u64,
        ms,
        detail,
    });
    outcome.map(|(v, _)| v)
}

/// One host's connection, opened before any host changes: the open connection, or why
/// there is none, with the connect phase.
pub(super) struct Connection {
    /// The open connection, or why there is none.
    pub(super) remote: Result<Remote, RunError>,
    /// The runner's phases of this host so far (connect).
    pub(super) phases: Vec<PhaseRecord>,
}

/// Opens the connection to `target` (its host key checked), as the phase `connect`, once
/// one of the run's connect slots is free (see [`RunContext::connect_slots`]).
pub(super) async fn connect(target: &SshTarget, ctx: &RunContext<'_>, log: &JobLog) -> Connection {
    let (inputs, credentials, run_started) = (ctx.inputs, ctx.credentials, ctx.started);
    let _slot = ctx
        .connect_slots
        .acquire()
        .await
        .expect("the connect slots are never closed");
    let mut phases = Vec::new();
    let user = target.user_or(&inputs.username);
    let options = ConnectOptions {
        username: user,
        credentials,
        insecure: inputs.insecure_skip_host_key_check,
        proxy_jump: inputs.proxy_jump.as_deref(),
    };
    let remote = runner_phase(log, &mut phases, Phase::Connect, run_started, async {
        let remote = Remote::connect(&target.addr, &options).await?;
        Ok((
            remote,
            format!(
                "connected to {user}@{}:{}",
                target.addr.host, target.addr.port
            ),
        ))
    })
    .await;
    Connection {
        remote: remote.map_err(|e| RunError::from(&e)),
        phases,
    }
}

/// Runs `plan` on `target` through its open connection `remote` (opened again if it
/// closed while waiting for its batch); never fails, the report says what happened.
/// `phases` are the host's runner phases so far. The connection stays open.
pub(super) async fn run_on(
    target: &SshTarget,
    remote: &mut Remote,
    mut phases: Vec<PhaseRecord>,
    plan: &DeployPlan,
    ctx: &RunContext<'_>,
    log: &JobLog,
) -> HostReport {
    let (run_started, interrupts) = (ctx.started, ctx.interrupts);
    let failed = |phases, error: Error| {
        let result = DeployResult {
            result: Some(Outcome::Failed),
            error: Some(RunError::from(&error)),
            ..Default::default()
        };
        HostReport::new(target, result, phases)
    };
    if !remote.is_open().await {
        let again = connect(target, ctx, log).await;
        phases.extend(again.phases);
        match again.remote {
            Ok(fresh) => *remote = fresh,
            Err(e) => return HostReport::failed(target, e, phases),
        }
    }
    let helpers = ctx.helpers;
    // Not a phase of its own: "ship helpers" is the upload, when the host asks for one.
    log.info(&format!(
        "helpers: {}; the host checks its copy as the run starts and asks for an upload only when it has none that matches",
        helpers.describe()
    ));
    if let Some(image) = ctx.image {
        let transfer = runner_phase(
            log,
            &mut phases,
            Phase::ImageTransfer,
            run_started,
            image.send(remote, log),
        )
        .await;
        if let Err(e) = transfer {
            return failed(phases, e);
        }
    }
    let plan = serde_json::to_vec(plan).expect("plan serializes");
    let argv = helpers.run_argv();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut relay = Relay::new(log);
    let mut uploaded = false;
    let (launched_ms, streamed) = loop {
        let launched_ms = run_started.elapsed().as_millis() as u64;
        let mut need = None;
        let streamed = remote
            .stream(&argv, &plan, interrupts, |line| match Helpers::need(line) {
                Some(n) => {
                    need = Some(n);
                    true
                }
                None => relay.line(line),
            })
            .await;
        let shipped = match need {
            None => break (launched_ms, streamed),
            Some(Need::Unsupported(machine)) => Err(helpers.unsupported(&target.to_string(), &machine)),
            Some(Need::Upload { .. }) if uploaded => Err(Error::Remote {
                host: target.to_string(),
                detail: "the helper was uploaded and verified, but the host still does not run it (is its cache directory writable by others?)".into(),
            }),
            Some(Need::Upload { machine, path }) => {
                runner_phase(log, &mut phases, Phase::ShipHelpers, run_started, async {
                    let bytes = helpers.upload(remote, &machine, &path).await?;
                    Ok(((), format!("uploaded and verified {bytes} bytes to {path}")))
                })
                .await
            }
        };
        if let Err(e) = shipped {
            return failed(phases, e);
        }
        uploaded = true;
    };
    let finished = relay.finish();
    let result = match (finished, streamed) {
        (Ok(mut result), _) => {
            // The host counts from its own start: make its phases relative to the run's.
            for p in &mut result.phases {
                p.start_ms += launched_ms;
            }
            result
        }
        (Err(_), _) if interrupts.received() > 0 => cancelled_result(
            "cancelled on the runner before the host reported; the host-side run stops before the switch, or after it finishes its watch (and rollback) on its own: `command: status` shows how it ended",
        ),
        (Err(lost_during), Ok((status, stderr))) => unreported(
            log,
            RunError {
                kind: ErrorKind::Remote,
                message: format!(
                    "the host-side run ended without a result (exit {}){}{}",
                    status.map_or("unknown".into(), |s| s.to_string()),
                    if stderr.is_empty() {
                        String::new()
                    } else {
                        format!(": {stderr}")
                    },
                    lost_hint(lost_during, status)
                ),
            },
        ),
        (Err(_), Err(e)) => unreported(log, RunError::from(&e)),
    };
    HostReport::new(target, result, phases)
}

/// The failed result of a host that sent none (its stream was lost, or ssh failed), said
/// in the job log as the relay says a host's own failure.
fn unreported(log: &JobLog, error: RunError) -> DeployResult {
    log.error(&error.message);
    DeployResult {
        result: Some(Outcome::Failed),
        error: Some(error),
        ..Default::default()
    }
}

/// The result of a host whose run was cancelled, saying what became of it.
pub(super) fn cancelled_result(message: &str) -> DeployResult {
    DeployResult {
        result: Some(Outcome::Cancelled),
        error: Some(RunError {
            kind: ErrorKind::Cancelled,
            message: message.to_owned(),
        }),
        ..Default::default()
    }
}

/// What became of the host-side run that was in `phase` when its stream ended without a
/// result: with no exit status (or ssh's own 255) the connection was lost, and the run goes
/// on by itself; with another status it ended there.
fn lost_hint(phase: Option<Phase>, status: Option<i32>) -> String {
    match (phase, status) {
        (None, _) => String::new(),
        (Some(p), None | Some(255)) => format!(
            "; the connection was lost during {}: the host stops before the switch, or finishes its watch after it, and records it in history.jsonl (see command: status)",
            p.as_str()
        ),
        (Some(p), Some(_)) => format!(
            "; it ended during {} (history.jsonl says how far it got: see command: status)",
            p.as_str()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_connection_is_said_only_where_no_exit_status_came() {
        let during = Some(Phase::HealthCheck);
        for lost in [None, Some(255)] {
            assert!(
                lost_hint(during, lost)
                    .starts_with("; the connection was lost during health-check"),
                "{lost:?}"
            );
        }
        assert_eq!(
            lost_hint(during, Some(101)),
            "; it ended during health-check standby (history.jsonl says how far it got: see command: status)"
        );
        assert_eq!(lost_hint(None, None), "");
    }
}
