//! Moving traffic from one slot to the other: the heart of switch-traffic, also used by
//! monitor's automatic rollback.
//!
//! Order of operations, each undone if a later one fails:
//! 1. take the app lock; load state (rebuilding it from disk if needed);
//! 2. render the upstream include; keep a backup of the current one in the state dir;
//! 3. write the new include atomically; run the nginx test command;
//! 4. reload; confirm new nginx workers started; confirm the verify URL answers from the
//!    target slot;
//! 5. only then record the new state and a history line.
//!
//! In maintenance mode (state records it, or the intent turns it on) the include makes nginx
//! answer 503 itself whatever the template says, and step 4 checks that it does instead of
//! probing the verify URL.
//!
//! On any failure in 3-4 the previous include is put back (and nginx reloaded if it had
//! already loaded the new one), so nginx keeps routing to the slot it routed to before.

mod config;
mod confirm;
mod intent;
mod undo;

pub use config::{SwitchConfig, SwitchMode, settled_service_port};
pub use intent::{Intent, LockPolicy, MaintenanceChange, SwitchEvent};

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::fsutil::{read_optional, write_atomic};
use crate::input::{AppName, Slot, SlotPorts, SwitchTarget};
use crate::lock::AppLock;
use crate::maintenance::Closed;
use crate::nft::{NftSwitch, Route};
use crate::nginx;
use crate::progress::Progress;
use crate::state::{HistoryEvent, State, StateStore, now_rfc3339};
use crate::upstream::{Template, UpstreamContext, unified_diff};
use confirm::unconfirmed_reload;
use undo::Undo;

/// How long the nginx test and reload commands may take.
const NGINX_COMMAND_TIMEOUT: Duration = nginx::COMMAND_TIMEOUT;
/// Pause between two probes of the verify URL.
const VERIFY_POLL: Duration = Duration::from_millis(50);

/// One switch: the app's switch configuration, the intent, and how to lock.
#[derive(Debug, Clone)]
pub struct SwitchRequest {
    /// The app.
    pub app: AppName,
    /// Its state directory.
    pub store: StateStore,
    /// Ports of both slots.
    pub ports: SlotPorts,
    /// How this app's traffic is switched.
    pub config: SwitchConfig,
    /// The template the upstream include is rendered from.
    pub template: Template,
    /// Where to, under what condition, and why.
    pub intent: Intent,
    /// Whether to take the app lock, and how long to wait for it.
    pub lock: LockPolicy,
    /// Show what would change and change nothing.
    pub dry_run: bool,
    /// Write the app's access log through the include (a deploy with traffic steps); a
    /// split writes it whatever this says.
    pub log_requests: bool,
}

/// What a switch did.
#[derive(Debug, Clone, Serialize)]
pub struct SwitchReport {
    /// The app.
    pub app: String,
    /// The slot traffic left (None on a first switch).
    pub from: Option<Slot>,
    /// The slot traffic goes to.
    pub to: Slot,
    /// The target slot's port.
    pub port: u16,
    /// The target slot's version, when known.
    pub version: Option<String>,
    /// True when nothing was changed (`--dry-run`).
    pub dry_run: bool,
    /// The rendered upstream include.
    pub rendered: String,
    /// Unified diff against the include that was in place (empty when equal).
    pub diff: String,
    /// Whether nginx was seen replacing its workers after the reload.
    pub workers_restarted: bool,
    /// Whether the verify URL answered naming the target slot.
    pub verified_slot: bool,
    /// Whether the kernel confirmed it (nftables mode: the rule read back, and a new
    /// connection to the service port reached the target).
    pub kernel_confirmed: bool,
    /// Whether nginx answers with the maintenance page after it (the target is live behind
    /// it).
    pub maintenance: bool,
    /// How traffic was moved.
    pub mode: SwitchMode,
    /// Warnings (state rebuilt from disk, unconfirmable steps).
    pub warnings: Vec<String>,
    /// Time taken.
    pub elapsed_ms: u64,
}

