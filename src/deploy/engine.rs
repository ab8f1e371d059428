//! The engine every host-side operation runs on: the context a phase works in (the plan,
//! the host, the event sink, the request to stop, and the run's state so far in one
//! `RunState`), the phase runner that announces, times and records each phase, and the
//! first steps of every run (lock, state). The other steps the operations share are in `checks.rs`, `slots.rs` and `steps.rs`; the operations are in
//! `release.rs` (deploy), `go_live.rs` (the switch, watch and switch back a deploy and a
//! promote end with), `canary.rs` (traffic steps, promote and abort), `rollback.rs`,
//! `maintenance.rs`, `setup.rs` and `status.rs`, each a short sequence of steps;
//! `operations.rs` picks the plan's and hands its outcome back to [`Engine::finish`]. The
//! engine itself names no operation, so none of them imports a module that imports it back.

use std::time::{Duration, Instant};

use crate::canary::Receipt;
use crate::cancel::{Cancel, CancelReason};
use crate::clock::{now_epoch_seconds, now_rfc3339};
use crate::error::{Error, RunError};
use crate::input::{Image, Slot, Version};
use crate::lock::AppLock;
use crate::progress::Progress;
use crate::runtime::Compose;
use crate::state::{HistoryEvent, State, StateSource};
use crate::switch::{SwitchConfig, SwitchReport, SwitchRequest};

use super::effects::Host;
use super::plan::{DeployPlan, Operation};
use super::protocol::{DeployResult, Event, Outcome, Phase, PhaseRecord};

/// How long one runtime command (docker run, compose up, the user's command) may take.
pub(super) const RUNTIME_COMMAND_TIMEOUT: Duration = Duration::from_secs(600);
/// How long asking `nft` whether it can be used may take.
const NFT_PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Why a phase failed, and the slot whose log tail explains it.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) error: Error,
    pub(super) log_of: Option<Slot>,
    /// The phase never began (the run was asked to stop first): it changed nothing.
    pub(super) before_start: bool,
}

impl Failure {
    /// A failure explained by `slot`'s log.
    pub(super) fn of_slot(error: Error, slot: Slot) -> Failure {
        Failure {
            error,
            log_of: Some(slot),
            before_start: false,
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure {
            error,
            log_of: None,
            before_start: false,
        }
    }
}

/// One run on one host: the phase runner over what it is given (the plan, the host, the
/// event sink, the request to stop) and what the run has done so far (`RunState`).
pub struct Engine<'a> {
    pub(super) plan: &'a DeployPlan,
    pub(super) host: &'a dyn Host,
    emit: &'a (dyn Fn(&Event) + Sync),
    /// Whether someone asked the run to stop (see [`crate::cancel`]).
    pub(super) cancel: Cancel,
    /// How traffic is switched, with `auto` decided once the run has started.
    pub(super) switch: SwitchConfig,
    /// What the run has done and found so far.
    pub(super) run: RunState,
}

/// What a run has done and found so far: everything in it changes as phases run.
pub(super) struct RunState {
    /// The result so far: phases, outcome, warnings, the receipt.
    pub(super) result: DeployResult,
    started: Instant,
    /// The compose flavour, once the first phase that needs it has looked.
    pub(super) compose: Option<Option<Compose>>,
    /// The app lock, held from the lock phase to the end of the run.
    held: Option<AppLock>,
    /// The slot to retire once the result is out.
    pub(super) pending_retire: Option<Slot>,
    /// Whether this run has moved traffic (a switch, a rollback, a canary's share): from
    /// then on a request to stop no longer stops it half-way.
    pub(super) traffic_moved: bool,
    /// The release the run acted on when it is not the plan's (a promote or an abort acts
    /// on the canary's): its version and image.
    pub(super) acted_on: Option<(Version, Option<Image>)>,
    /// Where the access log stood when the run began, and when (seconds since the epoch):
    /// the start of the run's receipt (see [`crate::canary::Receipt`]).
    receipt_from: Option<(u64, f64)>,
    /// The client connections open to nginx at each reload the run's switches made (`None`
    /// where they could not be counted): the receipt's "at risk".
    reloads: Vec<Option<u32>>,
}

