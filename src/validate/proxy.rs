//! The proxy-ports check: where Docker's userland proxy (`docker-proxy`) listens on the live
//! slot's port, every request nginx sends the slot is a new connection from docker-proxy to
//! the container, and each one closed leaves a port in TIME_WAIT for 60 seconds. With the
//! kernel's default `net.ipv4.tcp_tw_reuse=2` (reuse on loopback only) those ports are not
//! reused toward a container's address, so a slot takes at most about (ephemeral ports) /
//! 60 new connections a second: about 470 with the default range. Above that nginx gets
//! `502` for the requests docker-proxy cannot connect. The check says the figure, and warns
//! when the ports toward one peer off loopback already in TIME_WAIT are past half of them.

use crate::input::Slot;
use crate::sys;

use super::request::{CheckResult, CheckStatus, ValidateRequest};

/// How long a closed connection's port stays in TIME_WAIT on Linux (not tunable).
const TIME_WAIT_SECONDS: u32 = 60;

/// What the check reads from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ProxyPorts {
    /// The live slot's port, when docker-proxy listens on it.
    pub(super) proxied_port: Option<u16>,
    /// The live slot's port, when something listens on it that this user cannot see (a
    /// docker-proxy runs as root: a deploy user that is not root cannot tell).
    pub(super) unseen_port: Option<u16>,
    /// `net.ipv4.tcp_tw_reuse`, as the kernel says it.
    pub(super) tw_reuse: Option<String>,
    /// `net.ipv4.tcp_timestamps` (reuse needs them on).
    pub(super) timestamps: Option<String>,
    /// `net.ipv4.ip_local_port_range`.
    pub(super) port_range: Option<(u32, u32)>,
    /// The most connections in TIME_WAIT toward one peer (address and port).
    pub(super) most_time_wait: u64,
}

impl ValidateRequest {
    /// The proxy-ports check for a deploy whose live slot is `live`; none outside the
    /// docker runtimes or before a first deploy.
    pub(super) fn proxy_ports_check(&self, live: Option<Slot>) -> Option<CheckResult> {
        if !self.runtime.uses_docker() {
            return None;
        }
        let port = self.ports.port(live?);
        let listeners = sys::listener_pids(port);
        let proxied = listeners
            .iter()
            .any(|&pid| sys::process_name(pid).is_some_and(|name| name == "docker-proxy"));
        let unseen = listeners.is_empty() && !sys::port_is_free(port);
        let read = |name: &str| std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}")).ok();
        judge(&ProxyPorts {
            proxied_port: proxied.then_some(port),
            unseen_port: unseen.then_some(port),
            tw_reuse: read("tcp_tw_reuse").map(|v| v.trim().to_owned()),
            timestamps: read("tcp_timestamps").map(|v| v.trim().to_owned()),
            port_range: read("ip_local_port_range").and_then(|text| {
                let mut ends = text.split_whitespace().map(str::parse::<u32>);
                Some((ends.next()?.ok()?, ends.next()?.ok()?))
            }),
            most_time_wait: ["/proc/net/tcp", "/proc/net/tcp6"]
                .iter()
                .filter_map(|table| std::fs::read_to_string(table).ok())
                .map(|text| most_time_wait(&text))
                .max()
                .unwrap_or(0),
        })
    }
}

/// The check's verdict on what was read; `None` where docker-proxy does not carry the live
/// slot's requests (Docker's `userland-proxy` is off, or the slot publishes elsewhere).
pub(super) fn judge(seen: &ProxyPorts) -> Option<CheckResult> {
    let result = |status, detail| Some(CheckResult::new("proxy-ports", status, detail));
    if let Some(port) = seen.unseen_port {
        return result(
            CheckStatus::Warn,
            format!(
                "the live slot's port {port} is served by a process this user cannot see (docker-proxy runs as root): how many new connections a second Docker's userland proxy can open to a slot was not checked (README: Size the ports behind a busy slot)"
            ),
        );
    }
    let port = seen.proxied_port?;
    let timestamps_on = seen.timestamps.as_deref().is_some_and(|t| t != "0");
    if seen.tw_reuse.as_deref() == Some("1") && timestamps_on {
        return result(
            CheckStatus::Pass,
            format!(
                "docker-proxy carries the live slot's requests (port {port}); net.ipv4.tcp_tw_reuse=1 reuses its closed ports"
            ),
        );
    }
    let Some((low, high)) = seen.port_range.filter(|(low, high)| low <= high) else {
        return result(
            CheckStatus::Warn,
            format!(
                "docker-proxy carries the live slot's requests (port {port}), and net.ipv4.ip_local_port_range could not be read: how many new connections a second it can open was not checked"
            ),
        );
    };
    let ports = high - low + 1;
    let budget = ports / TIME_WAIT_SECONDS;
    let detail = format!(
        "docker-proxy carries the live slot's requests (port {port}): with net.ipv4.tcp_tw_reuse={}{} it opens at most about {budget} new connections a second to a slot ({ports} ports, each held 60 s after use), above which nginx answers 502; {} ports toward one peer are in TIME_WAIT now; net.ipv4.tcp_tw_reuse=1 lifts the limit (README: Size the ports behind a busy slot)",
        seen.tw_reuse.as_deref().unwrap_or("unknown"),
        if timestamps_on {
            ""
        } else {
            " and tcp_timestamps off (reuse needs them)"
        },
        seen.most_time_wait
    );
    let status = if seen.most_time_wait * 2 > u64::from(ports) {
        CheckStatus::Warn
    } else {
        CheckStatus::Pass
    };
    result(status, detail)
}

