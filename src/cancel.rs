//! A request to stop a run early, shared between whoever asks (the runner over the control
//! channel, a signal, a dropped connection) and the engine, which looks at it between
//! phases and while it waits.
//!
//! What stopping means is the engine's business: before traffic has moved, the run abandons
//! its standby, releases the lock and reports `cancelled`; once traffic has moved, the run
//! finishes its watch (and the rollback it may lead to) as configured, because stopping
//! there would leave an unwatched release live.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// Why a run was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// The runner asked (the workflow run was cancelled).
    Runner,
    /// The runner's connection closed before the run had reported its result.
    RunnerGone,
    /// This process got SIGINT, SIGTERM or SIGHUP.
    Signal,
}

impl CancelReason {
    /// Says why, for the log and the result.
    pub fn describe(self) -> &'static str {
        match self {
            CancelReason::Runner => "cancelled by the runner",
            CancelReason::RunnerGone => "cancelled: the runner's connection closed",
            CancelReason::Signal => "cancelled by a signal",
        }
    }

    fn code(self) -> u8 {
        match self {
            CancelReason::Runner => 1,
            CancelReason::RunnerGone => 2,
            CancelReason::Signal => 3,
        }
    }

    fn from_code(code: u8) -> Option<CancelReason> {
        match code {
            1 => Some(CancelReason::Runner),
            2 => Some(CancelReason::RunnerGone),
            3 => Some(CancelReason::Signal),
            _ => None,
        }
    }
}

/// A cancellation flag; clones share it. The first reason given sticks.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicU8>);

impl Cancel {
    /// A flag nobody has raised.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Asks the run to stop, for `reason` (ignored when it was already asked).
    pub fn request(&self, reason: CancelReason) {
        let _ = self
            .0
            .compare_exchange(0, reason.code(), Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Why the run was asked to stop, if it was.
    pub fn requested(&self) -> Option<CancelReason> {
        CancelReason::from_code(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_sticks_and_clones_share_it() {
        let cancel = Cancel::new();
        let seen_elsewhere = cancel.clone();
        assert_eq!(seen_elsewhere.requested(), None);
        cancel.request(CancelReason::Runner);
        cancel.request(CancelReason::RunnerGone);
        assert_eq!(seen_elsewhere.requested(), Some(CancelReason::Runner));
    }
}
