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
//! On any failure in 3-4 the previous include is put back (and nginx reloaded if it had
//! already loaded the new one), so nginx keeps routing to the slot it routed to before.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::exec::CommandLine;
use crate::fsutil::{read_optional, write_atomic};
use crate::http::Prober;
use crate::input::{AppName, HttpUrl, Slot, SlotPorts, SwitchTarget, Version};
use crate::lock::AppLock;
use crate::nft::NftSwitch;
use crate::nginx;
use crate::progress::Progress;
use crate::state::{HistoryEvent, StateStore, now_rfc3339};
use crate::upstream::{Template, UpstreamContext, routed_slot, unified_diff};

/// How long the nginx test and reload commands may take.
const NGINX_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything a switch needs.
#[derive(Debug, Clone)]
pub struct SwitchRequest {
    /// The app.
    pub app: AppName,
    /// Its state directory.
    pub store: StateStore,
    /// Where traffic should go.
    pub target: SwitchTarget,
    /// Ports of both slots.
    pub ports: SlotPorts,
    /// The nginx include we own.
    pub upstream_file: PathBuf,
    /// The nftables switch, in nftables mode; `None` switches by rewriting the upstream and
    /// reloading nginx.
    pub nft: Option<NftSwitch>,
    /// The template it is rendered from.
    pub template: Template,
    /// Command that checks nginx's configuration (`nginx -t`).
    pub test_cmd: CommandLine,
    /// Command that reloads nginx (`nginx -s reload`).
    pub reload_cmd: CommandLine,
    /// nginx's pid file, used to watch its workers.
    pub nginx_pid_file: PathBuf,
    /// How long to wait for new workers after a reload.
    pub reload_timeout: Duration,
    /// A URL through nginx that must answer from the target slot after the reload.
    pub verify_url: Option<HttpUrl>,
    /// How long the verify URL may take to answer from the target slot.
    pub verify_timeout: Duration,
    /// The version now in the target slot, recorded in state.
    pub version: Option<Version>,
    /// The image now in the target slot, recorded in state.
    pub image: Option<String>,
    /// Whether to take the app lock, and how long to wait for it.
    pub lock: LockPolicy,
    /// Show what would change and change nothing.
    pub dry_run: bool,
    /// Switch only if this slot is still the active one (a rollback must not undo a switch
    /// somebody made in the meantime).
    pub only_if_active: Option<Slot>,
    /// The history event name: `switch` or `rollback`.
    pub event: &'static str,
    /// Why, for the history line (a rollback's cause).
    pub reason: Option<String>,
}

/// How traffic moves from one slot to the other.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum SwitchMode {
    /// Rewrite the upstream file and reload nginx. Works everywhere; a reload closes idle
    /// keep-alive client connections, so a request racing that close can fail.
    Reload,
    /// Keep nginx's configuration constant and move a DNAT rule (nftables) from the service
    /// port to the new slot. No reload, no dropped client connections; needs nftables and
    /// root.
    Nftables,
}

/// How a switch gets the app lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockPolicy {
    /// Take it, waiting up to this long while another process holds it.
    Acquire(Duration),
    /// The caller already holds it for this whole operation (a deploy run).
    HeldByCaller,
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
    /// Warnings (state rebuilt from disk, unconfirmable steps).
    pub warnings: Vec<String>,
    /// Time taken.
    pub elapsed_ms: u64,
}

impl SwitchRequest {
    /// Performs the switch (or, with `dry_run`, shows it).
    pub fn run(&self, progress: &Progress) -> Result<SwitchReport> {
        let started = Instant::now();
        if self.target == SwitchTarget::Previous && !self.dry_run {
            // Refuse before taking the lock (which creates the state dir): bad input
            // changes nothing. The answer is checked again under the lock.
            let state = self
                .store
                .load(&self.app, &self.upstream_file, self.ports)?
                .state;
            self.resolve(&state)?;
        }
        let _lock = if self.dry_run {
            None
        } else if let LockPolicy::Acquire(timeout) = self.lock {
            self.store.ensure_dir()?;
            let purpose = match self.target {
                SwitchTarget::Slot(s) => format!("{} to {s}", self.event),
                SwitchTarget::Previous => format!("{} to previous", self.event),
            };
            Some(AppLock::acquire(
                self.store.dir(),
                self.app.as_str(),
                &purpose,
                timeout,
            )?)
        } else {
            None
        };
        let loaded = self
            .store
            .load(&self.app, &self.upstream_file, self.ports)?;
        let mut warnings = Vec::new();
        if let Some(w) = loaded.warning {
            progress.line(&format!("warning: {w}"));
            warnings.push(w);
        }
        let state = loaded.state;
        if let Some(expected) = self.only_if_active
            && state.active != Some(expected)
        {
            return Err(Error::CheckFailed(format!(
                "not switching: the active slot is now {}, not {expected}; someone switched in the meantime",
                state.active.map_or("none", Slot::as_str)
            )));
        }
        let to = self.resolve(&state)?;
        let version = self
            .version
            .as_ref()
            .map(|v| v.as_str().to_owned())
            .or_else(|| state.slots.get(to).version.clone());
        let mut ctx = UpstreamContext::new(&self.app, to, self.ports, version.as_deref());
        if let Some(nft) = &self.nft {
            ctx.port = nft.service_port;
        }
        let rendered = self.template.render(&ctx)?;
        let old = read_optional(&self.upstream_file)?;
        let from = self.routed(old.as_deref()).or(state.active);
        let diff = unified_diff(old.as_deref().unwrap_or(""), &rendered, &self.upstream_file);
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
            warnings,
            elapsed_ms: 0,
        };
        if self.dry_run {
            report.elapsed_ms = started.elapsed().as_millis() as u64;
            return Ok(report);
        }

