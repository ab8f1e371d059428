//! What every host's run shares: the inputs, the credentials, the helpers, the job log,
//! the run's interrupts and clock, the image shipped over SSH and the limit on connections
//! opened at once. The orchestrator builds it; `fleet` and `host_run` read it.

use std::time::Instant;

use super::credentials::Credentials;
use super::github::JobLog;
use super::image::ImageShipment;
use super::inputs::Inputs;
use super::interrupt::Interrupts;
use super::ship::Helpers;

/// What every host's run shares.
pub(super) struct RunContext<'a> {
    pub(super) inputs: &'a Inputs,
    pub(super) credentials: &'a Credentials,
    pub(super) helpers: &'a Helpers,
    pub(super) log: &'a JobLog,
    pub(super) interrupts: &'a Interrupts,
    pub(super) started: Instant,
    /// The image, with `image-transfer: ssh` on a deploy that changes things.
    pub(super) image: Option<&'a ImageShipment>,
    /// Every SSH connection of the run (the first of each host, and one opened again after
    /// its master closed) takes one of these slots while it connects.
    pub(super) connect_slots: &'a tokio::sync::Semaphore,
}
