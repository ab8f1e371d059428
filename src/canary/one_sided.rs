//! The one-sided test both estimates of a step (`estimate.rs`: the error rate, `slow.rs`:
//! the p95) and the watch (`watch.rs`) judge counts with: the live slot's window before the
//! new slot served ([`Baseline`]), and the most events (failures, slow requests) a step may
//! hold before the new slot is taken to be worse than its limit.

use serde::{Deserialize, Serialize};

use super::SlotTraffic;

/// How many standard deviations above its mean a healthy step's failure count may go: a
/// one-sided test at about 0.13%.
const Z: f64 = 3.0;

/// The log's window before the steps, when the live slot served alone.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Baseline {
    /// Requests it holds.
    pub requests: u64,
    /// Those that failed.
    pub failures: u64,
}

impl Baseline {
    /// The window's figures, from what the log says of all its requests.
    pub fn of(all: &SlotTraffic) -> Baseline {
        Baseline {
            requests: all.requests,
            failures: all.errors,
        }
    }
}

/// The most failures `new_requests` at the rate `limit` and `live_requests` at the live
/// slot's `live_rate` (from `baseline`) may have before a one-sided test says the new ones
/// fail more often than `limit`: the mean plus [`Z`] standard deviations and a half. The
/// variance counts the uncertainty of the live rate itself, through every request when
/// `limit_follows_live` (the limit is the live rate plus a margin), else through the live
/// slot's requests only.
pub(super) fn most_failures(
    new_requests: f64,
    live_requests: f64,
    live_rate: f64,
    baseline: Option<Baseline>,
    limit: f64,
    limit_follows_live: bool,
) -> f64 {
    // How much the live slot's rate may vary: from the window, smoothed (one failure more
    // in two requests more) so that a window that saw no failure does not claim that the
    // live slot never fails.
    let live_spread = baseline.map_or(0.0, |b| {
        let smoothed = (b.failures as f64 + 1.0) / (b.requests as f64 + 2.0);
        smoothed * (1.0 - smoothed)
    });
    let tracking = if limit_follows_live {
        new_requests + live_requests
    } else {
        live_requests
    };
    let mean = live_requests * live_rate + new_requests * limit;
    let variance = live_requests * live_spread
        + new_requests * limit * (1.0 - limit)
        + tracking * tracking * live_spread / baseline.map_or(1.0, |b| b.requests as f64);
    mean + Z * variance.sqrt() + 0.5
}

/// The new slot's share of `events` (failures, slow requests) of a step: what is left when
/// the live slot's `live_requests` at its `live_rate` are taken out, over its own
/// `new_requests` (0 to 1; 0 without requests of its own).
pub(super) fn new_slots_share(
    events: u64,
    new_requests: f64,
    live_requests: f64,
    live_rate: f64,
) -> f64 {
    if new_requests > 0.0 {
        ((events as f64 - live_requests * live_rate) / new_requests).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// `requests` divided between the slots as the kernel's counts of new connections (to the
/// new slot, to the live one) say: (the new slot's, the live slot's).
pub(super) fn divided(requests: u64, (to_new, to_live): (u64, u64)) -> (f64, f64) {
    let requests = requests as f64;
    let new = requests * to_new as f64 / (to_new + to_live) as f64;
    (new, requests - new)
}
