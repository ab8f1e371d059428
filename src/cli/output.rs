//! Printing results: human text on stdout by default, one JSON object with `--json`, and
//! the documented exit code either way. Errors go to stderr as text, or to stdout as a JSON
//! object in `--json` mode so scripts always get one parseable object.

use std::fmt::Write as _;
use std::process::ExitCode;

use serde::Serialize;

use crate::boot::RestoreReport;
use crate::error::{EXIT_CHECK_FAILED, EXIT_OK, Error, Result, RunError};
use crate::health::HealthReport;
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

pub(crate) fn seconds(ms: u64) -> String {
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

impl Report for RestoreReport {
    fn passed(&self) -> bool {
        true
    }

    fn human(&self) -> String {
        format!("restore {}: {}\n", self.app, self.detail)
    }
}
