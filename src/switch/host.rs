//! The host as a switch's executor sees it: one method per effect or observation (a file
//! written or removed, nginx's test and reload, the app's nftables rule loaded, removed or
//! read back, a new connection traced, the kernel's unanswered handshakes forgotten, one
//! HTTP probe). [`ThisHost`] performs them here;
//! the tests give a host whose nginx and kernel are in memory (`fake_host.rs`) and that
//! fails at each primitive in turn, to show that every failure is put back.

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::http::{Probe, Prober};
use crate::input::HttpUrl;
use crate::nft::{NftSwitch, Route};

use super::SwitchConfig;
use super::request::NGINX_COMMAND_TIMEOUT;

/// How long the probe connection through the service port may take to be accepted.
const KERNEL_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a switch does to the host and reads back from it.
pub(crate) trait SwitchHost {
    /// The file at `path`, `None` when there is none.
    fn read(&self, path: &Path) -> Result<Option<String>>;
    /// Writes `text` to `path` (atomically: readers see the old file or the new one).
    fn write(&self, path: &Path, text: &str) -> Result<()>;
    /// Removes the file at `path`.
    fn remove(&self, path: &Path) -> Result<()>;
    /// Runs nginx's configuration test.
    fn test_nginx(&self) -> Result<()>;
    /// The nginx master whose reloads the switch watches, when it can be found (see
    /// [`SwitchConfig::nginx_master`]).
    fn nginx_master(&self) -> Option<u32>;
    /// The client connections open to nginx's master `master` now, if they can be counted.
    fn client_connections(&self, master: u32) -> Option<u32>;
    /// Reloads nginx and, when `master` is known, waits until it has replaced its workers:
    /// `Ok(true)` when seen, `Ok(false)` with no master to watch; on failure, the failed
    /// stage (`reload`, `reload confirmation`) and why.
    fn reload_nginx(
        &self,
        master: Option<u32>,
    ) -> std::result::Result<bool, (&'static str, String)>;
    /// Points the app's rule as `route` says: replacing the rules of the table when it
    /// exists (`replacing`), else creating it.
    fn load_rule(&self, nft: &NftSwitch, route: &Route, replacing: bool) -> Result<()>;
    /// Removes the app's table (the service port then leads nowhere).
    fn remove_rule(&self, nft: &NftSwitch) -> Result<()>;
    /// Where the app's rule leads, read back from the kernel: `Ok(None)` when there is no
    /// table; an error when it cannot be read.
    fn read_rule(&self, nft: &NftSwitch) -> Result<Option<Route>>;
    /// Opens a new connection to the service port and says which port accepted it.
    fn new_connection_reaches(&self, service_port: u16) -> std::io::Result<u16>;
    /// Has the kernel forget the handshakes the rule sent through `service_port` to `port`
    /// and that were never answered (see [`crate::conntrack`]).
    fn forget_unanswered(&self, service_port: u16, port: u16) -> crate::conntrack::Forgotten;
    /// Asks `url` once, as `prober` asks.
    fn get(&self, prober: &Prober, url: &HttpUrl, timeout: Duration) -> Probe;
    /// Polls nginx's maintenance server on 127.0.0.1:`port` until it answers 503, for up
    /// to `timeout`; on failure, why.
    fn confirm_closed(&self, port: u16, timeout: Duration) -> std::result::Result<(), String>;
}

/// This host, with the app's switch configuration (its nginx commands) and state
/// directory (where a copy of the loaded ruleset is kept for people to read).
pub(super) struct ThisHost<'a> {
    pub(super) config: &'a SwitchConfig,
    pub(super) state_dir: &'a Path,
}

impl SwitchHost for ThisHost<'_> {
    fn read(&self, path: &Path) -> Result<Option<String>> {
        crate::fsutil::read_optional(path)
    }

    fn write(&self, path: &Path, text: &str) -> Result<()> {
        write_atomic(path, text.as_bytes(), 0o644)
    }

    fn remove(&self, path: &Path) -> Result<()> {
        std::fs::remove_file(path).map_err(|e| Error::io("remove", path, e))
    }

    fn test_nginx(&self) -> Result<()> {
        self.config.test_cmd.run(NGINX_COMMAND_TIMEOUT).map(|_| ())
    }

    fn nginx_master(&self) -> Option<u32> {
        self.config.nginx_master()
    }

    fn client_connections(&self, master: u32) -> Option<u32> {
        crate::sys::client_connections(master)
    }

    fn reload_nginx(
        &self,
        master: Option<u32>,
    ) -> std::result::Result<bool, (&'static str, String)> {
        crate::nginx::reload(
            || self.config.reload_cmd.run(NGINX_COMMAND_TIMEOUT),
            master,
            self.config.reload_timeout,
        )
    }

    fn load_rule(&self, nft: &NftSwitch, route: &Route, replacing: bool) -> Result<()> {
        if replacing {
            nft.retarget(route, self.state_dir)
        } else {
            nft.apply(route, self.state_dir)
        }
    }

    fn remove_rule(&self, nft: &NftSwitch) -> Result<()> {
        nft.remove()
    }

    fn read_rule(&self, nft: &NftSwitch) -> Result<Option<Route>> {
        nft.read_route()
    }

    fn new_connection_reaches(&self, service_port: u16) -> std::io::Result<u16> {
        crate::sys::loopback_destination(service_port, KERNEL_PROBE_TIMEOUT)
    }

    fn forget_unanswered(&self, service_port: u16, port: u16) -> crate::conntrack::Forgotten {
        crate::conntrack::forget_unanswered(service_port, port)
    }

    fn get(&self, prober: &Prober, url: &HttpUrl, timeout: Duration) -> Probe {
        prober.get(url, timeout)
    }

    fn confirm_closed(&self, port: u16, timeout: Duration) -> std::result::Result<(), String> {
        crate::maintenance_server::confirm_closed(port, timeout)
    }
}
