//! The action's own choices among its inputs: how the image reaches the host and when
//! Slack hears about a run (the plan's choices are input types of their own).

use clap::ValueEnum;

/// How the image reaches the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageTransfer {
    /// The host pulls it from its registry.
    Registry,
    /// The runner sends its `docker save` over SSH into the host's `docker load` (see
    /// [`crate::action::image`]).
    Ssh,
}

/// When Slack hears about a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NotifyOn {
    /// Only when the deploy failed or rolled back.
    Failure,
    /// After every run.
    Always,
    /// Never.
    Never,
}
