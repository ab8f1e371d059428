//! The new slot's p95 latency when the access log cannot tell the slots apart (nftables
//! mode, an app that does not name its slot), from the same kernel counts as the error
//! rate (`estimate.rs`).
//!
//! A p95 above a limit `L` is more than 5% of the requests slower than `L`, so a slow
//! request can be counted like a failure:
//!
//! - `L` is what a step judged on named slots holds the new slot to: `max-p95-ms`, and the
//!   live slot's p95 plus `canary-p95-margin-ms` where the window before the steps holds at
//!   least `canary-min-requests` of its requests with a time (the lower of the two).
//! - The live slot's share of requests slower than `L` comes from that window (none
//!   without one, which can only make a canary look slower).
//! - The step's timed requests are divided between the slots as the counters say, and the
//!   step fails when more of them are slower than `L` than a new slot with exactly 5% slower
//!   than `L` would give, by the same one-sided test (`z = 3`) as the error rate.
//!
//! The new slot's share of slow requests, `(S − n_live·q0) / n_new`, is reported beside
//! the verdict; its p95 itself cannot be read from a mixture.

use serde::{Deserialize, Serialize};

use super::one_sided::{Baseline, divided, most_failures, new_slots_share};
use super::{SlotTraffic, Thresholds};

/// The share of a slot's requests that may be slower than its p95 limit.
const ABOVE_P95: f64 = 0.05;

/// What the latency estimate found in one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowEstimate {
    /// The p95 the new slot is held to, in ms.
    pub limit_ms: u64,
    /// The step's timed requests the counters put down to the new slot.
    pub new_requests: f64,
    /// The step's requests slower than the limit, of either slot.
    pub slow: u64,
    /// The live slot's share of requests slower than the limit, from the window before the
    /// steps (0 without one).
    pub live_share: f64,
    /// The new slot's share of requests slower than the limit, estimated.
    pub new_share: f64,
    /// The most slow requests the step may have with the new slot's p95 at the limit.
    pub most_slow: f64,
    /// Whether the step's slow requests stay within `most_slow`.
    pub passed: bool,
}

impl SlowEstimate {
    /// One clause for people.
    pub fn describe(&self) -> String {
        format!(
            "an estimated {:.1}% of the new slot's requests took over {} ms (its p95 is above that past 5%; {} of the step's requests did, at most {:.0} were acceptable; the live slot's share before the steps: {:.1}%)",
            100.0 * self.new_share,
            self.limit_ms,
            self.slow,
            self.most_slow,
            100.0 * self.live_share
        )
    }
}

