//! The helpers' command lines: one module per helper (its clap parser and `main`), and the
//! argument groups they share; `output`: printing their results. The multi-call
//! `bluegreen` binary (`src/bin/bluegreen.rs`) only parses and calls in here.

pub mod deploy;
pub mod gate;
pub mod hand;
pub mod health_check;
pub mod maintenance;
pub mod monitor;
pub mod output;
pub mod restore;
pub mod setup;
pub mod status;
pub mod switch_traffic;
pub mod validate;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::config::{default_state_dir, default_upstream_file, defaults};
use crate::error::{Error, Result};
use crate::exec::CommandLine;
use crate::input::{
    AppName, HostPath, HttpUrl, Port, Slot, SlotPorts, SwitchMode, parse_port, parse_time_limit,
    parse_wait,
};
use crate::state::StateStore;
use crate::switch::SwitchConfig;

/// Text appended to every helper's `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  ok
  1  the check failed (unhealthy, threshold exceeded, switch undone)
  2  bad usage or input; nothing was changed
  3  environment error (I/O, a program missing or failing, the app lock held)";

/// `--app` and `--state-dir`.
#[derive(Debug, Clone, Args)]
pub struct AppArgs {
    /// Application name: lowercase letters, digits and dashes, 1-40 characters.
    #[arg(long)]
    pub app: AppName,

    /// Where state.json, history.jsonl and the lock live [default: /var/lib/bluegreen/APP].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<HostPath>,
}

impl AppArgs {
    /// The app's state store.
    pub fn store(&self) -> StateStore {
        state_store(&self.app, self.state_dir.as_ref())
    }
}

/// The state store at `dir`, or at the default place for `app`.
pub fn state_store(app: &AppName, dir: Option<&HostPath>) -> StateStore {
    let dir = dir.cloned().unwrap_or_else(|| default_state_dir(app));
    StateStore::new(dir.as_path())
}

/// `--blue-port` and `--green-port`.
#[derive(Debug, Clone, Args)]
pub struct PortArgs {
    /// Loopback port of the blue slot [default: the port state.json records, else 3001].
    #[arg(long, value_parser = parse_port, value_name = "PORT")]
    pub blue_port: Option<u16>,

    /// Loopback port of the green slot [default: the port state.json records, else 3002].
    #[arg(long, value_parser = parse_port, value_name = "PORT")]
    pub green_port: Option<u16>,
}

impl PortArgs {
    /// The slots' ports: each from its flag, else from what `app`'s state.json in `store`
    /// records, else the default. A flag that names another port than state records is an
    /// error: the helper would check or switch a port the app's slots do not use.
    pub fn ports(&self, app: &AppName, store: &StateStore) -> Result<SlotPorts> {
        let recorded = store.read(app);
        let recorded = |slot: Slot| recorded.as_ref().and_then(|s| s.slots.get(slot).port);
        let pick = |slot: Slot, flag: Option<u16>, default: &str| match (flag, recorded(slot)) {
            (Some(given), Some(known)) if given != known => Err(Error::invalid(
                format!("--{slot}-port"),
                format!(
                    "{given} is not the port {known} that {} records for {slot}; leave the flag out to use {known}",
                    store.state_path().display()
                ),
            )),
            (Some(port), _) | (None, Some(port)) => Ok(port),
            (None, None) => parse_port(default),
        };
        SlotPorts::new(
            pick(Slot::Blue, self.blue_port, defaults::BLUE_PORT)?,
            pick(Slot::Green, self.green_port, defaults::GREEN_PORT)?,
        )
    }
}

/// `--upstream-file` and `--test-cmd`.
#[derive(Debug, Clone, Args)]
pub struct NginxArgs {
    /// The nginx include that holds the app's upstream; your server block says
    /// `proxy_pass http://APP;` [default: /etc/nginx/conf.d/bluegreen-APP.conf].
    #[arg(long, value_name = "PATH")]
    pub upstream_file: Option<HostPath>,