/// The most connections in TIME_WAIT toward one peer that is not on loopback (whose ports
/// the default `tcp_tw_reuse=2` reuses) in a `/proc/net/tcp` or `tcp6` table.
pub(super) fn most_time_wait(table: &str) -> u64 {
    const TIME_WAIT: &str = "06";
    // Addresses as the kernel prints them: 127.0.0.0/8 stores its first byte last; ::1.
    let loopback = |address: &str| {
        address.len() == 8 && address.ends_with("7F")
            || address == "00000000000000000000000001000000"
    };
    let mut by_peer = std::collections::HashMap::<&str, u64>::new();
    for line in table.lines().skip(1) {
        let mut fields = line.split_whitespace();
        let (Some(_), Some(_), Some(peer), Some(state)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let address = peer.split(':').next().unwrap_or_default();
        if state == TIME_WAIT && !loopback(address) {
            *by_peer.entry(peer).or_default() += 1;
        }
    }
    by_peer.into_values().max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(tw_reuse: &str, most_time_wait: u64) -> ProxyPorts {
        ProxyPorts {
            proxied_port: Some(3001),
            unseen_port: None,
            tw_reuse: Some(tw_reuse.into()),
            timestamps: Some("1".into()),
            port_range: Some((32768, 60999)),
            most_time_wait,
        }
    }

    #[test]
    fn the_default_kernel_gets_the_figure_and_a_warning_only_under_pressure() {
        let calm = judge(&seen("2", 1200)).unwrap();
        assert_eq!(calm.status, CheckStatus::Pass);
        assert!(
            calm.detail
                .contains("at most about 470 new connections a second")
                && calm.detail.contains("28232 ports")
                && calm.detail.contains("1200 ports toward one peer"),
            "{}",
            calm.detail
        );
        let busy = judge(&seen("2", 20_000)).unwrap();
        assert_eq!(busy.status, CheckStatus::Warn, "{}", busy.detail);
        assert!(busy.detail.contains("tcp_tw_reuse=1 lifts the limit"));
    }

    #[test]
    fn reuse_passes_no_proxy_is_no_check_and_one_unseen_is_said() {
        let reuse = judge(&seen("1", 20_000)).unwrap();
        assert_eq!(reuse.status, CheckStatus::Pass, "{}", reuse.detail);
        let without_timestamps = ProxyPorts {
            timestamps: Some("0".into()),
            ..seen("1", 20_000)
        };
        let without_timestamps = judge(&without_timestamps).unwrap();
        assert_eq!(without_timestamps.status, CheckStatus::Warn);
        assert!(without_timestamps.detail.contains("tcp_timestamps off"));
        let direct = ProxyPorts {
            proxied_port: None,
            ..seen("2", 20_000)
        };
        assert!(judge(&direct).is_none());
        let unreadable = ProxyPorts {
            port_range: None,
            ..seen("2", 0)
        };
        assert_eq!(judge(&unreadable).unwrap().status, CheckStatus::Warn);
        let hidden = ProxyPorts {
            proxied_port: None,
            unseen_port: Some(3001),
            ..seen("2", 0)
        };
        let hidden = judge(&hidden).unwrap();
        assert_eq!(hidden.status, CheckStatus::Warn);
        assert!(
            hidden.detail.contains("was not checked"),
            "{}",
            hidden.detail
        );
    }

    #[test]
    fn time_wait_is_counted_per_peer_off_loopback() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 010011AC:8A3C 020011AC:1F90 06 00000000:00000000 03:00000fa1 00000000     0        0 0 3 0000000000000000\n\
   1: 010011AC:8A3D 020011AC:1F90 06 00000000:00000000 03:00000fa1 00000000     0        0 0 3 0000000000000000\n\
   2: 010011AC:8A3E 030011AC:1F90 06 00000000:00000000 03:00000fa1 00000000     0        0 0 3 0000000000000000\n\
   3: 0100007F:0BB9 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000\n\
   4: 0100007F:8A3F 0100007F:0BB9 06 00000000:00000000 03:00000fa1 00000000     0        0 0 3 0000000000000000\n\
   5: 0100007F:8A40 0100007F:0BB9 06 00000000:00000000 03:00000fa1 00000000     0        0 0 3 0000000000000000\n\
   6: 0100007F:8A41 0100007F:0BB9 06 00000000:00000000 03:00000fa1 00000000     0        0 0 3 0000000000000000\n";
        assert_eq!(
            most_time_wait(table),
            2,
            "loopback's ports are reused: not counted"
        );
        assert_eq!(most_time_wait(""), 0);
    }
}
