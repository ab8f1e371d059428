//! The status operation (`command: status`, `bluegreen status`): what state records, what
//! nginx really routes to (the upstream file, or the nftables rule in that mode), what each
//! slot runs and whether it answers, maintenance mode, and the latest history. Changes
//! nothing and takes no lock; says what is wrong when nginx and state disagree or the live slot does not answer.

use crate::error::Error;
use crate::fsutil::read_optional;
use crate::input::Slot;
use crate::state::{HistoryEvent, State};

use super::engine::{Engine, Failure};
use super::protocol::{Outcome, Phase, SlotStatus, StatusReport};

/// How many history lines status reports.
const STATUS_HISTORY_LINES: usize = 10;
/// How long the site may take to answer status's one request.
const SITE_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Reports the state, what nginx routes to, each slot, and the latest history lines.
pub(super) fn run(e: &mut Engine) -> Result<Outcome, Failure> {
    let report = e.phase(Phase::Status, |me| {
        known_here(me)?;
        let state = me.load_state()?;
        let recorded = me.switch.as_recorded(state.switch_mode, state.service_port);
        let routed = me.host.routed(&recorded, &me.plan.app, me.plan.ports)?;
        let slots: Vec<SlotStatus> = [Slot::Blue, Slot::Green]
            .into_iter()
            .map(|slot| slot_status(me, &state, slot))
            .collect();
        let maintenance_page = include_in_maintenance(me)?;
        let mut problems = problems(&state, routed, &slots, maintenance_page);
        let site = site_answer(me, &state, routed).filter(|_| !maintenance_page);
        if let Some(Err(problem)) = &site {
            problems.push(problem.clone());
        }
        let report = StatusReport {
            app: me.plan.app.to_string(),
            active: state.active,
            previous: state.previous,
            routed,
            switch_mode: state.switch_mode,
            problems,
            site_answer: site.and_then(Result::ok),
            slots,
            history: history_tail(me)?,
            canary: state.canary.clone(),
            maintenance: state.maintenance.clone(),
        };
        for line in report.lines() {
            me.log(&line);
        }
        let summary = format!(
            "active {}, previous {}; nginx routes to {}{}; {}",
            name(report.active),
            name(report.previous),
            name(report.routed),
            if report.maintenance.is_some() {
                " behind the maintenance page"
            } else {
                ""
            },
            report
                .slots
                .iter()
                .map(slot_line)
                .collect::<Vec<_>>()
                .join("; ")
        );
        Ok((report, summary))
    })?;
    let problems = report.problems.clone();
    e.run.result.history = report.history.clone();
    e.run.result.status = Some(report);
    if problems.is_empty() {
        return Ok(Outcome::Unchanged);
    }
    // A status that finds the site not as recorded fails, so the step fails and notifies.
    Err(Error::CheckFailed(problems.join("; ")).into())
}

/// Fails unless the app has a state file or an include here: an unknown app or a wrong
/// state directory is an error, not a status of nothing.
fn known_here(e: &Engine) -> Result<(), Failure> {
    let plan = e.plan;
    let store = plan.store();
    if store.state_path().exists() {
        return Ok(());
    }
    let include = e.host.read_file(plan.switch.upstream_file.as_path())?;
    if include.is_some_and(|text| crate::upstream::has_marker(&text, &plan.app)) {
        return Ok(());
    }
    Err(Error::CheckFailed(format!(
        "no app {} here: {} does not exist and {} names no such app (check the app name and state-dir)",
        plan.app,
        store.state_path().display(),
        plan.switch.upstream_file
    ))
    .into())
}

/// `slot` as state records it and as the host shows it now.
fn slot_status(e: &mut Engine, state: &State, slot: Slot) -> SlotStatus {
    let record = state.slots.get(slot);
    let probe = e.probe_once(slot);
    SlotStatus {
        slot,
        port: e.plan.ports.port(slot),
        version: record.version.clone(),
        image: record.image.clone(),
        replaced_by: record.replaced_by.clone(),
        running: e.slot_runs(slot),
        running_version: e.running_version(slot).map(|v| v.as_str().to_owned()),
        healthy: probe.healthy,
        answer: probe.last_problem.or(probe.last_answer).unwrap_or_default(),
    }
}

/// What nginx serves at the verify URL, asked once as the site's name: `Ok` with what
/// answered where it is a slot nginx routes to (or a canary beside it), or where
/// nginx routes is unknown (a problem of its own); `Err` with the problem where the site
/// does not answer 2xx or answers from another slot than the include (and the rule) route
/// to. `None` with nothing to ask: no verify URL, nothing live, or the maintenance page on.
fn site_answer(e: &Engine, state: &State, routed: Option<Slot>) -> Option<Result<String, String>> {
    let url = e.switch.verify_url.as_ref()?;
    if state.maintenance.is_some() || state.active.is_none() {
        return None;
    }
    let prober = crate::http::Prober::new(false).for_site(e.switch.site_host.as_deref());
    let asked = prober.asked(url);
    let probe = prober.get(url, SITE_PROBE_TIMEOUT);
    let crate::http::Probe::Answered {
        status: 200..=299, ..
    } = probe
    else {
        return Some(Err(format!(
            "the site does not answer 2xx at {asked}: {}{}",
            probe.describe(),
            prober.by_address_advice(url)
        )));
    };
    let serving: Vec<Slot> = routed
        .into_iter()
        .chain(state.canary.as_ref().map(|c| c.slot))
        .collect();
    Some(match probe.reported_slot() {
        None => Ok(format!(
            "{asked} answers {} (naming no slot)",
            probe.describe()
        )),
        Some(slot) if routed.is_none() || serving.iter().any(|s| s.as_str() == slot) => {
            Ok(format!("{asked} answers from {slot}"))
        }
        Some(slot) => Err(format!(
            "{asked} answers from {slot:?}, but {} {} (a configuration nginx has not loaded, or another server block answers)",
            if state.switch_mode == Some(crate::input::SwitchMode::Nftables) {
                "nginx's include and the kernel's rule route to"
            } else {
                "nginx's include routes to"
            },
            name(routed)
        )),
    })
}

