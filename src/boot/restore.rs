//! `bluegreen restore`, which the boot unit runs as root: the nftables rule re-created
//! from `state.json`, from a state directory and file that only their owner and root could
//! have changed, of the app the unit names, with the ruleset handed to `nft` on its stdin.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::exec::CommandLine;
use crate::input::{AppName, SwitchMode};
use crate::nft::{NftSwitch, Route};
use crate::state::State;

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The app.
    pub app: String,
    /// The switch mode state records.
    pub mode: Option<SwitchMode>,
    /// What was done, in words.
    pub detail: String,
}

/// Why `path` (the state directory or its `state.json`) could be changed by someone other
/// than root and `owner` (any user but root when `None`), if it could. A link is refused:
/// root would follow it wherever the link's owner pointed it.
fn writable_by_others(path: &Path, owner: Option<u32>) -> Option<String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) => return Some(format!("{}: {e}", path.display())),
    };
    if meta.file_type().is_symlink() {
        return Some(format!("{} is a symbolic link", path.display()));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!(
            "{} may be written by its group or others (mode {:o})",
            path.display(),
            meta.mode() & 0o7777
        ));
    }
    match owner {
        Some(owner) if meta.uid() != 0 && meta.uid() != owner => Some(format!(
            "{} is owned by uid {}, not by root or uid {owner} (its owner when the boot path was installed)",
            path.display(),
            meta.uid()
        )),
        _ => None,
    }
}

/// The text of `path`, never through a link (one swapped in after the check above).
/// It must be a regular file of at most [`STATE_MAX_BYTES`]: opened without blocking (a pipe
/// put there would hold the boot), and read no further than that.
fn read_no_follow(path: &Path) -> Result<Option<String>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io("read", path, e))?;
    if !meta.is_file() || meta.len() > STATE_MAX_BYTES {
        return Err(Error::CheckFailed(format!(
            "refused to read {}: not a regular file of at most {STATE_MAX_BYTES} bytes",
            path.display()
        )));
    }
    let mut text = String::new();
    file.take(STATE_MAX_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| Error::io("read", path, e))?;
    Ok(Some(text))
}

/// The largest `state.json` restore reads (a real one is a few KiB).
const STATE_MAX_BYTES: u64 = 1 << 20;

