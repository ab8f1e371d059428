//! The job summary: a timeline of each host's phases (a mermaid Gantt chart, which GitHub
//! draws; folded above eight hosts), a table of hosts (result, slots, version, failed
//! phase, time, users' requests), for a fleet how many hosts ended each way and its users'
//! requests added up, and per host (folded in a fleet, open where it failed) a table of
//! phases with the watch's figures, its receipts, the error, warnings, the upstream diff
//! of a dry run and the failed slot's log. Host text is
//! made inert (no HTML, no links) and fit for a Markdown table cell; code blocks cannot be
//! closed from inside.

use serde::Serialize;

use crate::deploy::PhaseRecord;
use crate::error::Result;
use crate::monitor::MonitorReport;

use super::report::{HostReport, RunReport, render};

const SUMMARY_TEMPLATE: &str = include_str!("../../templates/summary.md.j2");

impl RunReport {
    /// The job summary in Markdown.
    pub fn summary(&self) -> Result<String> {
        let hosts: Vec<SummaryHost> = self.hosts.iter().map(SummaryHost::from).collect();
        let span = hosts
            .iter()
            .flat_map(|h| h.phases.iter().map(|p| p.end_ms))
            .max()
            .unwrap_or(0);
        render(
            "summary",
            SUMMARY_TEMPLATE,
            minijinja::context! {
                icon => if self.succeeded() { "✅" } else { "❌" },
                command => self.command.as_str(),
                app => self.app.as_str(),
                result => self.outcome_words(),
                version => self.version_output(),
                duration_seconds => format!("{:.1}", self.duration.as_secs_f64()),
                tally => tally(&hosts),
                run_error => self.run_error.as_deref().map(cell),
                fleet_receipt => self
                    .receipt_total()
                    .filter(|_| hosts.len() > 1)
                    .map(|t| (t.coverage(), cell(&t.describe()))),
                fold_timeline => hosts.len() > FOLDED_TIMELINE_HOSTS,
                hosts => minijinja::value::Serde(&hosts),
                timeline_tick => timeline_tick(span),
            },
        )
    }
}

#[derive(Serialize)]
struct SummaryPhase {
    name: &'static str,
    ok: bool,
    start_ms: u64,
    /// At least a millisecond after the start, so the timeline draws every phase.
    end_ms: u64,
    ms: u64,
    detail: String,
}

impl From<&PhaseRecord> for SummaryPhase {
    fn from(p: &PhaseRecord) -> Self {
        SummaryPhase {
            name: p.phase.as_str(),
            ok: p.ok,
            start_ms: p.start_ms,
            end_ms: p.start_ms + p.ms.max(1),
            ms: p.ms,
            detail: cell(&p.detail),
        }
    }
}