impl<'a> Engine<'a> {
    /// An engine for a checked plan, acting through `host`, announcing events to `emit`.
    pub fn new(
        plan: &'a DeployPlan,
        host: &'a dyn Host,
        emit: &'a (dyn Fn(&Event) + Sync),
    ) -> Self {
        Engine {
            plan,
            host,
            emit,
            cancel: Cancel::new(),
            switch: plan.switch.clone(),
            run: RunState {
                result: DeployResult::default(),
                started: Instant::now(),
                compose: None,
                held: None,
                pending_retire: None,
                traffic_moved: false,
                acted_on: None,
                receipt_from: None,
                reloads: Vec::new(),
            },
        }
    }

    /// The same engine, stopping early when `cancel` is raised before traffic has moved.
    pub fn cancellable(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    /// Why the run should stop now, if it should: it was asked to, and traffic has not
    /// moved (after that, the watch and its rollback run to their end, and a canary ends
    /// at its next step; see `canary.rs`).
    pub(super) fn stop_requested(&self) -> Option<CancelReason> {
        self.cancel.requested().filter(|_| !self.run.traffic_moved)
    }

    /// Ends the run with the operation's `outcome`: records it (and, after a failure, the
    /// error and the failing slot's log tail), reads back which slot is live, writes
    /// history, emits the result, then retires the old slot (a deploy that went live),
    /// still holding the lock; returns the result.
    pub(super) fn finish(mut self, outcome: Result<Outcome, Failure>) -> DeployResult {
        match outcome {
            Ok(outcome) => self.run.result.result = Some(outcome),
            Err(failure) => {
                // A failure that comes with a request to stop (a wait cut short) is the stop.
                let error = match self.stop_requested() {
                    Some(reason) => Error::Cancelled(reason),
                    None => failure.error,
                };
                let cancelled = matches!(error, Error::Cancelled(_));
                if cancelled {
                    self.log(&format!("{error}: the live slot was not touched"));
                }
                self.run.result.result = Some(if cancelled {
                    Outcome::Cancelled
                } else {
                    Outcome::Failed
                });
                self.run.result.error = Some(RunError::from(&error));
                if let Some(slot) = failure.log_of.filter(|_| !cancelled) {
                    self.run.result.log_tail = self.log_tail(slot);
                }
            }
        }
        if let Ok(loaded) = self.plan.store().load(
            &self.plan.app,
            self.plan.switch.upstream_file.as_path(),
            self.plan.ports,
        ) {
            let state = loaded.state;
            self.run.result.active_slot = state.active;
            self.run.result.previous_slot = state.previous;
            self.run.result.active_version = state
                .active
                .and_then(|s| state.slots.get(s).version.clone());
        }
        match self.receipt_so_far() {
            Some(Ok(mut receipt)) => {
                receipt.at_risk = self.run.reloads.clone();
                self.log(&format!(
                    "receipt: {} (nginx's log, from the run's start to its end)",
                    receipt.describe()
                ));
                self.run.result.receipt = Some(receipt);
            }
            Some(Err(e)) => self.log(&format!("no receipt: {e}")),
            None => {}
        }
        // A switch by hand is one line of history, the switch's own.
        if !self.plan.dry_run
            && !matches!(self.plan.operation, Operation::Status | Operation::Switch)
        {
            self.record_history();
        }
        (self.emit)(&Event::Result(Box::new(self.run.result.clone())));
        if let Some(old) = self.run.pending_retire.take() {
            self.retire(old);
        }
        self.run.held = None;
        self.run.result
    }

    fn record_history(&self) {
        let outcome = self.run.result.result.unwrap_or(Outcome::Failed);
        let detail = match (&self.run.result.failed_phase, &self.run.result.error) {
            (Some(phase), Some(error)) => {
                format!("{} at {}: {error}", outcome.as_str(), phase.as_str())
            }
            _ => outcome.as_str().to_owned(),
        };
        let _ = self.plan.store().record(&HistoryEvent {
            ts: now_rfc3339(),
            event: match self.plan.operation {
                Operation::Rollback => "rollback-run".into(),
                Operation::Promote => "promote".into(),
                Operation::Abort => "abort".into(),
                Operation::MaintenanceOn => "maintenance-on".into(),
                Operation::MaintenanceOff => "maintenance-off".into(),
                Operation::Setup => "setup".into(),
                _ => "deploy".into(),
            },
            app: self.plan.app.to_string(),
            from: None,
            to: self.run.result.active_slot,
            // Setup and maintenance move no version; a rollback or an abort goes back to
            // what is live after it (not the run's own version label).
            version: match self.plan.operation {
                Operation::Setup | Operation::MaintenanceOn | Operation::MaintenanceOff => None,
                Operation::Rollback | Operation::Abort => self.run.result.active_version.clone(),
                _ => Some(self.release().0.as_str().to_owned()),
            },
            detail: Some(format!("{detail} ({})", self.plan.purpose)),
            receipt: self.run.result.receipt.as_ref().map(Receipt::figures),
            pid: std::process::id(),
        });
    }

    /// Starts the run's receipt: from here on, what nginx logs counts.
    pub(super) fn start_receipt(&mut self) {
        self.run.receipt_from = self
            .access_log()
            .map(|log| (log.end(), now_epoch_seconds()));
    }

    /// Runs `request` on the host, noting for the receipt each reload of nginx it made,
    /// those of a switch that failed and was undone too.
    pub(super) fn run_switch(&mut self, request: &SwitchRequest) -> Result<SwitchReport, Error> {
        let result = self.with_progress(|p| self.host.switch(request, p));
        match &result {
            Ok(report) => self
                .run
                .reloads
                .extend(report.reload.map(|reload| reload.clients_open)),
            Err(Error::SwitchFailed { reloads, .. }) => self.run.reloads.extend(reloads),
            Err(_) => {}
        }
        result
    }

    /// The receipt from the run's start until now, when it was started (with an access log
    /// nginx is told to write), or why it cannot be had (the log is not there, or cannot be
    /// read).
    pub(super) fn receipt_so_far(&self) -> Option<Result<Receipt, Error>> {
        let (offset, started) = self.run.receipt_from?;
        let log = self.access_log()?;
        if !log.exists() {
            return Some(Err(Error::CheckFailed(format!(
                "nginx has written no access log at {} (its first lines come once a switch has told it to): nothing to count",
                log.path().display()
            ))));
        }
        Some(Receipt::read(&log, offset, started))
    }

    /// The version and image the run is about: the plan's, or the canary's that a promote or
    /// an abort acts on.
    pub(super) fn release(&self) -> (Version, Option<Image>) {
        self.run
            .acted_on
            .clone()
            .unwrap_or_else(|| (self.plan.version.clone(), self.plan.runtime.image.clone()))
    }

    /// Adds `warnings` to the result's, each once (a rebuilt state is said by the run and
    /// by its switch alike).
    pub(super) fn add_warnings(&mut self, warnings: &[String]) {
        for w in warnings {
            if !self.run.result.warnings.contains(w) {
                self.run.result.warnings.push(w.clone());
            }
        }
    }

    /// A line of progress.
    pub(super) fn log(&self, line: &str) {
        (self.emit)(&Event::Log {
            line: line.to_owned(),
        });
    }

    /// Runs `body` with a progress reporter whose lines become log events.
    pub(super) fn with_progress<R>(&self, body: impl FnOnce(&Progress) -> R) -> R {
        let emit = self.emit;
        let sink = move |line: &str| {
            emit(&Event::Log {
                line: line.to_owned(),
            })
        };
        body(&Progress::lines(&sink))
    }

    /// Runs one phase: announces its start and end, times and records it. The body returns
    /// its value and a line saying what it did.
    pub(super) fn phase<T>(
        &mut self,
        phase: Phase,
        body: impl FnOnce(&mut Self) -> Result<(T, String), Failure>,
    ) -> Result<T, Failure> {
        if let Some(reason) = self.stop_requested() {
            return Err(Failure {
                error: Error::Cancelled(reason),
                log_of: None,
                before_start: true,
            });
        }
        (self.emit)(&Event::PhaseStart { phase });
        let started = Instant::now();
        let outcome = body(self);
        let (ok, detail) = match &outcome {
            Ok((_, detail)) => (true, detail.clone()),
            Err(f) => (false, f.error.to_string()),
        };
        let record = PhaseRecord {
            phase,
            ok,
            start_ms: started.duration_since(self.run.started).as_millis() as u64,
            ms: started.elapsed().as_millis() as u64,
            detail,
        };
        (self.emit)(&Event::PhaseEnd(record.clone()));
        self.run.result.phases.push(record);
        if !ok {
            self.run.result.failed_phase = Some(phase);
        }
        outcome.map(|(value, _)| value)
    }

    /// Takes the app lock for the rest of the run, waiting up to the plan's lock timeout
    /// while another run holds it (saying who, every few seconds).
    pub(super) fn lock(&mut self) -> Result<(), Failure> {
        let plan = self.plan;
        let store = plan.store();
        let lock = self.phase(Phase::Lock, |me| {
            store.ensure_dir()?;
            let lock = AppLock::acquire_reporting(
                store.dir(),
                plan.app.as_str(),
                &plan.purpose,
                plan.lock_timeout,
                |line| me.log(line),
                &me.cancel,
            )?;
            Ok((lock, format!("locked {}", store.dir().display())))
        })?;
        self.run.held = Some(lock);
        Ok(())
    }

    /// Lets the app lock go before the run ends (a refused first setup removing the
    /// directory the lock is in).
    pub(super) fn unlock(&mut self) {
        self.run.held = None;
    }

    /// Decides `auto` (nftables where `nft` answers, else reload) and says which and why.
    pub(super) fn resolve_switch_mode(&mut self) {
        let host = self.host;
        let (resolved, why) = self
            .plan
            .switch
            .resolve(|probe| host.run(probe, NFT_PROBE_TIMEOUT));
        self.log(&format!("switch mode: {} ({why})", resolved.mode));
        self.run.result.switch_mode = Some(resolved.mode);
        self.run.result.switch_mode_reason = Some(why);
        self.switch = resolved;
    }

    /// Rewrites `state.json` as `change` says, when that changes it (under the run's lock).
    pub(super) fn update_state(&self, change: impl FnOnce(State) -> State) -> Result<(), Failure> {
        let plan = self.plan;
        let store = plan.store();
        let before = store
            .load(&plan.app, plan.switch.upstream_file.as_path(), plan.ports)?
            .state;
        let after = change(before.clone());
        if after != before {
            store.save(&after)?;
        }
        Ok(())
    }

    /// Loads state, rebuilt from disk (with a warning) when missing or corrupt.
    pub(super) fn load_state(&mut self) -> Result<State, Failure> {
        let (state, warning, live_from_rule) = self.read_state()?;
        if let Some(w) = warning {
            self.log(&format!("warning: {w}"));
            self.add_warnings(&[w]);
        }
        if let Some(slot) = live_from_rule {
            self.log(&format!(
                "the nftables rule routes to {slot}: taking it as the live slot"
            ));
        }
        Ok(state)
    }

    /// State as [`Engine::load_state`] reads it, saying nothing: with the warning of a
    /// rebuild, and the live slot when the nftables rule told it.
    pub(super) fn read_state(&self) -> Result<(State, Option<String>, Option<Slot>), Failure> {
        let plan = self.plan;
        let loaded =
            plan.store()
                .load(&plan.app, plan.switch.upstream_file.as_path(), plan.ports)?;
        let mut state = loaded.state;
        // In nftables mode the upstream file does not say which slot is live: the rule does.
        let live_from_rule =
            match loaded.source != StateSource::File && self.switch.nft(&plan.app).is_some() {
                true => self.host.routed(&self.switch, &plan.app, plan.ports)?,
                false => None,
            };
        if live_from_rule.is_some() {
            state.active = live_from_rule;
        }
        Ok((state, loaded.warning, live_from_rule))
    }
}
