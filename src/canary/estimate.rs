//! The new slot's error rate when the access log cannot tell the slots apart: nftables mode
//! with an app that does not name its slot. nginx then sees only the service port, so its
//! log holds every request of a step and its failures, but not which slot served each.
//!
//! The kernel knows the split: each nftables rule counts the new connections it sent on,
//! and with one upstream connection per request (the include asks nginx for no upstream
//! `keepalive`) that is the number of requests each slot got. What the log lacks is which
//! failures were whose. The estimate:
//!
//! - The live slot's error rate `p0` is taken from the log's window before the steps, when
//!   it served alone (the standby's start and health check). Without such a window every
//!   failure is put down to the new slot (`p0 = 0`), which can only make a canary look
//!   worse, never better.
//! - The step's `N` logged requests are divided between the slots as the counters say:
//!   `n_new = N × c_new / (c_new + c_live)`, `n_live = N − n_new`.
//! - The highest acceptable error rate of the new slot is `r = min(max-error-rate,
//!   p0 + canary-error-margin)`: the two rules a step judged on named slots applies.
//! - Were the new slot's rate exactly `r`, the step's failures `F` would have mean
//!   `μ = n_live·p0 + n_new·r` and variance `σ² = n_live·v + n_new·r(1−r)`, plus the
//!   uncertainty of `p0` itself (`n²·v/n_baseline`, `n` the requests whose expected failures
//!   move with `p0`), where `v = p(1−p)` of the window's
//!   rate smoothed by one failure in two requests more (a window that saw no failure does
//!   not prove that the live slot never fails). The step fails when
//!   `F > μ + z·σ + ½` with `z = 3`: a one-sided test at about 0.13%, so that the noise of a
//!   healthy canary (and of the live slot's own failures) does not fail it, with a
//!   continuity correction for small counts.
//!
//! The point estimate `(F − n_live·p0) / n_new` is reported beside the verdict. The p95
//! latency is estimated from the same counts by counting slow requests like failures
//! (`slow.rs`). The false-alarm and miss rates of both tests are measured by
//! `stats_of_the_test` here and `stats_of_the_latency_test` there, and listed in
//! `docs/benchmarks.md`.

use serde::{Deserialize, Serialize};

use super::one_sided::{Baseline, divided, most_failures, new_slots_share};
use super::{SlotTraffic, SlowEstimate};

/// What the estimate found in one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The step's requests the counters put down to the new slot.
    pub new_requests: f64,
    /// The step's failures, of either slot.
    pub failures: u64,
    /// The live slot's error rate from the baseline (0 without one).
    pub live_rate: f64,
    /// The baseline's requests (0: none, every failure counted against the new slot).
    pub baseline_requests: u64,
    /// The new slot's error rate, estimated.
    pub new_rate: f64,
    /// The highest acceptable error rate of the new slot.
    pub limit: f64,
    /// The most failures the step may have with the new slot at `limit`.
    pub most_failures: f64,
    /// Whether the step's failures stay within `most_failures`.
    pub passed: bool,
    /// Whether the new slot's p95 is above its limit, estimated from the same counts (see
    /// [`super::estimate_slow`]); `None` where the step had no times to judge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow: Option<SlowEstimate>,
}

impl Estimate {
    /// One clause for people: `the new slot's error rate is estimated at 18.2% (…)`.
    pub fn describe(&self) -> String {
        let baseline = if self.baseline_requests == 0 {
            "no window of the live slot alone before the steps, so every failure counts against the new slot".to_owned()
        } else {
            format!(
                "the live slot failed {:.2}% of {} requests before the steps",
                100.0 * self.live_rate,
                self.baseline_requests
            )
        };
        format!(
            "the new slot's error rate is estimated at {:.1}% from the kernel's counts ({:.0} of the step's requests went to it; {} failed in all; {baseline}; at most {:.0} failures were acceptable with it at {:.1}%)",
            100.0 * self.new_rate,
            self.new_requests,
            self.failures,
            self.most_failures,
            100.0 * self.limit
        )
    }
}

