//! The runner's side of a cancelled workflow run. GitHub's runner sends a cancelled step
//! SIGINT, then SIGTERM about 7.5 s later, then kills it 2.5 s after that. On the first
//! signal the orchestrator tells the host-side run to stop (a `cancel` line on its control
//! channel) and waits for its result; it stops waiting after [`CANCEL_GRACE`] or at the
//! second signal, whichever comes first, so the step reports before it is killed.

use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// How long after the first signal the orchestrator waits for the host's result.
pub const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// Counts the SIGINTs and SIGTERMs this process has received.
#[derive(Debug, Clone)]
pub struct Interrupts {
    count: watch::Receiver<u32>,
}

impl Interrupts {
    /// Starts counting; must be called inside the tokio runtime that runs the deploy.
    pub fn listen() -> Interrupts {
        let (tx, count) = watch::channel(0);
        if let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                    tx.send_modify(|n| *n += 1);
                }
            });
        }
        Interrupts { count }
    }

    /// How many signals have arrived.
    pub fn received(&self) -> u32 {
        *self.count.borrow()
    }

    /// Waits until at least `n` signals have arrived.
    pub async fn reached(&self, n: u32) {
        let mut count = self.count.clone();
        // The sender lives as long as the process: an error here cannot happen, and waiting
        // forever would be the right answer if it did.
        if count.wait_for(|seen| *seen >= n).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
