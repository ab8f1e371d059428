//! Printing results: human text on stdout by default, one JSON object with `--json`, and
//! the documented exit code either way. Errors go to stderr as text, or to stdout as a JSON
//! object in `--json` mode so scripts always get one parseable object.

use std::fmt::Write as _;
use std::process::ExitCode;

use serde::Serialize;

use crate::boot::RestoreReport;
use crate::error::{EXIT_CHECK_FAILED, EXIT_OK, Error, Result, RunError};
use crate::health::HealthReport;
use crate::monitor::MonitorOutcome;
use crate::switch::SwitchReport;
use crate::validate::{CheckStatus, ValidateReport};

/// A result the binaries print.
pub trait Report: Serialize {
    /// Whether the outcome is a success (exit 0) rather than a failed check (exit 1).
    fn passed(&self) -> bool;
    /// The human-readable rendering, printed on stdout.
    fn human(&self) -> String;
}

/// Prints `result` as JSON (`json`) or text and returns the documented exit code.
pub fn finish<R: Report>(json: bool, result: Result<R>) -> ExitCode {
    match result {
        Ok(report) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&report).expect("report serializes")
                );
            } else {
                print!("{}", report.human());
            }
            ExitCode::from(if report.passed() {
                EXIT_OK
            } else {
                EXIT_CHECK_FAILED
            })
        }
        Err(e) => fail(json, &e),
    }
}

/// Prints an error (`{"error", "kind", "exit_code"}` in JSON mode, `error: ...` on stderr
/// otherwise) and returns its exit code.
pub fn fail(json: bool, e: &Error) -> ExitCode {
    fail_run(json, &RunError::from(e))
}

/// Like [`fail`], for an error a run reported.
pub fn fail_run(json: bool, e: &RunError) -> ExitCode {
    if json {
        println!(
            "{}",
            serde_json::json!({
                "error": e.message,
                "kind": e.kind,
                "exit_code": e.kind.exit_code(),
            })
        );
    } else {
        eprintln!("error: {}", e.message);
    }
    ExitCode::from(e.kind.exit_code())
}

fn seconds(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

impl Report for ValidateReport {
    fn passed(&self) -> bool {
        self.passed
    }

    fn human(&self) -> String {
        let mut out = format!(
            "validate {}: the standby slot is {}\n",
            self.app, self.standby
        );
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &self.checks {
            let mark = match c.status {
                CheckStatus::Pass => "pass",
                CheckStatus::Warn => "WARN",
                CheckStatus::Fail => "FAIL",
            };
            let _ = writeln!(out, "  {mark}  {:width$}  {}", c.name, c.detail);
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Fail)
            .count();
        if failed == 0 {
            out.push_str("all checks passed\n");
        } else {
            let _ = writeln!(out, "{failed} of {} checks failed", self.checks.len());
        }
        out
    }
}

impl Report for HealthReport {
    fn passed(&self) -> bool {
        self.healthy
    }

    fn human(&self) -> String {
        if self.healthy {
            format!(
                "healthy: {} answered healthy {} times in a row ({} attempts, {})\n",
                self.url,
                self.consecutive_healthy,
                self.attempts,
                seconds(self.elapsed_ms)
            )
        } else {
            format!(
                "unhealthy: {} did not answer healthy {} times in a row within {} ({} attempts)\n  last answer: {}\n  problem: {}\n",
                self.url,
                self.healthy_threshold,
                seconds(self.elapsed_ms),
                self.attempts,
                self.last_answer.as_deref().unwrap_or("none"),
                self.last_problem.as_deref().unwrap_or("none"),
            )
        }
    }
}

impl Report for SwitchReport {
    fn passed(&self) -> bool {
        true
    }

    fn human(&self) -> String {
        let from = self.from.map_or("nothing".to_owned(), |s| s.to_string());
        if self.dry_run {
            let mut out = format!(
                "dry run: would switch {} from {from} to {} (port {}); nothing was changed\n\n{}",
                self.app, self.to, self.port, self.rendered
            );
            if self.diff.is_empty() {
                out.push_str("\n(no change to the upstream file)\n");
            } else {
                let _ = write!(out, "\n{}", self.diff);
            }
            return out;
        }
        let mut confirmed = Vec::new();
        if self.kernel_confirmed {
            confirmed.push(
                "the kernel (the nftables rule read back, a new connection reached the slot)",
            );
        }
        if self.workers_restarted {
            confirmed.push("new nginx workers");
        }
        if self.verified_slot {
            confirmed.push("verify URL answered from the new slot");
        }
        format!(
            "switched {} from {from} to {} (port {}, version {}, {} mode) in {}; confirmed by {}\n",
            self.app,
            self.to,
            self.port,
            self.version.as_deref().unwrap_or("unknown"),
            self.mode,
            seconds(self.elapsed_ms),
            confirmed.join(" and ")
        )
    }
}

impl Report for MonitorOutcome {
    fn passed(&self) -> bool {
        self.canary
            .as_ref()
            .map_or(self.report.passed, |c| c.verdict.passed)
    }

    fn human(&self) -> String {
        let r = &self.report;
        let mut out = format!(
            "monitor {}: {} in {}\n  requests {}, failed {} ({:.2}%), p50 {} ms, p95 {} ms, p99 {} ms, longest gap without success {} ms\n",
            r.url,
            if r.passed { "passed" } else { "FAILED" },
            seconds(r.duration_ms),
            r.requests,
            r.failures,
            r.error_rate * 100.0,
            r.p50_ms,
            r.p95_ms,
            r.p99_ms,
            r.longest_gap_ms
        );
        for reason in &r.reasons {
            let _ = writeln!(out, "  {reason}");
        }
        if r.stopped_early {
            out.push_str("  stopped early: the failures already exceeded what the window allows\n");
        }
        if let Some(first) = &r.first_failure {
            let _ = writeln!(out, "  first failure: {first}");
        }
        match &self.rollback {
            Some(rb) if rb.rolled_back => {
                let _ = writeln!(
                    out,
                    "  rolled back to {}",
                    rb.to.map_or("?", |s| s.as_str())
                );
            }
            Some(rb) => {
                let _ = writeln!(
                    out,
                    "  rollback FAILED: {}",
                    rb.error.as_deref().unwrap_or("unknown error")
                );
            }
            None => {}
        }
        if let Some(c) = &self.canary {
            let (new, old) = (&c.traffic.canary, &c.traffic.stable);
            let _ = writeln!(
                out,
                "  access log: {} served {:.1}% of {} requests ({}; {}): {}{}",
                c.slot,
                c.traffic.canary_percent(),
                new.requests + old.requests,
                new.describe(c.slot),
                old.describe(c.slot.other()),
                if c.verdict.passed { "passed" } else { "FAILED" },
                if c.verdict.judged_on_traffic {
                    ""
                } else {
                    " (too few of its requests: judged on the probes)"
                }
            );
            for reason in &c.verdict.reasons {
                let _ = writeln!(out, "  {reason}");
            }
        }
        out
    }
}

impl Report for RestoreReport {
    fn passed(&self) -> bool {
        true
    }

    fn human(&self) -> String {
        format!("restore {}: {}\n", self.app, self.detail)
    }
}
