//! The orchestrator that `action.yml` runs on the GitHub runner.
//!
//! It validates every input before connecting, writes the SSH credentials into a private
//! directory for the length of the run, connects to every host (one multiplexed SSH
//! connection each), and then, batch by batch (see [`fleet`]), for each host: ships the
//! helper binary if the host lacks it, optionally streams the image over SSH, and runs the
//! host-side plan (`bluegreen deploy`), relaying its events as log groups. Then it writes the step outputs and job summary, and posts to Slack
//! when asked. A failed notification never changes the result.
//!
//! - [`inputs`]: reading and validating the inputs.
//! - `context`: what every host's run shares.
//! - [`interrupt`]: a cancelled workflow run's signals, passed on to the host-side run.
//! - [`credentials`]: the key, known_hosts and ssh_config of a run; [`remote`]: the SSH
//!   connection; [`proxy`]: its TCP leg.
//! - [`fleet`]: the hosts in batches, canary hosts first, and the fleet-wide rollback;
//!   `host_run`: one host's run, from connecting to its report.
//! - [`ship`]: getting the helper (and, with `image-transfer: ssh`, the image) onto a host.
//! - `relay`: the host's event stream into the job log.
//! - [`github`]: workflow commands (groups, annotations, masks, stop-commands).
//! - [`report`]: outputs, Slack; `summary`: the job summary.

mod context;
pub mod credentials;
pub mod fleet;
pub mod github;
mod host_run;
pub mod image;
pub mod inputs;
pub mod interrupt;
pub mod proxy;
mod relay;
pub mod remote;
pub mod report;
pub mod ship;
mod summary;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::deploy::Operation;
use crate::error::{EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_ENVIRONMENT, EXIT_OK, Error};

use context::RunContext;
use credentials::{Credentials, HostKeys};
use github::JobLog;
use image::ImageShipment;
use inputs::{ImageTransfer, Inputs, Known, NotifyOn, env_name};
use interrupt::Interrupts;
use report::{GithubContext, RunReport};

/// How many hosts connect at once. sshd starts dropping unauthenticated connections beyond
/// 10 by default (`MaxStartups 10:30:100`), which a bastion the fleet shares would see; a
/// key exchange is also the costly part of a connection for the runner.
const CONNECTS_AT_ONCE: usize = 8;

/// The inputs that hold secrets.
const SECRET_INPUTS: [&str; 2] = ["ssh-key", "slack-webhook"];

