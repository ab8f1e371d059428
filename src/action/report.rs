//! What a run reports: the hosts' reports, the run's outcome and step outputs; the Slack
//! message is `slack.rs`'s, the job summary `summary.rs`'s. The summary and the Slack payload are minijinja templates (strict mode)
//! fed with values prepared where user and host text is escaped for its destination.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use minijinja::{Environment, UndefinedBehavior};

use crate::deploy::{DeployResult, Outcome, PhaseRecord};
use crate::error::{Error, ErrorKind, Result, RunError};

use super::fleet::SshTarget;

/// One host's part of a run.
#[derive(Debug, Clone)]
pub struct HostReport {
    /// The host with its SSH port (`web1:22`), as the log, the summary and Slack name it.
    pub host: String,
    /// What the host reported (phases, result); runner-side failures are folded in.
    pub result: DeployResult,
    /// Runner-side phases (connect, image transfer, ship helpers) with their timings.
    pub runner_phases: Vec<PhaseRecord>,
    /// Unreachable at the start, and skipped as `max-unreachable` allows: it does not fail
    /// the run.
    pub skipped: bool,
    /// Rolled back by the fleet after its deploy: `result` is the rollback's, its receipt
    /// the rollback's (see [`HostReport::receipts`]).
    pub fleet_rolled_back: bool,
    /// The receipt of this host's deploy, when the fleet then rolled it back.
    pub deploy_receipt: Option<crate::canary::Receipt>,
}

impl HostReport {
    /// The report of `host`: what it reported, and the runner's phases for it.
    pub fn new(host: &SshTarget, result: DeployResult, runner_phases: Vec<PhaseRecord>) -> Self {
        HostReport {
            host: host.to_string(),
            result,
            runner_phases,
            skipped: false,
            fleet_rolled_back: false,
            deploy_receipt: None,
        }
    }

    /// The report of `host`, which failed on the runner's side with `error`.
    pub fn failed(host: &SshTarget, error: RunError, runner_phases: Vec<PhaseRecord>) -> Self {
        let result = DeployResult {
            result: Some(Outcome::Failed),
            error: Some(error),
            ..Default::default()
        };
        HostReport::new(host, result, runner_phases)
    }

    /// The report of a host this run deployed and then rolled back (`back`, the rollback's
    /// report) because of `why`, another host's failure: rolled back when the rollback
    /// went back, else failed; its phases follow the deploy's.
    pub fn fleet_rollback(&mut self, back: HostReport, why: &str) {
        let went_back = back.outcome() == Outcome::RolledBack;
        // Deployed, or paused as a canary.
        let before = self.outcome().as_str();
        let deployed = std::mem::take(&mut self.result);
        self.fleet_rolled_back = true;
        self.deploy_receipt = deployed.receipt;
        self.result = DeployResult {
            result: Some(if went_back {
                Outcome::RolledBack
            } else {
                Outcome::Failed
            }),
            error: Some(RunError {
                kind: back
                    .result
                    .error
                    .as_ref()
                    .filter(|_| !went_back)
                    .map_or(ErrorKind::CheckFailed, |e| e.kind),
                message: match (&back.result.error, went_back) {
                    (_, true) => format!("rolled back with the fleet: {why}"),
                    (Some(e), false) => format!(
                        "{before}, then the fleet's rollback ({why}) failed: {}",
                        e.message
                    ),
                    (None, false) => format!("{before}, then the fleet's rollback ({why}) failed"),
                },
            }),
            phases: deployed
                .phases
                .into_iter()
                .chain(back.result.phases)
                .collect(),
            warnings: deployed
                .warnings
                .into_iter()
                .chain(back.result.warnings)
                .collect(),
            ..back.result
        };
        self.runner_phases.extend(back.runner_phases);
    }

    /// The host's outcome.
    pub fn outcome(&self) -> Outcome {
        self.result.result.unwrap_or(Outcome::Failed)
    }

    /// The failed phase's name, runner-side or host-side.
    pub fn failed_phase(&self) -> Option<String> {
        self.runner_phases
            .iter()
            .find(|p| !p.ok)
            .map(|p| p.phase)
            .or(self.result.failed_phase)
            .map(|p| p.as_str().to_owned())
    }
}

