//! What a run cost the users, from nginx's own log: the receipt of every run that moves
//! traffic, for the time from the standby's start (the run's start) to the end of its watch
//! (or of its rollback).
//!
//! - requests: every request nginx proxied to the app's upstream and logged;
//! - failed: those nginx answered with a 5xx (the upstream's own, or nginx's 502 or 504 when
//!   the upstream failed); a 499 is the client's going away, not a failure;
//! - the longest time without a successful answer while requests were arriving: from the
//!   last success (or the first request) to the next one, across each run of failures;
//! - a count per second, for a small picture of the run.
//!
//! A request nginx never logged (a keep-alive connection a reload closed as the client sent
//! on it) is not on the receipt; what it cannot see it says instead: each reload of the run
//! with the client connections open to nginx at that moment, as "at risk".

use serde::{Deserialize, Serialize};

use crate::error::Result;

use super::AccessLog;
use super::accesslog::Line;

/// The widest picture, in columns: longer runs put several seconds in a column.
const PICTURE_COLUMNS: usize = 60;

/// What the users' requests of a run came to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// Requests nginx logged in the window.
    pub requests: u64,
    /// Those it answered with a 5xx.
    pub failed: u64,
    /// The longest time without a successful answer while requests were arriving, in ms.
    pub longest_gap_ms: u64,
    /// Requests and failures in each second from the window's start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_second: Vec<[u32; 2]>,
    /// The client connections open to nginx at each reload of the run (`None`: not
    /// counted): what the log cannot see, since a request sent on an idle keep-alive
    /// connection as a reload closes it fails without a line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub at_risk: Vec<Option<u32>>,
}

impl Receipt {
    /// The receipt of the lines `log` holds from `offset`, the window having started at
    /// `started` (seconds since the epoch).
    pub fn read(log: &AccessLog, offset: u64, started: f64) -> Result<Receipt> {
        let mut tally = Tally::new(started);
        log.each_line(offset, |line| tally.add(line))?;
        Ok(tally.finish())
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        let mut line = if self.requests == 0 {
            // Nothing logged is not proof that nothing failed: say what it may mean.
            "0 requests logged (no users' requests came, or nginx does not write the app's log for its site: a server block with an access_log of its own)".to_owned()
        } else {
            format!(
                "{} requests, {} failed, longest without a successful answer {} ms",
                self.requests, self.failed, self.longest_gap_ms
            )
        };
        if !self.at_risk.is_empty() {
            let open: Vec<String> = self
                .at_risk
                .iter()
                .map(|n| n.map_or("an uncounted number of".to_owned(), |n| n.to_string()))
                .collect();
            line.push_str(&format!(
                "; at risk, beyond the log's sight: {} reload{} of nginx with {} client connections open",
                self.at_risk.len(),
                if self.at_risk.len() == 1 { "" } else { "s" },
                open.join(" and ")
            ));
        }
        line
    }

    /// The same figures without the per-second counts (for `history.jsonl`).
    pub fn figures(&self) -> Receipt {
        Receipt {
            per_second: Vec::new(),
            ..self.clone()
        }
    }

    /// Two lines of text: the requests of each second (or of each few seconds, in a long
    /// run) as bars, and under them an `x` where some failed.
    pub fn picture(&self) -> String {
        if self.per_second.is_empty() {
            return String::new();
        }
        let width = self.per_second.len().div_ceil(PICTURE_COLUMNS);
        let columns: Vec<[u32; 2]> = self
            .per_second
            .chunks(width)
            .map(|chunk| {
                chunk
                    .iter()
                    .fold([0, 0], |[r, f], [cr, cf]| [r + cr, f + cf])
            })
            .collect();
        let peak = columns.iter().map(|[r, _]| *r).max().unwrap_or(0).max(1);
        const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
        let bars: String = columns
            .iter()
            .map(|[r, _]| match r {
                0 => ' ',
                r => BARS[((*r as usize * BARS.len()).div_ceil(peak as usize) - 1).min(7)],
            })
            .collect();
        let failures: String = columns
            .iter()
            .map(|[_, f]| if *f > 0 { 'x' } else { '·' })
            .collect();
        let unit = if width == 1 {
            "second".to_owned()
        } else {
            format!("{width} seconds")
        };
        format!("requests {bars}  (a column a {unit}, peak {peak})\nfailures {failures}")
    }
}

/// The receipt being counted, line by line.
struct Tally {
    started: f64,
    receipt: Receipt,
    /// When the last success came (the first request's time before any).
    last_success: Option<f64>,
    /// Whether a failure came since the last success.
    failing_since_success: bool,
}

