//! Which hosts a run goes to and in what order: each host as `[user@]host[:port]`, and the
//! batches they are deployed in (the canary hosts first, then batches of `batch-size`).

use std::fmt;
use std::num::NonZeroUsize;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::input::HostPort;

/// One host of the fleet: its address and SSH port, and the user to log in as when it is
/// not the `username` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// The user of this host, when its line names one.
    pub user: Option<String>,
    /// Host and SSH port.
    pub addr: HostPort,
}

impl SshTarget {
    /// Parses `[user@]host[:port]`, taking `default_port` when no port is given.
    pub fn parse(text: &str, default_port: u16) -> Result<SshTarget> {
        let (user, host) = match text.split_once('@') {
            Some((user, host)) => (Some(user), host),
            None => (None, text),
        };
        if let Some(user) = user
            && (user.is_empty()
                || user.starts_with('-')
                || !user
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)))
        {
            return Err(Error::invalid(
                "host",
                format!("{text:?}: {user:?} is not a user name"),
            ));
        }
        Ok(SshTarget {
            user: user.map(str::to_owned),
            addr: HostPort::parse_with_default(host, Some(default_port))?,
        })
    }

    /// The user to log in as: this host's own, else `default`.
    pub fn user_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.user.as_deref().unwrap_or(default)
    }
}

impl fmt::Display for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.user {
            Some(user) => write!(f, "{user}@{}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// How many hosts are deployed at once: a number, or a percentage of the fleet (at least
/// one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSize {
    /// This many hosts.
    Hosts(NonZeroUsize),
    /// This percentage of the hosts, rounded up.
    Percent(u8),
}

impl BatchSize {
    /// The number of hosts per batch in a fleet of `hosts`.
    pub fn of(self, hosts: usize) -> usize {
        match self {
            BatchSize::Hosts(n) => n.get(),
            BatchSize::Percent(p) => (hosts * usize::from(p)).div_ceil(100),
        }
        .clamp(1, hosts.max(1))
    }
}

impl FromStr for BatchSize {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let bad = || {
            Error::invalid(
                "batch-size",
                format!(
                    "{s:?}: expected a number of hosts (1 or more) or a percentage (1% to 100%)"
                ),
            )
        };
        match s.strip_suffix('%') {
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p @ 1..=100) => Ok(BatchSize::Percent(p)),
                _ => Err(bad()),
            },
            None => s
                .parse::<NonZeroUsize>()
                .map(BatchSize::Hosts)
                .map_err(|_| bad()),
        }
    }
}

/// How a run goes through the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetSpec {
    /// Hosts deployed at once.
    pub batch: BatchSize,
    /// The first hosts, deployed (and watched) as a batch of their own before any other.
    pub canary_hosts: usize,
    /// How many hosts may be unreachable at the start without stopping the run.
    pub max_unreachable: usize,
    /// Roll back the hosts this run switched when a later one fails.
    pub rollback: bool,
}

impl FleetSpec {
    /// The batches of a fleet of `total` hosts that go through `hosts` (indexes, in order;
    /// the reachable ones): the first `canary_hosts` of them first, as a batch of their own,
    /// then the rest in batches of the batch size (of `total`). An unreachable host skipped
    /// among the first is replaced by the next one, so no batch goes first unguarded.
    pub fn batches(&self, hosts: &[usize], total: usize) -> Vec<Vec<usize>> {
        let (canaries, rest) = hosts.split_at(self.canary_hosts.min(hosts.len()));
        let mut batches: Vec<Vec<usize>> = Vec::new();
        if !canaries.is_empty() {
            batches.push(canaries.to_vec());
        }
        batches.extend(rest.chunks(self.batch.of(total)).map(<[usize]>::to_vec));
        batches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_line_may_name_its_user_and_port() {
        let t = SshTarget::parse("deploy@web1:2222", 22).unwrap();
        assert_eq!(t.user.as_deref(), Some("deploy"));
        assert_eq!((t.addr.host.as_str(), t.addr.port), ("web1", 2222));
        assert_eq!(t.to_string(), "deploy@web1:2222");
        let plain = SshTarget::parse("[::1]", 22).unwrap();
        assert_eq!(
            (plain.user_or("root"), plain.to_string().as_str()),
            ("root", "[::1]:22")
        );
        for bad in ["@web1", "-oProxy@web1", "a b@web1", "deploy@", "deploy@-x"] {
            assert!(SshTarget::parse(bad, 22).is_err(), "{bad}");
        }
    }

    #[test]
    fn batches_put_the_canary_hosts_first_then_the_batch_size() {
        let spec = |batch: &str, canary_hosts| FleetSpec {
            batch: batch.parse().unwrap(),
            canary_hosts,
            max_unreachable: 0,
            rollback: true,
        };
        let all = |n: usize| (0..n).collect::<Vec<_>>();
        assert_eq!(
            spec("1", 0).batches(&all(3), 3),
            [vec![0], vec![1], vec![2]]
        );
        assert_eq!(spec("5", 0).batches(&all(5), 5), [vec![0, 1, 2, 3, 4]]);
        assert_eq!(
            spec("2", 1).batches(&all(5), 5),
            [vec![0], vec![1, 2], vec![3, 4]]
        );
        assert_eq!(
            spec("50%", 0).batches(&all(5), 5),
            [vec![0, 1, 2], vec![3, 4]]
        );
        assert_eq!(spec("100%", 9).batches(&all(2), 2), [vec![0, 1]]);
        assert_eq!(spec("1%", 0).batches(&all(3), 3).len(), 3);
        // The canary host 0 is unreachable and skipped: host 1 is the canary, alone.
        assert_eq!(
            spec("100%", 1).batches(&[1, 2, 3], 4),
            [vec![1], vec![2, 3]]
        );
        for bad in ["0", "0%", "101%", "-1", "x", ""] {
            assert!(bad.parse::<BatchSize>().is_err(), "{bad}");
        }
    }
}
