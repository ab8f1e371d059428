//! The user's commands around the switch, each a step of the [`Engine`]: the pre-switch
//! command once the standby is healthy and before any traffic reaches it (a migration, a
//! smoke test against the standby), the post-switch command once the watch has passed; and
//! the step command, a gate of the user's own (a query of their metrics) after each traffic
//! step's verdict and the watch's, told the window judged and the verdict.
//!
//! Each runs as the words it was given (no shell unless the command names one), within the
//! plan's hook timeout, with `BLUEGREEN_*` variables saying which slot, port, version and
//! image it is about; its output goes to the log, its outcome to the history.

use crate::clock::now_rfc3339;
use crate::error::Error;
use crate::exec::{CommandLine, tail};
use crate::input::{Image, Slot};
use crate::state::HistoryEvent;

use super::engine::{Engine, Failure};
use super::protocol::Phase;

/// How much of a hook's output (its end) the log keeps, in bytes.
const OUTPUT_BYTES: usize = 4000;

/// Which of the two commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hook {
    /// Before any traffic reaches the standby.
    PreSwitch,
    /// After the watch passed.
    PostSwitch,
}

impl Hook {
    fn name(self) -> &'static str {
        match self {
            Hook::PreSwitch => "pre-switch",
            Hook::PostSwitch => "post-switch",
        }
    }

    fn phase(self) -> Phase {
        match self {
            Hook::PreSwitch => Phase::PreSwitch,
            Hook::PostSwitch => Phase::PostSwitch,
        }
    }
}

impl Engine<'_> {
    /// Runs the plan's `hook` about the new version in `slot` (`previous` the slot live
    /// before it), if the plan has one; recorded in the history either way it ends.
    pub(super) fn hook(
        &mut self,
        hook: Hook,
        slot: Slot,
        previous: Option<Slot>,
    ) -> Result<(), Failure> {
        let plan = self.plan;
        let command = match hook {
            Hook::PreSwitch => plan.hooks.pre_switch.as_ref(),
            Hook::PostSwitch => plan.hooks.post_switch.as_ref(),
        };
        let Some(command) = command else {
            return Ok(());
        };
        let cmd = self.hook_command(command, hook.name(), slot, previous);
        let name = hook.name();
        let outcome = self.phase(hook.phase(), |me| {
            me.run_users_command(&cmd, name)
                .map_err(Error::CheckFailed)?;
            Ok(((), format!("the {name} command succeeded")))
        });
        let detail = match &outcome {
            Ok(()) => "succeeded".to_owned(),
            Err(f) if f.before_start => return outcome,
            Err(f) => match &f.error {
                Error::CheckFailed(why) => why.clone(),
                other => other.to_string(),
            },
        };
        let (version, _) = self.release();
        let _ = plan.store().record(&HistoryEvent {
            ts: now_rfc3339(),
            event: format!("{name}-hook"),
            app: plan.app.to_string(),
            from: previous,
            to: Some(slot),
            version: Some(version.as_str().to_owned()),
            detail: Some(history_detail(&detail)),
            receipt: None,
            pid: std::process::id(),
        });
        outcome
    }

    /// Runs the plan's step command after `judged`, if the plan has one: its output goes to
    /// the log; its failure, said without the command's text, is returned to fail the step
    /// or the watch.
    pub(super) fn step_command(&mut self, judged: &Judged) -> Result<(), String> {
        let Some(command) = self.plan.hooks.step.as_ref() else {
            return Ok(());
        };
        let cmd = self.step_command_line(command, judged);
        self.run_users_command(&cmd, "step")
    }

    /// Runs `cmd`, the user's command called `name`, within the hook timeout: the end of
    /// its output goes to the log; its failure is said without the command's text, which
    /// may hold what a log should not.
    fn run_users_command(&mut self, cmd: &CommandLine, name: &str) -> Result<(), String> {
        let out = self
            .host
            .run(cmd, self.plan.hooks.timeout)
            .map_err(|e| format!("the {name} command {}", failed(&e)))?;
        let output = tail(&format!("{}{}", out.stdout, out.stderr), OUTPUT_BYTES);
        for line in output.lines() {
            self.log(line);
        }
        Ok(())
    }

    /// The step command with the hooks' variables and those of the judgment: which
    /// (`BLUEGREEN_STEP`: `canary` or `watch`), the new slot's share of new requests
    /// (`BLUEGREEN_SHARE`, a percentage), the window judged (`BLUEGREEN_STEP_START`,
    /// `BLUEGREEN_STEP_END`, RFC 3339) and the verdict (`BLUEGREEN_VERDICT`: `passed` or
    /// `failed`).
    fn step_command_line(&self, command: &CommandLine, judged: &Judged) -> CommandLine {
        self.hook_command(command, "step", judged.slot, judged.live)
            .with_env("BLUEGREEN_STEP", judged.what)
            .with_env("BLUEGREEN_SHARE", &judged.share.to_string())
            .with_env("BLUEGREEN_STEP_START", &judged.started)
            .with_env("BLUEGREEN_STEP_END", &judged.ended)
            .with_env(
                "BLUEGREEN_VERDICT",
                if judged.passed { "passed" } else { "failed" },
            )
    }

    /// The hook's command (`name`) with the variables it is told its context by.
    fn hook_command(
        &self,
        command: &CommandLine,
        name: &str,
        slot: Slot,
        previous: Option<Slot>,
    ) -> CommandLine {
        let plan = self.plan;
        let port = plan.ports.port(slot);
        let (version, image) = self.release();
        command
            .clone()
            .with_env("BLUEGREEN_HOOK", name)
            .with_env("BLUEGREEN_APP", plan.app.as_str())
            .with_env("BLUEGREEN_SLOT", slot.as_str())
            .with_env("BLUEGREEN_PORT", &port.to_string())
            .with_env("BLUEGREEN_URL", &format!("http://127.0.0.1:{port}"))
            .with_env("BLUEGREEN_VERSION", version.as_str())
            .with_env("BLUEGREEN_IMAGE", image.as_ref().map_or("", Image::as_str))
            .with_env("BLUEGREEN_PREVIOUS_SLOT", previous.map_or("", Slot::as_str))
            .in_own_group()
    }
}