/// Estimates the new slot's error rate in a step from all the step's logged requests
/// (`step`), the connections the rules sent on (`to_new`, `to_live`), the `baseline`
/// window (if the log holds one) and the limits: `max_error_rate` and the margin over the
/// live slot's rate. `None` when the counters saw nothing to divide.
pub fn estimate(
    step: &SlotTraffic,
    (to_new, to_live): (u64, u64),
    baseline: Option<Baseline>,
    max_error_rate: f64,
    error_margin: f64,
) -> Option<Estimate> {
    if to_new + to_live == 0 {
        return None;
    }
    let (new_requests, live_requests) = divided(step.requests, (to_new, to_live));
    let baseline = baseline.filter(|b| b.requests > 0);
    let live_rate = baseline.map_or(0.0, |b| b.failures as f64 / b.requests as f64);
    let limit = max_error_rate.min(live_rate + error_margin);
    let most_failures = most_failures(
        new_requests,
        live_requests,
        live_rate,
        baseline,
        limit,
        limit < max_error_rate,
    );
    let failures = step.errors;
    let new_rate = new_slots_share(failures, new_requests, live_requests, live_rate);
    Some(Estimate {
        new_requests,
        failures,
        live_rate,
        baseline_requests: baseline.map_or(0, |b| b.requests),
        new_rate,
        limit,
        most_failures,
        passed: failures as f64 <= most_failures,
        slow: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::TestRng;

    fn step(requests: u64, errors: u64) -> SlotTraffic {
        let mut s = SlotTraffic::default();
        s.requests = requests;
        s.errors = errors;
        s
    }

    fn baseline(requests: u64, failures: u64) -> Option<Baseline> {
        Some(Baseline { requests, failures })
    }

    #[test]
    fn a_healthy_canary_beside_a_clean_live_slot_passes() {
        let e = estimate(&step(1000, 0), (100, 900), baseline(500, 0), 0.01, 0.01).unwrap();
        assert!(e.passed, "{e:?}");
        assert_eq!(e.new_rate, 0.0);
        assert!((e.new_requests - 100.0).abs() < 1e-9);
    }

    #[test]
    fn a_canary_failing_a_fifth_of_its_requests_fails_at_a_tenth_of_the_traffic() {
        let e = estimate(&step(1000, 20), (100, 900), baseline(500, 0), 0.01, 0.01).unwrap();
        assert!(!e.passed, "{e:?}");
        assert!((e.new_rate - 0.2).abs() < 1e-9, "{e:?}");
        assert!(
            e.describe().contains("estimated at 20.0%"),
            "{}",
            e.describe()
        );
    }

    #[test]
    fn the_live_slots_own_failures_are_not_put_down_to_the_canary() {
        // The live slot fails 1% before and during the step; the canary fails nothing.
        let e = estimate(&step(1000, 9), (100, 900), baseline(1000, 10), 0.01, 0.01).unwrap();
        assert!(e.passed, "{e:?}");
        assert!(e.new_rate < 0.01, "{e:?}");
        // Without the window, the same failures all count against the canary.
        let blind = estimate(&step(1000, 9), (100, 900), None, 0.01, 0.01).unwrap();
        assert!(!blind.passed, "{blind:?}");
        assert!(
            blind
                .describe()
                .contains("every failure counts against the new slot")
        );
    }

    #[test]
    fn the_counters_divide_the_logged_requests_whatever_their_own_total() {
        // Counters read a little after the log: the share is what counts.
        let e = estimate(&step(1000, 0), (210, 1890), baseline(100, 0), 0.01, 0.01).unwrap();
        assert!((e.new_requests - 100.0).abs() < 1e-9, "{e:?}");
    }

    #[test]
    fn no_counted_connection_is_no_estimate() {
        assert_eq!(estimate(&step(10, 1), (0, 0), None, 0.01, 0.01), None);
    }

    #[test]
    fn the_absolute_ceiling_holds_when_the_live_slot_fails_a_lot() {
        // The live slot fails 30%: a canary failing 30% too is above max-error-rate 5%
        // (seen through that much noise only with enough requests).
        let e = estimate(
            &step(10_000, 3000),
            (1000, 9000),
            baseline(10_000, 3000),
            0.05,
            0.01,
        )
        .unwrap();
        assert!(!e.passed, "{e:?}");
        assert!((e.limit - 0.05).abs() < 1e-9);
    }

    /// One simulated step of `requests` requests, `share`% to a canary failing `new_rate`,
    /// the rest to a live slot failing `live_rate`, after a baseline window of
    /// `baseline_requests`; whether it passed.
    fn simulate(
        rng: &mut TestRng,
        requests: u64,
        share: u8,
        (new_rate, live_rate): (f64, f64),
        baseline_requests: u64,
    ) -> bool {
        let base_failures = rng.failures(baseline_requests, live_rate);
        let mut to_new = 0;
        let mut failures = 0;
        for _ in 0..requests {
            let to_canary = rng.next() * 100.0 < f64::from(share);
            to_new += u64::from(to_canary);
            let rate = if to_canary { new_rate } else { live_rate };
            failures += u64::from(rng.next() < rate);
        }
        estimate(
            &step(requests, failures),
            (to_new, requests - to_new),
            baseline(baseline_requests, base_failures),
            0.01,
            0.01,
        )
        .is_none_or(|e| e.passed)
    }

    /// The test's false alarms over healthy steps and its misses of failing canaries, at the
    /// default limits (max-error-rate 1%, margin 1 point), 1,000 requests per step and a
    /// baseline of 500. Printed with `--nocapture`; the bounds asserted are the ones
    /// `docs/benchmarks.md` states.
    #[test]
    fn stats_of_the_test() {
        let mut rng = TestRng(0x9E37_79B9_7F4A_7C15);
        let runs = 400;
        for baseline_requests in [500, 5000] {
            let false_alarms = (0..runs)
                .filter(|i| {
                    let share = [5, 10, 25][i % 3];
                    let live_rate = [0.0, 0.005, 0.01][(i / 3) % 3];
                    !simulate(&mut rng, 1000, share, (0.0, live_rate), baseline_requests)
                })
                .count();
            println!(
                "baseline {baseline_requests}: healthy steps: {false_alarms} false alarms in {runs}"
            );
            assert!(false_alarms * 100 <= runs, "{false_alarms} of {runs}");
        }
        for baseline_requests in [500, 5000] {
            for failing in [0.05, 0.2, 1.0] {
                for share in [5, 10, 25] {
                    let missed = (0..100)
                        .filter(|_| {
                            simulate(&mut rng, 1000, share, (failing, 0.005), baseline_requests)
                        })
                        .count();
                    println!(
                        "baseline {baseline_requests}: canary failing {:.0}% at share {share}%: missed {missed} of 100",
                        100.0 * failing
                    );
                    if failing >= 1.0 || (failing >= 0.2 && share >= 10 && baseline_requests > 1000)
                    {
                        assert!(missed <= 5, "failing {failing} share {share}: {missed}");
                    }
                }
            }
        }
    }
}
