//! Carrying a switch's decision out through the host's primitives (`host.rs`): in nftables
//! mode the rule first, then the include, written, tested by nginx and reloaded, then the
//! confirmation (`confirm.rs`); each step noted in the journal and undone (`undo.rs`) when a
//! later one fails. Once confirmed, in nftables mode, the kernel forgets the handshakes the
//! ports traffic left had not answered.

use crate::error::{Error, Result};
use crate::nft::{NftSwitch, Route};
use crate::progress::Progress;

use super::decide::Decision;
use super::host::SwitchHost;
use super::request::{Reload, SwitchReport, SwitchRequest};

/// One switch being carried out: the request, the host it acts on, what it changed so far
/// and what it reports.
pub(super) struct Executor<'a> {
    pub(super) request: &'a SwitchRequest,
    pub(super) host: &'a dyn SwitchHost,
    pub(super) progress: &'a Progress<'a>,
    pub(super) journal: Journal,
    pub(super) report: &'a mut SwitchReport,
}

/// What a switch changed so far, for putting it back.
pub(super) struct Journal {
    /// The include in place before the switch (`None`: there was none).
    pub(super) old_file: Option<String>,
    /// The nginx master whose reloads are watched, when it could be found.
    pub(super) master: Option<u32>,
    /// Whether the new include was written.
    pub(super) file_written: bool,
    /// Whether nginx may have loaded the new include (its reload command ran).
    pub(super) reloaded: bool,
    /// Once the switch touched an nftables rule: that rule's table, and where it led before
    /// (`None`: there was no table).
    pub(super) rule_before: Option<(NftSwitch, Option<Route>)>,
    /// Each reload of nginx so far, with the client connections open at it.
    pub(super) reloads: Vec<Option<u32>>,
}

impl Journal {
    /// The journal of a switch that has changed nothing yet, with the include in place and
    /// the nginx master to watch.
    pub(super) fn new(old_file: Option<String>, master: Option<u32>) -> Journal {
        Journal {
            old_file,
            master,
            file_written: false,
            reloaded: false,
            rule_before: None,
            reloads: Vec::new(),
        }
    }
}

