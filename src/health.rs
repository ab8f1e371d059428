//! Health checking: polls a URL until it answers healthy enough times in a row, or a time
//! budget runs out.
//!
//! An answer is healthy when its status is accepted (2xx by default) and, when the body is
//! JSON with a string `status` field, that value is accepted too (healthy, ok, up, pass;
//! `degraded` only when asked). Polling backs off while the target is unhealthy and checks
//! again quickly after a healthy answer, so a ready app is confirmed fast.

use crate::cancel::Cancel;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::http::{Probe, Prober};
use crate::input::{HttpUrl, StatusSet};
use crate::progress::Progress;

/// In plain output, the longest time between two progress lines while the answer stays
/// the same.
const PLAIN_LINE_EVERY: Duration = Duration::from_secs(1);

/// The longest time the last attempt before the deadline is given: it starts this long
/// (or the request timeout, if shorter) before the deadline, so that no attempt is ever
/// made with no time to answer.
const LAST_ATTEMPT_BUDGET: Duration = Duration::from_millis(500);

/// Body `status` values accepted as healthy.
const HEALTHY_BODY_STATUSES: [&str; 4] = ["healthy", "ok", "up", "pass"];

/// What counts as a healthy answer.
#[derive(Debug, Clone)]
pub struct HealthCriteria {
    statuses: StatusSet,
    allow_degraded: bool,
}

impl HealthCriteria {
    /// Accept HTTP statuses in `statuses`; accept a body status of `degraded` when
    /// `allow_degraded`.
    pub fn new(statuses: StatusSet, allow_degraded: bool) -> Self {
        HealthCriteria {
            statuses,
            allow_degraded,
        }
    }

    /// `Ok(())` when `probe` is healthy, else why not.
    pub fn judge(&self, probe: &Probe) -> Result<(), String> {
        let Probe::Answered { status, .. } = probe else {
            return Err(probe.describe());
        };
        if !self.statuses.contains(*status) {
            return Err(format!("status not accepted: {}", probe.describe()));
        }
        match probe.json_str("status") {
            None => Ok(()),
            Some(s) => {
                let s = s.to_ascii_lowercase();
                if HEALTHY_BODY_STATUSES.contains(&s.as_str())
                    || (self.allow_degraded && s == "degraded")
                {
                    Ok(())
                } else {
                    Err(format!("body reports status {s:?}: {}", probe.describe()))
                }
            }
        }
    }
}

/// The wait before the next poll: starts at `base`, doubles after each unhealthy answer up
/// to `max`, and drops back to `base` after a healthy one.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// A schedule starting at `base`, capped at `max` (at least `base`).
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max: max.max(base),
            current: base,
        }
    }

    /// The wait after an answer that was healthy or not.
    pub fn next_wait(&mut self, healthy: bool) -> Duration {
        if healthy {
            self.current = self.base;
            return self.base;
        }
        let wait = self.current;
        self.current = (self.current * 2).min(self.max);
        wait
    }
}

/// Settings of one health check run.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// The URL polled.
    pub url: HttpUrl,
    /// Total time budget.
    pub timeout: Duration,
    /// Consecutive healthy answers required.
    pub healthy_threshold: u32,
    /// First wait between polls.
    pub interval: Duration,
    /// Longest wait between polls.
    pub max_interval: Duration,
    /// Time budget of one request.
    pub request_timeout: Duration,
    /// What counts as healthy.
    pub criteria: HealthCriteria,
    /// Raised when the run that polls should stop polling.
    pub cancel: Cancel,
}

