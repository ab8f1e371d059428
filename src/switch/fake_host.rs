//! A host for tests of the switch (`execute_tests.rs`) and of the engine that runs it
//! (`deploy/tests`): files on disk (in the test's directory), and in memory the app's
//! nftables rule, the include nginx's workers answer from, and every primitive called, in
//! order; any of them can be made to fail. It models what nginx and nft do (a reload loads
//! the file, a failed nft load changes nothing) and holds none of the switch's logic.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::fsutil::read_optional;
use crate::http::{Probe, Prober};
use crate::input::{HttpUrl, Slot, SlotPorts};
use crate::nft::{NftSwitch, Route};

use super::host::SwitchHost;

/// The nginx master the fake's reloads are watched on.
pub(crate) const FAKE_MASTER: u32 = 4242;

/// Which of the host's primitives fail, by their order in the run or by name.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fail {
    Never,
    At(usize),
    /// At both: the second one while the first is being put back.
    Twice(usize, usize),
    From(usize),
    /// The first call of the named primitive.
    FirstOf(&'static str),
}

/// A host with files on disk and nginx, the kernel's rule and the answers in memory.
pub(crate) struct FakeSwitchHost {
    /// Where the app's rule leads (for the table on `service_port`).
    pub(crate) rule: RefCell<Option<Route>>,
    /// The include nginx's workers answer from: the file as it was when the host was made,
    /// then what each reload loaded.
    serving: RefCell<Option<String>>,
    /// Every primitive called, in order.
    pub(crate) effects: RefCell<Vec<&'static str>>,
    /// The ports whose unanswered handshakes the kernel was asked to forget, in order.
    pub(crate) forgotten: RefCell<Vec<u16>>,
    fail: Fail,
    include_path: PathBuf,
    ports: SlotPorts,
    service_port: u16,
    /// The client connections open to nginx at each reload.
    clients_open: Option<u32>,
}

impl FakeSwitchHost {
    /// A host whose nginx serves `include_path` as it is now for slots on `ports`, the
    /// app's rule (none yet) on `service_port`, failing as `fail` says.
    pub(crate) fn new(
        include_path: &Path,
        ports: SlotPorts,
        service_port: u16,
        fail: Fail,
    ) -> FakeSwitchHost {
        FakeSwitchHost {
            rule: RefCell::default(),
            serving: RefCell::new(read_optional(include_path).unwrap()),
            effects: RefCell::default(),
            forgotten: RefCell::default(),
            fail,
            include_path: include_path.to_path_buf(),
            ports,
            service_port,
            clients_open: None,
        }
    }

    /// The same, with `clients` connections open to nginx at each reload.
    pub(crate) fn with_clients_open(self, clients: Option<u32>) -> FakeSwitchHost {
        FakeSwitchHost {
            clients_open: clients,
            ..self
        }
    }

    /// Notes the primitive `name` and says whether it is to fail.
    fn step(&self, name: &'static str) -> bool {
        let mut effects = self.effects.borrow_mut();
        let n = effects.len();
        effects.push(name);
        match self.fail {
            Fail::Never => false,
            Fail::At(at) => n == at,
            Fail::Twice(first, second) => n == first || n == second,
            Fail::From(from) => n >= from,
            Fail::FirstOf(first) => name == first && !effects[..n].contains(&first),
        }
    }

    fn injected(what: &str) -> Error {
        Error::CheckFailed(format!("{what}: injected failure"))
    }

    fn include_on_disk(&self) -> Option<String> {
        read_optional(&self.include_path).unwrap()
    }

    /// The include nginx's workers answer from.
    fn served(&self) -> Option<String> {
        self.serving.borrow().clone()
    }

    /// The slot an answer through nginx comes from, as the include it serves routes it.
    fn answering_slot(&self) -> Option<Slot> {
        let port: u16 = self
            .served()?
            .split("server 127.0.0.1:")
            .nth(1)?
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()?;
        match port {
            p if p == self.service_port => self.ports.slot_of((*self.rule.borrow())?.port),
            port => self.ports.slot_of(port),
        }
    }

