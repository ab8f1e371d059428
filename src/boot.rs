//! What brings the nftables switch back after a reboot. The DNAT rule lives only in the
//! kernel, and `state.json` is the truth it is derived from: `bluegreen restore` re-creates
//! the rule from state, and a systemd unit installed by the first nftables deploy runs it at
//! boot, before nginx. The unit runs a copy of the helper kept in the state directory, so a
//! boot never depends on the cache a deploy ships helpers to.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::exec::CommandLine;
use crate::fsutil::{read_optional, write_atomic};
use crate::input::AppName;
use crate::nft::{NftSwitch, Route};
use crate::state::State;
use crate::switch::SwitchMode;

/// Where the boot path of one app lives.
#[derive(Debug, Clone)]
pub struct BootPath {
    /// The app.
    pub app: AppName,
    /// Its state directory.
    pub state_dir: PathBuf,
    /// The systemd unit directory (`/etc/systemd/system`).
    pub unit_dir: PathBuf,
}

impl BootPath {
    /// The unit's file name: `bluegreen-restore-APP.service`.
    pub fn unit_name(&self) -> String {
        format!("bluegreen-restore-{}.service", self.app)
    }

    /// The unit file.
    pub fn unit_path(&self) -> PathBuf {
        self.unit_dir.join(self.unit_name())
    }

    /// The link that enables the unit at boot.
    pub fn enabled_path(&self) -> PathBuf {
        self.unit_dir
            .join("multi-user.target.wants")
            .join(self.unit_name())
    }

    /// The copy of the helper the unit runs.
    pub fn helper_path(&self) -> PathBuf {
        self.state_dir.join("bin").join("bluegreen")
    }

    /// The command the unit runs at boot.
    pub fn restore_command(&self) -> CommandLine {
        CommandLine::new([
            self.helper_path().display().to_string(),
            "restore".into(),
            "--state-dir".into(),
            self.state_dir.display().to_string(),
        ])
    }

    /// The unit's text: a oneshot run of the restore command, after the network and the
    /// system's own nftables rules, before nginx.
    pub fn unit_text(&self) -> String {
        let exec: Vec<String> = self
            .restore_command()
            .argv()
            .iter()
            .map(|word| systemd_quote(word))
            .collect();
        format!(
            "# Installed by bluegreen: re-creates the nftables switch of {app} at boot.\n\
             [Unit]\n\
             Description=bluegreen: restore the nftables switch of {app}\n\
             After=network-pre.target nftables.service\n\
             Before=nginx.service\n\
             \n\
             [Service]\n\
             Type=oneshot\n\
             RemainAfterExit=yes\n\
             ExecStart={}\n\
             \n\
             [Install]\n\
             WantedBy=multi-user.target\n",
            exec.join(" "),
            app = self.app
        )
    }

    /// What is missing for a reboot to bring the rule back, if anything.
    pub fn missing(&self) -> Option<String> {
        let installed = read_optional(&self.unit_path()).ok().flatten();
        if installed.as_deref() != Some(self.unit_text().as_str()) {
            return Some(format!(
                "{} is missing or outdated",
                self.unit_path().display()
            ));
        }
        if std::fs::symlink_metadata(self.enabled_path()).is_err() {
            return Some(format!("{} is not enabled", self.unit_name()));
        }
        if !self.helper_path().is_file() {
            return Some(format!("{} is missing", self.helper_path().display()));
        }
        None
    }

    /// Installs or updates the helper copy (from `helper`, this very binary), the unit, and
    /// the link that enables it. Returns what changed (empty: it was all in place).
    pub fn install(&self, helper: &Path) -> Result<Vec<String>> {
        let mut changed = Vec::new();
        let bytes = std::fs::read(helper).map_err(|e| Error::io("read", helper, e))?;
        let copy = self.helper_path();
        if std::fs::read(&copy).ok().as_deref() != Some(bytes.as_slice()) {
            create_dir(copy.parent().expect("the helper copy has a directory"))?;
            write_atomic(&copy, &bytes, 0o755)?;
            changed.push(format!("copied the helper to {}", copy.display()));
        }
        let unit = self.unit_text();
        if read_optional(&self.unit_path())?.as_deref() != Some(unit.as_str()) {
            create_dir(&self.unit_dir)?;
            write_atomic(&self.unit_path(), unit.as_bytes(), 0o644)?;
            changed.push(format!("wrote {}", self.unit_path().display()));
        }
        let link = self.enabled_path();
        if std::fs::symlink_metadata(&link).is_err() {
            create_dir(link.parent().expect("the link has a directory"))?;
            std::os::unix::fs::symlink(self.unit_path(), &link)
                .map_err(|e| Error::io("enable (symlink)", &link, e))?;
            changed.push(format!("enabled {} at boot", self.unit_name()));
        }
        Ok(changed)
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))
}

