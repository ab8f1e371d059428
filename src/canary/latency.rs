//! Latencies of a step kept in a fixed amount of memory, whatever the traffic: a histogram
//! exact to the millisecond below one second, to 10 ms below ten seconds and to 100 ms
//! below 100 seconds (slower answers share one bucket). A percentile is read as the upper
//! end of its bucket, so it is never lower than the true one.

/// Buckets below one second, one per millisecond.
const FINE: u64 = 1000;
/// Buckets from 1 to 10 s, 10 ms each.
const MEDIUM: u64 = 900;
/// Buckets from 10 to 100 s, 100 ms each.
const COARSE: u64 = 900;
/// All buckets, the last for everything from 100 s on.
const BUCKETS: usize = (FINE + MEDIUM + COARSE + 1) as usize;

/// Counts of response times in milliseconds, in fixed buckets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyHistogram {
    /// Empty until the first time is added, then [`BUCKETS`] counts.
    counts: Vec<u64>,
    total: u64,
}

impl LatencyHistogram {
    /// Counts one response time.
    pub fn add(&mut self, ms: u64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        self.counts[bucket_of(ms)] += 1;
        self.total += 1;
    }

    /// The `percent` percentile (the smallest time at or above which that share of the
    /// times lie), as the upper end of its bucket; 0 with no times.
    pub fn percentile(&self, percent: u64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = (self.total * percent).div_ceil(100).max(1);
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return upper_end(bucket);
            }
        }
        upper_end(BUCKETS - 1)
    }
}

impl LatencyHistogram {
    /// How many times were counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// How many times lie above `ms`, counting a bucket whose upper end is above it (as a
    /// percentile is read: more than 5% of them above `ms` is a p95 above `ms`).
    pub fn above(&self, ms: u64) -> u64 {
        self.counts
            .iter()
            .enumerate()
            .filter(|&(bucket, _)| upper_end(bucket) > ms)
            .map(|(_, count)| count)
            .sum()
    }
}

fn bucket_of(ms: u64) -> usize {
    let index = if ms < FINE {
        ms
    } else if ms < 10_000 {
        FINE + (ms - FINE) / 10
    } else if ms < 100_000 {
        FINE + MEDIUM + (ms - 10_000) / 100
    } else {
        FINE + MEDIUM + COARSE
    };
    index as usize
}

/// The largest time a bucket holds (the last one: 100 s).
fn upper_end(bucket: usize) -> u64 {
    let b = bucket as u64;
    if b < FINE {
        b
    } else if b < FINE + MEDIUM {
        FINE + (b - FINE) * 10 + 9
    } else if b < FINE + MEDIUM + COARSE {
        10_000 + (b - FINE - MEDIUM) * 100 + 99
    } else {
        100_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_a_second_percentiles_are_exact() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.percentile(95), 0);
        for ms in 1..=100 {
            h.add(ms);
        }
        assert_eq!(h.percentile(95), 95);
        assert_eq!(h.percentile(50), 50);
        assert_eq!(h.percentile(100), 100);
    }

    #[test]
    fn slower_times_round_up_within_their_bucket_and_memory_stays_fixed() {
        let mut h = LatencyHistogram::default();
        h.add(1234);
        assert_eq!(h.percentile(95), 1239);
        h.add(54_321);
        assert_eq!(h.percentile(100), 54_399);
        for _ in 0..100_000 {
            h.add(999_999);
        }
        assert_eq!(h.percentile(95), 100_000);
        assert_eq!(h.counts.len(), BUCKETS);
        for ms in [0, 999, 1000, 9999, 10_000, 99_999, 100_000] {
            assert!(upper_end(bucket_of(ms)) >= ms, "{ms}");
        }
    }

    #[test]
    fn the_times_above_a_limit_agree_with_the_percentile() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.above(0), 0);
        for ms in 1..=100 {
            h.add(ms);
        }
        assert_eq!(
            (h.count(), h.above(95), h.above(94), h.above(100)),
            (100, 5, 6, 0)
        );
        h.add(1234);
        assert_eq!(
            (h.above(1230), h.above(1239)),
            (1, 0),
            "a bucket counts whole"
        );
    }
}
