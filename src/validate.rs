//! Preflight checks of a host before a deploy. Read-only: nothing is created or changed.
//!
//! Every check runs, whatever the others found, so one run lists every problem. Each
//! result is pass, warn (worth knowing, does not block a deploy) or fail.
//!
//! `request`: what is asked and answered (the request, each check's verdict, the report);
//! this file runs the checks of nginx, Docker, the state, ports and dependencies, and
//! `access`, `master`, `memory`, `nftables`, `privilege` and `proxy` the others.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;

use crate::fsutil::{parent_dir, read_optional};
use crate::input::{HostPort, Slot};
use crate::runtime::{self, Runtime};
use crate::state::StateSource;
use crate::sys;
use crate::upstream::routed_slot;

mod access;
mod master;
mod memory;
mod nftables;
mod privilege;
mod proxy;
mod request;

use access::not_on_path;
use request::COMMAND_TIMEOUT;
pub use request::{
    Audience, CheckResult, CheckStatus, MemoryCheck, ValidateReport, ValidateRequest,
};

impl ValidateRequest {
    /// Runs every check.
    pub fn run(&self) -> ValidateReport {
        // The groups are independent and mostly wait on other programs: run them side by
        // side, report them in this fixed order.
        let live = self.store.read(&self.app).and_then(|state| state.active);
        let (mut groups, (state_checks, standby)) = std::thread::scope(|s| {
            let groups = [
                s.spawn(|| self.nginx_checks()),
                s.spawn(|| self.docker_checks()),
                s.spawn(|| self.nft_checks()),
                s.spawn(|| self.tcp_checks()),
                s.spawn(|| {
                    let memory = self.memory_check(live).into_iter();
                    memory.chain(self.proxy_ports_check(live)).collect()
                }),
            ];
            let state = self.state_checks();
            let groups: Vec<Vec<CheckResult>> = groups
                .into_iter()
                .map(|g| g.join().expect("a check does not panic"))
                .collect();
            (groups, state)
        });
        let capacity = groups.pop().expect("five groups");
        let tcp = groups.pop().expect("five groups");
        let (standby_port, state) = state_checks;
        let mut checks: Vec<CheckResult> = groups.concat();
        checks.push(standby_port);
        checks.extend(capacity);
        checks.extend(tcp);
        checks.push(state);
        checks.extend(self.privilege_check());
        ValidateReport {
            passed: checks.iter().all(|c| c.status != CheckStatus::Fail),
            app: self.app.to_string(),
            standby,
            checks,
        }
    }

    fn nginx_checks(&self) -> Vec<CheckResult> {
        let mut checks = vec![
            CheckResult::from_result("nginx", self.check_nginx()),
            CheckResult::from_result("upstream-dir", self.check_upstream_dir()),
            CheckResult::from_result(
                "disk state-dir",
                self.check_disk(&sys::existing_ancestor(self.store.dir())),
            ),
        ];
        // Only reload mode reloads nginx at every switch (in nftables mode the switch says
        // so itself when a change of its include cannot be confirmed).
        if self.nft.is_none() {
            checks.push(self.master_check());
        }
        if let Some(reload) = &self.reload_cmd {
            checks.push(self.check_reload(reload));
        }
        checks
    }

    fn docker_checks(&self) -> Vec<CheckResult> {
        let mut checks = Vec::new();
        if !self.runtime.uses_docker() {
            return checks;
        }
        match self.check_docker() {
            Ok(root) => {
                checks.push(CheckResult::new(
                    "docker",
                    CheckStatus::Pass,
                    format!("daemon answers (data root {})", root.display()),
                ));
                checks.push(self.check_docker_disk(&root));
            }
            Err(why) => checks.push(CheckResult::new("docker", CheckStatus::Fail, why)),
        }
        if self.runtime == Runtime::Compose {
            checks.push(CheckResult::from_result("compose", self.check_compose()));
        }
        checks
    }

    fn tcp_checks(&self) -> Vec<CheckResult> {
        self.tcp
            .iter()
            .map(|dep| CheckResult::from_result(format!("tcp {dep}"), self.check_tcp(dep)))
            .collect()
    }

    /// The standby-port and state checks, and the standby slot.
    fn state_checks(&self) -> ((CheckResult, CheckResult), Slot) {
        let (state_check, standby, standby_version) = self.check_state();
        let port = self.check_standby_port(standby, standby_version.as_deref());
        ((port, state_check), standby)
    }

    fn check_nginx(&self) -> Result<String, String> {
        let setting = self.audience.name("nginx-test-command", "--test-cmd");
        self.test_cmd
            .run(COMMAND_TIMEOUT)
            .map(|_| format!("`{}` passed", self.test_cmd))
            .map_err(|e| not_on_path(&e, setting).unwrap_or_else(|| e.to_string()))
    }

    fn check_upstream_dir(&self) -> Result<String, String> {
        let dir = parent_dir(&self.upstream_file);
        if !dir.is_dir() {
            return Err(format!(
                "{} does not exist or is not a directory",
                dir.display()
            ));
        }
        sys::dir_writable(dir)
            .map(|()| format!("{} is writable", dir.display()))
            .map_err(|e| format!("{} is not writable: {e}", dir.display()))
    }

    fn check_disk(&self, path: &std::path::Path) -> Result<String, String> {
        let free_mb = sys::free_bytes(path)
            .map_err(|e| format!("cannot read free space of {}: {e}", path.display()))?
            / (1024 * 1024);
        let detail = format!(
            "{free_mb} MiB free at {} (minimum {} MiB)",
            path.display(),
            self.min_free_disk_mb
        );
        if free_mb >= self.min_free_disk_mb {
            Ok(detail)
        } else {
            Err(format!("only {detail}"))
        }
    }