/// A word quoted for a systemd `ExecStart=` line: in double quotes, with `\`, `"`, `%` and
/// `$` escaped so systemd takes it literally.
fn systemd_quote(word: &str) -> String {
    let escaped = word
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    format!("\"{escaped}\"")
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The app, as state names it.
    pub app: String,
    /// The switch mode state records.
    pub mode: Option<SwitchMode>,
    /// What was done, in words.
    pub detail: String,
}

/// Re-creates the kernel state of the switch from `state.json` in `state_dir`: in nftables
/// mode, the rule from the service port to the live slot, through `nft`. Reload mode keeps
/// its route in nginx's include, a file, so nothing is to be done.
pub fn restore(state_dir: &Path, nft: &CommandLine) -> Result<RestoreReport> {
    let path = state_dir.join("state.json");
    let text = read_optional(&path)?.ok_or_else(|| {
        Error::CheckFailed(format!(
            "{} does not exist: nothing to restore",
            path.display()
        ))
    })?;
    let app: AppName = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("app")?.as_str()?.parse().ok())
        .ok_or_else(|| Error::CheckFailed(format!("{} names no valid app", path.display())))?;
    let state = State::parse(&text, &app)
        .map_err(|why| Error::CheckFailed(format!("{} is unreadable: {why}", path.display())))?;
    let report = |detail: String| RestoreReport {
        app: app.to_string(),
        mode: state.switch_mode,
        detail,
    };
    if state.switch_mode != Some(SwitchMode::Nftables) {
        return Ok(report(
            "reload mode: the route is in nginx's include; nothing to restore".into(),
        ));
    }
    let (Some(active), Some(service_port)) = (state.active, state.service_port) else {
        return Err(Error::CheckFailed(
            "state records nftables mode but no live slot or service port".into(),
        ));
    };
    let port = state.slots.get(active).port.ok_or_else(|| {
        Error::CheckFailed(format!("state records no port for the live slot {active}"))
    })?;
    NftSwitch::new(&app, service_port, nft.clone()).apply(&Route::to(port), state_dir)?;
    let mut detail = format!("service port {service_port} leads to {active} (port {port}) again");
    if let Some(canary) = &state.canary {
        detail.push_str(&format!(
            "; the canary in {} ({}) is not restored: it gets no traffic until `command: promote` (or `abort` ends it)",
            canary.slot, canary.share
        ));
    }
    Ok(report(detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot(dir: &Path) -> BootPath {
        BootPath {
            app: "shop".parse().unwrap(),
            state_dir: dir.join("state dir$1"),
            unit_dir: dir.join("systemd"),
        }
    }

    #[test]
    fn the_unit_runs_the_restore_of_this_app_before_nginx() {
        let dir = Path::new("/srv");
        let text = boot(dir).unit_text();
        assert!(
            text.contains(
                "ExecStart=\"/srv/state dir$$1/bin/bluegreen\" \"restore\" \"--state-dir\" \"/srv/state dir$$1\"\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("Before=nginx.service") && text.contains("WantedBy=multi-user.target")
        );
        assert_eq!(systemd_quote("a\"b%c\\"), "\"a\\\"b%%c\\\\\"");
    }

    #[test]
    fn install_puts_everything_in_place_once() {
        let dir = tempfile::tempdir().unwrap();
        let b = boot(dir.path());
        assert!(b.missing().is_some());
        let helper = dir.path().join("helper");
        std::fs::write(&helper, b"#!/bin/sh\n").unwrap();
        assert_eq!(b.install(&helper).unwrap().len(), 3);
        assert_eq!(b.missing(), None);
        assert!(
            b.install(&helper).unwrap().is_empty(),
            "a second install changes nothing"
        );
        assert_eq!(std::fs::read_link(b.enabled_path()).unwrap(), b.unit_path());
    }

    #[test]
    fn restore_refuses_a_missing_state_and_does_nothing_in_reload_mode() {
        let dir = tempfile::tempdir().unwrap();
        let nft = CommandLine::new(["false"]);
        assert!(restore(dir.path(), &nft).is_err());
        let ports = crate::input::SlotPorts::new(3001, 3002).unwrap();
        let state = State::new(&"shop".parse().unwrap())
            .after_switch(crate::input::Slot::Blue, ports, Some("v1"), None, "t")
            .switched_by(SwitchMode::Reload, 3000);
        std::fs::write(
            dir.path().join("state.json"),
            serde_json::to_string(&state).unwrap(),
        )
        .unwrap();
        let r = restore(dir.path(), &nft).unwrap();
        assert!(r.detail.contains("nothing to restore"), "{}", r.detail);
    }
}
