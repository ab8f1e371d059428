//! Moving traffic from one slot to the other: every switch of the engine's runs (a deploy,
//! a rollback, a canary step, maintenance, a switch by hand with switch-traffic), each run
//! holding the app lock around it.
//!
//! Order of operations, each undone if a later one fails:
//! 1. load state (rebuilding it from disk if needed); read the include and, in nftables
//!    mode, where the rule leads;
//! 2. decide (`decide.rs`, pure): the include to write, where new connections go, from
//!    which slot, and whether maintenance stays on;
//! 3. carry it out (`execute.rs`, through the host's primitives in `host.rs`): in nftables
//!    mode move the rule and confirm it from the kernel; write the include atomically (the
//!    current one kept as a backup in the state dir), run the nginx test command, reload and
//!    confirm new nginx workers started;
//! 4. confirm (`confirm.rs`): the verify URL answers from the target slot (in maintenance,
//!    nginx's own server answers 503 instead);
//! 5. only then record the new state and a history line.
//!
//! On any failure in 3-4 the previous include and the rule are put back from the journal of
//! what was changed (`undo.rs`; nginx reloaded if it may have loaded the new one), so nginx
//! keeps routing to the slot it routed to before; `execute_tests.rs` fails each effect in
//! turn on a host whose nginx and kernel are in memory (`fake_host.rs`) and checks that.
//! `intent.rs` says what a switch is asked for, `config.rs` how the app's traffic is
//! switched, `request.rs` what one switch is given and what it reports, `host.rs` the
//! primitives it acts through.

mod config;
mod confirm;
mod decide;
mod execute;
#[cfg(test)]
mod execute_tests;
#[cfg(test)]
mod fake_host;
#[cfg(test)]
mod fixtures;
#[cfg(test)]
pub(crate) use fake_host::{Fail, FakeSwitchHost};
mod host;
mod intent;
mod request;
mod undo;

pub use config::{SwitchConfig, settled_service_port};
pub use intent::{Intent, MaintenanceChange, SwitchEvent};

use std::path::PathBuf;
use std::time::Instant;

use crate::clock::now_rfc3339;
use crate::error::Result;
use crate::fsutil::read_optional;
use crate::input::Slot;
use crate::nft::NftSwitch;
use crate::progress::Progress;
use crate::state::{HistoryEvent, State};
use crate::upstream::unified_diff;
pub(crate) use decide::{Decision, InPlace};
use execute::{Executor, Journal};
pub(crate) use host::SwitchHost;
use host::ThisHost;
pub use request::{Reload, SwitchReport, SwitchRequest};

impl SwitchRequest {
    /// Performs the switch (or, with `dry_run`, shows it): reads what is in place, decides
    /// (`decide.rs`), carries the decision out and confirms it, and only then
    /// records it.
    pub fn run(&self, progress: &Progress) -> Result<SwitchReport> {
        let host = ThisHost {
            config: &self.config,
            state_dir: self.store.dir(),
        };
        self.run_on(&host, progress)
    }