impl Tally {
    fn new(started: f64) -> Tally {
        Tally {
            started,
            receipt: Receipt::default(),
            last_success: None,
            failing_since_success: false,
        }
    }

    fn add(&mut self, line: &Line) {
        let failed = line.failed();
        let at = line.written().or(self.last_success).unwrap_or(self.started);
        let last_success = *self.last_success.get_or_insert(at);
        let receipt = &mut self.receipt;
        receipt.requests += 1;
        receipt.failed += u64::from(failed);
        let second = (at - self.started).max(0.0) as usize;
        if receipt.per_second.len() <= second {
            receipt.per_second.resize(second + 1, [0, 0]);
        }
        receipt.per_second[second][0] += 1;
        receipt.per_second[second][1] += u32::from(failed);
        if failed {
            self.failing_since_success = true;
        }
        if failed || self.failing_since_success {
            let gap = ((at - last_success).max(0.0) * 1000.0).round() as u64;
            receipt.longest_gap_ms = receipt.longest_gap_ms.max(gap);
        }
        if !failed {
            self.last_success = Some(at);
            self.failing_since_success = false;
        }
    }

    fn finish(self) -> Receipt {
        self.receipt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: f64, code: &str) -> String {
        format!(
            r#"{{"t":"{t:.3}","code":"{code}","addr":"127.0.0.1:21000","status":"{code}","ms":"0.002","slot":""}}"#
        )
    }

    fn receipt_of(lines: &[String], started: f64) -> Receipt {
        let dir = tempfile::tempdir().unwrap();
        let log = AccessLog::new(dir.path().join("access.log"));
        std::fs::write(log.path(), lines.join("\n") + "\n").unwrap();
        Receipt::read(&log, 0, started).unwrap()
    }

    #[test]
    fn failures_are_5xx_answers_and_a_clients_499_is_not_one() {
        let r = receipt_of(
            &[
                at(100.1, "200"),
                at(100.5, "502"),
                at(101.2, "499"),
                at(101.9, "500"),
                at(102.0, "200"),
            ],
            100.0,
        );
        assert_eq!((r.requests, r.failed), (5, 2), "{r:?}");
        assert_eq!(r.per_second, vec![[2, 1], [2, 1], [1, 0]]);
        // From the success at 100.1 to the next at 101.2 (the 499 answered), then from
        // 101.2 to 102.0 across the 500.
        assert_eq!(r.longest_gap_ms, 1100, "{r:?}");
        assert!(
            r.describe().starts_with("5 requests, 2 failed"),
            "{}",
            r.describe()
        );
    }

    #[test]
    fn an_outage_to_the_end_of_the_window_counts_to_its_last_failure() {
        let r = receipt_of(&[at(10.0, "200"), at(12.0, "502"), at(13.5, "504")], 9.0);
        assert_eq!((r.requests, r.failed, r.longest_gap_ms), (3, 2, 3500));
        // With no success at all, from the first request: the time before any request
        // arrived (the standby's start) is no outage.
        let r = receipt_of(&[at(10.5, "502"), at(11.5, "502")], 9.0);
        assert_eq!(r.longest_gap_ms, 1000);
    }

    #[test]
    fn the_picture_has_a_column_a_second_and_marks_failures() {
        let r = Receipt {
            requests: 9,
            failed: 1,
            longest_gap_ms: 0,
            per_second: vec![[4, 0], [0, 0], [4, 1], [1, 0]],
            at_risk: Vec::new(),
        };
        assert_eq!(
            r.picture(),
            "requests █ █▂  (a column a second, peak 4)\nfailures ··x·"
        );
        let long = Receipt {
            per_second: vec![[1, 0]; 150],
            ..Receipt::default()
        };
        assert!(long.picture().contains("a column a 3 seconds, peak 3"));
        assert_eq!(Receipt::default().picture(), "");
    }

    #[test]
    fn the_reloads_of_the_run_are_said_as_at_risk() {
        let r = Receipt {
            requests: 10,
            at_risk: vec![Some(96), None],
            ..Receipt::default()
        };
        assert!(
            r.describe().ends_with("; at risk, beyond the log's sight: 2 reloads of nginx with 96 and an uncounted number of client connections open"),
            "{}",
            r.describe()
        );
    }

    #[test]
    fn no_log_is_an_empty_receipt_that_does_not_claim_nothing_failed() {
        let log = AccessLog::new("/nonexistent/access.log");
        let r = Receipt::read(&log, 0, 0.0).unwrap();
        assert_eq!(r, Receipt::default());
        assert!(
            r.describe()
                .starts_with("0 requests logged (no users' requests came, or nginx does not write"),
            "{}",
            r.describe()
        );
    }
}