        let master = nginx::find_master(&self.nginx_pid_file);
        let file_changes = old.as_deref() != Some(report.rendered.as_str());
        if file_changes && master.is_none() && self.verify_url.is_none() {
            return Err(Error::invalid(
                "--verify-url",
                format!(
                    "cannot confirm a reload: {} names no running nginx and there is not exactly one nginx master on this host; give --nginx-pid-file or --verify-url",
                    self.nginx_pid_file.display()
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

        if let Some(nft) = &self.nft {
            // New connections to the service port go to the target before nginx is ever
            // pointed at the service port.
            let previous = nft.current_target();
            undo.nft_previous = Some(previous);
            if let Err(e) = nft.apply(report.port, self.store.dir()) {
                return Err(self.undo(&undo, to, "nftables", e.to_string()));
            }
            progress.line(&format!(
                "nftables: service port {} now leads to {to} (port {})",
                nft.service_port, report.port
            ));
        }
        if file_changes || self.nft.is_none() {
            if let Some(text) = &old {
                write_atomic(&self.store.upstream_backup_path(), text.as_bytes(), 0o644)?;
            }
            write_atomic(&self.upstream_file, report.rendered.as_bytes(), 0o644)?;
            undo.file_written = true;
            progress.line(&format!(
                "wrote {} routing {} to {}",
                self.upstream_file.display(),
                self.app,
                match &self.nft {
                    Some(nft) => format!("the service port {}", nft.service_port),
                    None => format!("{to} (port {})", report.port),
                }
            ));
            if let Err(e) = self.test_cmd.run(NGINX_COMMAND_TIMEOUT) {
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
        if let Some(url) = &self.verify_url {
            match self.verify(url, to) {
                Ok(named_slot) => report.verified_slot = named_slot,
                Err(reason) => return Err(self.undo(&undo, to, "verify", reason)),
            }
            if !report.verified_slot {
                if !report.workers_restarted {
                    return Err(self.undo(
                        &undo,
                        to,
                        "verify",
                        format!(
                            "{url} answers but does not say which slot served it (X-Bluegreen-Slot header or JSON \"slot\"), and no nginx master could be watched: the switch cannot be confirmed"
                        ),
                    ));
                }
                let w = format!(
                    "{url} does not say which slot served it; the reload was confirmed by nginx's new workers only"
                );
                progress.line(&format!("warning: {w}"));
                report.warnings.push(w);
            }
        }

        let now = now_rfc3339();
        let next = state.after_switch(
            to,
            self.ports,
            self.version.as_ref().map(Version::as_str),
            self.image.as_deref(),
            &now,
        );
        self.store.save(&next)?;
        self.store.record(&HistoryEvent {
            ts: now,
            event: self.event.to_owned(),
            app: self.app.to_string(),
            from,
            to: Some(to),
            version,
            detail: self.reason.clone(),
            pid: std::process::id(),
        })?;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Runs the reload command and, when `master` is known, waits until nginx has replaced
    /// its workers. `Ok(true)` when the reload was seen to take effect, `Ok(false)` when
    /// there was no master to watch; on failure, the failed stage and why.
    fn reload(&self, master: Option<u32>) -> std::result::Result<bool, (&'static str, String)> {
        let workers_before = master.map(nginx::children).unwrap_or_default();
        self.reload_cmd
            .run(NGINX_COMMAND_TIMEOUT)
            .map_err(|e| ("reload", e.to_string()))?;
        let Some(pid) = master else {
            return Ok(false);
        };
        if nginx::wait_for_reload(pid, &workers_before, self.reload_timeout) {
            Ok(true)
        } else {
            Err((
                "reload confirmation",
                format!(
                    "nginx master {pid} did not replace its workers within {}: the new configuration was not applied (see nginx's error log)",
                    humantime::format_duration(self.reload_timeout)
                ),
            ))
        }
    }

    /// The slot the target names, given the current state.
    fn resolve(&self, state: &crate::state::State) -> Result<Slot> {
        match self.target {
            SwitchTarget::Slot(s) => Ok(s),
            SwitchTarget::Previous => state.previous.ok_or_else(|| {
                Error::invalid(
                    "--to previous",
                    format!(
                        "no previous slot is recorded for {} (active: {})",
                        self.app,
                        state.active.map_or("none", Slot::as_str)
                    ),
                )
            }),
        }
    }

    /// Polls the verify URL until it answers 2xx from `to`. `Ok(true)` when the answer named
    /// the target slot, `Ok(false)` when it answered 2xx without naming any slot.
    fn verify(&self, url: &HttpUrl, to: Slot) -> std::result::Result<bool, String> {
        let prober = Prober::new(false);
        let deadline = Instant::now() + self.verify_timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let probe = prober.get(
                url,
                remaining.clamp(Duration::from_millis(100), Duration::from_secs(5)),
            );
            let problem = match (&probe, probe.reported_slot()) {
                (
                    crate::http::Probe::Answered {
                        status: 200..=299, ..
                    },
                    None,
                ) => return Ok(false),
                (
                    crate::http::Probe::Answered {
                        status: 200..=299, ..
                    },
                    Some(slot),
                ) if slot == to.as_str() => {
                    return Ok(true);
                }
                (
                    crate::http::Probe::Answered {
                        status: 200..=299, ..
                    },
                    Some(slot),
                ) => {
                    format!("{url} is still served by slot {slot:?}, not {to}")
                }
                _ => format!("{url} did not answer 2xx: {}", probe.describe()),
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "{problem} (after {})",
                    humantime::format_duration(self.verify_timeout)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Puts back what the switch changed: the nftables rule, the previous include (reloaded
    /// if nginx had loaded the new one, waiting until the restored one serves). Records the
    /// failure in history and builds the error to return.
    fn undo(&self, undo: &Undo, to: Slot, stage: &'static str, reason: String) -> Error {
        let mut reason = reason;
        let mut restored = true;
        if let (Some(nft), Some(previous)) = (&self.nft, undo.nft_previous) {
            let put_back = match previous {
                Some(port) => nft.apply(port, self.store.dir()),
                None => nft.remove(),
            };
            if let Err(e) = put_back {
                reason.push_str(&format!("; restoring the nftables rule failed too: {e}"));
                restored = false;
            }
        }
        if undo.file_written {
            let restore = match &undo.old_file {
                Some(text) => write_atomic(&self.upstream_file, text.as_bytes(), 0o644),
                None => std::fs::remove_file(&self.upstream_file)
                    .map_err(|e| Error::io("remove", &self.upstream_file, e)),
            };
            match restore {
                Ok(()) => {
                    if undo.reloaded
                        && let Err((_, e)) = self.reload(undo.master)
                    {
                        reason.push_str(&format!(
                            "; reloading the restored configuration failed: {e}"
                        ));
                    }
                }
                Err(e) => {
                    reason.push_str(&format!(
                        "; restoring the previous upstream failed too: {e}"
                    ));
                    restored = false;
                }
            }
        }
        let _ = self.store.record(&HistoryEvent {
            ts: now_rfc3339(),
            event: "switch-failed".into(),
            app: self.app.to_string(),
            from: None,
            to: Some(to),
            version: self.version.as_ref().map(|v| v.as_str().to_owned()),
            detail: Some(format!("{stage}: {reason}")),
            pid: std::process::id(),
        });
        Error::SwitchFailed {
            to: to.to_string(),
            stage,
            reason,
            restored,
        }
    }

    /// The slot traffic is routed to now: the nftables rule's target in nftables mode, else
    /// the slot the upstream file (`text`) names.
    pub fn routed(&self, text: Option<&str>) -> Option<Slot> {
        match &self.nft {
            Some(nft) => nft
                .current_target()
                .and_then(|port| self.ports.slot_of(port)),
            None => text.and_then(|t| routed_slot(t, self.ports, &self.app)),
        }
    }
}

/// What a switch changed so far, for putting it back.
struct Undo {
    old_file: Option<String>,
    master: Option<u32>,
    file_written: bool,
    reloaded: bool,
    /// In nftables mode, once the rule was touched: the port it led to before, if any.
    nft_previous: Option<Option<u16>>,
}
