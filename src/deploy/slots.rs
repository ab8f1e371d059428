//! The slots as the engine handles them, methods of the [`Engine`]: their command lines,
//! starting a version afresh, stopping, and what a slot holds and runs (its containers,
//! version label, image). Every command runs through the engine's [`super::Host`].

use std::time::{Duration, Instant};

use crate::config::defaults;
use crate::error::Error;
use crate::exec::CommandLine;
use crate::input::{Image, Slot, Version};
use crate::runtime::commands::{SlotCommands, SlotSpec};
use crate::runtime::{Compose, DETECT_TIMEOUT, Listing, Pull, Runtime, RuntimeSpec};
use crate::state::{SlotRecord, parse_image_id};

use super::engine::{Engine, Failure, RUNTIME_COMMAND_TIMEOUT};

/// How long reading a slot's log or labels (or an image's ID) may take.
pub(super) const INSPECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How much longer than the stop timeout a stop command may take before it is killed.
const STOP_COMMAND_SLACK: Duration = Duration::from_secs(60);
/// How many bytes of a failed slot's log a result keeps.
const LOG_TAIL_BYTES: usize = 4000;

impl<'a> Engine<'a> {
    /// The command lines of the app's slots; the compose flavour is looked for by the first
    /// phase that needs it.
    pub(super) fn commands(&mut self) -> SlotCommands<'a> {
        let docker = CommandLine::new([defaults::DOCKER_CMD]);
        let runtime = &self.plan.runtime;
        if self.run.compose.is_none() {
            let found = (runtime.runtime == Runtime::Compose)
                .then(|| {
                    Compose::candidates(&docker)
                        .into_iter()
                        .find(|(_, probe)| self.host.run(probe, DETECT_TIMEOUT).is_ok())
                })
                .flatten()
                .map(|(compose, _)| compose);
            self.run.compose = Some(found);
        }
        SlotCommands {
            spec: runtime,
            docker,
            compose: self.run.compose.clone().flatten(),
        }
    }

    /// `slot` of this app as the runtime commands see it.
    pub(super) fn slot_spec<'v>(
        &'v self,
        slot: Slot,
        version: &'v str,
        image: Option<&'v Image>,
    ) -> SlotSpec<'v> {
        SlotSpec {
            app: &self.plan.app,
            slot,
            port: self.plan.ports.port(slot),
            image: image.map(Image::as_str),
            version,
        }
    }

    /// Starts `version` (from `image`, pulled as `pull` says) in `slot` afresh, removing
    /// whatever the slot held; relays what the start command printed and says what it
    /// started.
    pub(super) fn start_fresh(
        &mut self,
        slot: Slot,
        version: &Version,
        image: Option<&Image>,
        pull: Pull,
    ) -> Result<String, Failure> {
        let runtime = RuntimeSpec {
            pull,
            ..self.plan.runtime.clone()
        };
        let commands = SlotCommands {
            spec: &runtime,
            ..self.commands()
        };
        let spec = self.slot_spec(slot, version.as_str(), image);
        for cmd in commands.prepare(&spec, self.plan.retire.stop_timeout) {
            self.host.run(&cmd, RUNTIME_COMMAND_TIMEOUT)?;
        }
        let out = self
            .host
            .run(&commands.start(&spec), RUNTIME_COMMAND_TIMEOUT)
            .map_err(|error| Failure::of_slot(error, slot))?;
        let docker = runtime.runtime == Runtime::Docker;
        for line in out
            .stdout
            .lines()
            .chain(out.stderr.lines())
            .filter(|l| !l.trim().is_empty())
        {
            self.log(&if docker {
                start_output_line(line)
            } else {
                line.to_owned()
            });
        }
        Ok(format!(
            "started {} version {} on port {}",
            spec.name(),
            version.as_str(),
            spec.port
        ))
    }

    /// Stops a standby that will not go live, keeping the live slot as it is.
    pub(super) fn abandon_standby(&mut self, standby: Slot) {
        if let Err(e) = self.stop_slot(standby, false) {
            // A start that failed before the runtime made anything (an image it could not
            // find) leaves nothing to stop: that is no warning.
            if self.slot_has_containers(standby, Listing::All) == Some(false) {
                self.log(&format!("the failed standby {standby} left no container"));
                return;
            }
            self.log(&format!(
                "warning: could not stop the failed standby {standby}: {e}"
            ));
        }
    }

    /// Stops `slot` gracefully (and removes it when `remove`).
    /// Returns how long the stop itself (its first command) took.
    pub(super) fn stop_slot(&mut self, slot: Slot, remove: bool) -> Result<Duration, Error> {
        let commands = self.commands();
        let plan = self.plan;
        let spec = self.slot_spec(slot, plan.version.as_str(), plan.runtime.image.as_ref());
        let grace = plan.retire.stop_timeout;
        let mut stopping = None;
        for cmd in commands.stop(&spec, grace, remove) {
            let started = Instant::now();
            self.host.run(&cmd, grace + STOP_COMMAND_SLACK)?;
            stopping.get_or_insert(started.elapsed());
        }
        Ok(stopping.unwrap_or_default())
    }

    /// The last lines of `slot`'s log, when the runtime keeps one.
    pub(super) fn log_tail(&mut self, slot: Slot) -> Option<String> {
        let commands = self.commands();
        let spec = self.slot_spec(slot, self.plan.version.as_str(), None);
        let out = self
            .host
            .run(&commands.logs(&spec)?, INSPECT_TIMEOUT)
            .ok()?;
        let text = format!("{}{}", out.stdout, out.stderr);
        Some(crate::exec::tail(text.trim(), LOG_TAIL_BYTES))
    }

    /// Whether `slot`'s own container (docker) or project (compose) is running; `None`
    /// under the command runtime, or when the runtime cannot say.
    pub(super) fn slot_runs(&mut self, slot: Slot) -> Option<bool> {
        self.slot_has_containers(slot, Listing::Running)
    }

    /// Whether `slot` has containers of its own, as `listing` counts them; `None` under the
    /// command runtime, or when the runtime cannot say.
    fn slot_has_containers(&mut self, slot: Slot, listing: Listing) -> Option<bool> {
        let commands = self.commands();
        let spec = self.slot_spec(slot, "", None);
        let out = self
            .host
            .run(&commands.containers(&spec, listing)?, INSPECT_TIMEOUT)
            .ok()?;
        Some(!out.stdout.trim().is_empty())
    }

    /// Whether `slot` answers healthy from its own container: a port that answers while the
    /// slot's container does not run is held by another process, and is not trusted.
    pub(super) fn slot_answers_healthy(&mut self, slot: Slot) -> bool {
        self.answers_healthy(slot) && self.slot_runs(slot) != Some(false)
    }

    /// The version label of `slot`'s container, when the runtime has one.
    pub(super) fn running_version(&mut self, slot: Slot) -> Option<Version> {
        let commands = self.commands();
        let spec = self.slot_spec(slot, "", None);
        let out = self
            .host
            .run(&commands.version_label(&spec)?, INSPECT_TIMEOUT)
            .ok()?;
        out.stdout.trim().parse().ok()
    }

    /// Whether `slot` still holds the version `record` names, as far as the host can tell:
    /// no deploy replaced it since, and its container (docker: by its version label) or
    /// project (compose) is still there. The command runtime has nothing to look at: its
    /// start command is given the version, so it holds whatever state says.
    pub(super) fn slot_holds(&mut self, slot: Slot, record: &SlotRecord) -> bool {
        if record.replaced_by.is_some() {
            return false;
        }
        let Some(version) = record.version.as_deref() else {
            return true;
        };
        match self.plan.runtime.runtime {
            Runtime::Docker => {
                self.running_version(slot).as_ref().map(Version::as_str) == Some(version)
            }
            Runtime::Compose => self.slot_has_containers(slot, Listing::All) != Some(false),
            Runtime::Command => true,
        }
    }

    /// The content ID of the image `slot` runs: its container's (docker), else what its
    /// tag `image` names on this host now (compose). `None` under the command runtime.
    pub(super) fn slot_image_id(&mut self, slot: Slot, image: Option<&Image>) -> Option<Image> {
        let commands = self.commands();
        let spec = self.slot_spec(slot, "", None);
        let from_container = commands
            .container_image(&spec)
            .and_then(|cmd| self.host.run(&cmd, INSPECT_TIMEOUT).ok())
            .and_then(|out| parse_image_id(out.stdout.trim()).ok());
        from_container.or_else(|| self.image_id(image?))
    }

    /// The content ID of `image` on this host now, when the runtime uses images.
    pub(super) fn image_id(&mut self, image: &Image) -> Option<Image> {
        let commands = self.commands();
        let out = self
            .host
            .run(&commands.image_id(image.as_str())?, INSPECT_TIMEOUT)
            .ok()?;
        parse_image_id(out.stdout.trim()).ok()
    }
}

/// A line a slot's start printed, as the log shows it: `docker run --detach` prints the
/// new container's full ID, which says more as `container 0123456789ab`.
fn start_output_line(line: &str) -> String {
    let line = line.trim();
    if line.len() == 64 && line.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("container {}", &line[..12])
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_started_containers_id_is_named_as_one() {
        let id = "4f1c2b8e9d0a".repeat(5) + "ffff";
        assert_eq!(super::start_output_line(&id), "container 4f1c2b8e9d0a");
        assert_eq!(
            super::start_output_line(" Container shop-blue  Started"),
            "Container shop-blue  Started"
        );
    }
}
