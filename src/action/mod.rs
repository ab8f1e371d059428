//! The orchestrator that `action.yml` runs on the GitHub runner.
//!
//! It validates every input before connecting, writes the SSH credentials into a private
//! directory for the length of the run, and for each host in turn: connects once (one
//! multiplexed SSH connection), ships the helper binary if the host lacks it, optionally
//! streams the image over SSH, and runs the host-side plan (`bluegreen deploy`), relaying its
//! events as log groups. Then it writes the step outputs and job summary, and posts to Slack
//! when asked. A failed notification never changes the result.
//!
//! - [`inputs`]: reading and validating the inputs.
//! - [`remote`]: credentials and the SSH connection.
//! - [`ship`]: getting the helper onto a host.
//! - [`github`]: workflow commands (groups, annotations, masks, stop-commands).
//! - [`report`]: outputs, job summary, Slack.

pub mod github;
pub mod inputs;
pub mod remote;
pub mod report;
pub mod ship;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use crate::deploy::{DeployResult, Event, Operation, Outcome, Phase};
use crate::error::{EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_ENVIRONMENT, EXIT_OK, Error};

use github::JobLog;
use inputs::{Host, ImageTransfer, Inputs, NotifyOn, env_name};
use remote::{ConnectOptions, Credentials, Remote};
use report::{GithubContext, HostReport, RunReport};