    /// Command that tests nginx's configuration (split into words, no shell).
    #[arg(long, default_value = defaults::TEST_CMD, value_name = "CMD")]
    pub test_cmd: String,
}

impl NginxArgs {
    /// The upstream file of `app`.
    pub fn upstream_file(&self, app: &AppName) -> HostPath {
        self.upstream_file
            .clone()
            .unwrap_or_else(|| default_upstream_file(app))
    }

    /// The parsed test command.
    pub fn test_cmd(&self) -> Result<CommandLine> {
        CommandLine::parse(&self.test_cmd, "--test-cmd")
    }
}

/// The options of a switch beyond app, ports and nginx basics.
#[derive(Debug, Clone, Args)]
pub struct SwitchArgs {
    /// minijinja template for the upstream include (variables: app, slot, port, blue_port,
    /// green_port, version) [default: built in].
    #[arg(long, value_name = "PATH")]
    pub template: Option<PathBuf>,

    /// Command that reloads nginx (split into words, no shell).
    #[arg(long, default_value = defaults::RELOAD_CMD, value_name = "CMD")]
    pub reload_cmd: String,

    /// nginx's pid file; its workers are watched to confirm the reload.
    #[arg(long, default_value = defaults::NGINX_PID_FILE, value_name = "PATH")]
    pub nginx_pid_file: HostPath,

    /// How long to wait for new nginx workers after the reload (seconds, or 500ms, 2s...).
    #[arg(long, default_value = defaults::RELOAD_TIMEOUT, value_parser = parse_time_limit, value_name = "DURATION")]
    pub reload_timeout: Duration,

    /// URL through nginx that must answer 2xx from the new slot after the reload (the slot
    /// is read from an X-Bluegreen-Slot header or a JSON "slot" field).
    #[arg(long, value_name = "URL")]
    pub verify_url: Option<HttpUrl>,

    /// The name the site answers to (its server_name), sent as the Host header where the
    /// verify URL (or monitor's --url) names its host by address, as http://127.0.0.1/
    /// does: nginx then picks the app's server block, not its default one.
    #[arg(long, value_name = "NAME", value_parser = crate::input::parse_site_host)]
    pub site_host: Option<String>,

    /// How long the verify URL may take to answer from the new slot.
    #[arg(long, default_value = defaults::VERIFY_TIMEOUT, value_parser = parse_time_limit, value_name = "DURATION")]
    pub verify_timeout: Duration,

    /// How traffic moves: reload (rewrite the upstream, reload nginx), nftables (a DNAT
    /// rule from --service-port to the slot; nginx is never reloaded), or auto (nftables
    /// where nft answers, else reload) [default: the mode state.json records, else auto].
    #[arg(long, value_enum)]
    pub mode: Option<SwitchMode>,

    /// The fixed loopback port nginx proxies to in nftables mode [default: the port
    /// state.json records, else one drawn from the app's name in 20000-29999].
    #[arg(long, value_name = "PORT")]
    pub service_port: Option<Port>,

    /// The nft command (split into words, no shell), e.g. 'sudo nft'.
    #[arg(long, default_value = defaults::NFT_CMD, value_name = "CMD")]
    pub nft_command: String,

    /// The root-owned directory nginx writes the app's access log in (APP.access.log),
    /// what canary steps are judged on.
    #[arg(long, default_value = defaults::LOG_DIR, value_name = "DIR")]
    pub log_dir: HostPath,

    /// Have nginx write no access log for the app (traffic steps are then judged on probes
    /// only, and runs have no receipt); by default it writes one in --log-dir.
    #[arg(long)]
    pub no_access_log: bool,

    /// How long to wait when another switch holds the app's lock (0: fail at once).
    #[arg(long, default_value = defaults::LOCK_TIMEOUT, value_parser = parse_wait, value_name = "DURATION")]
    pub lock_timeout: Duration,
}

