//! The limits a canary step, its estimates and the watch judge the new slot's traffic
//! against, from the plan's inputs.

/// The limits a step is judged against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Highest acceptable error rate of the new slot (0 to 1).
    pub max_error_rate: f64,
    /// How much the new slot's error rate may exceed the old slot's.
    pub error_margin: f64,
    /// Highest acceptable p95 latency of the new slot, in ms.
    pub max_p95_ms: u64,
    /// How much the new slot's p95 may exceed the old slot's, in ms.
    pub p95_margin_ms: u64,
    /// Fewer of the new slot's requests than this: judged on probes only.
    pub min_requests: u32,
}

impl Thresholds {
    /// The action's defaults (max-error-rate 1%, margin 1 point, max-p95-ms 500, margin
    /// 100 ms, 20 requests at least), for tests.
    #[cfg(test)]
    pub(super) fn defaults_for_tests() -> Thresholds {
        Thresholds {
            max_error_rate: 0.01,
            error_margin: 0.01,
            max_p95_ms: 500,
            p95_margin_ms: 100,
            min_requests: 20,
        }
    }
}