impl SwitchRequest {
    /// Performs the switch (or, with `dry_run`, shows it).
    pub fn run(&self, progress: &Progress) -> Result<SwitchReport> {
        let started = Instant::now();
        if self.intent.target == SwitchTarget::Previous && !self.dry_run {
            // Refuse before taking the lock (which creates the state dir): bad input
            // changes nothing. The answer is checked again under the lock.
            let state = self
                .store
                .load(&self.app, self.config.upstream_file.as_path(), self.ports)?
                .state;
            self.intent.resolve(&state, &self.app)?;
        }
        let _lock = if self.dry_run {
            None
        } else if let LockPolicy::Acquire(timeout) = self.lock {
            self.store.ensure_dir()?;
            Some(AppLock::acquire_reporting(
                self.store.dir(),
                self.app.as_str(),
                &self.intent.purpose(),
                timeout,
                |line| progress.line(line),
                &crate::cancel::Cancel::new(),
            )?)
        } else {
            None
        };
        let loaded = self
            .store
            .load(&self.app, self.config.upstream_file.as_path(), self.ports)?;
        let mut warnings = Vec::new();
        if let Some(w) = loaded.warning {
            progress.line(&format!("warning: {w}"));
            warnings.push(w);
        }
        let state = loaded.state;
        if let Some(expected) = self.intent.only_if_active
            && state.active != Some(expected)
        {
            return Err(Error::CheckFailed(format!(
                "not switching: the active slot is now {}, not {expected}; someone switched in the meantime",
                state.active.map_or("none", Slot::as_str)
            )));
        }
        let to = self.intent.resolve(&state, &self.app)?;
        let version = self
            .intent
            .version
            .as_ref()
            .map(|v| v.as_str().to_owned())
            .or_else(|| state.slots.get(to).version.clone());
        let mut ctx = UpstreamContext::new(&self.app, to, self.ports, version.as_deref());
        let canary = self.intent.split.as_ref();
        if self.log_requests || canary.is_some() {
            match self.config.access_log(&self.app, self.dry_run) {
                Ok(path) => ctx = ctx.logging_to(&path),
                Err(why) => {
                    let w = format!("no access log, so steps are judged on probes: {why}");
                    progress.line(&format!("warning: {w}"));
                    warnings.push(w);
                }
            }
        }
        match (self.nft(), canary) {
            // nginx's configuration stays the same in nftables mode: the rules split.
            (Some(nft), _) => ctx.port = nft.service_port,
            (None, Some(c)) => ctx = ctx.with_canary(self.ports.port(c.slot), c.share),
            (None, None) => {}
        }
        let route = match canary {
            Some(c) => Route::split(self.ports.port(to), self.ports.port(c.slot), c.share),
            None => Route::to(self.ports.port(to)),
        };
        // In maintenance nginx answers 503 itself, whatever the template says.
        let maintenance = self.intent.maintenance.after(&state);
        let rendered = match &maintenance {
            Some(m) => crate::maintenance::include(
                &self.app,
                Closed::Maintenance { slot: to },
                m.port,
                Some(ctx.port),
                m.retry_after_seconds,
                &self.store.pages_dir(),
                &ctx.access_log,
            )?,
            None => self.template.render(&ctx)?,
        };
        if let Some(c) = canary.filter(|_| self.nft().is_none() && maintenance.is_none()) {
            crate::upstream::check_split(&rendered, self.ports.port(c.slot))?;
        }
        let old = read_optional(self.config.upstream_file.as_path())?;
        // In nftables mode, where the rule leads now: the slot traffic leaves, and what an
        // undo puts back.
        let rule_before = self.nft().map(|nft| nft.current_route());
        let from = match rule_before {
            Some(route) => route.and_then(|r| self.ports.slot_of(r.port)),
            None => self.routed(old.as_deref()),
        }
        .or(state.active);
        let mut diff = unified_diff(
            old.as_deref().unwrap_or(""),
            &rendered,
            self.config.upstream_file.as_path(),
        );
        if let Some(nft) = self.nft() {
            // The rule is what moves in nftables mode: show its change too.
            let file = nft.ruleset_path(self.store.dir());
            let current = read_optional(&file)?.unwrap_or_default();
            diff.push_str(&unified_diff(&current, &nft.ruleset(&route), &file));
        }
        let mut report = SwitchReport {
            app: self.app.to_string(),
            from,
            to,
            port: self.ports.port(to),
            version: version.clone(),
            dry_run: self.dry_run,
            rendered,
            diff,
            workers_restarted: false,
            verified_slot: false,
            kernel_confirmed: false,
            maintenance: maintenance.is_some(),
            mode: self.config.mode,
            warnings,
            elapsed_ms: 0,
        };
        let file_changes = old.as_deref() != Some(report.rendered.as_str());
        if let Some(edited) = old.as_deref().filter(|_| file_changes)
            && let Some(w) = self.hand_edits(&state, edited)
        {
            if !self.dry_run {
                write_atomic(&self.store.hand_edited_path(), edited.as_bytes(), 0o644)?;
            }
            progress.line(&format!("warning: {w}"));
            report.warnings.push(w);
        }
        if self.dry_run {
            report.elapsed_ms = started.elapsed().as_millis() as u64;
            return Ok(report);
        }

        let master = self.config.nginx_master();
        if file_changes && master.is_none() && self.config.verify_url.is_none() {
            return Err(Error::invalid(
                "--verify-url",
                format!(
                    "cannot confirm a reload: {} names no running nginx and there is not exactly one nginx master on this host; give --nginx-pid-file or --verify-url",
                    self.config.nginx_pid_file
                ),
            ));
        }
        let mut undo = Undo {
            old_file: old.clone(),
            master,
            file_written: false,
            reloaded: false,
            nft_previous: None,
        };

        if let Some(nft) = self.nft() {
            // New connections to the service port go to the target before nginx is ever
            // pointed at the service port.
            let previous = rule_before.flatten();
            undo.nft_previous = Some(previous);
            let applied = match previous {
                Some(_) => nft.retarget(&route, self.store.dir()),
                None => nft.apply(&route, self.store.dir()),
            };
            if let Err(e) = applied {
                return Err(self.undo(&undo, to, "nftables", e.to_string()));
            }
            let reached = match self.confirm_by_kernel(&nft, to, &route) {
                Ok(reached) => reached,
                Err((stage, why)) => return Err(self.undo(&undo, to, stage, why)),
            };
            report.kernel_confirmed = true;
            let leads = match canary {
                Some(c) => format!(
                    "{} of new connections to {} (port {}), the rest to {to} (port {})",
                    c.share,
                    c.slot,
                    self.ports.port(c.slot),
                    report.port
                ),
                None => format!("{to} (port {})", report.port),
            };
            progress.line(&format!(
                "nftables: service port {} now leads to {leads}: the rules read back so, and a new connection to the service port was accepted on port {reached}",
                nft.service_port
            ));
        } else {
            // Left by an earlier nftables mode: point it at the target too, so nginx's old
            // workers, still proxying to the service port, reach the new slot; the run
            // removes it once they are gone.
            let stale = self.config.nft_of(&self.app);
            if stale.current_target().is_some() {
                stale
                    .apply(&Route::to(report.port), self.store.dir())
                    .map_err(|e| self.undo(&undo, to, "nftables", e.to_string()))?;
            }
        }
        if file_changes || self.nft().is_none() {
            if let Some(text) = &old {
                write_atomic(&self.store.upstream_backup_path(), text.as_bytes(), 0o644)?;
            }
            write_atomic(
                self.config.upstream_file.as_path(),
                report.rendered.as_bytes(),
                0o644,
            )?;
            undo.file_written = true;
            progress.line(&format!(
                "wrote {} routing {} to {}",
                self.config.upstream_file,
                self.app,
                match (&maintenance, self.nft()) {
                    (Some(m), _) => format!("nginx's maintenance server (port {})", m.port),
                    (None, Some(nft)) => format!("the service port {}", nft.service_port),
                    (None, None) => format!("{to} (port {})", report.port),
                }
            ));
            if let Err(e) = self.config.test_cmd.run(NGINX_COMMAND_TIMEOUT) {
                return Err(self.undo(&undo, to, "nginx test", e.to_string()));
            }
            undo.reloaded = true;
            match self.reload(master) {
                Ok(confirmed) => report.workers_restarted = confirmed,
                Err((stage, reason)) => {
                    undo.reloaded = stage != "reload";
                    return Err(self.undo(&undo, to, stage, reason));
                }
            }
        }
        if let Some(m) = &maintenance {
            if let Err(reason) = self.verify_closed(m.port) {
                return Err(self.undo(&undo, to, "verify", reason));
            }
            progress.line(&format!(
                "maintenance: nginx answers 503 from its server on 127.0.0.1:{}; {to} (port {}) runs behind it, and is not verified through nginx",
                m.port, report.port
            ));
        } else if let Some(url) = &self.config.verify_url {
            let serving: Vec<Slot> = std::iter::once(to).chain(canary.map(|c| c.slot)).collect();
            match self.verify(url, &serving) {
                Ok(named_slot) => report.verified_slot = named_slot,
                Err(reason) => return Err(self.undo(&undo, to, "verify", reason)),
            }
            if let Some(why) = unconfirmed_reload(&undo, &report, url) {
                return Err(self.undo(&undo, to, "reload confirmation", why));
            }
            if !report.verified_slot && !report.kernel_confirmed {
                let w = format!(
                    "{url} does not say which slot served it; the reload was confirmed by nginx's new workers only"
                );
                progress.line(&format!("warning: {w}"));
                report.warnings.push(w);
            }
        }

        let now = now_rfc3339();
        let next = self
            .intent
            .recorded_in(&state, to, self.ports, &now)
            .switched_by(self.config.mode, self.config.service_port.get())
            .with_upstream(&report.rendered);
        self.store.save(&next)?;
        self.store.record(&HistoryEvent {
            ts: now,
            event: self.intent.event.as_str().to_owned(),
            app: self.app.to_string(),
            from,
            to: Some(to),
            version,
            detail: self.intent.reason.clone(),
            pid: std::process::id(),
        })?;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// What to say when the upstream file is no longer what the last switch wrote (someone
    /// edited it by hand): the switch replaces it, and the way to keep lines of one's own
    /// is a template.
    fn hand_edits(&self, state: &State, current: &str) -> Option<String> {
        let recorded = state.upstream_sha256.as_deref()?;
        (crate::fsutil::sha256_hex(current.as_bytes()) != recorded).then(|| {
            format!(
                "{} was edited by hand since bluegreen last wrote it: the edits are replaced (the edited file is kept in {}); to keep lines of your own (keepalive, a backup server), give a template (the upstream-template input, switch-traffic --template)",
                self.config.upstream_file,
                self.store.hand_edited_path().display()
            )
        })
    }

    /// The slot the target names now, read from state for `previous`.
    pub fn target_slot(&self) -> Result<Slot> {
        let state = self
            .store
            .load(&self.app, self.config.upstream_file.as_path(), self.ports)?
            .state;
        self.intent.resolve(&state, &self.app)
    }

    /// The slot traffic is routed to now, given the upstream file's content.
    pub fn routed(&self, upstream_text: Option<&str>) -> Option<Slot> {
        self.config.routed_by(&self.app, self.ports, upstream_text)
    }

    fn nft(&self) -> Option<NftSwitch> {
        self.config.nft(&self.app)
    }
}