/// A whole run across hosts.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The app.
    pub app: String,
    /// The command (deploy, rollback, status, ...).
    pub command: String,
    /// The version deployed.
    pub version: String,
    /// Hosts in the order they were handled.
    pub hosts: Vec<HostReport>,
    /// Wall time of the whole run.
    pub duration: Duration,
    /// The error that failed the run as a whole rather than on a host: before any host
    /// (bad input, missing binaries), or a fleet whose failed requests together went over
    /// `max-failed-requests` while its hosts kept the new version.
    pub run_error: Option<String>,
    /// The run only showed what it would do (`dry-run`).
    pub dry_run: bool,
}

impl RunReport {
    /// The outcome for people: its name, and for a dry run that went through, that nothing
    /// was changed and what it showed is what a run would do (a bare "unchanged" right
    /// after a diff reads as if the change were refused).
    pub fn outcome_words(&self) -> String {
        let outcome = self.outcome();
        if self.dry_run && outcome == Outcome::Unchanged {
            "unchanged (dry run: nothing was changed; what it showed is what a run would do)"
                .to_owned()
        } else {
            outcome.as_str().to_owned()
        }
    }

    /// Whether the command asks hosts to go back to the slot that was live before
    /// (rollback, abort): for it, a host that rolled back did as asked.
    fn asked_to_go_back(&self) -> bool {
        matches!(self.command.as_str(), "rollback" | "abort")
    }

    /// The overall outcome: failed if any host failed; else rolled-back if a host rolled
    /// itself back (the hosts the fleet then did not start read `cancelled`, which says
    /// less); else cancelled if any was cancelled; else rolled-back if any went back as a
    /// rollback or abort asks; else paused if any canary paused, else unchanged if all were
    /// unchanged, else changed if any host was (setup, maintenance), else deployed.
    pub fn outcome(&self) -> Outcome {
        let outcomes: Vec<Outcome> = self
            .hosts
            .iter()
            .filter(|h| !h.skipped)
            .map(HostReport::outcome)
            .collect();
        if self.run_error.is_some() || outcomes.is_empty() || outcomes.contains(&Outcome::Failed) {
            Outcome::Failed
        } else if outcomes.contains(&Outcome::RolledBack) && !self.asked_to_go_back() {
            Outcome::RolledBack
        } else if outcomes.contains(&Outcome::Cancelled) {
            Outcome::Cancelled
        } else if outcomes.contains(&Outcome::RolledBack) {
            Outcome::RolledBack
        } else if outcomes.contains(&Outcome::Paused) {
            Outcome::Paused
        } else if outcomes.iter().all(|o| *o == Outcome::Unchanged) {
            Outcome::Unchanged
        } else if outcomes.contains(&Outcome::Changed) {
            Outcome::Changed
        } else {
            Outcome::Deployed
        }
    }

    /// Whether the run did what was asked: a deploy that deployed (or had nothing to do),
    /// a rollback or abort that went back, a canary that paused as asked, a status that read
    /// the state.
    pub fn succeeded(&self) -> bool {
        match self.outcome() {
            Outcome::Deployed | Outcome::Unchanged | Outcome::Paused | Outcome::Changed => true,
            Outcome::RolledBack => self.asked_to_go_back(),
            Outcome::Failed | Outcome::Cancelled => false,
        }
    }

    /// The result of the last host that knows its slots (a host that failed before reading
    /// its state has none): what the slot outputs describe.
    fn last(&self) -> Option<&DeployResult> {
        self.hosts
            .iter()
            .rev()
            .map(|h| &h.result)
            .find(|r| r.active_slot.is_some())
            .or_else(|| self.hosts.last().map(|h| &h.result))
    }

    /// The `version` output: the version this run deployed, as the host reports it live
    /// where the run's own version label is not it (a promote goes live with the canary's;
    /// a rollback, abort or status with what the host runs, never the runner's commit);
    /// setup and maintenance deploy none.
    pub fn version_output(&self) -> String {
        let live = || {
            self.last()
                .and_then(|r| r.active_version.clone())
                .unwrap_or_default()
        };
        match (self.command.as_str(), self.outcome()) {
            ("setup" | "maintenance-on" | "maintenance-off", _) => String::new(),
            ("promote", Outcome::Deployed) => self
                .last()
                .and_then(|r| r.active_version.clone())
                .unwrap_or_else(|| self.version.clone()),
            ("rollback" | "abort" | "status", _) => live(),
            _ => self.version.clone(),
        }
    }