/// Estimates whether the new slot's p95 is above its limit in a step, from all the step's
/// logged requests (`step`), the connections the rules sent on (`to_new`, `to_live`), the
/// live slot's window `before` the steps (if the log holds one) and the plan's `limits`.
/// `None` when the counters saw nothing to divide or no request carried a time.
pub fn estimate_slow(
    step: &SlotTraffic,
    (to_new, to_live): (u64, u64),
    before: Option<&SlotTraffic>,
    limits: &Thresholds,
) -> Option<SlowEstimate> {
    if to_new + to_live == 0 || step.timed() == 0 {
        return None;
    }
    let before = before.filter(|b| b.timed() > 0);
    let limit_ms = before
        .filter(|b| b.timed() >= u64::from(limits.min_requests))
        .map_or(limits.max_p95_ms, |b| {
            limits.max_p95_ms.min(b.p95_ms + limits.p95_margin_ms)
        });
    let baseline = before.map(|b| Baseline {
        requests: b.timed(),
        failures: b.slower_than(limit_ms),
    });
    let live_share = baseline.map_or(0.0, |b| b.failures as f64 / b.requests as f64);
    let (new_requests, live_requests) = divided(step.timed(), (to_new, to_live));
    let most_slow = most_failures(
        new_requests,
        live_requests,
        live_share,
        baseline,
        ABOVE_P95,
        false,
    );
    let slow = step.slower_than(limit_ms);
    let new_share = new_slots_share(slow, new_requests, live_requests, live_share);
    Some(SlowEstimate {
        limit_ms,
        new_requests,
        slow,
        live_share,
        new_share,
        most_slow,
        passed: slow as f64 <= most_slow,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::TestRng;

    fn limits() -> Thresholds {
        Thresholds::defaults_for_tests()
    }

    /// A slot's requests with these times, in ms.
    fn timed(times: impl IntoIterator<Item = u64>) -> SlotTraffic {
        let mut s = SlotTraffic::default();
        for ms in times {
            s.add(false, Some(ms));
        }
        s.finish();
        s
    }

    /// `n` requests, `slow_share` of them at `slow_ms`, the rest at 10 ms, spread evenly.
    fn mix(n: u64, slow_share: f64, slow_ms: u64) -> Vec<u64> {
        let every = if slow_share > 0.0 {
            (1.0 / slow_share).round() as u64
        } else {
            u64::MAX
        };
        (1..=n)
            .map(|i| if i % every == 0 { slow_ms } else { 10 })
            .collect()
    }

    #[test]
    fn a_canary_as_fast_as_the_live_slot_passes() {
        let before = timed(mix(500, 0.02, 50));
        let step = timed(mix(1000, 0.02, 50));
        let e = estimate_slow(&step, (100, 900), Some(&before), &limits()).unwrap();
        assert!(e.passed, "{e:?}");
        // The live slot's p95 is 10 ms: the new slot is held to 110 ms.
        assert_eq!(e.limit_ms, 110);
    }

    #[test]
    fn a_canary_whose_p95_is_slow_fails_at_a_tenth_of_the_traffic() {
        // A tenth of the requests go to a canary taking 2 s for a fifth of them.
        let before = timed(mix(500, 0.0, 0));
        let mut times = mix(900, 0.0, 0);
        times.extend(mix(100, 0.2, 2000));
        let e = estimate_slow(&timed(times), (100, 900), Some(&before), &limits()).unwrap();
        assert!(!e.passed, "{e:?}");
        assert!((e.new_share - 0.2).abs() < 1e-9, "{e:?}");
        assert!(e.describe().contains("estimated 20.0%"), "{}", e.describe());
    }

    #[test]
    fn the_live_slots_own_slow_requests_are_not_put_down_to_the_canary() {
        // The live slot is over max-p95-ms already (600 ms for 10% of its requests): a fast
        // canary passes, one with half its requests at 600 ms fails. (One exactly as slow
        // as the live slot is not told apart from noise at 100 requests.)
        let before = timed(mix(1000, 0.1, 600));
        let mut fast_canary = mix(900, 0.1, 600);
        fast_canary.extend(mix(100, 0.0, 0));
        let e = estimate_slow(&timed(fast_canary), (100, 900), Some(&before), &limits()).unwrap();
        assert!(e.passed, "{e:?}");
        assert_eq!(
            e.limit_ms, 500,
            "the lower of max-p95-ms and the live p95 + margin"
        );
        let mut slower = mix(900, 0.1, 600);
        slower.extend(mix(100, 0.5, 600));
        let e = estimate_slow(&timed(slower), (100, 900), Some(&before), &limits()).unwrap();
        assert!(!e.passed, "{e:?}");
        assert!((e.new_share - 0.5).abs() < 1e-9, "{e:?}");
    }

    #[test]
    fn without_a_window_before_the_limit_is_max_p95_and_without_counts_or_times_no_estimate() {
        let step = timed(mix(1000, 0.02, 50));
        let e = estimate_slow(&step, (100, 900), None, &limits()).unwrap();
        assert_eq!((e.limit_ms, e.live_share), (500, 0.0));
        assert!(e.passed, "{e:?}");
        assert_eq!(estimate_slow(&step, (0, 0), None, &limits()), None);
        assert_eq!(estimate_slow(&timed([]), (100, 900), None, &limits()), None);
    }

    /// A live slot's time: 3% of its requests at 300 ms, the rest 10 to 49 ms.
    fn live_time(rng: &mut TestRng) -> u64 {
        if rng.next() < 0.03 {
            300
        } else {
            10 + (rng.next() * 40.0) as u64
        }
    }

    /// One simulated step of 1,000 requests, `share`% to a canary that answers
    /// `slow_share` of its requests in 2 s and the rest as the live slot does, after a
    /// window of `baseline` requests of the live slot alone; whether it passed.
    fn simulate(rng: &mut TestRng, share: u8, slow_share: f64, baseline: u64) -> bool {
        let before = timed((0..baseline).map(|_| live_time(rng)).collect::<Vec<_>>());
        let mut to_new = 0;
        let mut times = Vec::new();
        for _ in 0..1000 {
            let to_canary = rng.next() * 100.0 < f64::from(share);
            to_new += u64::from(to_canary);
            let slow = to_canary && rng.next() < slow_share;
            times.push(if slow { 2000 } else { live_time(rng) });
        }
        estimate_slow(
            &timed(times),
            (to_new, 1000 - to_new),
            Some(&before),
            &limits(),
        )
        .is_none_or(|e| e.passed)
    }

    /// The latency test's false alarms over healthy steps and its misses of slow canaries
    /// (a fifth, half or all of their requests at 2 s), at the default limits. Printed
    /// with `--nocapture`; the bounds asserted are the ones `docs/benchmarks.md` states.
    #[test]
    fn stats_of_the_latency_test() {
        let mut rng = TestRng(0x2545_F491_4F6C_DD1D);
        for baseline in [500, 5000] {
            let runs = 300;
            let false_alarms = (0..runs)
                .filter(|i| !simulate(&mut rng, [5, 10, 25][i % 3], 0.0, baseline))
                .count();
            println!("baseline {baseline}: healthy steps: {false_alarms} false alarms in {runs}");
            assert!(false_alarms * 100 <= runs, "{false_alarms} of {runs}");
            for slow_share in [0.2, 0.5, 1.0] {
                for share in [5, 10, 25] {
                    let missed = (0..100)
                        .filter(|_| simulate(&mut rng, share, slow_share, baseline))
                        .count();
                    println!(
                        "baseline {baseline}: canary with {:.0}% of its requests at 2 s, share {share}%: missed {missed} of 100",
                        100.0 * slow_share
                    );
                    // Caught nine times in ten or more: the slow share of the step's
                    // requests (share × slow share) at 5% or more.
                    if f64::from(share) * slow_share >= 5.0 {
                        assert!(missed <= 10, "slow {slow_share} share {share}: {missed}");
                    }
                }
            }
        }
    }
}
