//! One host's run, runner side: connect, get the helper there (and the image, with
//! `image-transfer: ssh`), start the host-side run with the plan and relay its events,
//! uploading the helper when the host lacks it, and turn what came back (or did not) into
//! the host's report.

use std::path::PathBuf;
use std::time::Instant;

use crate::deploy::{DeployResult, Operation, Outcome, Phase, PhaseRecord};
use crate::error::{Error, ErrorKind, RunError};
use crate::input::HostPort;

use super::credentials::Credentials;
use super::github::JobLog;
use super::inputs::{ImageTransfer, Inputs};
use super::interrupt::Interrupts;
use super::relay::Relay;
use super::remote::{ConnectOptions, Remote};
use super::report::HostReport;
use super::ship::{self, Helpers, Need};

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

/// Deploys to one host; never fails, the report says what happened.
pub(super) async fn run_host(
    host: &HostPort,
    inputs: &Inputs,
    credentials: &Credentials,
    helpers: &[PathBuf],
    log: &JobLog,
    interrupts: &Interrupts,
    run_started: Instant,
) -> HostReport {
    let mut phases = Vec::new();
    let options = ConnectOptions {
        username: &inputs.username,
        credentials,
        insecure: inputs.insecure_skip_host_key_check,
        proxy_jump: inputs.proxy_jump.as_deref(),
    };
    let failed = |phases, error: Error| {
        let result = DeployResult {
            result: Some(Outcome::Failed),
            error: Some(RunError::from(&error)),
            ..Default::default()
        };
        HostReport::new(host, result, phases)
    };
    let connect = runner_phase(log, &mut phases, Phase::Connect, run_started, async {
        let remote = Remote::connect(host, &options).await?;
        Ok((
            remote,
            format!(
                "connected to {}@{}:{}",
                inputs.username, host.host, host.port
            ),
        ))
    })
    .await;
    let remote = match connect {
        Ok(r) => r,
        Err(e) => return failed(phases, e),
    };
    let helpers = runner_phase(log, &mut phases, Phase::ShipHelpers, run_started, async {
        let helpers = Helpers::read(helpers)?;
        let detail = format!(
            "{}; the host checks its copy as the run starts",
            helpers.describe()
        );
        Ok((helpers, detail))
    })
    .await;
    let helpers = match helpers {
        Ok(h) => h,
        Err(e) => {
            remote.close().await;
            return failed(phases, e);
        }
    };
    if inputs.image_transfer == ImageTransfer::Ssh
        && inputs.plan.operation == Operation::Deploy
        && !inputs.plan.dry_run
    {
        let image = inputs
            .plan
            .runtime
            .image
            .as_ref()
            .expect("checked with the inputs")
            .as_str()
            .to_owned();
        let transfer = runner_phase(
            log,
            &mut phases,
            Phase::ImageTransfer,
            run_started,
            ship::transfer_image(&remote, &image),
        )
        .await;
        if let Err(e) = transfer {
            remote.close().await;
            return failed(phases, e);
        }
    }
    let plan = serde_json::to_vec(&inputs.plan).expect("plan serializes");
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
            Some(Need::Unsupported(machine)) => Err(helpers.unsupported(&host.to_string(), &machine)),
            Some(Need::Upload { .. }) if uploaded => Err(Error::Remote {
                host: host.to_string(),
                detail: "the helper was uploaded and verified, but the host still does not run it (is its cache directory writable by others?)".into(),
            }),
            Some(Need::Upload { machine, path }) => {
                runner_phase(log, &mut phases, Phase::ShipHelpers, run_started, async {
                    let bytes = helpers.upload(&remote, &machine, &path).await?;
                    Ok(((), format!("uploaded and verified {bytes} bytes to {path}")))
                })
                .await
            }
        };
        if let Err(e) = shipped {
            remote.close().await;
            return failed(phases, e);
        }
        uploaded = true;
    };
    let finished = relay.finish();
    remote.close().await;
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
        (Err(lost_during), Ok((status, stderr))) => DeployResult {
            result: Some(Outcome::Failed),
            error: Some(RunError {
                kind: ErrorKind::Remote,
                message: format!(
                    "the host-side run ended without a result (exit {}){}{}",
                    status.map_or("unknown".into(), |s| s.to_string()),
                    if stderr.is_empty() {
                        String::new()
                    } else {
                        format!(": {stderr}")
                    },
                    lost_hint(lost_during)
                ),
            }),
            ..Default::default()
        },
        (Err(_), Err(e)) => DeployResult {
            result: Some(Outcome::Failed),
            error: Some(RunError::from(&e)),
            ..Default::default()
        },
    };
    HostReport::new(host, result, phases)
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

fn lost_hint(phase: Option<Phase>) -> String {
    match phase {
        Some(p) => format!(
            "; the connection was lost during {}: the host stops before the switch, or finishes its watch after it, and records it in history.jsonl (see command: status)",
            p.as_str()
        ),
        None => String::new(),
    }
}
