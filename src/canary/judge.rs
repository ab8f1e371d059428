//! A canary step's verdict: the probes of the new slot must pass, and when the access log
//! holds enough of the new slot's requests, their error rate and p95 latency must stay under
//! the absolute ceilings and within a margin of the old slot's in the same window. Where the
//! log cannot tell the slots apart, the new slot's error rate and p95 estimated from the
//! kernel's counts ([`super::estimate`], [`super::estimate_slow`]) must stay within the same
//! limits.

use serde::{Deserialize, Serialize};

use crate::monitor::MonitorReport;

use super::{Estimate, StepTraffic, Thresholds};

/// What a step was judged on and how it came out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether every rule held.
    pub passed: bool,
    /// Whether the access log had enough requests to be judged (else: probes only).
    pub judged_on_traffic: bool,
    /// One line per broken rule.
    pub reasons: Vec<String>,
}

/// Judges a step from what the log says (`traffic`), the new slot's error rate `estimated`
/// where the log cannot tell the slots apart, and the probes of the new slot.
pub fn judge(
    traffic: &StepTraffic,
    estimated: Option<&Estimate>,
    probes: &MonitorReport,
    limits: &Thresholds,
) -> Verdict {
    let mut reasons: Vec<String> = probes
        .reasons
        .iter()
        .map(|r| format!("probes of the new slot: {r}"))
        .collect();
    if !probes.passed && reasons.is_empty() {
        reasons.push("probes of the new slot failed".to_owned());
    }
    let (new, old) = (&traffic.canary, &traffic.stable);
    let enough = u64::from(limits.min_requests);
    if traffic.slots_unnamed {
        let estimated = estimated.filter(|e| e.new_requests >= enough as f64);
        if let Some(e) = estimated.filter(|e| !e.passed) {
            reasons.push(format!(
                "the new slot's error rate, estimated at {:.1}% from {} failures of the step's requests, is above {:.1}%",
                100.0 * e.new_rate,
                e.failures,
                100.0 * e.limit
            ));
        }
        // Judged on its own count: the requests that carried a time.
        let slow = estimated.and_then(|e| e.slow.as_ref());
        if let Some(slow) = slow.filter(|s| s.new_requests >= enough as f64 && !s.passed) {
            reasons.push(format!(
                "the new slot's p95 is above {} ms: an estimated {:.1}% of its requests took longer ({} of the step's requests did)",
                slow.limit_ms,
                100.0 * slow.new_share,
                slow.slow
            ));
        }
        return Verdict {
            passed: reasons.is_empty(),
            judged_on_traffic: estimated.is_some(),
            reasons,
        };
    }
    let judged_on_traffic = new.requests >= enough;
    if judged_on_traffic {
        let rate = new.error_rate();
        if rate > limits.max_error_rate {
            reasons.push(format!(
                "the new slot's error rate {:.1}% ({} of {}) is above max-error-rate {:.1}%",
                100.0 * rate,
                new.errors,
                new.requests,
                100.0 * limits.max_error_rate
            ));
        }
        if rate > old.error_rate() + limits.error_margin {
            reasons.push(format!(
                "the new slot's error rate {:.1}% is more than {:.1} points above the old slot's {:.1}%",
                100.0 * rate,
                100.0 * limits.error_margin,
                100.0 * old.error_rate()
            ));
        }
        if new.p95_ms > limits.max_p95_ms {
            reasons.push(format!(
                "the new slot's p95 {} ms is above max-p95-ms {}",
                new.p95_ms, limits.max_p95_ms
            ));
        }
        if old.requests >= u64::from(limits.min_requests)
            && new.p95_ms > old.p95_ms + limits.p95_margin_ms
        {
            reasons.push(format!(
                "the new slot's p95 {} ms is more than {} ms above the old slot's {} ms",
                new.p95_ms, limits.p95_margin_ms, old.p95_ms
            ));
        }
    }
    Verdict {
        passed: reasons.is_empty(),
        judged_on_traffic,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::SlotTraffic;

    fn limits() -> Thresholds {
        Thresholds {
            max_error_rate: 0.05,
            error_margin: 0.01,
            max_p95_ms: 1000,
            p95_margin_ms: 100,
            min_requests: 20,
        }
    }

    fn probes(passed: bool) -> MonitorReport {
        serde_json::from_value(serde_json::json!({
            "passed": passed, "url": "http://127.0.0.1:3002/health", "requests": 10,
            "failures": if passed { 0 } else { 10 }, "error_rate": 0.0, "p50_ms": 1,
            "p95_ms": 1, "p99_ms": 1, "longest_gap_ms": 0, "duration_ms": 1000,
            "stopped_early": false,
            "reasons": if passed { vec![] } else { vec!["error rate 100.0% above 5.0%"] },
            "first_failure": null
        }))
        .unwrap()
    }

    fn slot(requests: u64, errors: u64, p95_ms: u64) -> SlotTraffic {
        let mut traffic = SlotTraffic::default();
        traffic.requests = requests;
        traffic.errors = errors;
        traffic.p95_ms = p95_ms;
        traffic
    }

    fn traffic(stable: SlotTraffic, canary: SlotTraffic) -> StepTraffic {
        StepTraffic {
            stable,
            canary,
            ..StepTraffic::default()
        }
    }

    #[test]
    fn a_healthy_canary_passes_on_its_traffic() {
        let v = judge(
            &traffic(slot(900, 1, 5), slot(100, 0, 6)),
            None,
            &probes(true),
            &limits(),
        );
        assert!(v.passed && v.judged_on_traffic, "{v:?}");
    }

    #[test]
    fn each_rule_breaks_on_its_own() {
        let cases = [
            (slot(900, 0, 5), slot(100, 20, 5), "above max-error-rate"),
            (
                slot(900, 27, 5),
                slot(100, 5, 5),
                "points above the old slot's",
            ),
            (slot(900, 0, 5), slot(100, 0, 1500), "above max-p95-ms"),
            (
                slot(900, 0, 5),
                slot(100, 0, 300),
                "ms above the old slot's 5 ms",
            ),
        ];
        for (old, new, want) in cases {
            let v = judge(&traffic(old, new), None, &probes(true), &limits());
            assert!(!v.passed, "{want}: {v:?}");
            assert!(v.reasons.iter().any(|r| r.contains(want)), "{want}: {v:?}");
        }
    }

    #[test]
    fn too_few_requests_are_judged_on_probes() {
        let few = traffic(slot(50, 0, 5), slot(3, 3, 5));
        let v = judge(&few, None, &probes(true), &limits());
        assert!(v.passed && !v.judged_on_traffic, "{v:?}");
        let v = judge(&few, None, &probes(false), &limits());
        assert!(
            !v.passed && v.reasons[0].starts_with("probes of the new slot"),
            "{v:?}"
        );
    }

    /// A step whose answers named no slot: all `requests` of it logged, `errors` failed.
    fn unnamed(requests: u64, errors: u64) -> StepTraffic {
        StepTraffic {
            all: slot(requests, errors, 5),
            unplaced: requests - errors,
            unplaced_failures: errors,
            slots_unnamed: true,
            ..StepTraffic::default()
        }
    }

    #[test]
    fn where_the_log_cannot_tell_the_slots_apart_the_estimate_judges() {
        let baseline = Some(crate::canary::Baseline {
            requests: 2000,
            failures: 0,
        });
        let failing = unnamed(1000, 20);
        let e = crate::canary::estimate(&failing.all, (100, 900), baseline, 0.05, 0.01);
        let v = judge(&failing, e.as_ref(), &probes(true), &limits());
        assert!(!v.passed && v.judged_on_traffic, "{v:?}");
        assert!(v.reasons[0].contains("estimated at 20.0%"), "{v:?}");

        let healthy = unnamed(1000, 0);
        let e = crate::canary::estimate(&healthy.all, (100, 900), baseline, 0.05, 0.01);
        let v = judge(&healthy, e.as_ref(), &probes(true), &limits());
        assert!(v.passed && v.judged_on_traffic, "{v:?}");
    }

    #[test]
    fn without_counts_or_with_too_few_an_unnamed_step_is_judged_on_probes() {
        let failing = unnamed(1000, 20);
        let v = judge(&failing, None, &probes(true), &limits());
        assert!(v.passed && !v.judged_on_traffic, "{v:?}");
        // 10 of the step's requests went to the new slot: fewer than min_requests 20.
        let e = crate::canary::estimate(&failing.all, (1, 99), None, 0.05, 0.01);
        let v = judge(&failing, e.as_ref(), &probes(true), &limits());
        assert!(v.passed && !v.judged_on_traffic, "{v:?}");
        let v = judge(&failing, e.as_ref(), &probes(false), &limits());
        assert!(!v.passed, "{v:?}");
    }
}