/// Runs the action with the process environment; returns the step's exit code.
pub fn main() -> ExitCode {
    let env: HashMap<String, String> = std::env::vars().collect();
    let log = JobLog::new();
    for secret in ["ssh-key", "slack-webhook"] {
        if let Some(value) = env.get(&env_name(secret)) {
            log.mask(value);
        }
    }
    let started = Instant::now();
    let github = GithubContext::from_env(&env);
    let inputs = match Inputs::from_env(&env) {
        Ok(i) => i,
        Err(e) => return fail_early(&env, &log, &github, started, &e, EXIT_BAD_INPUT),
    };
    let helpers: Vec<PathBuf> = env
        .get("BLUEGREEN_HELPERS")
        .map(|list| {
            list.split(':')
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default();
    if helpers.is_empty() || !helpers.iter().all(|p| p.is_file()) {
        let e = Error::invalid(
            "BLUEGREEN_HELPERS",
            "the host helper binaries (a :-separated list of files) are not set or missing",
        );
        return fail_early(&env, &log, &github, started, &e, EXIT_ENVIRONMENT);
    }
    if inputs.insecure_skip_host_key_check {
        log.warning("insecure-skip-host-key-check is on: the host's identity is not verified");
    }
    let base = env
        .get("RUNNER_TEMP")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let known_hosts = if inputs.insecure_skip_host_key_check {
        ""
    } else {
        inputs.known_hosts.as_str()
    };
    let credentials = match Credentials::write(&base, &inputs.ssh_key, known_hosts) {
        Ok(c) => c,
        Err(e) => return fail_early(&env, &log, &github, started, &e, EXIT_ENVIRONMENT),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    let mut hosts = Vec::new();
    for host in &inputs.hosts {
        let report = runtime.block_on(run_host(host, &inputs, &credentials, &helpers, &log));
        let stop = report.outcome() == Outcome::Failed
            || (report.outcome() == Outcome::RolledBack
                && inputs.plan.operation != Operation::Rollback);
        hosts.push(report);
        if stop {
            let remaining = inputs.hosts.len() - hosts.len();
            if remaining > 0 {
                log.warning(&format!("stopping here: {remaining} host(s) not deployed"));
            }
            break;
        }
    }
    drop(credentials);
    let report = RunReport {
        app: inputs.plan.app.to_string(),
        command: inputs.plan.operation.as_str().to_owned(),
        version: inputs.plan.version.as_str().to_owned(),
        hosts,
        duration: started.elapsed(),
        early_error: None,
    };
    finish(
        &env,
        &log,
        &github,
        &report,
        inputs.slack_webhook.as_deref(),
        inputs.notify_on,
    )
}

/// Reports a run that stopped before any host: outputs, summary, and Slack when the
/// webhook input itself is usable.
fn fail_early(
    env: &HashMap<String, String>,
    log: &JobLog,
    github: &GithubContext,
    started: Instant,
    error: &Error,
    code: u8,
) -> ExitCode {
    log.error(&error.to_string());
    let report = RunReport {
        app: env.get(&env_name("app")).cloned().unwrap_or_default(),
        command: env
            .get(&env_name("command"))
            .filter(|c| !c.is_empty())
            .cloned()
            .unwrap_or_else(|| "deploy".into()),
        version: env.get(&env_name("version")).cloned().unwrap_or_default(),
        hosts: Vec::new(),
        duration: started.elapsed(),
        early_error: Some(error.to_string()),
    };
    let webhook = env
        .get(&env_name("slack-webhook"))
        .map(|w| w.trim())
        .filter(|w| w.parse::<crate::input::HttpUrl>().is_ok());
    let notify = match env.get(&env_name("notify-on")).map(String::as_str) {
        Some("never") => NotifyOn::Never,
        _ => NotifyOn::Failure,
    };
    finish(env, log, github, &report, webhook, notify);
    ExitCode::from(code)
}

/// Writes outputs and summary, notifies, and maps the outcome to the exit code.
fn finish(
    env: &HashMap<String, String>,
    log: &JobLog,
    github: &GithubContext,
    report: &RunReport,
    webhook: Option<&str>,
    notify_on: NotifyOn,
) -> ExitCode {
    let outcome = report.outcome();
    if let Some(path) = env.get("GITHUB_OUTPUT")
        && let Err(e) = report::write_outputs(Path::new(path), &report.outputs())
    {
        log.warning(&format!("could not write outputs: {e}"));
    }
    match report.summary() {
        Ok(text) => {
            if let Some(path) = env.get("GITHUB_STEP_SUMMARY") {
                let written = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(path)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
                if let Err(e) = written {
                    log.warning(&format!("could not write the job summary: {e}"));
                }
            }
        }
        Err(e) => log.warning(&format!("could not render the job summary: {e}")),
    }
    let notify = match notify_on {
        NotifyOn::Always => true,
        NotifyOn::Failure => !report.succeeded(),
        NotifyOn::Never => false,
    };
    if let (true, Some(webhook)) = (notify, webhook) {
        let posted = report
            .slack_payload(github)
            .map_err(|e| e.to_string())
            .and_then(|payload| report::post_slack(webhook, &payload));
        match posted {
            Ok(()) => log.info("Slack notified"),
            Err(why) => log.warning(&format!("Slack notification failed: {why}")),
        }
    }
    log.info(&format!(
        "result: {} ({} in {:.1} s)",
        outcome.as_str(),
        report.app,
        report.duration.as_secs_f64()
    ));
    ExitCode::from(if report.succeeded() {
        EXIT_OK
    } else {
        EXIT_CHECK_FAILED
    })
}

/// Runs one runner-side phase inside a log group, recording it.
async fn runner_phase<T>(
    log: &JobLog,
    phases: &mut Vec<(String, bool, u64, String)>,
    name: &str,
    body: impl std::future::Future<Output = Result<(T, String), Error>>,
) -> Result<T, Error> {
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
    phases.push((name.to_owned(), ok, ms, detail));
    outcome.map(|(v, _)| v)
}

/// Deploys to one host; never fails, the report says what happened.
async fn run_host(
    host: &Host,
    inputs: &Inputs,
    credentials: &Credentials,
    helpers: &[PathBuf],
    log: &JobLog,
) -> HostReport {
    let mut phases = Vec::new();
    let options = ConnectOptions {
        username: &inputs.username,
        credentials,
        insecure: inputs.insecure_skip_host_key_check,
        proxy_jump: inputs.proxy_jump.as_deref(),
    };
    let failed = |phases, error: Error| HostReport {
        host: host.name.clone(),
        result: DeployResult {
            result: Some(Outcome::Failed),
            error: Some(error.to_string()),
            ..Default::default()
        },
        runner_phases: phases,
    };
    let connect = runner_phase(log, &mut phases, "connect", async {
        let remote = Remote::connect(host, &options).await?;
        Ok((
            remote,
            format!(
                "connected to {}@{}:{}",
                inputs.username, host.name, host.port
            ),
        ))
    })
    .await;
    let remote = match connect {
        Ok(r) => r,
        Err(e) => return failed(phases, e),
    };
    let shipped = runner_phase(log, &mut phases, "ship helpers", async {
        let shipped = ship::ensure_helper(&remote, helpers).await?;
        let detail = if shipped.uploaded_bytes == 0 {
            format!(
                "host already has {} (sha256 {})",
                shipped.path,
                &shipped.sha256[..12]
            )
        } else {
            format!(
                "uploaded and verified {} bytes to {}",
                shipped.uploaded_bytes, shipped.path
            )
        };
        Ok((shipped, detail))
    })
    .await;
    let shipped = match shipped {
        Ok(s) => s,
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
            .image
            .as_ref()
            .expect("checked with the inputs")
            .as_str()
            .to_owned();
        let transfer = runner_phase(
            log,
            &mut phases,
            "image transfer",
            transfer_image(&remote, &image),
        )
        .await;
        if let Err(e) = transfer {
            remote.close().await;
            return failed(phases, e);
        }
    }
    let plan = serde_json::to_vec(&inputs.plan).expect("plan serializes");
    let mut relay = Relay::new(log);
    let streamed = remote
        .stream(&[&shipped.path, "deploy"], &plan, |line| relay.line(line))
        .await;
    let finished = relay.finish();
    remote.close().await;
    let result = match (finished, streamed) {
        (Ok(result), _) => result,
        (Err(lost_during), Ok((status, stderr))) => DeployResult {
            result: Some(Outcome::Failed),
            error: Some(format!(
                "the host-side run ended without a result (exit {}){}{}",
                status.map_or("unknown".into(), |s| s.to_string()),
                if stderr.is_empty() {
                    String::new()
                } else {
                    format!(": {stderr}")
                },
                lost_hint(lost_during)
            )),
            ..Default::default()
        },
        (Err(_), Err(e)) => DeployResult {
            result: Some(Outcome::Failed),
            error: Some(e.to_string()),
            ..Default::default()
        },
    };
    HostReport {
        host: host.name.clone(),
        result,
        runner_phases: phases,
    }
}

fn lost_hint(phase: Option<Phase>) -> String {
    match phase {
        Some(p) => format!(
            "; the connection was lost during {}: the host finishes the run on its own and records it in history.jsonl (see command: status)",
            p.as_str()
        ),
        None => String::new(),
    }
}

/// `image-transfer: ssh`: streams the image when the host does not have that image ID.
async fn transfer_image(remote: &Remote, image: &str) -> Result<((), String), Error> {
    let inspect = ["docker", "image", "inspect", "--format", "{{.Id}}", image];
    let local = crate::exec::CommandLine::new(inspect)
        .run(std::time::Duration::from_secs(60))?
        .stdout
        .trim()
        .to_owned();
    let on_host = remote.output(&inspect, b"").await?;
    let host_id = String::from_utf8_lossy(&on_host.stdout).trim().to_owned();
    if on_host.status.success() && host_id == local {
        return Ok((
            (),
            format!("host already has {image} ({})", short_id(&local)),
        ));
    }
    let bytes = remote
        .pipe_from_local(&["docker", "save", image], &["docker", "load", "--quiet"])
        .await?;
    Ok((
        (),
        format!(
            "streamed {image} ({}, {bytes} bytes) over SSH",
            short_id(&local)
        ),
    ))
}

fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

/// Turns the host's event stream into log groups and collects the result.
struct Relay<'a> {
    log: &'a JobLog,
    result: Option<DeployResult>,
    open: Option<Phase>,
}

impl<'a> Relay<'a> {
    fn new(log: &'a JobLog) -> Self {
        Relay {
            log,
            result: None,
            open: None,
        }
    }

    fn line(&mut self, line: &str) {
        match serde_json::from_str::<Event>(line) {
            Ok(Event::PhaseStart { phase }) => {
                self.log.group(phase.as_str());
                self.open = Some(phase);
            }
            Ok(Event::Log { line }) => self.log.relay(&[line]),
            Ok(Event::PhaseEnd(record)) => {
                self.log.relay(&[format!(
                    "{} {} ({} ms): {}",
                    if record.ok { "ok" } else { "FAILED" },
                    record.phase.as_str(),
                    record.ms,
                    record.detail
                )]);
                self.log.end_group();
                if !record.ok {
                    self.log.error(&format!(
                        "{} failed: {}",
                        record.phase.as_str(),
                        record.detail
                    ));
                }
                self.open = None;
            }
            Ok(Event::Result(result)) => {
                for w in &result.warnings {
                    self.log.warning(w);
                }
                if let Some(tail) = &result.log_tail {
                    self.log.group("log of the failed slot");
                    self.log
                        .relay(&tail.lines().map(str::to_owned).collect::<Vec<_>>());
                    self.log.end_group();
                }
                if let Some(diff) = result.upstream_diff.as_ref().filter(|d| !d.is_empty()) {
                    self.log.group("upstream change (dry run)");
                    self.log
                        .relay(&diff.lines().map(str::to_owned).collect::<Vec<_>>());
                    self.log.end_group();
                }
                self.result = Some(*result);
            }
            // Anything else the host printed is shown, never interpreted.
            Err(_) => self.log.relay(&[line.to_owned()]),
        }
    }

    /// The result, or the phase that was running when the stream ended without one.
    fn finish(&mut self) -> Result<DeployResult, Option<Phase>> {
        let open = self.open.take();
        if let Some(phase) = open {
            self.log.end_group();
            self.log
                .error(&format!("lost the host during {}", phase.as_str()));
        }
        self.result.take().ok_or(open)
    }
}
