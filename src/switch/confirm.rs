//! How a switch is confirmed before it is recorded: nginx's master seen replacing its
//! workers after a reload; in nftables mode, facts of the kernel (the rule read back, and a
//! new connection to the service port traced to the slot that accepted it); and the verify
//! URL answering 2xx, from the target slot when the app names it (in maintenance mode,
//! nginx's own server answering 503 instead).

use std::time::{Duration, Instant};

use crate::http::{Probe, Prober};
use crate::input::{HttpUrl, Slot};
use crate::nft::{NftSwitch, Route};

use super::decide::Decision;
use super::execute::{Executor, Journal};
use super::request::{SwitchReport, VERIFY_POLL};

/// Why a reload the switch performed is not confirmed, if it is not: a reload is done
/// only when seen, by nginx's new workers or by an answer of `url` naming the slot that only
/// the new configuration routes to. The kernel's rule says nothing of which configuration
/// nginx's workers answer from.
pub(super) fn unconfirmed_reload(
    journal: &Journal,
    report: &SwitchReport,
    url: &HttpUrl,
) -> Option<String> {
    (journal.reloaded && !report.workers_restarted && !report.verified_slot).then(|| {
        format!(
            "nginx was reloaded but the reload cannot be confirmed: no nginx master could be watched (several masters and none listening on {url}'s port: give nginx-pid-file, --nginx-pid-file), and {url} does not say which slot served it (X-Bluegreen-Slot header or JSON \"slot\")"
        )
    })
}

impl Executor<'_> {
    /// Reloads nginx (see [`SwitchHost::reload_nginx`](super::host::SwitchHost::reload_nginx))
    /// watching the journal's master, noting in the journal each reload that happened (its
    /// command ran) with the client connections open to nginx just before it.
    pub(super) fn reload_counted(&mut self) -> std::result::Result<bool, (&'static str, String)> {
        let master = self.journal.master;
        let clients_open = master.and_then(|pid| self.host.client_connections(pid));
        let result = self.host.reload_nginx(master);
        if !matches!(result, Err(("reload", _))) {
            self.journal.reloads.push(clients_open);
        }
        result
    }

    /// Confirms from the kernel that new connections to the service port go as `route`
    /// says (`to` being the slot of its port): the rules read back so, and a new connection
    /// to the service port is accepted on one of the route's ports, which is returned. On
    /// failure, the failed stage and why.
    pub(super) fn confirm_by_kernel(
        &self,
        nft: &NftSwitch,
        to: Slot,
        route: &Route,
    ) -> std::result::Result<u16, (&'static str, String)> {
        let describe = |r: &Route| match r.split {
            Some((canary, share)) => format!("port {} with {share} to port {canary}", r.port),
            None => format!("port {}", r.port),
        };
        match self.host.read_rule(nft) {
            Ok(Some(now)) if now == *route => {}
            Err(e) => {
                return Err((
                    "nftables read-back",
                    format!("table {} cannot be read back: {e}", nft.table),
                ));
            }
            Ok(other) => {
                return Err((
                    "nftables read-back",
                    format!(
                        "table {} reads back as leading to {}, not to {to}'s {}",
                        nft.table,
                        other.as_ref().map_or("nothing".to_owned(), describe),
                        describe(route)
                    ),
                ));
            }
        }
        let expected: Vec<u16> = std::iter::once(route.port)
            .chain(route.split.map(|(canary, _)| canary))
            .collect();
        match self.host.new_connection_reaches(nft.service_port) {
            Ok(reached) if expected.contains(&reached) => Ok(reached),
            Ok(reached) => Err((
                "nftables probe",
                format!(
                    "a new connection to the service port {} reached port {reached}, not {}",
                    nft.service_port,
                    describe(route)
                ),
            )),
            Err(e) => Err((
                "nftables probe",
                format!(
                    "a new connection to the service port {} was not accepted by {to}: {e}",
                    nft.service_port
                ),
            )),
        }
    }

    /// Polls the verify URL until it answers 2xx from one of `serving` (the target, and a
    /// canary beside it). `Ok(true)` when the answer named one of them, `Ok(false)` when it
    /// answered 2xx without naming any slot.
    fn verify(&self, url: &HttpUrl, serving: &[Slot]) -> std::result::Result<bool, String> {
        let to = serving[0];
        let config = &self.request.config;
        let prober = Prober::new(false).for_site(config.site_host.as_deref());
        let asked = prober.asked(url);
        let deadline = Instant::now() + config.verify_timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let probe = self.host.get(
                &prober,
                url,
                remaining.clamp(Duration::from_millis(100), Duration::from_secs(5)),
            );
            let problem = match (&probe, probe.reported_slot()) {
                (
                    Probe::Answered {
                        status: 200..=299, ..
                    },
                    None,
                ) => return Ok(false),
                (
                    Probe::Answered {
                        status: 200..=299, ..
                    },
                    Some(slot),
                ) if serving.iter().any(|s| s.as_str() == slot) => {
                    return Ok(true);
                }
                (
                    Probe::Answered {
                        status: 200..=299, ..
                    },
                    Some(slot),
                ) => {
                    format!("{asked} is still served by slot {slot:?}, not {to}")
                }
                _ => format!(
                    "{asked} did not answer 2xx: {}{}",
                    probe.describe(),
                    prober.by_address_advice(url)
                ),
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "{problem} (after {})",
                    humantime::format_duration(config.verify_timeout)
                ));
            }
            std::thread::sleep(VERIFY_POLL);
        }
    }

    /// Confirms that nginx serves as decided: in maintenance, its own server answering
    /// 503; else the verify URL answering from the target (or a canary beside it), and a
    /// reload this switch made seen to take effect.
    pub(super) fn confirm(&mut self, decision: &Decision) -> crate::error::Result<()> {
        let to = decision.to;
        let config = &self.request.config;
        if let Some(m) = &decision.maintenance {
            if let Err(reason) = self.host.confirm_closed(m.port, config.verify_timeout) {
                return Err(self.undo(to, "verify", reason));
            }
            self.progress.line(&format!(
                "maintenance: nginx answers 503 from its server on 127.0.0.1:{}; {to} (port {}) runs behind it, and is not verified through nginx",
                m.port, self.report.port
            ));
            return Ok(());
        }
        let Some(url) = &config.verify_url else {
            return Ok(());
        };
        let serving: Vec<Slot> = std::iter::once(to)
            .chain(self.request.intent.split.as_ref().map(|c| c.slot))
            .collect();
        match self.verify(url, &serving) {
            Ok(named_slot) => self.report.verified_slot = named_slot,
            Err(reason) => return Err(self.undo(to, "verify", reason)),
        }
        if let Some(why) = unconfirmed_reload(&self.journal, self.report, url) {
            return Err(self.undo(to, "reload confirmation", why));
        }
        if !self.report.verified_slot && !self.report.kernel_confirmed {
            let w = format!(
                "{url} does not say which slot served it; the reload was confirmed by nginx's new workers only"
            );
            self.progress.line(&format!("warning: {w}"));
            self.report.warnings.push(w);
        }
        Ok(())
    }
}