/// Re-creates the kernel state of `app`'s switch from `state.json` in `state_dir`: in
/// nftables mode, the rule from the service port to the live slot, through `nft`. Reload
/// mode keeps its route in nginx's include, a file, so nothing is to be done. Refuses a
/// state directory or file that a user other than root and `owner` could have changed, and a
/// state file of another app: the boot unit runs this as root.
pub fn restore(
    app: &AppName,
    state_dir: &Path,
    owner: Option<u32>,
    nft: &CommandLine,
) -> Result<RestoreReport> {
    let path = state_dir.join("state.json");
    for place in [state_dir, path.as_path()] {
        if place == path && std::fs::symlink_metadata(&path).is_err() {
            break; // a missing state.json is said below
        }
        if let Some(why) = writable_by_others(place, owner) {
            return Err(Error::CheckFailed(format!(
                "refused to restore {app} from {}: {why}",
                state_dir.display()
            )));
        }
    }
    let text = read_no_follow(&path)?.ok_or_else(|| {
        Error::CheckFailed(format!(
            "{} does not exist: nothing to restore",
            path.display()
        ))
    })?;
    let named = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| Some(v.get("app")?.as_str()?.to_owned()));
    if named.as_deref() != Some(app.as_str()) {
        return Err(Error::CheckFailed(format!(
            "refused to restore {app}: {} names {}",
            path.display(),
            named.map_or("no app".to_owned(), |n| format!("the app {n:?}"))
        )));
    }
    let state = State::parse(&text, app)
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
    NftSwitch::new(app, service_port, nft.clone()).load(&Route::to(port))?;
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
    use crate::input::{Slot, SlotPorts};
    use std::os::unix::fs::PermissionsExt;

    fn write_state(dir: &Path, app: &str) {
        let ports = SlotPorts::new(3001, 3002).unwrap();
        let state = State::new(&app.parse().unwrap())
            .after_switch(Slot::Blue, ports, Some("v1"), None, "t")
            .switched_by(SwitchMode::Nftables, 3000);
        std::fs::write(
            dir.join("state.json"),
            serde_json::to_string(&state).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn restore_refuses_a_missing_state_and_does_nothing_in_reload_mode() {
        let dir = tempfile::tempdir().unwrap();
        let nft = CommandLine::new(["false"]);
        let shop: AppName = "shop".parse().unwrap();
        assert!(restore(&shop, dir.path(), None, &nft).is_err());
        let ports = SlotPorts::new(3001, 3002).unwrap();
        let state = State::new(&shop)
            .after_switch(Slot::Blue, ports, Some("v1"), None, "t")
            .switched_by(SwitchMode::Reload, 3000);
        std::fs::write(
            dir.path().join("state.json"),
            serde_json::to_string(&state).unwrap(),
        )
        .unwrap();
        let r = restore(&shop, dir.path(), None, &nft).unwrap();
        assert!(r.detail.contains("nothing to restore"), "{}", r.detail);
    }

    #[test]
    fn restore_sends_the_ruleset_on_stdin_and_refuses_what_others_could_change() {
        let dir = tempfile::tempdir().unwrap();
        let shop: AppName = "shop".parse().unwrap();
        let got = dir.path().join("ruleset");
        // A stand-in nft that keeps its arguments and its stdin.
        let nft = CommandLine::new([
            "sh".to_owned(),
            "-c".to_owned(),
            format!("echo \"$*\" > '{0}.args'; cat > '{0}'", got.display()),
            "nft".to_owned(),
        ]);
        let state_dir = dir.path().join("state");
        std::fs::create_dir(&state_dir).unwrap();
        write_state(&state_dir, "shop");
        let r = restore(&shop, &state_dir, None, &nft).unwrap();
        assert!(
            r.detail.contains("leads to blue (port 3001)"),
            "{}",
            r.detail
        );
        assert_eq!(
            std::fs::read_to_string(got.with_extension("args")).unwrap(),
            "-f -\n"
        );
        assert!(
            std::fs::read_to_string(&got)
                .unwrap()
                .contains("dnat to 127.0.0.1:3001")
        );
        assert!(
            std::fs::read_dir(&state_dir).unwrap().count() == 1,
            "restore writes nothing into the state directory"
        );

        let api: AppName = "api".parse().unwrap();
        let err = restore(&api, &state_dir, None, &nft)
            .unwrap_err()
            .to_string();
        assert!(err.contains("names the app \"shop\""), "{err}");

        std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = restore(&shop, &state_dir, None, &nft)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("may be written by its group or others"),
            "{err}"
        );
        std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o755)).unwrap();

        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        write_state(&elsewhere, "shop");
        std::fs::rename(state_dir.join("state.json"), state_dir.join("real.json")).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("state.json"), state_dir.join("state.json"))
            .unwrap();
        let err = restore(&shop, &state_dir, None, &nft)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a symbolic link"), "{err}");

        // A pipe in its place is refused at once, not waited on.
        std::fs::remove_file(state_dir.join("state.json")).unwrap();
        let fifo = std::ffi::CString::new(state_dir.join("state.json").to_str().unwrap()).unwrap();
        // SAFETY: mkfifo only reads the C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let err = restore(&shop, &state_dir, None, &nft)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");

        if crate::sys::testing::is_root() {
            std::fs::remove_file(state_dir.join("state.json")).unwrap();
            write_state(&state_dir, "shop");
            std::os::unix::fs::chown(&state_dir, Some(65534), None).unwrap();
            assert!(restore(&shop, &state_dir, Some(65534), &nft).is_ok());
            let err = restore(&shop, &state_dir, Some(1000), &nft)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("owned by uid 65534, not by root or uid 1000"),
                "{err}"
            );
        }
    }
}
