//! What the access log's lines of a window say about each slot.
//!
//! A request is put down to a slot by the port nginx connected to (reload mode: each slot
//! has its own `server` line). In nftables mode nginx only ever sees the service port, and
//! the slot is told by the `X-Bluegreen-Slot` header the app sends (the variable
//! `BLUEGREEN_SLOT` tells it its slot). Where the app names its slot, a failure that names
//! none (the connection failed before any answer) is counted against the new slot: a canary
//! is never let off for a failure nobody can place. Where the answers do not name their slot,
//! the log cannot tell the slots apart, and says so ([`StepTraffic::slots_unnamed`]).

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::input::{Slot, SlotPorts};

use super::accesslog::{AccessLog, Line};
use super::latency::LatencyHistogram;

/// Of the answers of a step, the largest share that may name no slot for the log still to
/// tell the slots apart (a few failures before any answer; not an app that never says).
const MOST_UNNAMED: f64 = 0.1;

/// What the log says about one slot in a step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlotTraffic {
    /// Upstream attempts put down to the slot.
    pub requests: u64,
    /// Those that failed: a 5xx answer, or no answer at all.
    pub errors: u64,
    /// The 95th percentile of their upstream response times, in milliseconds.
    pub p95_ms: u64,
    #[serde(skip)]
    times_ms: LatencyHistogram,
}

impl SlotTraffic {
    /// The share of its requests that failed (0 with no requests).
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }

    /// One line for people, the same for either slot: `green: 0 of 202 failed, p95 12 ms`.
    pub fn describe(&self, slot: Slot) -> String {
        format!(
            "{slot}: {} of {} failed, p95 {} ms",
            self.errors, self.requests, self.p95_ms
        )
    }

    /// How many of its requests carry a response time.
    pub fn timed(&self) -> u64 {
        self.times_ms.count()
    }

    /// How many of its requests took longer than `ms`, read as its p95 is (a time counts
    /// when the upper end of its histogram bucket is above `ms`).
    pub fn slower_than(&self, ms: u64) -> u64 {
        self.times_ms.above(ms)
    }

    pub(super) fn add(&mut self, failed: bool, ms: Option<u64>) {
        self.requests += 1;
        self.errors += u64::from(failed);
        if let Some(ms) = ms {
            self.times_ms.add(ms);
        }
    }

    pub(super) fn finish(&mut self) {
        self.p95_ms = self.times_ms.percentile(95);
    }
}

/// What the log says about both slots in a step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepTraffic {
    /// The slot that was live before.
    pub stable: SlotTraffic,
    /// The new slot (including failures nobody could place, where the app names its slot).
    pub canary: SlotTraffic,
    /// Failures that named no slot.
    pub unplaced_failures: u64,
    /// Successful answers that named no slot (nftables mode, an app without the header).
    pub unplaced: u64,
    /// Too many answers named no slot to tell the slots apart (nftables mode with an app
    /// that does not send `X-Bluegreen-Slot`): the log cannot judge the step.
    #[serde(default)]
    pub slots_unnamed: bool,
    /// Every upstream attempt of the step, whichever slot served it (for the estimate of
    /// [`super::estimate`], where the slots cannot be told apart).
    #[serde(default)]
    pub all: SlotTraffic,
}

impl StepTraffic {
    /// The requests of a window after the switch to the new slot, all of which are its
    /// own: where the answers do not name their slot, every line.
    pub fn after_switch(&self) -> &SlotTraffic {
        if self.slots_unnamed {
            &self.all
        } else {
            &self.canary
        }
    }

    /// The live slot's requests in a window before the switch: where the answers do not
    /// name their slot, every line, unless the window may hold the new slot's share too
    /// (`new_slot_served`, after traffic steps), when nothing tells the live slot's apart.
    pub fn of_live_slot(self, new_slot_served: bool) -> Option<SlotTraffic> {
        match (self.slots_unnamed, new_slot_served) {
            (false, _) => Some(self.stable),
            (true, false) => Some(self.all),
            (true, true) => None,
        }
    }

