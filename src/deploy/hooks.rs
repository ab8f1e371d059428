//! The user's commands around the switch, each a step of the [`Engine`]: the pre-switch
//! command once the standby is healthy and before any traffic reaches it (a migration, a
//! smoke test against the standby), the post-switch command once the watch has passed.
//!
//! Each runs as the words it was given (no shell unless the command names one), within the
//! plan's hook timeout, with `BLUEGREEN_*` variables saying which slot, port, version and
//! image it is about; its output goes to the log, its outcome to the history.

use crate::exec::{CommandLine, tail};
use crate::input::Slot;
use crate::state::{HistoryEvent, now_rfc3339};

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
        let cmd = self.hook_command(command, hook, slot, previous);
        let outcome = self.phase(hook.phase(), |me| {
            let out = me.host.run(&cmd, plan.hooks.timeout)?;
            let output = tail(&format!("{}{}", out.stdout, out.stderr), OUTPUT_BYTES);
            for line in output.lines() {
                me.log(line);
            }
            Ok(((), format!("`{command}` succeeded")))
        });
        let detail = match &outcome {
            Ok(()) => format!("`{command}` succeeded"),
            Err(f) => format!("`{command}` failed: {}", f.error),
        };
        let _ = plan.store().record(&HistoryEvent {
            ts: now_rfc3339(),
            event: format!("{}-hook", hook.name()),
            app: plan.app.to_string(),
            from: previous,
            to: Some(slot),
            version: Some(
                self.acted_on
                    .as_ref()
                    .unwrap_or(&plan.version)
                    .as_str()
                    .to_owned(),
            ),
            detail: Some(detail),
            pid: std::process::id(),
        });
        outcome
    }

    /// The hook's command with the variables it is told its context by.
    fn hook_command(
        &self,
        command: &CommandLine,
        hook: Hook,
        slot: Slot,
        previous: Option<Slot>,
    ) -> CommandLine {
        let plan = self.plan;
        let port = plan.ports.port(slot);
        command
            .clone()
            .with_env("BLUEGREEN_HOOK", hook.name())
            .with_env("BLUEGREEN_APP", plan.app.as_str())
            .with_env("BLUEGREEN_SLOT", slot.as_str())
            .with_env("BLUEGREEN_PORT", &port.to_string())
            .with_env("BLUEGREEN_URL", &format!("http://127.0.0.1:{port}"))
            .with_env(
                "BLUEGREEN_VERSION",
                self.acted_on.as_ref().unwrap_or(&plan.version).as_str(),
            )
            .with_env(
                "BLUEGREEN_IMAGE",
                plan.runtime.image.as_ref().map_or("", |i| i.as_str()),
            )
            .with_env("BLUEGREEN_PREVIOUS_SLOT", previous.map_or("", Slot::as_str))
    }
}
