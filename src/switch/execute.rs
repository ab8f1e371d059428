//! Carrying a switch's decision out: in nftables mode the rule first, then the include,
//! written, tested by nginx and reloaded; each step undone (`undo.rs`) when a later one fails.

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::nft::{NftSwitch, Route};
use crate::progress::Progress;

use super::decide::Decision;
use super::request::{NGINX_COMMAND_TIMEOUT, Reload, SwitchReport, SwitchRequest};
use super::undo::Undo;

impl SwitchRequest {
    /// Carries `decision` out: in nftables mode the rule first (new connections to the
    /// service port go to the target before nginx is ever pointed at it), then the include,
    /// tested and reloaded, then the confirmation that nginx serves as decided. On any
    /// failure, what was changed is put back (`undo`) and the error says what failed.
    pub(super) fn carry_out(
        &self,
        decision: &Decision,
        rule_before: Option<Option<Route>>,
        undo: &mut Undo,
        report: &mut SwitchReport,
        progress: &Progress,
    ) -> Result<()> {
        if decision.include_changes && undo.master.is_none() && self.config.verify_url.is_none() {
            return Err(Error::invalid(
                "--verify-url",
                format!(
                    "cannot confirm a reload: {} names no running nginx and there is not exactly one nginx master on this host; give --nginx-pid-file or --verify-url",
                    self.config.nginx_pid_file
                ),
            ));
        }
        match self.nft() {
            Some(nft) => {
                self.move_rule(&nft, decision, rule_before.flatten(), undo, progress)?;
                report.kernel_confirmed = true;
            }
            None => {
                // Left by an earlier nftables mode: point it at the target too, so nginx's
                // old workers, still proxying to the service port, reach the new slot; the
                // run removes it once they are gone.
                let stale = self.config.nft_of(&self.app);
                if stale.current_target().is_some() {
                    stale
                        .apply(&Route::to(report.port), self.store.dir())
                        .map_err(|e| self.undo(undo, decision.to, "nftables", e.to_string()))?;
                }
            }
        }
        if decision.include_changes || self.nft().is_none() {
            self.load_include(decision, undo, report, progress)?;
        }
        self.confirm(decision, undo, report, progress)
    }

    /// Points the app's rule as `decision` says (from `previous`, where it led before) and
    /// confirms it from the kernel.
    fn move_rule(
        &self,
        nft: &NftSwitch,
        decision: &Decision,
        previous: Option<Route>,
        undo: &mut Undo,
        progress: &Progress,
    ) -> Result<()> {
        let to = decision.to;
        undo.nft_previous = Some(previous);
        let applied = match previous {
            Some(_) => nft.retarget(&decision.route, self.store.dir()),
            None => nft.apply(&decision.route, self.store.dir()),
        };
        if let Err(e) = applied {
            return Err(self.undo(undo, to, "nftables", e.to_string()));
        }
        let reached = self
            .confirm_by_kernel(nft, to, &decision.route)
            .map_err(|(stage, why)| self.undo(undo, to, stage, why))?;
        let port = self.ports.port(to);
        let leads = match &self.intent.split {
            Some(c) => format!(
                "{} of new connections to {} (port {}), the rest to {to} (port {port})",
                c.share,
                c.slot,
                self.ports.port(c.slot),
            ),
            None => format!("{to} (port {port})"),
        };
        progress.line(&format!(
            "nftables: service port {} now leads to {leads}: the rules read back so, and a new connection to the service port was accepted on port {reached}",
            nft.service_port
        ));
        Ok(())
    }

    /// Writes the decided include (keeping the one in place as the backup), tests it with
    /// nginx and reloads, confirming the reload where nginx's master can be watched.
    fn load_include(
        &self,
        decision: &Decision,
        undo: &mut Undo,
        report: &mut SwitchReport,
        progress: &Progress,
    ) -> Result<()> {
        let to = decision.to;
        if let Some(text) = &undo.old_file {
            write_atomic(&self.store.upstream_backup_path(), text.as_bytes(), 0o644)?;
        }
        write_atomic(
            self.config.upstream_file.as_path(),
            decision.include.as_bytes(),
            0o644,
        )?;
        undo.file_written = true;
        progress.line(&format!(
            "wrote {} routing {} to {}",
            self.config.upstream_file,
            self.app,
            match (&decision.maintenance, self.nft()) {
                (Some(m), _) => format!("nginx's maintenance server (port {})", m.port),
                (None, Some(nft)) => format!("the service port {}", nft.service_port),
                (None, None) => format!("{to} (port {})", report.port),
            }
        ));
        if let Err(e) = self.config.test_cmd.run(NGINX_COMMAND_TIMEOUT) {
            return Err(self.undo(undo, to, "nginx test", e.to_string()));
        }
        undo.reloaded = true;
        let reloaded = self.reload_counted(undo);
        report.reload = undo
            .reloads
            .last()
            .map(|&clients_open| Reload { clients_open });
        match reloaded {
            Ok(confirmed) => report.workers_restarted = confirmed,
            Err((stage, reason)) => {
                undo.reloaded = stage != "reload";
                return Err(self.undo(undo, to, stage, reason));
            }
        }
        Ok(())
    }
}