    /// The share of the placed requests the new slot served, in percent.
    pub fn canary_percent(&self) -> f64 {
        let placed = self.stable.requests + self.canary.requests;
        if placed == 0 {
            0.0
        } else {
            100.0 * self.canary.requests as f64 / placed as f64
        }
    }

    #[cfg(test)]
    fn from_lines(text: &str, ports: SlotPorts, canary: Slot) -> StepTraffic {
        let mut t = StepTraffic::default();
        // A line that is not ours is skipped, as the log's reader does.
        for line in text.lines().filter_map(|l| serde_json::from_str(l).ok()) {
            t.add_line(&line, ports, canary);
        }
        t.finish();
        t
    }

    /// Counts one line of the log.
    pub(super) fn add_line(&mut self, line: &Line, ports: SlotPorts, canary: Slot) {
        let addrs = fields(&line.addr);
        let statuses = fields(&line.status);
        let times = fields(&line.ms);
        let named: Option<Slot> = line.slot.parse().ok();
        for (i, addr) in addrs.iter().enumerate() {
            let last = i + 1 == addrs.len();
            let failed = statuses
                .get(i)
                .and_then(|s| s.parse::<u16>().ok())
                .is_none_or(|s| s >= 500);
            let ms = times
                .get(i)
                .and_then(|s| s.parse::<f64>().ok())
                .map(|secs| (secs * 1000.0).round() as u64);
            let slot = addr
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .and_then(|p| ports.slot_of(p))
                .or(named.filter(|_| last));
            self.all.add(failed, ms);
            match slot {
                Some(s) if s == canary => self.canary.add(failed, ms),
                Some(_) => self.stable.add(failed, ms),
                None if failed => self.unplaced_failures += 1,
                None => self.unplaced += 1,
            }
        }
    }

    /// Settles the figures once every line is counted.
    pub(super) fn finish(&mut self) {
        let placed = self.stable.requests + self.canary.requests;
        let unnamed = self.unplaced as f64 / (placed + self.unplaced).max(1) as f64;
        if unnamed > MOST_UNNAMED {
            self.slots_unnamed = true;
        } else {
            for _ in 0..self.unplaced_failures {
                self.canary.add(true, None);
            }
        }
        self.stable.finish();
        self.canary.finish();
        self.all.finish();
    }
}

/// The values of a multi-valued nginx variable (`a, b : c`: attempts within one upstream
/// are separated by commas, upstreams of internal redirects by colons), one per attempt.
fn fields(text: &str) -> Vec<&str> {
    text.split(", ")
        .flat_map(|group| group.split(" : "))
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect()
}

/// Reading a window of the log as what it says about each slot.
impl AccessLog {
    /// The complete lines written since `offset` (from the start when the file is now
    /// shorter: it was rotated), put down to the slots of `ports`, with `canary` the new
    /// slot. A missing file has no lines.
    pub fn since(&self, offset: u64, ports: SlotPorts, canary: Slot) -> Result<StepTraffic> {
        let mut traffic = StepTraffic::default();
        self.each_line(offset, |line| traffic.add_line(line, ports, canary))?;
        traffic.finish();
        Ok(traffic)
    }