    /// [`run`](Self::run) through `host`'s primitives.
    pub(crate) fn run_on(
        &self,
        host: &dyn SwitchHost,
        progress: &Progress,
    ) -> Result<SwitchReport> {
        let started = Instant::now();
        let loaded = self
            .store
            .load(&self.app, self.config.upstream_file.as_path(), self.ports)?;
        let mut warnings = Vec::new();
        if let Some(w) = loaded.warning {
            progress.line(&format!("warning: {w}"));
            warnings.push(w);
        }
        let state = loaded.state;
        let access_log = self.access_log(progress, &mut warnings);
        let old = host.read(self.config.upstream_file.as_path())?;
        // A rule that cannot be read is not taken for none: a switch that then created the
        // table would replace it, and its undo remove it.
        let rule_before = self.nft().map(|nft| host.read_rule(&nft)).transpose()?;
        let decision = self.decide(&InPlace {
            state: &state,
            include: old.as_deref(),
            rule: rule_before,
            access_log: access_log.as_deref(),
        })?;
        let mut report = self.report(&decision, old.as_deref(), warnings)?;
        if let Some(edited) = old.as_deref().filter(|_| decision.include_changes)
            && let Some(w) = self.hand_edits(&state, edited)
        {
            if !self.dry_run {
                host.write(&self.store.hand_edited_path(), edited)?;
            }
            progress.line(&format!("warning: {w}"));
            report.warnings.push(w);
        }
        if !self.dry_run {
            Executor {
                request: self,
                host,
                progress,
                journal: Journal::new(old, host.nginx_master()),
                report: &mut report,
            }
            .carry_out(&decision, rule_before)?;
            self.record(&state, &decision)?;
        }
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// The access log the include has nginx write (unless `access-log` is off); none where
    /// nginx could not be given one, saying why: a warning for a split, whose step is then
    /// judged on probes, else a line of progress.
    fn access_log(&self, progress: &Progress, warnings: &mut Vec<String>) -> Option<PathBuf> {
        if !self.config.access_log {
            return None;
        }
        match self.config.access_log(&self.app, self.dry_run) {
            Ok(path) => Some(path),
            Err(why) if self.intent.split.is_some() => {
                let w = format!("no access log, so steps are judged on probes: {why}");
                progress.line(&format!("warning: {w}"));
                warnings.push(w);
                None
            }
            Err(why) => {
                progress.line(&format!("no access log: {why}"));
                None
            }
        }
    }

    /// The report of `decision` before it is carried out: the include and, in nftables
    /// mode, the ruleset, each as a diff against what is in place.
    fn report(
        &self,
        decision: &Decision,
        old: Option<&str>,
        warnings: Vec<String>,
    ) -> Result<SwitchReport> {
        let mut diff = unified_diff(
            old.unwrap_or(""),
            &decision.include,
            self.config.upstream_file.as_path(),
        );
        if let Some(nft) = self.nft() {
            // The rule is what moves in nftables mode: show its change too.
            let file = nft.ruleset_path(self.store.dir());
            let current = read_optional(&file)?.unwrap_or_default();
            diff.push_str(&unified_diff(
                &current,
                &nft.ruleset(&decision.route),
                &file,
            ));
        }
        Ok(SwitchReport {
            app: self.app.to_string(),
            from: decision.from,
            to: decision.to,
            port: self.ports.port(decision.to),
            version: decision.version.clone(),
            dry_run: self.dry_run,
            rendered: decision.include.clone(),
            diff,
            workers_restarted: false,
            verified_slot: false,
            kernel_confirmed: false,
            maintenance: decision.maintenance.is_some(),
            mode: self.config.mode,
            warnings,
            elapsed_ms: 0,
            reload: None,
            handshakes_forgotten: 0,
        })
    }

    /// Records the confirmed switch: the new state and a history line.
    pub(crate) fn record(&self, state: &State, decision: &Decision) -> Result<()> {
        let now = now_rfc3339();
        let next = self
            .intent
            .recorded_in(state, decision.to, self.ports, &now)
            .switched_by(self.config.mode, self.config.service_port.get())
            .with_upstream(&decision.include);
        self.store.save(&next)?;
        self.store.record(&HistoryEvent {
            ts: now,
            event: self.intent.event.as_str().to_owned(),
            app: self.app.to_string(),
            from: decision.from,
            to: Some(decision.to),
            version: decision.version.clone(),
            detail: self.intent.reason.clone(),
            receipt: None,
            pid: std::process::id(),
        })
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

    pub(super) fn nft(&self) -> Option<NftSwitch> {
        self.config.nft(&self.app)
    }
}

/// A switch configuration for the unit tests: app `shop`'s default include, service port
/// 21000, the default nginx and nft commands, in `mode`.
#[cfg(test)]
pub(crate) fn test_config(mode: crate::input::SwitchMode) -> SwitchConfig {
    use crate::exec::CommandLine;
    use crate::input::HostPath;
    use std::time::Duration;
    let path = |p: &str| p.parse::<HostPath>().unwrap();
    SwitchConfig {
        mode,
        service_port: "21000".parse().unwrap(),
        service_port_given: false,
        upstream_file: path("/etc/nginx/conf.d/bluegreen-shop.conf"),
        test_cmd: CommandLine::new(["nginx", "-t"]),
        reload_cmd: CommandLine::new(["nginx", "-s", "reload"]),
        nginx_pid_file: path("/run/nginx.pid"),
        reload_timeout: Duration::from_secs(1),
        verify_url: None,
        verify_timeout: Duration::from_secs(1),
        site_host: None,
        nft_cmd: CommandLine::new(["nft"]),
        log_dir: path("/var/log/bluegreen"),
        access_log: true,
    }
}
