//! Summarising recorded requests per time window (before, during and after the deploys):
//! requests, failures by kind, the longest gap between successful answers, p50 and p99,
//! and how many answers each slot gave.

use crate::records;

/// What one window saw.
#[derive(Debug, Default)]
struct Summary {
    requests: u64,
    non_2xx: u64,
    connect: u64,
    reset: u64,
    timeout: u64,
    other: u64,
    latencies: Vec<f64>,
    successes_at: Vec<u128>,
    blue: u64,
    green: u64,
}

/// Prints, per window `LABEL:START_MS:END_MS`, what the requests due in it saw.
pub fn report(records_text: &str, windows: &[String]) {
    let mut windows: Vec<(String, u128, u128, Summary)> = windows
        .iter()
        .map(|w| {
            let mut parts = w.split(':');
            let label = parts.next().expect("window label").to_owned();
            let start = parts
                .next()
                .and_then(|s| s.parse().ok())
                .expect("window start");
            let end = parts
                .next()
                .and_then(|s| s.parse().ok())
                .expect("window end");
            (label, start, end, Summary::default())
        })
        .collect();
    for r in records::parse_records(records_text) {
        for (_, _, _, s) in windows
            .iter_mut()
            .filter(|(_, s, e, _)| (*s..*e).contains(&r.due_ms))
        {
            s.requests += 1;
            s.latencies.push(r.latency_ms);
            match r.slot {
                records::Seen::Blue => s.blue += 1,
                records::Seen::Green => s.green += 1,
                records::Seen::Unnamed => {}
            }
            match r.outcome {
                records::Outcome::Status(200..=299) => {
                    s.successes_at.push(r.due_ms + r.latency_ms as u128)
                }
                records::Outcome::Status(_) => s.non_2xx += 1,
                records::Outcome::Connect => s.connect += 1,
                records::Outcome::Reset => s.reset += 1,
                records::Outcome::Timeout => s.timeout += 1,
                records::Outcome::Other => s.other += 1,
            }
        }
    }
    println!(
        "window,requests,failed,non_2xx,connect,reset,timeout,other,longest_gap_ms,p50_ms,p99_ms,blue,green"
    );
    for (label, start, end, mut s) in windows {
        s.latencies.sort_by(f64::total_cmp);
        s.successes_at.sort_unstable();
        let pct = |p: f64| {
            if s.latencies.is_empty() {
                0.0
            } else {
                let rank = ((p / 100.0) * s.latencies.len() as f64).ceil() as usize;
                s.latencies[rank.clamp(1, s.latencies.len()) - 1]
            }
        };
        let mut gap = 0u128;
        let mut last = start;
        for &t in &s.successes_at {
            gap = gap.max(t.saturating_sub(last));
            last = t;
        }
        gap = gap.max(end.saturating_sub(last));
        let failed = s.non_2xx + s.connect + s.reset + s.timeout + s.other;
        println!(
            "{label},{},{failed},{},{},{},{},{},{gap},{:.1},{:.1},{},{}",
            s.requests,
            s.non_2xx,
            s.connect,
            s.reset,
            s.timeout,
            s.other,
            pct(50.0),
            pct(99.0),
            s.blue,
            s.green
        );
    }
}