#[derive(Serialize)]
struct SummaryHost {
    host: String,
    /// The host as the title of its folded detail (HTML text, not a table cell).
    title: String,
    /// Whether its detail is shown open in a fleet's summary: it failed a phase.
    open: bool,
    /// The host as a timeline section title: only characters mermaid takes literally.
    section: String,
    result: String,
    active_slot: String,
    previous_slot: String,
    active_version: String,
    failed_phase: String,
    /// From its first phase's start to its last one's end, in seconds.
    seconds: String,
    /// How traffic was switched and why (`nftables (auto: ...)`).
    switch_mode: Option<String>,
    /// What happens to the old slot after the report.
    retire: Option<String>,
    phases: Vec<SummaryPhase>,
    monitor: Option<MonitorReport>,
    /// The users' requests on its receipts: `120 (2 failed)`, or `-` without one.
    requests: String,
    /// What the run cost the users, a receipt at a time: what it covers, its line
    /// (`describe`d) and its picture.
    receipts: Vec<(&'static str, String, String)>,
    error: Option<String>,
    warnings: Vec<String>,
    upstream_diff: Option<String>,
    log_tail: Option<String>,
}

impl From<&HostReport> for SummaryHost {
    fn from(h: &HostReport) -> Self {
        let r = &h.result;
        let phases: Vec<SummaryPhase> = h
            .runner_phases
            .iter()
            .chain(&r.phases)
            .map(SummaryPhase::from)
            .collect();
        let first = phases.iter().map(|p| p.start_ms).min().unwrap_or(0);
        let last = phases.iter().map(|p| p.end_ms).max().unwrap_or(0);
        let dash = |s: Option<String>| s.unwrap_or_else(|| "-".into());
        SummaryHost {
            host: cell(&h.host),
            title: html_text(&h.host),
            open: h.failed_phase().is_some(),
            section: h
                .host
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "._-".contains(c) {
                        c
                    } else {
                        '.'
                    }
                })
                .collect(),
            result: if h.skipped {
                "skipped (unreachable)".to_owned()
            } else {
                h.outcome().as_str().to_owned()
            },
            seconds: format!("{:.1}", (last - first) as f64 / 1000.0),
            active_slot: dash(r.active_slot.map(|s| s.to_string())),
            previous_slot: dash(r.previous_slot.map(|s| s.to_string())),
            active_version: cell(&dash(r.active_version.clone())),
            failed_phase: dash(h.failed_phase()),
            switch_mode: r.switch_mode.map(|m| {
                cell(&format!(
                    "{m} ({})",
                    r.switch_mode_reason.as_deref().unwrap_or("-")
                ))
            }),
            retire: r.retire.as_deref().map(cell),
            phases,
            monitor: r.monitor.clone(),
            requests: h
                .receipt_figures()
                .map_or("-".to_owned(), |(requests, failed)| {
                    format!("{requests} ({failed} failed)")
                }),
            receipts: receipt_lines(h),
            error: r.error.as_ref().map(|e| cell(&e.message)),
            warnings: r.warnings.iter().map(|w| cell(w)).collect(),
            upstream_diff: r
                .upstream_diff
                .clone()
                .filter(|d| !d.is_empty())
                .map(|d| d.replace("```", "'''")),
            log_tail: r.log_tail.clone().map(|l| l.replace("```", "'''")),
        }
    }
}

/// A host's receipts, each with what it covers: one from the run's start to its end, or
/// for a host the fleet rolled back, the deploy's and the rollback's (each where there is
/// one).
fn receipt_lines(host: &HostReport) -> Vec<(&'static str, String, String)> {
    let windows = if host.fleet_rolled_back {
        [
            (
                "of the deploy, from its start to its end",
                host.deploy_receipt.as_ref(),
            ),
            ("of the fleet's rollback", host.result.receipt.as_ref()),
        ]
    } else {
        [
            (
                "from the run's start to its end",
                host.result.receipt.as_ref(),
            ),
            ("", None),
        ]
    };
    windows
        .into_iter()
        .filter_map(|(window, r)| Some((window, r?.describe(), r?.picture())))
        .collect()
}

/// Above this many hosts the timeline is folded (it grows a row per host and phase).
const FOLDED_TIMELINE_HOSTS: usize = 8;

/// For a fleet, how many hosts ended each way (`3 hosts: 1 deployed, 2 rolled-back`), in
/// the order of the first host of each; none for one host, whose result is the title's.
/// Each host's detail is then folded, opened for a host with an error.
fn tally(hosts: &[SummaryHost]) -> Option<String> {
    if hosts.len() < 2 {
        return None;
    }
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for h in hosts {
        match counts.iter_mut().find(|(r, _)| *r == h.result) {
            Some((_, n)) => *n += 1,
            None => counts.push((&h.result, 1)),
        }
    }
    let each: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    Some(format!("{} hosts: {}", hosts.len(), each.join(", ")))
}

/// The tick interval of a timeline that spans `ms`: about ten ticks or fewer.
pub(super) fn timeline_tick(ms: u64) -> &'static str {
    match ms {
        0..=2_000 => "200millisecond",
        2_001..=10_000 => "1second",
        10_001..=60_000 => "5second",
        60_001..=300_000 => "30second",
        300_001..=1_200_000 => "2minute",
        _ => "10minute",
    }
}

/// Host text made inert as HTML text on one line (a `<summary>` title).
fn html_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\n', '\r'], " ")
}

/// Host text made inert for one Markdown table cell or line of the summary: HTML tags and
/// entities show as text, link brackets are literal, and it stays on one line of its cell.
fn cell(text: &str) -> String {
    let mut safe = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => safe.push_str("&amp;"),
            '<' => safe.push_str("&lt;"),
            '>' => safe.push_str("&gt;"),
            '|' | '[' | ']' => {
                safe.push('\\');
                safe.push(c);
            }
            '\n' | '\r' => safe.push(' '),
            c => safe.push(c),
        }
    }
    safe
}