impl SwitchArgs {
    /// `--template` as an absolute path (a relative one is taken from the working
    /// directory).
    pub fn template_path(&self) -> Result<Option<HostPath>> {
        let Some(path) = &self.template else {
            return Ok(None);
        };
        let absolute = std::path::absolute(path)
            .map_err(|e| Error::invalid("--template", format!("{}: {e}", path.display())))?;
        let text = absolute.to_str().ok_or_else(|| {
            Error::invalid("--template", format!("{}: not UTF-8", path.display()))
        })?;
        text.parse()
            .map(Some)
            .map_err(|e: Error| Error::invalid("--template", e.to_string()))
    }
}

/// The options that say how an app's traffic is switched, for the plan of a run by hand.
pub struct SwitchParts<'a> {
    /// The app.
    pub app: &'a AppName,
    /// Its state directory, if not the default.
    pub state_dir: Option<&'a HostPath>,
    /// Slot ports.
    pub ports: &'a PortArgs,
    /// nginx basics.
    pub nginx: &'a NginxArgs,
    /// Switch options.
    pub switch: &'a SwitchArgs,
}

impl SwitchParts<'_> {
    /// The same configuration with the mode as asked (`auto` left for the caller to
    /// decide); fails on bad input.
    pub fn requested_config(&self) -> Result<SwitchConfig> {
        let mode = match self.switch.mode {
            Some(mode) => mode,
            None => self.recorded_mode()?,
        };
        let ports = self.ports()?;
        let mut config = SwitchConfig {
            mode,
            service_port: self
                .switch
                .service_port
                .unwrap_or_else(|| crate::config::default_service_port(self.app, ports)),
            service_port_given: self.switch.service_port.is_some(),
            upstream_file: self.nginx.upstream_file(self.app),
            test_cmd: self.nginx.test_cmd()?,
            reload_cmd: CommandLine::parse(&self.switch.reload_cmd, "--reload-cmd")?,
            nginx_pid_file: self.switch.nginx_pid_file.clone(),
            reload_timeout: self.switch.reload_timeout,
            verify_url: self.switch.verify_url.clone(),
            verify_timeout: self.switch.verify_timeout,
            site_host: self.switch.site_host.clone(),
            nft_cmd: CommandLine::parse(&self.switch.nft_command, "--nft-command")?,
            log_dir: self.switch.log_dir.clone(),
            access_log: !self.switch.no_access_log,
        };
        let store = state_store(self.app, self.state_dir);
        let recorded = store.read(self.app).and_then(|state| state.service_port);
        config.settle_service_port(recorded, store.dir())?;
        Ok(config)
    }

    /// The slots' ports (see [`PortArgs::ports`]).
    pub fn ports(&self) -> Result<SlotPorts> {
        self.ports
            .ports(self.app, &state_store(self.app, self.state_dir))
    }

    /// The switch mode the app's state records, else the default.
    fn recorded_mode(&self) -> Result<SwitchMode> {
        let store = state_store(self.app, self.state_dir);
        let upstream = self.nginx.upstream_file(self.app);
        let recorded = store
            .load(self.app, upstream.as_path(), self.ports()?)?
            .state
            .switch_mode;
        Ok(recorded.unwrap_or(SwitchMode::Auto))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks a command line (unique argument names, defaults that parse) only when it
    /// builds it: every helper's is built here, so a clash fails a test, not a user's run.
    #[test]
    fn every_helpers_command_line_is_well_formed() {
        super::deploy::Cli::command().debug_assert();
        super::gate::Cli::command().debug_assert();
        super::health_check::Cli::command().debug_assert();
        super::maintenance::Cli::command().debug_assert();
        super::monitor::Cli::command().debug_assert();
        super::restore::Cli::command().debug_assert();
        super::setup::Cli::command().debug_assert();
        super::status::Cli::command().debug_assert();
        super::switch_traffic::Cli::command().debug_assert();
        super::validate::Cli::command().debug_assert();
    }
}