/// Runs the action with the process environment; returns the step's exit code.
pub fn main() -> ExitCode {
    let env: HashMap<String, String> = std::env::vars().collect();
    keep_secrets_in(&env);
    let log = JobLog::new();
    for secret in SECRET_INPUTS {
        if let Some(value) = env.get(&env_name(secret)) {
            log.mask(value);
        }
    }
    let started = Instant::now();
    let github = GithubContext::from_env(&env);
    let inputs = match Inputs::from_env(&env) {
        Ok(i) => i,
        Err(bad) => {
            return fail_early(
                &log,
                &github,
                started,
                &bad.known,
                &bad.error,
                EXIT_BAD_INPUT,
            );
        }
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
    let environment_error =
        |e: &Error| fail_early(&log, &github, started, &inputs.known(), e, EXIT_ENVIRONMENT);
    if helpers.is_empty() || !helpers.iter().all(|p| p.is_file()) {
        return environment_error(&Error::invalid(
            "BLUEGREEN_HELPERS",
            "the host helper binaries (a :-separated list of files) are not set or missing",
        ));
    }
    // Read and summed once, for every host.
    let helpers = match ship::Helpers::read(&helpers) {
        Ok(h) => h,
        Err(e) => return environment_error(&e),
    };
    if inputs.insecure_skip_host_key_check {
        log.warning("insecure-skip-host-key-check is on: the host's identity is not verified");
    }
    let base = env
        .get("RUNNER_TEMP")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let (known_hosts, host_keys) = if inputs.insecure_skip_host_key_check {
        ("", HostKeys::AcceptAny)
    } else {
        (inputs.known_hosts.as_str(), HostKeys::KnownOnly)
    };
    // A bastion makes ssh run its own hop; otherwise the TCP leg is this program's relay.
    let proxy = match (&inputs.proxy_jump, std::env::current_exe()) {
        (None, Ok(program)) => Some(credentials::tcp_proxy_command(&program)),
        _ => None,
    };
    let credentials = match Credentials::write(
        &base,
        &inputs.ssh_key,
        known_hosts,
        host_keys,
        proxy.as_deref(),
    ) {
        Ok(c) => c,
        Err(e) => return environment_error(&e),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    let interrupts = runtime.block_on(async { Interrupts::listen() });
    let image = inputs
        .plan
        .runtime
        .image
        .as_ref()
        .filter(|_| {
            inputs.image_transfer == ImageTransfer::Ssh
                && inputs.plan.operation == Operation::Deploy
                && !inputs.plan.dry_run
        })
        .map(|image| ImageShipment::new(image.as_str(), "docker", &base, inputs.hosts.len()));
    let ctx = RunContext {
        inputs: &inputs,
        credentials: &credentials,
        helpers: &helpers,
        log: &log,
        interrupts: &interrupts,
        started,
        image: image.as_ref(),
        connect_slots: &tokio::sync::Semaphore::new(CONNECTS_AT_ONCE),
    };
    let fleet = runtime.block_on(fleet::run(&ctx));
    drop(credentials);
    if let Some(error) = &fleet.error {
        log.error(error);
    }
    let report = RunReport {
        app: inputs.plan.app.to_string(),
        command: inputs.plan.operation.as_str().to_owned(),
        version: inputs.plan.version.as_str().to_owned(),
        hosts: fleet.reports,
        duration: started.elapsed(),
        run_error: fleet.error,
        dry_run: inputs.plan.dry_run,
    };
    finish(
        &log,
        &github,
        &report,
        inputs.slack_webhook.as_deref(),
        inputs.notify_on,
    )
}

/// Reports a run that stopped before any host: outputs, summary, and Slack when the
/// webhook input itself is usable. Only validated values are reported.
/// Keeps the secrets to this process, which has read them into `env`: no child (ssh, its
/// TCP relay) inherits them, and no other process of the runner's user can read them from
/// this one's memory or `/proc/PID/environ` (the process is made non-dumpable).
fn keep_secrets_in(env: &HashMap<String, String>) {
    for secret in SECRET_INPUTS {
        let name = env_name(secret);
        if env.contains_key(&name) {
            // SAFETY: called first thing in `main`, before any other thread exists.
            unsafe { std::env::remove_var(name) };
        }
    }
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) only changes this process's own dumpable flag.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
}

fn fail_early(
    log: &JobLog,
    github: &GithubContext,
    started: Instant,
    known: &Known,
    error: &Error,
    code: u8,
) -> ExitCode {
    log.error(&error.to_string());
    let report = RunReport {
        app: known
            .app
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        command: known
            .operation
            .unwrap_or(Operation::Deploy)
            .as_str()
            .to_owned(),
        version: known
            .version
            .as_ref()
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default(),
        hosts: Vec::new(),
        duration: started.elapsed(),
        run_error: Some(error.to_string()),
        dry_run: false,
    };
    finish(
        log,
        github,
        &report,
        known.slack_webhook.as_deref(),
        known.notify_on.unwrap_or(NotifyOn::Failure),
    );
    ExitCode::from(code)
}

/// Writes outputs and summary, notifies, and maps the outcome to the exit code.
fn finish(
    log: &JobLog,
    github: &GithubContext,
    report: &RunReport,
    webhook: Option<&str>,
    notify_on: NotifyOn,
) -> ExitCode {
    if let Some(path) = &github.output_file
        && let Err(e) = report::write_outputs(path, &report.outputs())
    {
        log.warning(&format!("could not write outputs: {e}"));
    }
    match report.summary() {
        Ok(text) => {
            if let Some(path) = &github.summary_file {
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
            .and_then(|payload| report::slack::post_slack(webhook, &payload));
        match posted {
            Ok(()) => log.info("Slack notified"),
            Err(why) => log.warning(&format!("Slack notification failed: {why}")),
        }
    }
    log.info(&format!(
        "result: {} ({} in {:.1} s)",
        report.outcome_words(),
        report.app,
        report.duration.as_secs_f64()
    ));
    ExitCode::from(if report.succeeded() {
        EXIT_OK
    } else {
        EXIT_CHECK_FAILED
    })
}
