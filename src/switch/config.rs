//! How one app's traffic is switched on a host ([`SwitchConfig`], part of the plan a host
//! receives and built by the helpers from their options) and the two ways to do it
//! ([`SwitchMode`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::serde_millis;
use crate::error::Result;
use crate::exec::{CommandLine, CommandOutput};
use crate::fsutil::read_optional;
use crate::input::{AppName, HostPath, HttpUrl, Port, Slot, SlotPorts, SwitchMode};
use crate::nft::NftSwitch;
use crate::upstream::{Template, routed_slot, server_ports, split_slot};

/// The service port an app uses: the one `recorded` in its state (in `store_dir`), which is
/// the app's from its first nftables switch on, so every command of the app uses the same
/// port whatever its options; else the one `given`, else `default`. A port given that is not
/// the recorded one is refused, naming both.
pub fn settled_service_port(
    given: Option<Port>,
    default: Port,
    recorded: Option<u16>,
    store_dir: &Path,
) -> Result<Port> {
    match (given, recorded) {
        (Some(given), Some(recorded)) if given.get() != recorded => {
            Err(crate::error::Error::invalid(
                "service-port",
                format!(
                    "{given} is not the service port {recorded} that {} records for this app; leave it out to use {recorded} (to move the app to another port, deploy once with switch-mode: reload, which records none, then with the new service-port)",
                    store_dir.join("state.json").display()
                ),
            ))
        }
        (_, Some(recorded)) => Port::try_from(recorded),
        (Some(given), None) => Ok(given),
        (None, None) => Ok(default),
    }
}

/// Everything a switch of one app needs besides where it goes and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchConfig {
    /// How traffic moves.
    pub mode: SwitchMode,
    /// The fixed loopback port nginx proxies to in nftables mode: the one the user named,
    /// else the app's default; [`SwitchConfig::settle_service_port`] makes it the one state
    /// records, once it records one.
    pub service_port: Port,
    /// Whether the user named the service port (`service-port`, `--service-port`): then
    /// it must be the one state records, if state records one.
    #[serde(default)]
    pub service_port_given: bool,
    /// The nginx include we own.
    pub upstream_file: HostPath,
    /// Command that checks nginx's configuration (`nginx -t`).
    pub test_cmd: CommandLine,
    /// Command that reloads nginx (`nginx -s reload`).
    pub reload_cmd: CommandLine,
    /// nginx's pid file, used to watch its workers.
    pub nginx_pid_file: HostPath,
    /// How long to wait for new workers after a reload.
    #[serde(with = "serde_millis")]
    pub reload_timeout: Duration,
    /// A URL through nginx that must answer from the target slot after the switch.
    pub verify_url: Option<HttpUrl>,
    /// How long the verify URL may take to answer from the target slot.
    #[serde(with = "serde_millis")]
    pub verify_timeout: Duration,
    /// The name the app's site answers to, sent as the Host header of requests to a verify
    /// (or monitor) URL that names its host by address: nginx picks the app's server block
    /// by it, not the default one (see [`crate::http::Prober::for_site`]).
    #[serde(default)]
    pub site_host: Option<String>,
    /// The `nft` command (`nft`, or `sudo nft` for a deploy user that is not root).
    pub nft_cmd: CommandLine,
    /// The root-owned directory nginx writes the apps' access logs in
    /// (`/var/log/bluegreen`); see [`SwitchConfig::access_log`].
    #[serde(default = "default_log_dir")]
    pub log_dir: HostPath,
    /// Whether nginx writes the app's access log there (`access-log`, on by default): what
    /// traffic steps are judged on. Every switch writes the include with or without it
    /// alike, so that no deploy turns it on or off (a reload in nftables mode).
    #[serde(default = "access_log_on")]
    pub access_log: bool,
}

impl SwitchConfig {
    /// The nginx master whose reload the switch watches (see [`crate::nginx::find_master`]:
    /// the pid file's, else the master listening on the verify URL's port, else the only
    /// one).
    pub fn nginx_master(&self) -> Option<u32> {
        crate::nginx::find_master(
            self.nginx_pid_file.as_path(),
            self.verify_url.as_ref().map(HttpUrl::port),
        )
    }

