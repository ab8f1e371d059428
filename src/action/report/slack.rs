//! The Slack message of a run (a minijinja template, strict mode, fed with text escaped
//! for Slack) and its post to the webhook, whose URL never reaches an error.

use std::time::Duration;

use crate::deploy::Outcome;
use crate::error::Result;

use super::{GithubContext, HostReport, RunReport, render};

const SLACK_TEMPLATE: &str = include_str!("../../../templates/slack.json.j2");

/// How long a Slack post may take before it is given up (with a warning).
pub const SLACK_TIMEOUT: Duration = Duration::from_secs(10);

impl RunReport {
    /// The Slack message, with everything from users and hosts escaped for Slack.
    pub fn slack_payload(&self, github: &GithubContext) -> Result<String> {
        let outcome = self.outcome();
        let not_ok: Vec<&HostReport> = self
            .hosts
            .iter()
            .filter(|h| match h.outcome() {
                Outcome::Deployed | Outcome::Unchanged | Outcome::Changed => false,
                Outcome::RolledBack => !self.asked_to_go_back(),
                Outcome::Failed | Outcome::Cancelled | Outcome::Paused => true,
            })
            .collect();
        // The host whose failure stopped the run, before those rolled back because of it.
        let failed = not_ok
            .iter()
            .find(|h| h.outcome() == Outcome::Failed && !h.skipped)
            .or(not_ok.first())
            .copied();
        // A run that did what was asked (a canary paused as asked, an abort that went back)
        // is no alarm, and names no failed host.
        let succeeded = self.succeeded();
        let headline = format!(
            "{} {} of {} {}",
            if succeeded { "✅" } else { "🚨" },
            slack_escape(&self.command),
            slack_escape(&self.app),
            outcome.as_str()
        );
        let error = self
            .run_error
            .clone()
            .or_else(|| failed.and_then(|h| Some(h.result.error.as_ref()?.message.clone())));
        let not_ok_label = if matches!(self.command.as_str(), "deploy" | "promote") {
            "Hosts not on the new version".to_owned()
        } else {
            format!("Hosts where {} did not succeed", self.command)
        };
        let mut fields = vec![
            ("Repository", github.repository.clone()),
            ("Ref", github.ref_name.clone()),
            ("Commit", github.sha.chars().take(12).collect()),
            ("Actor", github.actor.clone()),
            ("Version", self.version_output()),
            (
                "Hosts",
                self.hosts
                    .iter()
                    .map(|h| h.host.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        ];
        if let Some(total) = self.receipt_total() {
            let mut requests = format!(
                "{}, {} failed{}",
                total.requests,
                total.failed,
                total.by_host()
            );
            if total.counted < total.hosts {
                requests.push_str(&format!(" ({})", total.coverage()));
            }
            fields.push(("Users' requests", requests));
        }
        if self.hosts.len() > 1 && !not_ok.is_empty() {
            let listed: Vec<String> = not_ok
                .iter()
                .map(|h| match (h.skipped, h.failed_phase()) {
                    (true, _) => format!("{} (unreachable, skipped)", h.host),
                    (false, Some(phase)) => {
                        format!("{} ({} at {phase})", h.host, h.outcome().as_str())
                    }
                    (false, None) => format!("{} ({})", h.host, h.outcome().as_str()),
                })
                .collect();
            fields.push((&not_ok_label, listed.join(", ")));
        }
        if let Some(h) = failed.filter(|_| !succeeded) {
            fields.push(("Failed host", h.host.clone()));
            fields.push((
                "Failed phase",
                h.failed_phase().unwrap_or_else(|| "-".into()),
            ));
            fields.push((
                "Rolled back",
                (h.outcome() == Outcome::RolledBack).to_string(),
            ));
        }
        let fields: Vec<(String, String)> = fields
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_owned(),
                    slack_escape(if v.is_empty() { "-" } else { &v }),
                )
            })
            .collect();
        let mut detail = error.map(|e| slack_escape(&e)).unwrap_or_default();
        if let Some(url) = &github.run_url {
            detail.push_str(&format!("\n<{}|Open the workflow run>", slack_escape(url)));
        }
        render(
            "slack",
            SLACK_TEMPLATE,
            minijinja::context! {
                headline => headline,
                fields => minijinja::value::Serde(&fields),
                color => if succeeded { "#2eb886" } else { "#d40e0d" },
                detail => detail.trim().to_owned(),
            },
        )
    }
}

/// Escapes Slack's control characters in user text.
pub fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Posts `payload` to the webhook; `Err` carries a message that never contains the URL.
pub fn post_slack(webhook: &str, payload: &str) -> std::result::Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(SLACK_TIMEOUT))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let response = agent
        .post(webhook)
        .header("Content-Type", "application/json")
        .send(payload)
        .map_err(|e| match e {
            ureq::Error::Timeout(_) => format!("no answer within {} s", SLACK_TIMEOUT.as_secs()),
            ureq::Error::Io(io) => format!("connection failed: {}", io.kind()),
            _ => "the request failed".to_owned(),
        })?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("Slack answered HTTP {status}"))
    }
}
