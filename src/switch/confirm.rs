//! How a switch is confirmed before it is recorded: nginx's master seen replacing its
//! workers after a reload; in nftables mode, facts of the kernel (the rule read back, and a
//! new connection to the service port traced to the slot that accepted it); and the verify
//! URL answering 2xx, from the target slot when the app names it (in maintenance mode,
//! nginx's own server answering 503 instead).

use std::time::{Duration, Instant};

use crate::http::{Probe, Prober};
use crate::input::{HttpUrl, Slot};
use crate::nft::{NftSwitch, Route};
use crate::nginx;
use crate::progress::Progress;

use super::decide::Decision;
use super::request::{NGINX_COMMAND_TIMEOUT, SwitchReport, SwitchRequest, VERIFY_POLL};
use super::undo::Undo;

/// How long the probe connection through the service port may take to be accepted.
const KERNEL_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a reload the switch performed is not confirmed, if it is not: a reload is done
/// only when seen, by nginx's new workers or by an answer of `url` naming the slot that only
/// the new configuration routes to. The kernel's rule says nothing of which configuration
/// nginx's workers answer from.
pub(super) fn unconfirmed_reload(
    undo: &Undo,
    report: &SwitchReport,
    url: &HttpUrl,
) -> Option<String> {
    (undo.reloaded && !report.workers_restarted && !report.verified_slot).then(|| {
        format!(
            "nginx was reloaded but the reload cannot be confirmed: no nginx master could be watched (several masters and none listening on {url}'s port: give nginx-pid-file, --nginx-pid-file), and {url} does not say which slot served it (X-Bluegreen-Slot header or JSON \"slot\")"
        )
    })
}

impl SwitchRequest {
    /// [`reload`](Self::reload) of `undo`'s master, noting in `undo` each reload that
    /// happened (its command ran) with the client connections open to nginx just before it.
    pub(super) fn reload_counted(
        &self,
        undo: &mut Undo,
    ) -> std::result::Result<bool, (&'static str, String)> {
        let clients_open = undo.master.and_then(crate::sys::client_connections);
        let result = self.reload(undo.master);
        if !matches!(result, Err(("reload", _))) {
            undo.reloads.push(clients_open);
        }
        result
    }

    /// Runs the reload command and, when `master` is known, waits until nginx has replaced
    /// its workers. `Ok(true)` when the reload was seen to take effect, `Ok(false)` when
    /// there was no master to watch; on failure, the failed stage and why.
    pub(super) fn reload(
        &self,
        master: Option<u32>,
    ) -> std::result::Result<bool, (&'static str, String)> {
        nginx::reload(
            || self.config.reload_cmd.run(NGINX_COMMAND_TIMEOUT),
            master,
            self.config.reload_timeout,
        )
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
        match nft.current_route() {
            Some(now) if now == *route => {}
            other => {
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
        match crate::sys::loopback_destination(nft.service_port, KERNEL_PROBE_TIMEOUT) {
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
    pub(super) fn verify(
        &self,
        url: &HttpUrl,
        serving: &[Slot],
    ) -> std::result::Result<bool, String> {
        let to = serving[0];
        let prober = Prober::new(false).for_site(self.config.site_host.as_deref());
        let asked = prober.asked(url);
        let deadline = Instant::now() + self.config.verify_timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let probe = prober.get(
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
                    humantime::format_duration(self.config.verify_timeout)
                ));
            }
            std::thread::sleep(VERIFY_POLL);
        }
    }

    /// Polls nginx's maintenance server on `port` until it answers 503 (the page nginx now
    /// serves for the app).
    pub(super) fn verify_closed(&self, port: u16) -> std::result::Result<(), String> {
        crate::maintenance_server::confirm_closed(port, self.config.verify_timeout)
    }

    /// Confirms that nginx serves as decided: in maintenance, its own server answering
    /// 503; else the verify URL answering from the target (or a canary beside it), and a
    /// reload this switch made seen to take effect.
    pub(super) fn confirm(
        &self,
        decision: &Decision,
        undo: &mut Undo,
        report: &mut SwitchReport,
        progress: &Progress,
    ) -> crate::error::Result<()> {
        let to = decision.to;
        if let Some(m) = &decision.maintenance {
            if let Err(reason) = self.verify_closed(m.port) {
                return Err(self.undo(undo, to, "verify", reason));
            }
            progress.line(&format!(
                "maintenance: nginx answers 503 from its server on 127.0.0.1:{}; {to} (port {}) runs behind it, and is not verified through nginx",
                m.port, report.port
            ));
            return Ok(());
        }
        let Some(url) = &self.config.verify_url else {
            return Ok(());
        };
        let serving: Vec<Slot> = std::iter::once(to)
            .chain(self.intent.split.as_ref().map(|c| c.slot))
            .collect();
        match self.verify(url, &serving) {
            Ok(named_slot) => report.verified_slot = named_slot,
            Err(reason) => return Err(self.undo(undo, to, "verify", reason)),
        }
        if let Some(why) = unconfirmed_reload(undo, report, url) {
            return Err(self.undo(undo, to, "reload confirmation", why));
        }
        if !report.verified_slot && !report.kernel_confirmed {
            let w = format!(
                "{url} does not say which slot served it; the reload was confirmed by nginx's new workers only"
            );
            progress.line(&format!("warning: {w}"));
            report.warnings.push(w);
        }
        Ok(())
    }
}