    /// The step outputs, in the order action.yml declares them.
    pub fn outputs(&self) -> Vec<(&'static str, String)> {
        let slot = |s: Option<crate::input::Slot>| s.map_or(String::new(), |s| s.to_string());
        vec![
            ("active-slot", slot(self.last().and_then(|r| r.active_slot))),
            (
                "previous-slot",
                slot(self.last().and_then(|r| r.previous_slot)),
            ),
            ("version", self.version_output()),
            ("result", self.outcome().as_str().to_owned()),
            (
                "duration-seconds",
                format!("{:.3}", self.duration.as_secs_f64()),
            ),
            (
                "switch-mode",
                self.last()
                    .and_then(|r| r.switch_mode)
                    .map_or(String::new(), |m| m.to_string()),
            ),
            ("requests", self.receipt_output(|t| t.requests)),
            ("failed-requests", self.receipt_output(|t| t.failed)),
        ]
    }

    /// A figure of the hosts' receipts added up, for an output (empty when no host has a
    /// receipt).
    fn receipt_output(&self, figure: impl Fn(&ReceiptTotal) -> u64) -> String {
        self.receipt_total()
            .map_or(String::new(), |total| figure(&total).to_string())
    }
}

/// The workflow run's context, from GitHub's environment variables.
#[derive(Debug, Clone, Default)]
pub struct GithubContext {
    /// owner/name.
    pub repository: String,
    /// Branch or tag.
    pub ref_name: String,
    /// Commit.
    pub sha: String,
    /// Who triggered the run.
    pub actor: String,
    /// The run's URL.
    pub run_url: Option<String>,
    /// The file step outputs are appended to (`GITHUB_OUTPUT`).
    pub output_file: Option<PathBuf>,
    /// The file the job summary is appended to (`GITHUB_STEP_SUMMARY`).
    pub summary_file: Option<PathBuf>,
}

impl GithubContext {
    /// Reads the context from environment variables.
    pub fn from_env(env: &std::collections::HashMap<String, String>) -> Self {
        let get = |k: &str| env.get(k).cloned().unwrap_or_default();
        GithubContext {
            repository: get("GITHUB_REPOSITORY"),
            ref_name: get("GITHUB_REF_NAME"),
            sha: get("GITHUB_SHA"),
            actor: get("GITHUB_ACTOR"),
            run_url: GithubContext::run_url(env),
            output_file: env.get("GITHUB_OUTPUT").map(PathBuf::from),
            summary_file: env.get("GITHUB_STEP_SUMMARY").map(PathBuf::from),
        }
    }

    /// The URL of the current workflow run, when running under GitHub Actions (or act).
    pub fn run_url(env: &std::collections::HashMap<String, String>) -> Option<String> {
        let server = env.get("GITHUB_SERVER_URL")?;
        let repo = env.get("GITHUB_REPOSITORY")?;
        let run = env.get("GITHUB_RUN_ID")?;
        Some(format!("{server}/{repo}/actions/runs/{run}"))
    }
}

pub(super) fn render(name: &str, source: &str, ctx: minijinja::Value) -> Result<String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.add_template(name, source)
        .and_then(|_| env.get_template(name)?.render(ctx))
        .map_err(|e| Error::Template {
            name: name.to_owned(),
            detail: format!("{e:#}"),
        })
}

/// Appends `name=value` lines to the file GitHub reads step outputs from.
pub fn write_outputs(path: &Path, outputs: &[(&str, String)]) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| Error::io("open outputs file", path, e))?;
    for (name, value) in outputs {
        let value = value.replace(['\n', '\r'], " ");
        writeln!(file, "{name}={value}").map_err(|e| Error::io("write outputs to", path, e))?;
    }
    Ok(())
}

mod receipts;
pub mod slack;

pub use receipts::ReceiptTotal;
#[cfg(test)]
mod tests;