    /// The command that shows whether nftables can be used here (it needs the program,
    /// the kernel's support and the privilege to read rules).
    pub fn nft_probe(&self) -> CommandLine {
        self.nft_cmd.with_args(["list", "tables"])
    }

    /// This configuration with `auto` decided by running the probe ([`Self::nft_probe`])
    /// through `run`; and why, in words. An explicit mode stays as it is (no probe).
    pub fn resolve(
        &self,
        run: impl FnOnce(&CommandLine) -> Result<CommandOutput>,
    ) -> (SwitchConfig, String) {
        let probe = (self.mode == SwitchMode::Auto).then(|| run(&self.nft_probe()));
        let (mode, why) = match (self.mode, probe) {
            (SwitchMode::Auto, Some(Ok(_))) => (
                SwitchMode::Nftables,
                format!("auto: `{}` answers", self.nft_probe()),
            ),
            (SwitchMode::Auto, Some(Err(e))) => (
                SwitchMode::Reload,
                format!("auto: nftables cannot be used here ({e})"),
            ),
            (mode, _) => (
                mode,
                "given (switch-mode; by hand --mode, else the mode state.json records)".to_owned(),
            ),
        };
        let resolved = SwitchConfig {
            mode,
            ..self.clone()
        };
        (resolved, why)
    }

    /// The nftables switch of `app` in nftables mode; `None` in reload mode.
    pub fn nft(&self, app: &AppName) -> Option<NftSwitch> {
        (self.mode == SwitchMode::Nftables).then(|| self.nft_of(app))
    }

    /// The nftables switch of `app` whatever the mode (to find or clear a table left by an
    /// earlier mode).
    pub fn nft_of(&self, app: &AppName) -> NftSwitch {
        NftSwitch::new(app, self.service_port.get(), self.nft_cmd.clone())
    }

    /// The same configuration in the mode state records (nftables on its recorded service
    /// port, or reload), to read where traffic goes now; unchanged when state records none.
    pub fn as_recorded(&self, mode: Option<SwitchMode>, service_port: Option<u16>) -> SwitchConfig {
        let mut config = self.clone();
        match (mode, service_port.map(Port::try_from)) {
            (Some(SwitchMode::Nftables), Some(Ok(port))) => {
                config.mode = SwitchMode::Nftables;
                config.service_port = port;
            }
            (Some(SwitchMode::Reload), _) => config.mode = SwitchMode::Reload,
            _ => {}
        }
        config
    }

    /// The access log nginx writes for `app`: `LOG_DIR/APP.access.log`.
    pub fn access_log_path(&self, app: &AppName) -> PathBuf {
        self.log_dir.as_path().join(format!("{app}.access.log"))
    }

