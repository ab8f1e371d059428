//! What brings the nftables switch back after a reboot. The DNAT rule lives only in the
//! kernel, and `state.json` is the truth it is derived from: `bluegreen restore` re-creates
//! the rule from state, and a systemd unit installed by the first nftables deploy (or by
//! `setup`) runs it at boot, before nginx.
//!
//! The unit runs as root, so everything it runs or reads is root's or checked: the helper is
//! a copy in a root-owned directory (`boot-helper-dir`, `/usr/local/lib/bluegreen`) that
//! only a run as root installs, the app is bound in `ExecStart` (`--app`), and `restore`
//! refuses a state directory or `state.json` that someone other than its owner could change,
//! or that names another app. The ruleset goes to `nft` on its stdin, never through a file.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::exec::CommandLine;
use crate::fsutil::{read_optional, write_atomic};
use crate::input::AppName;

mod restore;

pub use restore::{RestoreReport, restore};

/// The helper's file name in the boot helper directory.
const HELPER_NAME: &str = "bluegreen";

/// Where the boot path of one app lives.
#[derive(Debug, Clone)]
pub struct BootPath {
    /// The app.
    pub app: AppName,
    /// Its state directory.
    pub state_dir: PathBuf,
    /// The systemd unit directory (`/etc/systemd/system`).
    pub unit_dir: PathBuf,
    /// The root-owned directory that holds the copy of the helper the unit runs
    /// (`/usr/local/lib/bluegreen`).
    pub helper_dir: PathBuf,
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
        self.helper_dir.join(HELPER_NAME)
    }

    /// Where earlier versions kept the helper copy (in the state directory, which the
    /// deploy user may own): removed by [`BootPath::install`].
    fn old_helper_dir(&self) -> PathBuf {
        self.state_dir.join("bin")
    }

    /// The owner of the state directory now (root's when it does not exist yet): the one
    /// user besides root that `restore` lets own it.
    fn state_owner(&self) -> u32 {
        std::fs::metadata(&self.state_dir).map_or(0, |m| m.uid())
    }

    /// The command the unit runs at boot, for the state directory owned by `owner`.
    fn restore_command_for(&self, owner: u32) -> CommandLine {
        CommandLine::new([
            self.helper_path().display().to_string(),
            "restore".into(),
            "--app".into(),
            self.app.to_string(),
            "--state-dir".into(),
            self.state_dir.display().to_string(),
            "--state-owner".into(),
            owner.to_string(),
        ])
    }

    /// The command the unit runs at boot.
    pub fn restore_command(&self) -> CommandLine {
        self.restore_command_for(self.state_owner())
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
        if let Err(why) = crate::owners::root_only(&self.helper_path()) {
            return Some(format!(
                "the helper the unit runs is not root's alone: {why}"
            ));
        }
        None
    }

    /// Installs or updates the helper copy (from `helper`, this very binary), the unit, and
    /// the link that enables it. Only root may: the unit runs the copy as root, so it must
    /// land where no one else can change it (checked after the copy). Returns what changed
    /// (empty: it was all in place).
    pub fn install(&self, helper: &Path) -> Result<Vec<String>> {
        if crate::sys::euid() != 0 {
            return Err(Error::CheckFailed(format!(
                "the boot path runs as root, so only root installs it: run `sudo bluegreen restore --app {} --state-dir {} --install` once (it copies the helper to {}, root's, and writes {}; give --boot-helper-dir and --systemd-unit-dir where they are not the defaults)",
                self.app,
                self.state_dir.display(),
                self.helper_path().display(),
                self.unit_path().display()
            )));
        }
        let mut changed: Vec<String> = install_helper(&self.helper_dir, helper)?
            .into_iter()
            .collect();
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
        // Only in a state directory of root's own: root removes nothing where another user
        // decides what the path names.
        let old = self.old_helper_dir();
        if self.state_owner() == 0
            && old.join(HELPER_NAME).is_file()
            && std::fs::remove_dir_all(&old).is_ok()
        {
            changed.push(format!("removed the old helper copy in {}", old.display()));
        }
        Ok(changed)
    }
}

/// Copies `helper` (this very binary) into `helper_dir` as root's, where no one else can
/// change what root (the boot unit) or sshd (a restricted key's forced command) runs: the
/// directory is created root's and checked to be root's alone. What changed, if anything.
pub fn install_helper(helper_dir: &Path, helper: &Path) -> Result<Option<String>> {
    let bytes = std::fs::read(helper).map_err(|e| Error::io("read", helper, e))?;
    let copy = helper_dir.join(HELPER_NAME);
    create_dir(helper_dir)?;
    crate::owners::root_only(helper_dir).map_err(|why| {
        Error::CheckFailed(format!(
            "{} cannot hold a helper root runs: {why}",
            helper_dir.display()
        ))
    })?;
    if std::fs::read(&copy).ok().as_deref() == Some(bytes.as_slice()) {
        return Ok(None);
    }
    write_atomic(&copy, &bytes, 0o755)?;
    Ok(Some(format!("copied the helper to {}", copy.display())))
}

fn create_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| Error::io("create directory", dir, e))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn boot(dir: &Path) -> BootPath {
        BootPath {
            app: "shop".parse().unwrap(),
            state_dir: dir.join("state dir$1"),
            unit_dir: dir.join("systemd"),
            helper_dir: dir.join("lib/bluegreen"),
        }
    }

    #[test]
    fn the_unit_runs_the_restore_of_this_app_from_roots_copy_before_nginx() {
        let dir = Path::new("/srv");
        let text = boot(dir).unit_text();
        assert!(
            text.contains(
                "ExecStart=\"/srv/lib/bluegreen/bluegreen\" \"restore\" \"--app\" \"shop\" \"--state-dir\" \"/srv/state dir$$1\" \"--state-owner\" \"0\"\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("Before=nginx.service") && text.contains("WantedBy=multi-user.target")
        );
        assert_eq!(systemd_quote("a\"b%c\\"), "\"a\\\"b%%c\\\\\"");
    }

    #[test]
    fn install_puts_everything_in_place_once_and_removes_the_old_copy() {
        if !crate::sys::testing::is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let b = boot(dir.path());
        let old = b.state_dir.join("bin/bluegreen");
        std::fs::create_dir_all(old.parent().unwrap()).unwrap();
        std::fs::write(&old, b"#!/bin/sh\n").unwrap();
        assert!(b.missing().is_some());
        let helper = dir.path().join("helper");
        std::fs::write(&helper, b"#!/bin/sh\n").unwrap();
        let changed = b.install(&helper).unwrap();
        assert_eq!(changed.len(), 4, "{changed:?}");
        assert!(!old.exists(), "the copy in the state directory is gone");
        assert_eq!(b.missing(), None);
        assert!(
            b.install(&helper).unwrap().is_empty(),
            "a second install changes nothing"
        );
        assert_eq!(std::fs::read_link(b.enabled_path()).unwrap(), b.unit_path());
        let mode = std::fs::metadata(b.helper_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    }

    #[test]
    fn install_refuses_a_helper_directory_others_could_change() {
        if !crate::sys::testing::is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let b = boot(dir.path());
        std::fs::create_dir_all(&b.helper_dir).unwrap();
        std::os::unix::fs::chown(&b.helper_dir, Some(65534), None).unwrap();
        let helper = dir.path().join("helper");
        std::fs::write(&helper, b"#!/bin/sh\n").unwrap();
        let err = b.install(&helper).unwrap_err().to_string();
        assert!(err.contains("owned by uid 65534"), "{err}");
        assert!(!b.helper_path().exists() && !b.unit_path().exists());
    }
}
