//! The helpers' command lines: one module per helper (its clap parser and `main`), and the
//! argument groups they share. Printing results lives in [`crate::report`]. The binaries in
//! `src/bin/` and the multi-call `bluegreen` binary only parse and call in here.

pub mod deploy;
pub mod health_check;
pub mod monitor;
pub mod switch_traffic;
pub mod validate;

use std::path::PathBuf;
use std::time::Duration;

use crate::error::Result;
use crate::exec::CommandLine;
use crate::input::{AppName, HttpUrl, SlotPorts, SwitchTarget, Version, parse_port, parse_seconds};
use crate::nft::NftSwitch;
use crate::state::StateStore;
use crate::switch::{LockPolicy, SwitchMode, SwitchRequest};
use crate::upstream::Template;
use clap::Args;

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
    pub state_dir: Option<PathBuf>,
}

impl AppArgs {
    /// The app's state store.
    pub fn store(&self) -> StateStore {
        state_store(&self.app, self.state_dir.as_ref())
    }
}

/// The state store at `dir`, or at the default place for `app`.
pub fn state_store(app: &AppName, dir: Option<&PathBuf>) -> StateStore {
    StateStore::new(dir.cloned().unwrap_or_else(|| StateStore::default_dir(app)))
}

/// `--blue-port` and `--green-port`.
#[derive(Debug, Clone, Args)]
pub struct PortArgs {
    /// Loopback port of the blue slot.
    #[arg(long, default_value = "3001", value_parser = parse_port, value_name = "PORT")]
    pub blue_port: u16,

    /// Loopback port of the green slot.
    #[arg(long, default_value = "3002", value_parser = parse_port, value_name = "PORT")]
    pub green_port: u16,
}

impl PortArgs {
    /// The validated pair.
    pub fn ports(&self) -> Result<SlotPorts> {
        SlotPorts::new(self.blue_port, self.green_port)
    }
}

/// `--upstream-file` and `--test-cmd`.
#[derive(Debug, Clone, Args)]
pub struct NginxArgs {
    /// The nginx include that holds the app's upstream; your server block says
    /// `proxy_pass http://APP;` [default: /etc/nginx/conf.d/bluegreen-APP.conf].
    #[arg(long, value_name = "PATH")]
    pub upstream_file: Option<PathBuf>,

    /// Command that tests nginx's configuration (split into words, no shell).
    #[arg(long, default_value = "nginx -t", value_name = "CMD")]
    pub test_cmd: String,
}

impl NginxArgs {
    /// The upstream file of `app`.
    pub fn upstream_file(&self, app: &AppName) -> PathBuf {
        self.upstream_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("/etc/nginx/conf.d/bluegreen-{app}.conf")))
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
    #[arg(long, default_value = "nginx -s reload", value_name = "CMD")]
    pub reload_cmd: String,

    /// nginx's pid file; its workers are watched to confirm the reload.
    #[arg(long, default_value = "/run/nginx.pid", value_name = "PATH")]
    pub nginx_pid_file: PathBuf,

    /// How long to wait for new nginx workers after the reload (seconds, or 500ms, 2s...).
    #[arg(long, default_value = "5", value_parser = parse_seconds, value_name = "DURATION")]
    pub reload_timeout: Duration,

    /// URL through nginx that must answer 2xx from the new slot after the reload (the slot
    /// is read from an X-Bluegreen-Slot header or a JSON "slot" field).
    #[arg(long, value_name = "URL")]
    pub verify_url: Option<HttpUrl>,

    /// How long the verify URL may take to answer from the new slot.
    #[arg(long, default_value = "10", value_parser = parse_seconds, value_name = "DURATION")]
    pub verify_timeout: Duration,

    /// How traffic moves: reload (rewrite the upstream, reload nginx) or nftables (a DNAT
    /// rule from --service-port to the slot; nginx is never reloaded).
    #[arg(long, value_enum, default_value_t = SwitchMode::Reload)]
    pub mode: SwitchMode,

    /// The fixed loopback port nginx proxies to in nftables mode.
    #[arg(long, default_value = "3000", value_parser = parse_port, value_name = "PORT")]
    pub service_port: u16,

    /// How long to wait when another switch holds the app's lock (0: fail at once).
    #[arg(long, default_value = "0", value_parser = parse_seconds, value_name = "DURATION")]
    pub lock_timeout: Duration,
}

/// Everything needed to build a [`SwitchRequest`] from parsed arguments.
pub struct SwitchParts<'a> {
    /// The app.
    pub app: &'a AppName,
    /// Its state directory, if not the default.
    pub state_dir: Option<&'a PathBuf>,
    /// Slot ports.
    pub ports: &'a PortArgs,
    /// nginx basics.
    pub nginx: &'a NginxArgs,
    /// Switch options.
    pub switch: &'a SwitchArgs,
}

impl SwitchParts<'_> {
    /// A switch request to `target`; fails on bad input before anything is touched.
    pub fn request(
        &self,
        target: SwitchTarget,
        version: Option<Version>,
        dry_run: bool,
    ) -> Result<SwitchRequest> {
        Ok(SwitchRequest {
            app: self.app.clone(),
            store: state_store(self.app, self.state_dir),
            target,
            ports: self.ports.ports()?,
            upstream_file: self.nginx.upstream_file(self.app),
            nft: (self.switch.mode == SwitchMode::Nftables)
                .then(|| NftSwitch::new(self.app, self.switch.service_port)),
            template: Template::load(
                self.switch.template.as_deref(),
                self.switch.mode == SwitchMode::Nftables,
            )?,
            test_cmd: self.nginx.test_cmd()?,
            reload_cmd: CommandLine::parse(&self.switch.reload_cmd, "--reload-cmd")?,
            nginx_pid_file: self.switch.nginx_pid_file.clone(),
            reload_timeout: self.switch.reload_timeout,
            verify_url: self.switch.verify_url.clone(),
            verify_timeout: self.switch.verify_timeout,
            version,
            image: None,
            lock: LockPolicy::Acquire(self.switch.lock_timeout),
            dry_run,
            only_if_active: None,
            event: "switch",
            reason: None,
        })
    }
}