/// A judgment of the new version, as the step command is told it.
pub(super) struct Judged {
    /// `canary` for a traffic step, `watch` for the watch after the switch.
    pub(super) what: &'static str,
    /// The new version's slot.
    pub(super) slot: Slot,
    /// The slot live beside it (a step) or before it (the watch).
    pub(super) live: Option<Slot>,
    /// The new slot's share of new requests in the window, in percent.
    pub(super) share: u8,
    /// When the window began (RFC 3339).
    pub(super) started: String,
    /// When it ended (RFC 3339).
    pub(super) ended: String,
    /// The verdict of the step or the watch itself.
    pub(super) passed: bool,
}

/// How a hook's command failed, without its text: its exit status and the end of its
/// output, a timeout, or why it could not start.
fn failed(error: &Error) -> String {
    match error {
        Error::CommandFailed { status, stderr, .. } if stderr.is_empty() => {
            format!("failed ({status})")
        }
        Error::CommandFailed { status, stderr, .. } => format!("failed ({status}): {stderr}"),
        Error::CommandTimedOut { timeout, .. } => format!(
            "did not end within hook-timeout ({}) and was killed",
            humantime::format_duration(*timeout)
        ),
        Error::Spawn { source, .. } => format!("could not be started: {source}"),
        other => format!("failed: {other}"),
    }
}

/// A history line's detail for a hook: its outcome up to the first `:` (the exit status,
/// not the output, which stays in the run's log).
fn history_detail(outcome: &str) -> String {
    match outcome.split_once("):") {
        Some((status, _)) => format!("{status})"),
        None => outcome.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_said_without_the_command_and_history_keeps_only_its_status() {
        let e = Error::CommandFailed {
            argv: "migrate --password=hunter2".into(),
            status: "exit status 3".into(),
            stderr: "table locked".into(),
        };
        let said = format!("the pre-switch command {}", failed(&e));
        assert_eq!(
            said,
            "the pre-switch command failed (exit status 3): table locked"
        );
        assert!(!said.contains("hunter2"));
        assert_eq!(
            history_detail(&said),
            "the pre-switch command failed (exit status 3)"
        );
        let slow = Error::CommandTimedOut {
            argv: "x".into(),
            timeout: std::time::Duration::from_secs(300),
        };
        assert!(
            failed(&slow).contains("hook-timeout (5m)"),
            "{}",
            failed(&slow)
        );
    }
}