    /// What the lines of the last `seconds` before now say (of at most the log's last
    /// `most_bytes`): the window a canary's baseline is read from. Lines that carry no time
    /// (written before the log had one, maybe long ago) are left out.
    pub fn recent(
        &self,
        seconds: f64,
        most_bytes: u64,
        ports: SlotPorts,
        canary: Slot,
    ) -> Result<StepTraffic> {
        let now = crate::clock::now_epoch_seconds();
        let start = self.end().saturating_sub(most_bytes);
        let mut traffic = StepTraffic::default();
        self.each_line(start, |line| {
            if line.written().is_some_and(|t| t >= now - seconds) {
                traffic.add_line(line, ports, canary);
            }
        })?;
        traffic.finish();
        Ok(traffic)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The slots' ports the log lines of these tests and `accesslog.rs`'s name.
    pub(in crate::canary) fn ports() -> SlotPorts {
        SlotPorts::new(3001, 3002).unwrap()
    }

    /// A log line of the older format (no time, no final status): one attempt.
    pub(in crate::canary) fn line(addr: &str, status: &str, ms: &str, slot: &str) -> String {
        format!(r#"{{"addr":"{addr}","status":"{status}","ms":"{ms}","slot":"{slot}"}}"#)
    }

    #[test]
    fn attempts_are_put_down_to_the_slot_nginx_connected_to() {
        let lines = [
            line("127.0.0.1:3001", "200", "0.004", "blue"),
            line("127.0.0.1:3002", "500", "0.010", "green"),
            // The canary refused; nginx tried the old slot next: a failure of the canary,
            // an answer of the old slot.
            line(
                "127.0.0.1:3002, 127.0.0.1:3001",
                "502, 200",
                "0.000, 0.003",
                "blue",
            ),
            "not json".to_owned(),
        ]
        .join("\n");
        let t = StepTraffic::from_lines(&lines, ports(), Slot::Green);
        assert_eq!((t.stable.requests, t.stable.errors), (2, 0));
        assert_eq!((t.canary.requests, t.canary.errors), (2, 2));
        assert_eq!(t.canary.p95_ms, 10);
        assert_eq!(t.canary_percent(), 50.0);
        // Both slots in one format, side by side in a step's line.
        assert_eq!(
            t.canary.describe(Slot::Green),
            "green: 2 of 2 failed, p95 10 ms"
        );
        assert_eq!(
            t.stable.describe(Slot::Blue),
            "blue: 0 of 2 failed, p95 4 ms"
        );
    }

    #[test]
    fn behind_the_service_port_the_header_names_the_slot_and_unplaced_failures_count_against_the_canary()
     {
        let lines = [
            line("127.0.0.1:3000", "200", "0.002", "blue"),
            line("127.0.0.1:3000", "200", "0.020", "green"),
            line("127.0.0.1:3000", "502", "0.000", ""),
        ];
        let named: Vec<String> = lines.iter().cycle().take(30).cloned().collect();
        let mut all = named.clone();
        all.push(line("127.0.0.1:3000", "200", "0.001", ""));
        let t = StepTraffic::from_lines(&all.join("\n"), ports(), Slot::Green);
        assert_eq!(t.stable.requests, 10);
        assert_eq!((t.canary.requests, t.canary.errors), (20, 10));
        assert_eq!(
            (t.unplaced_failures, t.unplaced, t.slots_unnamed),
            (10, 1, false)
        );
        // An app that never names its slot: nothing can be put down to the new slot.
        let anonymous: Vec<String> = (0..30)
            .map(|i| {
                line(
                    "127.0.0.1:3000",
                    if i % 10 == 0 { "502" } else { "200" },
                    "0.001",
                    "",
                )
            })
            .collect();
        let t = StepTraffic::from_lines(&anonymous.join("\n"), ports(), Slot::Green);
        assert!(t.slots_unnamed, "{t:?}");
        assert_eq!((t.canary.requests, t.stable.requests), (0, 0));
    }

    #[test]
    fn after_a_switch_every_request_is_the_new_slots_and_before_it_the_live_slots() {
        let named: Vec<String> = (0..30)
            .map(|i| match i % 3 {
                0 => line("127.0.0.1:3000", "500", "0.001", "green"),
                _ => line("127.0.0.1:3000", "200", "0.001", "blue"),
            })
            .collect();
        let t = StepTraffic::from_lines(&named.join("\n"), ports(), Slot::Green);
        assert_eq!(
            (t.after_switch().requests, t.after_switch().errors),
            (10, 10)
        );
        assert_eq!(t.clone().of_live_slot(true).map(|s| s.requests), Some(20));
        let anonymous: Vec<String> = (0..30)
            .map(|_| line("127.0.0.1:3000", "200", "0.001", ""))
            .collect();
        let t = StepTraffic::from_lines(&anonymous.join("\n"), ports(), Slot::Green);
        assert_eq!(t.after_switch().requests, 30);
        assert_eq!(t.clone().of_live_slot(false).map(|s| s.requests), Some(30));
        // After steps the window holds the new slot's share too: nothing is the live slot's.
        assert_eq!(t.of_live_slot(true), None);
    }
}