/// The outcome of a health check run.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// Whether the threshold was reached in time.
    pub healthy: bool,
    /// The URL polled.
    pub url: String,
    /// Requests made.
    pub attempts: u32,
    /// Healthy answers in a row at the end.
    pub consecutive_healthy: u32,
    /// The threshold that had to be reached.
    pub healthy_threshold: u32,
    /// Time from start to the verdict.
    pub elapsed_ms: u64,
    /// Time from start to the first healthy answer, if there was one.
    pub first_healthy_ms: Option<u64>,
    /// The last answer (status line and body excerpt) or connection error.
    pub last_answer: Option<String>,
    /// Why the last answer was not healthy, if it was not.
    pub last_problem: Option<String>,
}

impl HealthCheck {
    /// Polls until healthy or out of time, reporting progress on stderr.
    pub fn run(&self, progress: &Progress) -> HealthReport {
        let prober = Prober::new(false);
        let started = Instant::now();
        let deadline = started + self.timeout;
        let mut backoff = Backoff::new(self.interval, self.max_interval);
        let mut report = HealthReport {
            healthy: false,
            url: self.url.to_string(),
            attempts: 0,
            consecutive_healthy: 0,
            healthy_threshold: self.healthy_threshold,
            elapsed_ms: 0,
            first_healthy_ms: None,
            last_answer: None,
            last_problem: None,
        };
        let mut last_said: Option<(bool, Option<String>)> = None;
        let mut next_plain_line = Duration::ZERO;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let probe = prober.get(&self.url, self.request_timeout.min(remaining));
            report.attempts += 1;
            let verdict = self.criteria.judge(&probe);
            report.last_answer = Some(probe.describe());
            report.last_problem = verdict.as_ref().err().cloned();
            if verdict.is_ok() {
                report.consecutive_healthy += 1;
                report
                    .first_healthy_ms
                    .get_or_insert(started.elapsed().as_millis() as u64);
            } else {
                report.consecutive_healthy = 0;
            }
            let elapsed = started.elapsed();
            let line = format!(
                "attempt {}: {} ({}/{} healthy in a row, {:.1}s)",
                report.attempts,
                match &verdict {
                    Ok(()) => format!("healthy, {}", probe.describe()),
                    Err(why) => format!("unhealthy, {why}"),
                },
                report.consecutive_healthy,
                self.healthy_threshold,
                elapsed.as_secs_f64()
            );
            if progress.is_plain() {
                // A line for the first answer and every change of answer, else one a
                // second: a fast poll must not flood a log.
                let answer = (verdict.is_ok(), report.last_problem.clone());
                if last_said.as_ref() != Some(&answer) || elapsed >= next_plain_line {
                    progress.line(&line);
                    last_said = Some(answer);
                    next_plain_line = elapsed + PLAIN_LINE_EVERY;
                }
            } else {
                progress.update(elapsed.as_millis() as u64, &line);
            }
            if report.consecutive_healthy >= self.healthy_threshold {
                report.healthy = true;
                break;
            }
            if let Some(reason) = self.cancel.requested() {
                report.last_problem = Some(reason.describe().to_owned());
                break;
            }
            let wait = backoff.next_wait(verdict.is_ok());
            let now = Instant::now();
            let last_start = deadline
                .checked_sub(self.request_timeout.min(LAST_ATTEMPT_BUDGET))
                .unwrap_or(deadline);
            if now + wait >= last_start {
                // No time for another full wait: make one last attempt, with time left to
                // answer, only if it could still complete the threshold.
                if now >= last_start || report.consecutive_healthy + 1 < self.healthy_threshold {
                    break;
                }
                std::thread::sleep(last_start - now);
                continue;
            }
            std::thread::sleep(wait);
        }
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16, body: &str) -> Probe {
        Probe::Answered {
            status,
            body: body.into(),
            slot_header: None,
            elapsed_ms: 1,
        }
    }

    #[test]
    fn judge_status_and_body() {
        let c = HealthCriteria::new(StatusSet::default(), false);
        assert!(c.judge(&answered(200, "OK")).is_ok());
        assert!(c.judge(&answered(204, "")).is_ok());
        assert!(c.judge(&answered(200, r#"{"status":"UP"}"#)).is_ok());
        assert!(
            c.judge(&answered(200, r#"{"status":200}"#)).is_ok(),
            "non-string status ignored"
        );
        assert!(c.judge(&answered(302, "")).is_err());
        assert!(c.judge(&answered(503, r#"{"status":"healthy"}"#)).is_err());
        let why = c
            .judge(&answered(200, r#"{"status":"unhealthy"}"#))
            .unwrap_err();
        assert!(why.contains("unhealthy"), "{why}");
        assert!(c.judge(&answered(200, r#"{"status":"degraded"}"#)).is_err());
        let lenient = HealthCriteria::new(StatusSet::default(), true);
        assert!(
            lenient
                .judge(&answered(200, r#"{"status":"degraded"}"#))
                .is_ok()
        );
        let failed = Probe::Failed {
            error: "connection failed: refused".into(),
            elapsed_ms: 0,
        };
        assert_eq!(c.judge(&failed).unwrap_err(), "connection failed: refused");
    }

    #[test]
    fn a_fast_poll_says_each_change_and_otherwise_one_line_a_second() {
        use std::io::{Read, Write};
        // Answers 503 for 600 ms, then 200.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let started = Instant::now();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf);
                let status = if started.elapsed() < Duration::from_millis(600) {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        let lines = std::sync::Mutex::new(Vec::new());
        let sink = |line: &str| lines.lock().unwrap().push(line.to_owned());
        let report = HealthCheck {
            url: format!("http://127.0.0.1:{port}/health").parse().unwrap(),
            timeout: Duration::from_secs(5),
            healthy_threshold: 2,
            interval: Duration::from_millis(10),
            max_interval: Duration::from_millis(10),
            request_timeout: Duration::from_secs(1),
            criteria: HealthCriteria::new(StatusSet::default(), false),
            cancel: Cancel::new(),
        }
        .run(&Progress::lines(&sink));
        assert!(report.healthy);
        assert!(report.attempts > 20, "{}", report.attempts);
        let lines = lines.into_inner().unwrap();
        // The first 503 and the first 200, and at most one line a second besides, for
        // about thirty attempts.
        assert!((2..=4).contains(&lines.len()), "{lines:#?}");
        assert!(
            lines[0].contains("unhealthy") && lines.iter().any(|l| l.contains("healthy, HTTP 200"))
        );
    }

    #[test]
    fn a_port_that_refuses_until_the_deadline_is_reported_as_refusing_not_as_a_zero_timeout() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let report = HealthCheck {
            url: format!("http://127.0.0.1:{port}/health").parse().unwrap(),
            timeout: Duration::from_millis(1500),
            healthy_threshold: 1,
            interval: Duration::from_millis(50),
            max_interval: Duration::from_millis(400),
            request_timeout: Duration::from_secs(2),
            criteria: HealthCriteria::new(StatusSet::default(), false),
            cancel: Cancel::new(),
        }
        .run(&Progress::lines(&|_: &str| {}));
        assert!(!report.healthy);
        assert!(report.attempts >= 3, "{report:?}");
        let last = report.last_answer.clone().unwrap_or_default();
        assert!(last.contains("refused"), "{report:?}");
        assert!(!last.contains("within 0s"), "{report:?}");
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets_on_health() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(200), ms(2000));
        let waits: Vec<_> = (0..6).map(|_| b.next_wait(false)).collect();
        assert_eq!(
            waits,
            [ms(200), ms(400), ms(800), ms(1600), ms(2000), ms(2000)]
        );
        assert_eq!(b.next_wait(true), ms(200));
        assert_eq!(b.next_wait(false), ms(200));
        assert_eq!(b.next_wait(false), ms(400));
        let mut capped_below_base = Backoff::new(ms(500), ms(100));
        assert_eq!(capped_below_base.next_wait(false), ms(500));
        assert_eq!(capped_below_base.next_wait(false), ms(500));
    }
}
