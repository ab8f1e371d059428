//! Turning the host-side run's event stream into the job log: a log group per phase, the
//! host's lines relayed inside `::stop-commands::` (a host cannot issue workflow commands),
//! an error annotation per failed phase, and the result collected at the end.

use crate::deploy::{DeployResult, Event, Phase};

use super::github::JobLog;

/// Turns the host's event stream into log groups and collects the result.
pub(super) struct Relay<'a> {
    log: &'a JobLog,
    result: Option<DeployResult>,
    open: Option<Phase>,
}

impl<'a> Relay<'a> {
    pub(super) fn new(log: &'a JobLog) -> Self {
        Relay {
            log,
            result: None,
            open: None,
        }
    }

    /// Relays one line of the host's output; false once the result is in (what the host
    /// does after it, the retire, is its own business).
    pub(super) fn line(&mut self, line: &str) -> bool {
        match serde_json::from_str::<Event>(line) {
            Ok(Event::PhaseStart { phase }) => {
                self.log.group(phase.as_str());
                self.open = Some(phase);
            }
            Ok(Event::Log { line }) => self.log.relay(&[line]),
            Ok(Event::PhaseEnd(record)) => {
                self.log.relay(&[format!(
                    "{} {} ({} ms): {}",
                    if record.ok { "ok" } else { "FAILED" },
                    record.phase.as_str(),
                    record.ms,
                    record.detail
                )]);
                self.log.end_group();
                if !record.ok {
                    self.log.error(&format!(
                        "{} failed: {}",
                        record.phase.as_str(),
                        record.detail
                    ));
                }
                self.open = None;
            }
            Ok(Event::Result(result)) => {
                // A run refused outside any phase (an abort with no canary, a rollback
                // during one, a status that found problems) says so like a failed phase.
                if let (None, Some(error)) = (&result.failed_phase, &result.error) {
                    self.log.relay(&[format!("FAILED: {}", error.message)]);
                    self.log.error(&error.message);
                }
                for w in &result.warnings {
                    self.log.warning(w);
                }
                if let Some(tail) = &result.log_tail {
                    self.log.group("log of the failed slot");
                    self.log
                        .relay(&tail.lines().map(str::to_owned).collect::<Vec<_>>());
                    self.log.end_group();
                }
                if let Some(diff) = result.upstream_diff.as_ref().filter(|d| !d.is_empty()) {
                    self.log.group("upstream change (dry run)");
                    self.log
                        .relay(&diff.lines().map(str::to_owned).collect::<Vec<_>>());
                    self.log.end_group();
                }
                if let Some(retire) = &result.retire {
                    self.log.info(&format!(
                        "retire: {retire}, on the host after this report (its outcome goes to history.jsonl; see command: status)"
                    ));
                }
                self.result = Some(*result);
            }
            // Anything else the host printed is shown, never interpreted.
            Err(_) => self.log.relay(&[line.to_owned()]),
        }
        self.result.is_none()
    }

    /// The result, or the phase that was running when the stream ended without one (the
    /// caller says so, with what it knows of how the stream ended).
    pub(super) fn finish(&mut self) -> Result<DeployResult, Option<Phase>> {
        let open = self.open.take();
        if open.is_some() {
            self.log.end_group();
        }
        self.result.take().ok_or(open)
    }
}
