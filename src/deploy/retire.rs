//! What a run does after its result is out, still holding the lock: retire the old slot
//! (drain, then stop, keep or remove it), remove the app's old images (`cleanup.rs`),
//! remove an nftables table that an earlier switch mode left behind (reload mode), and put
//! the boot path of the nftables mode in place. Its
//! outcome goes to history.jsonl, where `command: status` shows it.

use std::path::Path;
use std::time::Duration;

use crate::boot::BootPath;
use crate::clock::now_rfc3339;
use crate::exec::CommandLine;
use crate::input::{Slot, SwitchMode};
use crate::runtime::Runtime;
use crate::state::{HistoryEvent, SlotRecord};

use super::engine::Engine;
use super::plan_parts::Retire;
use super::protocol::Phase;

/// How long an `nft` or `systemctl` command after the result may take.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

impl Engine<'_> {
    /// What the retire of `old` will do, in words, for the result.
    pub(super) fn retire_plan(&self, old: Slot) -> String {
        let retire = &self.plan.retire;
        let drain = humantime::format_duration(retire.drain);
        match retire.old_slot {
            Retire::Keep => format!("{old} keeps running for an instant rollback"),
            Retire::Stop => format!("{old} is stopped after {drain} of draining"),
            Retire::Remove => format!("{old} is stopped and removed after {drain} of draining"),
        }
    }

    /// Retires `old` and tidies up after a good deploy; recorded in the history. A failure
    /// is a warning: the deploy itself succeeded.
    pub(super) fn retire(&mut self, old: Slot) {
        let plan = self.plan;
        let retire = &plan.retire;
        let record = plan
            .store()
            .load(&plan.app, plan.switch.upstream_file.as_path(), plan.ports)
            .map(|loaded| loaded.state.slots.get(old).clone())
            .unwrap_or_default();
        let version = record.version.as_deref().unwrap_or("its version");
        let outcome = self.phase(Phase::Retire, |me| {
            let mut done = Vec::new();
            if retire.old_slot == Retire::Keep {
                done.push(format!(
                    "kept {old} ({version}) running: a rollback switches to it at once"
                ));
            } else {
                me.host.pause(retire.drain);
                let remove = retire.old_slot == Retire::Remove;
                let took = me.stop_slot(old, remove)?;
                let verb = if remove {
                    "stopped and removed"
                } else {
                    "stopped"
                };
                let mut line = format!(
                    "{verb} {old} ({version}) after {} of draining; the stop took {:.1}s",
                    humantime::format_duration(retire.drain),
                    took.as_secs_f64()
                );
                if took >= retire.stop_timeout {
                    line.push_str(&format!(
                        ": it did not exit within stop-timeout ({}) and was killed",
                        humantime::format_duration(retire.stop_timeout)
                    ));
                }
                done.push(line);
                done.push(me.rollback_reach(old, &record, remove));
            }
            done.extend(me.clean_images());
            done.extend(me.tidy_switch());
            Ok(((), done.join("; ")))
        });
        let detail = match outcome {
            Ok(()) => self.run.result.phases.last().map(|p| p.detail.clone()),
            Err(f) => {
                self.run.result.failed_phase = None;
                let w = format!("retire of {old} failed: {}", f.error);
                self.log(&format!("warning: {w}"));
                self.run.result.warnings.push(w.clone());
                Some(w)
            }
        };
        let _ = plan.store().record(&HistoryEvent {
            ts: now_rfc3339(),
            event: "retire".into(),
            app: plan.app.to_string(),
            from: Some(old),
            to: None,
            version: None,
            detail,
            receipt: None,
            pid: std::process::id(),
        });
    }

    /// What a rollback to the retired `old` will do, in words.
    fn rollback_reach(&self, old: Slot, record: &SlotRecord, removed: bool) -> String {
        let version = record.version.as_deref().unwrap_or("its version");
        match (self.plan.runtime.runtime, removed) {
            (Runtime::Command, _) => {
                format!("a rollback runs the deploy command for {version} in {old} again")
            }
            (_, false) => format!("a rollback starts {old} again"),
            (_, true) => match record.image_id.as_deref().or(record.image.as_deref()) {
                Some(image) => format!(
                    "a rollback re-creates {version} from image {image} while this host keeps it"
                ),
                None => format!("a rollback cannot re-create {version}: no image is recorded"),
            },
        }
    }

    /// After the switch: in reload mode, removes a table left by nftables mode (nginx's old
    /// workers, which may have used it, are gone by now); in nftables mode, installs the boot
    /// path. Says what it did; problems are said as warnings.
    fn tidy_switch(&mut self) -> Vec<String> {
        let app = &self.plan.app;
        match self.switch.mode {
            SwitchMode::Nftables => self.install_boot_path(),
            _ => {
                let stale = self.switch.nft_of(app);
                let listed = self.host.run(&stale.list_command(), CLEANUP_TIMEOUT);
                if !listed.is_ok_and(|out| stale.target_in(&out.stdout).is_some()) {
                    return Vec::new();
                }
                vec![
                    match self.host.run(&stale.remove_command(), CLEANUP_TIMEOUT) {
                        Ok(_) => format!("removed table {} left by the nftables mode", stale.table),
                        Err(e) => format!("warning: could not remove table {}: {e}", stale.table),
                    },
                ]
            }
        }
    }

    /// This app's boot path.
    pub(super) fn boot_path(&self) -> BootPath {
        BootPath {
            app: self.plan.app.clone(),
            state_dir: self.plan.state_dir.as_path().to_path_buf(),
            unit_dir: self.plan.systemd_unit_dir.as_path().to_path_buf(),
            helper_dir: self.plan.boot_helper_dir.as_path().to_path_buf(),
        }
    }

    /// Installs the boot path of the nftables mode (see [`crate::boot`]); returns what
    /// changed, and a warning line when it could not be installed.
    pub(super) fn install_boot_path(&mut self) -> Vec<String> {
        let boot = self.boot_path();
        let installed = std::env::current_exe()
            .map_err(|e| crate::error::Error::io("find", "this program", e))
            .and_then(|exe| boot.install(&exe));
        match installed {
            Ok(changed) if changed.is_empty() => Vec::new(),
            Ok(mut changed) => {
                if Path::new("/run/systemd/system").exists() {
                    let reload = CommandLine::new(["systemctl", "daemon-reload"]);
                    if let Err(e) = self.host.run(&reload, CLEANUP_TIMEOUT) {
                        changed.push(format!("warning: systemctl daemon-reload failed: {e}"));
                    }
                }
                changed
            }
            Err(e) => vec![format!(
                "warning: the boot path is not installed ({e}); after a reboot, run `{}`",
                boot.restore_command()
            )],
        }
    }
}
