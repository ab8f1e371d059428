//! What the engine does to the host it runs on, as one narrow interface: run a command,
//! check health, switch, watch, validate, read where traffic goes (and whether it is
//! split), read, write and remove nginx's files (the include, the server block), reload
//! nginx, whether a port is taken, wait. [`SystemHost`] does it for real; the engine's tests
//! drive the same engine with a recording fake.
//!
//! State (`state.json`, `history.jsonl`, the lock, the maintenance pages) is not behind
//! this interface: it is files in the state directory, which a test points at a temporary
//! directory.

use std::path::Path;
use std::time::Duration;

use crate::error::Result;
use crate::exec::{CommandLine, CommandOutput};
use crate::health::{HealthCheck, HealthReport};
use crate::input::{AppName, Slot, SlotPorts};
use crate::monitor::{Monitor, MonitorReport};
use crate::progress::Progress;
use crate::switch::{SwitchConfig, SwitchReport, SwitchRequest};
use crate::validate::{ValidateReport, ValidateRequest};

/// The effects the engine has on a host.
pub trait Host {
    /// Runs a command (docker, compose, the user's command) and returns its output when it
    /// exits 0.
    fn run(&self, cmd: &CommandLine, timeout: Duration) -> Result<CommandOutput>;

    /// Polls a health URL until it is healthy enough times in a row, or time is up.
    fn health_check(&self, check: &HealthCheck, progress: &Progress) -> HealthReport;

    /// Moves traffic, with its confirmation and undo path; records state and history.
    fn switch(&self, request: &SwitchRequest, progress: &Progress) -> Result<SwitchReport>;

    /// Watches the live URL for a window.
    fn watch(&self, monitor: &Monitor, progress: &Progress) -> MonitorReport;

    /// Runs the preflight checks.
    fn validate(&self, request: &ValidateRequest) -> ValidateReport;

    /// The slot nginx routes `app` to now (the upstream file, or the nftables rule).
    fn routed(
        &self,
        config: &SwitchConfig,
        app: &AppName,
        ports: SlotPorts,
    ) -> Result<Option<Slot>>;

    /// The slot nginx sends a share of new requests to (a split), if it routes one.
    fn split_routed(
        &self,
        config: &SwitchConfig,
        app: &AppName,
        ports: SlotPorts,
    ) -> Result<Option<Slot>>;

    /// The file at `path` (one of nginx's: the include, the server block), `None` when there
    /// is none.
    fn read_file(&self, path: &Path) -> Result<Option<String>>;

    /// Writes `text` to `path` atomically (readers see the old file or the new one).
    fn write_file(&self, path: &Path, text: &str) -> Result<()>;

    /// Removes the file at `path`.
    fn remove_file(&self, path: &Path) -> Result<()>;

    /// Reloads nginx with `config`'s reload command and waits until its master has replaced
    /// its workers (when the master can be found): `Ok(true)` when seen, `Ok(false)` when
    /// there was no master to watch; on failure, the failed stage and why.
    fn reload_nginx(
        &self,
        config: &SwitchConfig,
    ) -> std::result::Result<bool, (&'static str, String)>;

    /// Who listens on TCP `port` (`pid N (name)`, or `another program`), if anyone does.
    fn port_taken(&self, port: u16) -> Option<String>;

    /// Waits (the drain before a retire).
    fn pause(&self, duration: Duration);
}

/// The host this process runs on.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemHost;

impl Host for SystemHost {
    fn run(&self, cmd: &CommandLine, timeout: Duration) -> Result<CommandOutput> {
        cmd.run(timeout)
    }

    fn health_check(&self, check: &HealthCheck, progress: &Progress) -> HealthReport {
        check.run(progress)
    }

    fn switch(&self, request: &SwitchRequest, progress: &Progress) -> Result<SwitchReport> {
        request.run(progress)
    }

    fn watch(&self, monitor: &Monitor, progress: &Progress) -> MonitorReport {
        monitor.run(progress)
    }

    fn validate(&self, request: &ValidateRequest) -> ValidateReport {
        request.run()
    }

    fn routed(
        &self,
        config: &SwitchConfig,
        app: &AppName,
        ports: SlotPorts,
    ) -> Result<Option<Slot>> {
        config.routed(app, ports)
    }

    fn split_routed(
        &self,
        config: &SwitchConfig,
        app: &AppName,
        ports: SlotPorts,
    ) -> Result<Option<Slot>> {
        config.split_routed(app, ports)
    }

    fn read_file(&self, path: &Path) -> Result<Option<String>> {
        crate::fsutil::read_optional(path)
    }

    fn write_file(&self, path: &Path, text: &str) -> Result<()> {
        crate::fsutil::write_atomic(path, text.as_bytes(), 0o644)
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        std::fs::remove_file(path).map_err(|e| crate::error::Error::io("remove", path, e))
    }

    fn reload_nginx(
        &self,
        config: &SwitchConfig,
    ) -> std::result::Result<bool, (&'static str, String)> {
        let master = config.nginx_master();
        crate::nginx::reload(
            || config.reload_cmd.run(crate::nginx::COMMAND_TIMEOUT),
            master,
            config.reload_timeout,
        )
    }

    fn port_taken(&self, port: u16) -> Option<String> {
        (!crate::sys::port_is_free(port))
            .then(|| crate::sys::port_owner(port).unwrap_or_else(|| "another program".into()))
    }

    fn pause(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}