    /// The access log nginx may be told to write for `app`, or why not. nginx's master
    /// opens it as root, following links and creating what is missing, so the directory
    /// must be root's alone (a deploy user who could put a link there would have root
    /// write where the link points). A run as root creates the directory (0755) when it is
    /// missing, unless `dry_run`.
    pub fn access_log(&self, app: &AppName, dry_run: bool) -> Result<PathBuf, String> {
        let dir = self.log_dir.as_path();
        if !dir.exists() && crate::sys::euid() == 0 {
            if dry_run {
                return Ok(self.access_log_path(app));
            }
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|e| format!("{} cannot be created: {e}", dir.display()))?;
        }
        match crate::owners::root_only(dir) {
            Ok(()) => Ok(self.access_log_path(app)),
            Err(why) => Err(format!(
                "nginx (root) would write its access log in {}, which is not root's alone ({why}); create it as root: install -d -o root -m 755 {}",
                dir.display(),
                dir.display()
            )),
        }
    }

    /// The built-in upstream template of the mode.
    pub fn builtin_template(&self) -> Template {
        Template::builtin(self.mode == SwitchMode::Nftables)
    }

    /// Makes the service port the one `recorded` in the app's state (in `store_dir`); see
    /// [`settled_service_port`].
    pub fn settle_service_port(&mut self, recorded: Option<u16>, store_dir: &Path) -> Result<()> {
        let given = self.service_port_given.then_some(self.service_port);
        self.service_port = settled_service_port(given, self.service_port, recorded, store_dir)?;
        Ok(())
    }

    /// Why this configuration cannot work with `ports`, if it cannot.
    pub fn problem_with(&self, ports: SlotPorts) -> Option<String> {
        let clash = ports.slot_of(self.service_port.get()).is_some();
        (self.mode != SwitchMode::Reload && clash).then(|| {
            format!(
                "service-port {} is a slot's port: it needs a port of its own",
                self.service_port
            )
        })
    }

    /// The slot traffic is routed to now, read from what nginx is given: in nftables mode
    /// the rule's target, when the include (`upstream_text`) proxies to the service port;
    /// else the slot the include names, when its `server` lines name that slot's port (not
    /// its marker comment alone: a hand edit may have changed the lines). In maintenance
    /// nginx answers with the page, and the slot behind it is the one its marker names.
    pub fn routed_by(
        &self,
        app: &AppName,
        ports: SlotPorts,
        upstream_text: Option<&str>,
    ) -> Option<Slot> {
        let proxies_to = |port: u16| {
            upstream_text.is_some_and(|t| {
                server_ports(t).contains(&port)
                    || crate::maintenance_server::recorded_in(t, app).is_some()
            })
        };
        match self.nft(app) {
            Some(nft) => nft
                .current_target()
                .and_then(|port| ports.slot_of(port))
                .filter(|_| proxies_to(nft.service_port)),
            None => upstream_text
                .and_then(|t| routed_slot(t, ports, app))
                .filter(|slot| proxies_to(ports.port(*slot))),
        }
    }

    /// The slot a split sends a share of new requests to now: the nftables rules' split in
    /// nftables mode, else the `canary=` of the upstream file's marker line.
    pub fn split_routed(&self, app: &AppName, ports: SlotPorts) -> Result<Option<Slot>> {
        if let Some(nft) = self.nft(app) {
            return Ok(nft
                .current_route()
                .and_then(|r| r.split)
                .and_then(|(port, _)| ports.slot_of(port)));
        }
        let text = read_optional(self.upstream_file.as_path())?;
        Ok(text.as_deref().and_then(|t| split_slot(t, ports, app)))
    }

    /// The slot traffic is routed to now, reading the upstream file.
    pub fn routed(&self, app: &AppName, ports: SlotPorts) -> Result<Option<Slot>> {
        let text = read_optional(self.upstream_file.as_path())?;
        Ok(self.routed_by(app, ports, text.as_deref()))
    }
}

/// `access-log` for a plan that does not say (one from an earlier runner).
fn access_log_on() -> bool {
    true
}

/// `log-dir` for a plan that does not say (one from an earlier runner).
fn default_log_dir() -> HostPath {
    crate::config::defaults::LOG_DIR
        .parse()
        .expect("the default parses (tested)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::switch::test_config as config;

    #[test]
    fn the_route_is_read_from_the_server_lines_not_the_marker_alone() {
        let app: AppName = "shop".parse().unwrap();
        let ports = SlotPorts::new(3001, 3002).unwrap();
        let reload = config(SwitchMode::Reload);
        let ours = "# bluegreen: app=shop slot=blue version=v1\nupstream shop {\n    server 127.0.0.1:3001;\n}\n";
        assert_eq!(reload.routed_by(&app, ports, Some(ours)), Some(Slot::Blue));
        // Edited by hand to a port of neither slot: the marker still says blue.
        let edited = ours.replace("3001;", "9;");
        assert_eq!(reload.routed_by(&app, ports, Some(&edited)), None);
        assert_eq!(reload.routed_by(&app, ports, None), None);
    }

    #[test]
    fn a_service_port_given_must_be_the_one_state_records() {
        let dir = Path::new("/var/lib/bluegreen/shop");
        let port = |p: u16| Port::try_from(p).unwrap();
        let default = port(24000);
        assert_eq!(
            settled_service_port(None, default, None, dir).unwrap(),
            default
        );
        assert_eq!(
            settled_service_port(Some(port(21000)), default, None, dir).unwrap(),
            port(21000)
        );
        assert_eq!(
            settled_service_port(None, default, Some(3000), dir).unwrap(),
            port(3000)
        );
        assert_eq!(
            settled_service_port(Some(port(3000)), default, Some(3000), dir).unwrap(),
            port(3000)
        );
        let err = settled_service_port(Some(port(21000)), default, Some(3000), dir)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "21000 is not the service port 3000 that /var/lib/bluegreen/shop/state.json records"
            ),
            "{err}"
        );
    }
}