impl Executor<'_> {
    /// Carries `decision` out: in nftables mode the rule first (new connections to the
    /// service port go to the target before nginx is ever pointed at it), then the include,
    /// tested and reloaded, then the confirmation that nginx serves as decided. `rule_before`
    /// is where the app's rule led when the switch read it (`None` in reload mode). On any
    /// failure, what was changed is put back and the error says what failed.
    pub(super) fn carry_out(
        &mut self,
        decision: &Decision,
        rule_before: Option<Option<Route>>,
    ) -> Result<()> {
        let config = &self.request.config;
        if decision.include_changes && self.journal.master.is_none() && config.verify_url.is_none()
        {
            return Err(Error::invalid(
                "--verify-url",
                format!(
                    "cannot confirm a reload: {} names no running nginx and there is not exactly one nginx master on this host; give --nginx-pid-file or --verify-url",
                    config.nginx_pid_file
                ),
            ));
        }
        match self.request.nft() {
            Some(nft) => {
                self.move_rule(&nft, decision, rule_before.flatten())?;
                self.report.kernel_confirmed = true;
            }
            None => {
                // Left by an earlier nftables mode: point it at the target too, so nginx's
                // old workers, still proxying to the service port, reach the new slot; the
                // run removes it once they are gone.
                let stale = config.nft_of(&self.request.app);
                // Where nft cannot be read (reload mode where it is not permitted), no
                // earlier nftables mode left a rule this switch could move.
                if let Ok(Some(previous)) = self.host.read_rule(&stale) {
                    // Noted first: a load that moved the rule and then failed (keeping its
                    // copy) is put back too.
                    self.journal.rule_before = Some((stale.clone(), Some(previous)));
                    let to_target = Route::to(self.report.port);
                    if let Err(e) = self.host.load_rule(&stale, &to_target, false) {
                        return Err(self.undo(decision.to, "nftables", e.to_string()));
                    }
                }
            }
        }
        if decision.include_changes || self.request.nft().is_none() {
            self.load_include(decision)?;
        }
        self.confirm(decision)?;
        if let (Some(nft), Some(before)) = (self.request.nft(), rule_before.flatten()) {
            self.forget_unanswered(&nft, &before, &decision.route);
        }
        Ok(())
    }

    /// Once the switch is confirmed, has the kernel forget the handshakes that the ports
    /// traffic left (in `before`, not in `after`) never answered, so that their next SYN
    /// takes the rule as it is now and not a port that may soon stop listening (see
    /// [`crate::conntrack`]). The switch is done either way: what fails is said, not undone.
    fn forget_unanswered(&mut self, nft: &NftSwitch, before: &Route, after: &Route) {
        for port in before.ports().filter(|p| !after.ports().any(|q| q == *p)) {
            let forgotten = self.host.forget_unanswered(nft.service_port, port);
            let n = forgotten.count;
            if n > 0 {
                self.report.handshakes_forgotten += n;
                self.progress.line(&format!(
                    "conntrack: forgot {n} handshake{} that port {port} had not answered: {} next SYN takes the rule as it is now",
                    if n == 1 { "" } else { "s" },
                    if n == 1 { "its" } else { "their" }
                ));
            }
            match forgotten.error {
                None => {}
                Some(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    self.progress.line(&format!(
                        "conntrack: not permitted to look for handshakes that port {port} had not answered ({e}; it needs root): such a connection's next SYN still goes to port {port}"
                    ));
                }
                Some(e) => self.report.warnings.push(format!(
                    "the kernel's handshakes that port {port} had not answered could not all be forgotten ({e}): such a connection's next SYN still goes to port {port}"
                )),
            }
        }
    }

    /// Points the app's rule as `decision` says (from `previous`, where it led before) and
    /// confirms it from the kernel.
    fn move_rule(
        &mut self,
        nft: &NftSwitch,
        decision: &Decision,
        previous: Option<Route>,
    ) -> Result<()> {
        let to = decision.to;
        // Noted first: a load that moved the rule and then failed (keeping its copy) is put
        // back too.
        self.journal.rule_before = Some((nft.clone(), previous));
        if let Err(e) = self
            .host
            .load_rule(nft, &decision.route, previous.is_some())
        {
            return Err(self.undo(to, "nftables", e.to_string()));
        }
        let reached = match self.confirm_by_kernel(nft, to, &decision.route) {
            Ok(port) => port,
            Err((stage, why)) => return Err(self.undo(to, stage, why)),
        };
        let ports = self.request.ports;
        let port = ports.port(to);
        let leads = match &self.request.intent.split {
            Some(c) => format!(
                "{} of new connections to {} (port {}), the rest to {to} (port {port})",
                c.share,
                c.slot,
                ports.port(c.slot),
            ),
            None => format!("{to} (port {port})"),
        };
        self.progress.line(&format!(
            "nftables: service port {} now leads to {leads}: the rules read back so, and a new connection to the service port was accepted on port {reached}",
            nft.service_port
        ));
        Ok(())
    }

    /// Writes the decided include (keeping the one in place as the backup), tests it with
    /// nginx and reloads, confirming the reload where nginx's master can be watched.
    fn load_include(&mut self, decision: &Decision) -> Result<()> {
        let to = decision.to;
        let request = self.request;
        let include = request.config.upstream_file.as_path();
        if let Some(text) = &self.journal.old_file {
            self.host
                .write(&request.store.upstream_backup_path(), text)
                .map_err(|e| self.undo(to, "backup", e.to_string()))?;
        }
        // The write is atomic: when it fails, the include in place is unchanged.
        if let Err(e) = self.host.write(include, &decision.include) {
            return Err(self.undo(to, "write", e.to_string()));
        }
        self.journal.file_written = true;
        self.progress.line(&format!(
            "wrote {} routing {} to {}",
            request.config.upstream_file,
            request.app,
            match (&decision.maintenance, request.nft()) {
                (Some(m), _) => format!("nginx's maintenance server (port {})", m.port),
                (None, Some(nft)) => format!("the service port {}", nft.service_port),
                (None, None) => format!("{to} (port {})", self.report.port),
            }
        ));
        if let Err(e) = self.host.test_nginx() {
            return Err(self.undo(to, "nginx test", e.to_string()));
        }
        self.journal.reloaded = true;
        let reloaded = self.reload_counted();
        self.report.reload = self
            .journal
            .reloads
            .last()
            .map(|&clients_open| Reload { clients_open });
        match reloaded {
            Ok(confirmed) => self.report.workers_restarted = confirmed,
            // Even a reload command that failed (timed out after signalling) may have had
            // nginx load the include: the undo reloads the previous one in every case.
            Err((stage, reason)) => return Err(self.undo(to, stage, reason)),
        }
        Ok(())
    }
}