/// Whether the app's include serves the maintenance page now.
fn include_in_maintenance(e: &Engine) -> Result<bool, Failure> {
    let plan = e.plan;
    Ok(e.host
        .read_file(plan.switch.upstream_file.as_path())?
        .is_some_and(|text| crate::maintenance_server::recorded_in(&text, &plan.app).is_some()))
}

/// What an operator must hear about: state and the include disagreeing on maintenance, nginx and state disagreeing, a live slot that does
/// not answer or whose container does not run.
fn problems(
    state: &State,
    routed: Option<Slot>,
    slots: &[SlotStatus],
    include_in_maintenance: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    match (state.maintenance.is_some(), include_in_maintenance) {
        (true, false) => problems.push(
            "state records maintenance but nginx's include does not serve the page (a run stopped half-way): run maintenance-on or maintenance-off again".into(),
        ),
        (false, true) => problems.push(
            "nginx's include serves the maintenance page but state does not record it (a run stopped half-way): run maintenance-on or maintenance-off again".into(),
        ),
        _ => {}
    }
    if routed.is_none() && state.active.is_some() {
        problems.push(format!(
            "state says {} is live but nginx routes to neither slot's port (the upstream file names another, or the nftables rule is missing or cannot be read: --nft-command 'sudo nft')",
            name(state.active)
        ));
    }
    if routed.is_some() && routed != state.active {
        problems.push(format!(
            "state says {} is live but nginx routes to {} (a switch by hand, or a run that stopped half-way); the next deploy reconciles them",
            name(state.active),
            name(routed)
        ));
    }
    let mut live: Vec<Slot> = routed.into_iter().chain(state.active).collect();
    live.dedup();
    for slot in live {
        let s = &slots[usize::from(slot == Slot::Green)];
        if !s.healthy {
            problems.push(format!(
                "{slot} takes traffic but does not answer healthy: {}",
                s.answer
            ));
        }
        if s.running == Some(false) {
            problems.push(format!(
                "{slot} takes traffic but its container is not running"
            ));
        }
        if let (Some(runs), Some(recorded)) = (&s.running_version, &s.version)
            && runs != recorded
        {
            problems.push(format!(
                "{slot} takes traffic and runs {runs}, but state records {recorded}"
            ));
        }
    }
    problems
}

/// The latest history lines, described.
fn history_tail(e: &Engine) -> Result<Vec<String>, Failure> {
    let text = read_optional(&e.plan.store().history_path())?.unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let first = lines.len().saturating_sub(STATUS_HISTORY_LINES);
    Ok(lines[first..]
        .iter()
        .enumerate()
        .map(|(i, line)| match HistoryEvent::parse(line) {
            Ok(event) => event.describe(),
            Err(e) => format!(
                "(line {} of history.jsonl is unreadable: {e})",
                first + i + 1
            ),
        })
        .collect())
}

fn name(slot: Option<Slot>) -> &'static str {
    slot.map_or("none", Slot::as_str)
}

/// One slot in one line.
fn slot_line(s: &SlotStatus) -> String {
    let mut line = format!(
        "{}: port {}, version {}",
        s.slot,
        s.port,
        s.version.as_deref().unwrap_or("-")
    );
    if let Some(v) = &s.replaced_by {
        line.push_str(&format!(" (gone: replaced by {v}, which never went live)"));
    }
    match (s.running, &s.running_version) {
        (Some(true), Some(v)) => line.push_str(&format!(", running {v}")),
        (Some(true), None) => line.push_str(", running"),
        (Some(false), _) => line.push_str(", not running"),
        (None, _) => {}
    }
    line.push_str(if s.healthy {
        ", healthy"
    } else {
        ", not answering healthy"
    });
    line
}

impl StatusReport {
    /// The report as lines for a person: where traffic goes, each slot, what is wrong,
    /// the history.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "{}: nginx routes to {}; state: active {}, previous {}{}",
            self.app,
            name(self.routed),
            name(self.active),
            name(self.previous),
            self.switch_mode
                .map_or(String::new(), |m| format!(", switched by {m}"))
        )];
        lines.extend(self.slots.iter().map(|s| format!("  {}", slot_line(s))));
        if let Some(answer) = &self.site_answer {
            lines.push(format!("  site: {answer}"));
        }
        if let Some(c) = &self.canary {
            lines.push(format!(
                "  canary: {} ({}) gets {} of new requests{}",
                c.slot,
                c.version,
                c.share,
                if c.paused {
                    ", paused: `command: promote` takes it on, `command: abort` ends it"
                } else {
                    "; the run that set it did not finish: the next deploy ends it"
                }
            ));
        }
        if let Some(m) = &self.maintenance {
            lines.push(format!(
                "  maintenance: on{}: nginx answers 503 (Retry-After {} s) from its server on 127.0.0.1:{}, and {} runs behind it; `command: maintenance-off` ends it",
                m.since
                    .as_deref()
                    .map_or(String::new(), |since| format!(" since {since}")),
                m.retry_after_seconds,
                m.port,
                name(self.active)
            ));
        }
        lines.extend(self.problems.iter().map(|p| format!("problem: {p}")));
        if !self.history.is_empty() {
            lines.push("recent history:".into());
            lines.extend(self.history.iter().map(|h| format!("  {h}")));
        }
        lines
    }
}
