//! The users' requests of a run, host by host and added up across a fleet. A host the
//! fleet rolled back has two receipts, its deploy's and then its rollback's; both count.
//! The total says how many hosts it covers and names those without a receipt (skipped,
//! not started, no access log), so that a sum over some hosts never reads as the fleet's.

use crate::canary::Receipt;

use super::{HostReport, RunReport};

impl HostReport {
    /// This host's receipts, in order: its deploy's, and where the fleet then rolled it
    /// back, the rollback's.
    pub fn receipts(&self) -> impl Iterator<Item = &Receipt> {
        self.deploy_receipt
            .iter()
            .chain(self.result.receipt.as_ref())
    }

    /// Requests and failed requests over this host's receipts (`None`: it has none).
    pub(crate) fn receipt_figures(&self) -> Option<(u64, u64)> {
        self.receipts()
            .map(|r| (r.requests, r.failed))
            .reduce(|(r1, f1), (r2, f2)| (r1 + r2, f1 + f2))
    }
}

/// The receipts of a run's hosts added up.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiptTotal {
    /// Requests nginx logged, over every receipt.
    pub requests: u64,
    /// Of those, the ones answered with a 5xx.
    pub failed: u64,
    /// The hosts with a receipt, and of all.
    pub counted: usize,
    /// The hosts of the run.
    pub hosts: usize,
    /// Each host that had failed requests, with how many, in the hosts' order.
    pub failing: Vec<(String, u64)>,
    /// The longest time without a successful answer on any host, in ms, and that host
    /// (none while no receipt saw a failure).
    pub longest_gap: Option<(String, u64)>,
    /// Reloads of nginx in the run, beyond the logs' sight.
    pub reloads: usize,
    /// The client connections open at those reloads that could be counted.
    pub open_at_reloads: u64,
    /// How many of the reloads had their connections not counted.
    pub uncounted_reloads: usize,
    /// Each host without a receipt, with how it ended.
    pub missing: Vec<(String, String)>,
}

impl RunReport {
    /// The receipts of the hosts added up; `None` when no host has one (no access log, or
    /// a command that moves no traffic).
    pub fn receipt_total(&self) -> Option<ReceiptTotal> {
        let mut total = ReceiptTotal {
            requests: 0,
            failed: 0,
            counted: 0,
            hosts: self.hosts.len(),
            failing: Vec::new(),
            longest_gap: None,
            reloads: 0,
            open_at_reloads: 0,
            uncounted_reloads: 0,
            missing: Vec::new(),
        };
        for host in &self.hosts {
            let Some((requests, failed)) = host.receipt_figures() else {
                let how = if host.skipped {
                    "unreachable, skipped".to_owned()
                } else {
                    host.outcome().as_str().to_owned()
                };
                total.missing.push((host.host.clone(), how));
                continue;
            };
            total.counted += 1;
            total.requests += requests;
            total.failed += failed;
            if failed > 0 {
                total.failing.push((host.host.clone(), failed));
            }
            for receipt in host.receipts() {
                let gap = receipt.longest_gap_ms;
                if gap > 0 && total.longest_gap.as_ref().is_none_or(|(_, g)| gap > *g) {
                    total.longest_gap = Some((host.host.clone(), gap));
                }
                total.reloads += receipt.at_risk.len();
                for open in &receipt.at_risk {
                    match open {
                        Some(n) => total.open_at_reloads += u64::from(*n),
                        None => total.uncounted_reloads += 1,
                    }
                }
            }
        }
        (total.counted > 0).then_some(total)
    }
}

impl ReceiptTotal {
    /// One line for the job summary of a fleet: the totals, which hosts failed requests,
    /// where the longest gap was, the reloads at risk, and the hosts not counted.
    pub fn describe(&self) -> String {
        let mut line = format!(
            "{} requests, {} failed{}",
            self.requests,
            self.failed,
            self.by_host()
        );
        if let Some((host, ms)) = &self.longest_gap {
            line.push_str(&format!(
                ", longest without a successful answer {ms} ms ({host})"
            ));
        }
        if self.reloads > 0 {
            line.push_str(&format!(
                "; at risk, beyond the logs' sight: {} reload{} of nginx with {} client connections open{}",
                self.reloads,
                if self.reloads == 1 { "" } else { "s" },
                self.open_at_reloads,
                match self.uncounted_reloads {
                    0 => String::new(),
                    n => format!(" (and {n} reload{} not counted)", if n == 1 { "" } else { "s" }),
                }
            ));
        }
        if !self.missing.is_empty() {
            let missing: Vec<String> = self
                .missing
                .iter()
                .map(|(host, how)| format!("{host} ({how})"))
                .collect();
            line.push_str(&format!("; no receipt from {}", missing.join(", ")));
        }
        line
    }

    /// What the hosts are counted over: `3 hosts`, or `2 of 3 hosts` where some have no
    /// receipt.
    pub fn coverage(&self) -> String {
        if self.counted == self.hosts {
            format!(
                "{} host{}",
                self.hosts,
                if self.hosts == 1 { "" } else { "s" }
            )
        } else {
            format!("{} of {} hosts", self.counted, self.hosts)
        }
    }

    /// The failed requests host by host, in a fleet where some failed: ` (web1 2, web2 1)`.
    pub fn by_host(&self) -> String {
        if self.hosts < 2 || self.failing.is_empty() {
            return String::new();
        }
        let each: Vec<String> = self
            .failing
            .iter()
            .map(|(host, n)| format!("{host} {n}"))
            .collect();
        format!(" ({})", each.join(", "))
    }
}
