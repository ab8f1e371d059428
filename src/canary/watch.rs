//! The watch's verdict on real traffic. After the switch every new request goes to the new
//! slot (both modes), so the access log's lines of the watch window are the new slot's
//! without any attribution: in reload mode those nginx sent to its port, in nftables mode
//! those that named it, or every line where the answers name no slot (a request still in
//! flight to the old slot at the switch is then counted too, which can only make the new
//! slot look worse).
//!
//! They are judged against the live slot's requests in the window before the switch
//! ([`super::Baseline`], read from the same log), so that a new version is not rolled back
//! for what the old one did as well:
//!
//! - errors: the window's failures must not be more than a one-sided test (the same as a
//!   canary step's, see [`super::estimate`]) allows at the rate `max(max-error-rate,
//!   live rate + canary-error-margin)`;
//! - latency: the window's p95 must not be above `max(max-p95-ms, live p95 +
//!   canary-p95-margin-ms)` (the live p95 only from enough requests), and neither must
//!   the watch's probes' ([`p95_limit`]).
//!
//! The limits are the larger of the ceiling and the live slot's figure plus its margin,
//! where a canary step takes the smaller: a step still has the live slot to stay on, so it
//! is held to the stricter; after the switch, a rollback goes back to the live slot, which
//! is worth it only when the new one is worse than both.
//!
//! With fewer than `canary-min-requests` requests in the window, traffic is too thin to
//! judge and the probes alone judge (they always do: they are the floor). Our own probes
//! are not users' requests: the log marks them and they are left out.

use serde::{Deserialize, Serialize};

use super::one_sided::{Baseline, most_failures};
use super::{SlotTraffic, Thresholds};

/// What the watch's window of real traffic said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficVerdict {
    /// The window's requests (the new slot's).
    pub requests: u64,
    /// Those that failed.
    pub failures: u64,
    /// Their p95 response time, in ms.
    pub p95_ms: u64,
    /// Whether there were enough to judge on (else only the probes judged).
    pub judged: bool,
    /// One line per broken rule (none when it passed or was not judged).
    pub reasons: Vec<String>,
}

impl TrafficVerdict {
    /// One clause for people, saying what judged.
    pub fn describe(&self, min_requests: u32) -> String {
        let figures = format!(
            "users' requests: {} of {} failed, p95 {} ms",
            self.failures, self.requests, self.p95_ms
        );
        if self.judged {
            format!("{figures} (judged)")
        } else {
            format!(
                "{figures} (fewer than canary-min-requests {min_requests}: judged on the probes)"
            )
        }
    }
}

/// Judges the new slot's requests in the watch `window` against the live slot's
/// `before` the switch (its requests, failures and p95), with the plan's `limits`.
pub fn judge_window(
    window: &SlotTraffic,
    before: Option<&SlotTraffic>,
    limits: &Thresholds,
) -> TrafficVerdict {
    let enough = u64::from(limits.min_requests);
    let judged = window.requests >= enough;
    let mut reasons = Vec::new();
    if judged {
        let baseline = before.map(Baseline::of).filter(|b| b.requests > 0);
        let live_rate = baseline.map_or(0.0, |b| b.failures as f64 / b.requests as f64);
        let limit = limits
            .max_error_rate
            .max(live_rate + limits.error_margin)
            .min(1.0);
        let follows_live = limit > limits.max_error_rate;
        let most = most_failures(
            window.requests as f64,
            0.0,
            0.0,
            baseline,
            limit,
            follows_live,
        );
        if window.errors as f64 > most {
            reasons.push(format!(
                "users' requests to the new slot failed {:.1}% ({} of {}), above {:.1}% (at most {most:.0} failures were acceptable)",
                100.0 * window.error_rate(),
                window.errors,
                window.requests,
                100.0 * limit
            ));
        }
        let p95_limit = p95_limit(before, limits);
        if window.p95_ms > p95_limit {
            reasons.push(format!(
                "users' requests to the new slot took {} ms at p95, above {p95_limit} ms",
                window.p95_ms
            ));
        }
    }
    TrafficVerdict {
        requests: window.requests,
        failures: window.errors,
        p95_ms: window.p95_ms,
        judged,
        reasons,
    }
}

/// The highest p95 the watch lets the new slot have: `max(max-p95-ms, live p95 +
/// canary-p95-margin-ms)`, the live slot's figure only from at least `canary-min-requests`
/// of its requests `before` the switch. The watch's probes are held to it too, so that a
/// host under load, where the old slot answered as slowly, does not roll a release back.
pub fn p95_limit(before: Option<&SlotTraffic>, limits: &Thresholds) -> u64 {
    let live_p95 = before
        .filter(|b| b.requests >= u64::from(limits.min_requests))
        .map_or(0, |b| b.p95_ms + limits.p95_margin_ms);
    limits.max_p95_ms.max(live_p95)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Thresholds {
        Thresholds::defaults_for_tests()
    }

    fn traffic(requests: u64, errors: u64, p95_ms: u64) -> SlotTraffic {
        let mut t = SlotTraffic::default();
        t.requests = requests;
        t.errors = errors;
        t.p95_ms = p95_ms;
        t
    }

    #[test]
    fn pages_that_fail_fail_the_watch() {
        let v = judge_window(&traffic(500, 100, 5), Some(&traffic(1000, 0, 5)), &limits());
        assert!(v.judged && v.reasons.len() == 1, "{v:?}");
        assert!(v.reasons[0].contains("failed 20.0% (100 of 500)"), "{v:?}");
    }

    #[test]
    fn a_healthy_window_passes_and_a_thin_one_is_left_to_the_probes() {
        let v = judge_window(&traffic(500, 1, 5), Some(&traffic(1000, 0, 5)), &limits());
        assert!(v.judged && v.reasons.is_empty(), "{v:?}");
        let thin = judge_window(&traffic(10, 10, 5), None, &limits());
        assert!(!thin.judged && thin.reasons.is_empty(), "{thin:?}");
        assert!(thin.describe(20).contains("judged on the probes"));
    }

    #[test]
    fn what_the_live_slot_did_as_well_is_not_held_against_the_new_one() {
        // Both fail 3% and answer in 1 s at p95: above the ceilings, but no worse.
        let before = traffic(2000, 60, 1000);
        let v = judge_window(&traffic(1000, 30, 1020), Some(&before), &limits());
        assert!(v.reasons.is_empty(), "{v:?}");
        // Slower by more than the margin fails.
        let v = judge_window(&traffic(1000, 30, 1300), Some(&before), &limits());
        assert!(
            v.reasons.len() == 1 && v.reasons[0].contains("1300 ms at p95, above 1100 ms"),
            "{v:?}"
        );
        // Without a window before, the ceilings hold.
        let v = judge_window(&traffic(1000, 30, 1020), None, &limits());
        assert_eq!(v.reasons.len(), 2, "{v:?}");
    }
}
