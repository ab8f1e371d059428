//! Watching the live URL after a switch: request count, error rate, latency percentiles and
//! the longest stretch without a successful answer, judged against thresholds.
//!
//! Requests go out on a fixed schedule (one per interval; a slow answer delays only the
//! next request, which then goes out at once). The watch stops early once the failures
//! already exceed what the whole window may have, so a broken release is rolled back in
//! seconds instead of after the full window.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::http::Prober;
use crate::input::{HttpUrl, StatusSet};
use crate::progress::Progress;

/// How often a plain-text progress line is printed.
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Settings of one watch.
#[derive(Debug, Clone)]
pub struct Monitor {
    /// The live URL.
    pub url: HttpUrl,
    /// The Host to ask it as, where it names its host by address (see
    /// [`Prober::for_site`]).
    pub site_host: Option<String>,
    /// How long to watch.
    pub duration: Duration,
    /// Time between request starts.
    pub interval: Duration,
    /// Time budget of one request.
    pub request_timeout: Duration,
    /// Statuses that count as success (others count as errors).
    pub accepted: StatusSet,
    /// Highest acceptable error rate (0 to 1).
    pub max_error_rate: f64,
    /// Highest acceptable 95th percentile latency.
    pub max_p95_ms: u64,
}

/// What the watch saw and its verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorReport {
    /// Whether every threshold held.
    pub passed: bool,
    /// The URL watched.
    pub url: String,
    /// Requests made.
    pub requests: u32,
    /// Requests that failed (error status or no answer).
    pub failures: u32,
    /// failures / requests.
    pub error_rate: f64,
    /// Median latency.
    pub p50_ms: u64,
    /// 95th percentile latency.
    pub p95_ms: u64,
    /// 99th percentile latency.
    pub p99_ms: u64,
    /// Longest time without a successful answer (including from the start to the first
    /// success and from the last success to the end).
    pub longest_gap_ms: u64,
    /// How long the watch ran.
    pub duration_ms: u64,
    /// Whether it stopped before the window ended because failures were already too many.
    pub stopped_early: bool,
    /// Why it failed, one reason per broken threshold.
    pub reasons: Vec<String>,
    /// The first failed answer, for the report.
    pub first_failure: Option<String>,
}

impl Monitor {
    /// How many failures the whole window may have.
    fn allowed_failures(&self) -> u32 {
        let planned = (self.duration.as_secs_f64() / self.interval.as_secs_f64().max(0.001))
            .ceil()
            .max(1.0);
        (self.max_error_rate * planned).floor() as u32
    }

    /// Watches the URL for the configured window.
    pub fn run(&self, progress: &Progress) -> MonitorReport {
        let prober = Prober::new(true).for_site(self.site_host.as_deref());
        let started = Instant::now();
        let allowed_failures = self.allowed_failures();
        let mut latencies = Vec::new();
        let mut success_at_ms = Vec::new();
        let mut failures = 0u32;
        let mut first_failure = None;
        let mut stopped_early = false;
        let mut next_plain_line = PLAIN_PROGRESS_EVERY;
        let mut next_start = started;
        while next_start < started + self.duration {
            let now = Instant::now();
            if next_start > now {
                std::thread::sleep(next_start - now);
            }
            next_start += self.interval;
            let probe = prober.get(&self.url, self.request_timeout);
            latencies.push(probe.elapsed_ms());
            let ok = matches!(probe, crate::http::Probe::Answered { status, .. } if self.accepted.contains(status));
            if ok {
                success_at_ms.push(started.elapsed().as_millis() as u64);
            } else {
                failures += 1;
                first_failure.get_or_insert_with(|| probe.describe());
            }
            let elapsed = started.elapsed();
            let line = format!(
                "monitor: {} requests, {failures} failed, {:.1}s of {:.0}s",
                latencies.len(),
                elapsed.as_secs_f64(),
                self.duration.as_secs_f64()
            );
            if progress.is_plain() {
                if elapsed >= next_plain_line {
                    progress.line(&line);
                    next_plain_line += PLAIN_PROGRESS_EVERY;
                }
            } else {
                progress.update(elapsed.as_millis() as u64, &line);
            }
            if failures > allowed_failures {
                stopped_early = next_start < started + self.duration;
                break;
            }
        }
        let duration_ms = started.elapsed().as_millis() as u64;
        latencies.sort_unstable();
        let requests = latencies.len() as u32;
        let error_rate = if requests == 0 {
            0.0
        } else {
            f64::from(failures) / f64::from(requests)
        };
        let p95_ms = percentile(&latencies, 95.0);
        let mut reasons = Vec::new();
        if error_rate > self.max_error_rate {
            reasons.push(format!(
                "error rate {:.1}% ({failures} of {requests}) is above the limit {:.1}%",
                error_rate * 100.0,
                self.max_error_rate * 100.0
            ));
        }
        if p95_ms > self.max_p95_ms {
            reasons.push(format!(
                "p95 latency {p95_ms} ms is above the limit {} ms",
                self.max_p95_ms
            ));
        }
        MonitorReport {
            passed: reasons.is_empty(),
            url: self.url.to_string(),
            requests,
            failures,
            error_rate,
            p50_ms: percentile(&latencies, 50.0),
            p95_ms,
            p99_ms: percentile(&latencies, 99.0),
            longest_gap_ms: longest_gap(&success_at_ms, duration_ms),
            duration_ms,
            stopped_early,
            reasons,
            first_failure,
        }
    }
}

/// The nearest-rank percentile `p` (0-100) of sorted values; 0 for no values.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The longest stretch in `[0, end_ms]` containing none of the sorted success times.
pub fn longest_gap(success_at_ms: &[u64], end_ms: u64) -> u64 {
    let mut longest = 0;
    let mut last = 0;
    for &t in success_at_ms {
        longest = longest.max(t.saturating_sub(last));
        last = t;
    }
    longest.max(end_ms.saturating_sub(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 95.0), 95);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&[7], 95.0), 7);
        assert_eq!(percentile(&[1, 2, 3, 1000], 95.0), 1000);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn gaps_count_the_edges() {
        assert_eq!(longest_gap(&[100, 200, 900, 1000], 1100), 700);
        assert_eq!(longest_gap(&[], 3000), 3000);
        assert_eq!(longest_gap(&[2500], 3000), 2500);
        assert_eq!(longest_gap(&[100], 3000), 2900);
    }

    #[test]
    fn allowed_failures_follow_the_planned_request_count() {
        let m = Monitor {
            url: "http://127.0.0.1:1/".parse().unwrap(),
            site_host: None,
            duration: Duration::from_secs(30),
            interval: Duration::from_millis(200),
            request_timeout: Duration::from_secs(1),
            accepted: StatusSet::default(),
            max_error_rate: 0.01,
            max_p95_ms: 500,
        };
        assert_eq!(m.allowed_failures(), 1);
        let strict = Monitor {
            max_error_rate: 0.0,
            ..m
        };
        assert_eq!(strict.allowed_failures(), 0);
    }
}