    /// What the host holds: the include, the rule, and what nginx serves.
    pub(crate) fn holds(&self) -> (Option<String>, Option<Route>, Option<String>) {
        (self.include_on_disk(), *self.rule.borrow(), self.served())
    }
}

impl SwitchHost for FakeSwitchHost {
    fn write(&self, path: &Path, text: &str) -> Result<()> {
        if self.step("write") {
            return Err(Self::injected("write"));
        }
        std::fs::write(path, text).map_err(|e| Error::io("write", path, e))
    }

    fn remove(&self, path: &Path) -> Result<()> {
        if self.step("remove") {
            return Err(Self::injected("remove"));
        }
        std::fs::remove_file(path).map_err(|e| Error::io("remove", path, e))
    }

    fn test_nginx(&self) -> Result<()> {
        match self.step("nginx test") {
            true => Err(Self::injected("nginx -t")),
            false => Ok(()),
        }
    }

    fn read(&self, path: &Path) -> Result<Option<String>> {
        read_optional(path)
    }

    fn nginx_master(&self) -> Option<u32> {
        Some(FAKE_MASTER)
    }

    fn client_connections(&self, _master: u32) -> Option<u32> {
        self.clients_open
    }

    fn reload_nginx(
        &self,
        master: Option<u32>,
    ) -> std::result::Result<bool, (&'static str, String)> {
        if self.step("reload") {
            return Err(("reload", "injected failure".into()));
        }
        // Unseen is not undone: nginx may have loaded the include all the same.
        *self.serving.borrow_mut() = self.include_on_disk();
        if master.is_some() && self.step("new workers") {
            return Err((
                "reload confirmation",
                "injected: no new workers seen".into(),
            ));
        }
        Ok(master.is_some())
    }

    fn load_rule(&self, nft: &NftSwitch, route: &Route, replacing: bool) -> Result<()> {
        assert_eq!(nft.service_port, self.service_port);
        if self.step("load rule") || (replacing && self.rule.borrow().is_none()) {
            return Err(Self::injected("nft"));
        }
        *self.rule.borrow_mut() = Some(*route);
        Ok(())
    }

    fn remove_rule(&self, _nft: &NftSwitch) -> Result<()> {
        if self.step("remove rule") || self.rule.borrow_mut().take().is_none() {
            return Err(Self::injected("nft delete"));
        }
        Ok(())
    }

    fn read_rule(&self, _nft: &NftSwitch) -> Result<Option<Route>> {
        match self.step("read rule") {
            true => Err(Self::injected("nft list")),
            false => Ok(*self.rule.borrow()),
        }
    }

    fn new_connection_reaches(&self, service_port: u16) -> std::io::Result<u16> {
        assert_eq!(service_port, self.service_port);
        let refused = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        match self.step("new connection") {
            true => Err(refused()),
            false => self.rule.borrow().map(|r| r.port).ok_or_else(refused),
        }
    }

    /// One handshake was left unanswered on each port traffic leaves.
    fn forget_unanswered(&self, service_port: u16, port: u16) -> crate::conntrack::Forgotten {
        assert_eq!(service_port, self.service_port);
        if self.step("forget handshakes") {
            return crate::conntrack::Forgotten {
                count: 0,
                error: Some(std::io::Error::other("injected failure")),
            };
        }
        self.forgotten.borrow_mut().push(port);
        crate::conntrack::Forgotten {
            count: 1,
            error: None,
        }
    }

    fn get(&self, _prober: &Prober, _url: &HttpUrl, _timeout: Duration) -> Probe {
        let slot = self.answering_slot();
        match (self.step("get"), slot) {
            (false, Some(slot)) => Probe::Answered {
                status: 200,
                body: String::new(),
                slot_header: Some(slot.as_str().into()),
                elapsed_ms: 1,
            },
            _ => Probe::Failed {
                error: "connection refused".into(),
                elapsed_ms: 1,
            },
        }
    }

    fn confirm_closed(&self, port: u16, _timeout: Duration) -> std::result::Result<(), String> {
        let listening = format!("listen 127.0.0.1:{port};");
        let closed = self.served().is_some_and(|s| s.contains(&listening));
        match !self.step("maintenance answer") && closed {
            true => Ok(()),
            false => Err("nginx's maintenance server did not answer 503".into()),
        }
    }
}