    fn check_docker(&self) -> Result<PathBuf, String> {
        let out = runtime::docker_root_dir(&self.docker_cmd)
            .run(COMMAND_TIMEOUT)
            .map_err(|e| format!("Docker daemon does not answer: {e}"))?;
        Ok(PathBuf::from(out.stdout.trim()))
    }

    fn check_docker_disk(&self, root: &std::path::Path) -> CheckResult {
        if !root.exists() {
            return CheckResult::new(
                "disk docker",
                CheckStatus::Warn,
                format!(
                    "Docker's data root {} is not visible from here (remote or rootless daemon?); its free space was not checked",
                    root.display()
                ),
            );
        }
        CheckResult::from_result("disk docker", self.check_disk(root))
    }

    fn check_compose(&self) -> Result<String, String> {
        match runtime::Compose::detect(&self.docker_cmd) {
            Some(runtime::Compose::Plugin(_)) => Ok("`docker compose` plugin found".into()),
            Some(runtime::Compose::Standalone(_)) => Ok("standalone `docker-compose` found".into()),
            None => Err("neither `docker compose` nor `docker-compose` answers `version`".into()),
        }
    }

    /// The state check, the standby slot, and the version state records for it.
    fn check_state(&self) -> (CheckResult, Slot, Option<String>) {
        let writable_at = sys::existing_ancestor(self.store.dir());
        let loaded = match self.store.load(&self.app, &self.upstream_file, self.ports) {
            Ok(l) => l,
            Err(e) => {
                return (
                    CheckResult::new("state", CheckStatus::Fail, e.to_string()),
                    Slot::Blue,
                    None,
                );
            }
        };
        let state = &loaded.state;
        let standby = state.active.map_or(Slot::Blue, Slot::other);
        let standby_version = state.slots.get(standby).version.clone();
        let result = if let Err(e) = sys::dir_writable(&writable_at) {
            CheckResult::new(
                "state",
                CheckStatus::Fail,
                format!(
                    "state directory {dir} cannot be written ({} is not writable by {}: {e}): create it once for this user (`sudo install -d -o {} -m 755 {dir}`), or set {} to a directory the user owns",
                    writable_at.display(),
                    sys::user_name(),
                    sys::user_name(),
                    self.audience.name("state-dir", "--state-dir"),
                    dir = self.store.dir().display(),
                ),
            )
        } else {
            match (loaded.source, &loaded.warning) {
                (_, Some(w)) => CheckResult::new("state", CheckStatus::Warn, w.clone()),
                (StateSource::New, None) => CheckResult::new(
                    "state",
                    CheckStatus::Pass,
                    "no state yet: the first deploy goes to blue",
                ),
                _ => self.check_drift(state),
            }
        };
        (result, standby, standby_version)
    }

    fn check_drift(&self, state: &crate::state::State) -> CheckResult {
        let routed = read_optional(&self.upstream_file)
            .ok()
            .flatten()
            .and_then(|t| routed_slot(&t, self.ports, &self.app));
        let active = state.active.map_or("none", Slot::as_str);
        match routed {
            Some(slot) if state.active != Some(slot) => CheckResult::new(
                "state",
                CheckStatus::Warn,
                format!(
                    "state says {active} is active but {} routes to {slot}; the next switch rewrites both",
                    self.upstream_file.display()
                ),
            ),
            _ => CheckResult::new(
                "state",
                CheckStatus::Pass,
                format!(
                    "active {active}, previous {}",
                    state.previous.map_or("none", Slot::as_str)
                ),
            ),
        }
    }

    fn check_standby_port(&self, standby: Slot, standby_version: Option<&str>) -> CheckResult {
        let port = self.ports.port(standby);
        let name = "standby-port";
        if sys::port_is_free(port) {
            return CheckResult::new(
                name,
                CheckStatus::Pass,
                format!("port {port} of standby slot {standby} is free"),
            );
        }
        let ours = match runtime::slot_containers(
            &self.docker_cmd,
            self.runtime,
            &self.app,
            standby,
            runtime::Listing::Running,
        ) {
            Some(ps) => ps
                .run(COMMAND_TIMEOUT)
                .ok()
                .filter(|out| !out.stdout.trim().is_empty())
                .map(|_| format!("{}-{standby}", self.app)),
            None => standby_version.map(|v| format!("version {v}")),
        };
        match ours {
            Some(what) => CheckResult::new(
                name,
                CheckStatus::Pass,
                format!(
                    "port {port} is held by this app's own standby ({what}), which the deploy replaces"
                ),
            ),
            None => CheckResult::new(
                name,
                CheckStatus::Fail,
                format!(
                    "port {port} of standby slot {standby} is held by another process{}",
                    sys::port_owner(port)
                        .map(|o| format!(": {o}"))
                        .unwrap_or_default()
                ),
            ),
        }
    }

    fn check_tcp(&self, dep: &HostPort) -> Result<String, String> {
        let addrs: Vec<_> = (dep.host.as_str(), dep.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", dep.host))?
            .collect();
        let mut last_error = format!("{} resolves to no address", dep.host);
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.tcp_timeout) {
                Ok(_) => return Ok(format!("{dep} accepts connections ({addr})")),
                Err(e) => last_error = format!("{dep} ({addr}) refused or timed out: {e}"),
            }
        }
        Err(last_error)
    }
}
