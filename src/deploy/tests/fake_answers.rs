//! The fake host's answers to the engine (see `fake.rs` for its script and timeline).

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use crate::deploy::Host;
use crate::error::{Error, Result};
use crate::exec::{CommandLine, CommandOutput};
use crate::health::{HealthCheck, HealthReport};
use crate::input::{AppName, Slot, SlotPorts, SwitchTarget};
use crate::monitor::{Monitor, MonitorReport};
use crate::progress::Progress;
use crate::switch::{
    Fail, FakeSwitchHost, MaintenanceChange, SwitchConfig, SwitchReport, SwitchRequest,
};
use crate::validate::{CheckResult, CheckStatus, ValidateReport, ValidateRequest};

use super::fake::FakeHost;

impl Host for FakeHost {
    fn run(&self, cmd: &CommandLine, _timeout: Duration) -> Result<CommandOutput> {
        let words = cmd.argv().join(" ");
        self.note(format!("run {words}"));
        self.commands.lock().unwrap().push(cmd.clone());
        let variables = cmd
            .env()
            .iter()
            .map(|(name, value)| format!("{name}={value}"));
        if self
            .failing
            .is_some_and(|f| words.contains(f) || variables.clone().any(|v| v.contains(f)))
        {
            return Err(Error::CommandFailed {
                argv: words,
                status: "exit status 1".into(),
                stderr: "refused by the fake".into(),
            });
        }
        let missing = || Error::CommandFailed {
            argv: words.clone(),
            status: "exit status 1".into(),
            stderr: "no such object".into(),
        };
        let argv = cmd.argv();
        let stdout = if argv.get(1).is_some_and(|a| a == "inspect") {
            let slot: Slot = argv.last().unwrap().rsplit('-').next().unwrap().parse()?;
            if words.contains("{{.Image}}") {
                return Ok(CommandOutput {
                    status: std::process::ExitStatus::from_raw(0),
                    stdout: format!(
                        "{}\n",
                        self.container_images.get(&slot).ok_or_else(missing)?
                    ),
                    stderr: String::new(),
                });
            }
            format!("{}\n", self.labels.get(&slot).ok_or_else(missing)?)
        } else if words.ends_with(" config --services") {
            "web\nworker\n".to_owned()
        } else if argv.get(1..3).is_some_and(|a| a == ["volume", "inspect"]) {
            let claimed = self.claimed_by.lock().unwrap().clone();
            format!("{}\n", claimed.ok_or_else(missing)?)
        } else if argv.get(1..3).is_some_and(|a| a == ["volume", "create"]) {
            let dir = argv
                .iter()
                .find_map(|a| a.strip_prefix("bluegreen.state-dir="));
            let mut claimed = self.claimed_by.lock().unwrap();
            claimed.get_or_insert_with(|| dir.unwrap_or_default().to_owned());
            String::new()
        } else if argv.get(1..3).is_some_and(|a| a == ["image", "ls"]) {
            self.image_listing.clone().unwrap_or_default()
        } else if words.contains("{{.Size}}") {
            // An image is gone once every tag the listing gives it was removed.
            let id = argv.last().unwrap();
            let listing = self.image_listing.clone().unwrap_or_default();
            let removed = self.removed_images.lock().unwrap();
            let mut tags = listing
                .lines()
                .filter_map(|l| l.split_once(' '))
                .filter(|(i, _)| i == id);
            if tags.all(|(_, tag)| removed.iter().any(|r| r == tag)) {
                return Err(missing());
            }
            "2500000\n".to_owned()
        } else if argv.get(1..3).is_some_and(|a| a == ["image", "rm"]) {
            self.removed_images
                .lock()
                .unwrap()
                .push(argv.last().unwrap().clone());
            String::new()
        } else if argv.get(1..3).is_some_and(|a| a == ["image", "inspect"]) {
            let image = argv.last().unwrap().as_str();
            format!("{}\n", self.images.get(image).ok_or_else(missing)?)
        } else {
            let mut stopped = self.stopped.lock().unwrap();
            if argv.get(1).is_some_and(|a| a == "start") {
                stopped.take_if(|slot| words.ends_with(&format!("-{slot}")));
            }
            let not_running = self
                .squatted
                .iter()
                .chain(stopped.iter())
                .any(|slot| words.ends_with(&format!("bluegreen.slot={slot}")));
            let listing = words.contains(" ps --quiet ") && !not_running;
            if listing { "c0ffee\n" } else { "" }.to_owned()
        };
        Ok(CommandOutput {
            status: std::process::ExitStatus::from_raw(0),
            stdout,
            stderr: String::new(),
        })
    }

    fn health_check(&self, check: &HealthCheck, _progress: &Progress) -> HealthReport {
        self.note(format!("health {} x{}", check.url, check.healthy_threshold));
        self.health_budgets.lock().unwrap().push(check.timeout);
        let slot = if check.url.as_str().contains(":3001/") {
            Slot::Blue
        } else {
            Slot::Green
        };
        let mut health = self.health.lock().unwrap();
        let answers = health.entry(slot).or_default();
        let healthy = if answers.len() > 1 {
            answers.pop_front().unwrap()
        } else {
            answers.front().copied().unwrap_or(false)
        };
        HealthReport {
            healthy,
            url: check.url.to_string(),
            attempts: 1,
            consecutive_healthy: u32::from(healthy),
            healthy_threshold: check.healthy_threshold,
            elapsed_ms: 1,
            first_healthy_ms: healthy.then_some(1),
            last_answer: Some("HTTP 503".into()),
            last_problem: (!healthy).then(|| "status not accepted: HTTP 503".into()),
        }
    }

    fn switch(&self, request: &SwitchRequest, progress: &Progress) -> Result<SwitchReport> {
        let intent = &request.intent;
        let target = match intent.target {
            SwitchTarget::Slot(s) => s.to_string(),
            SwitchTarget::Previous => "previous".into(),
        };
        let condition = intent
            .only_if_active
            .map_or(String::new(), |s| format!(" only-if {s}"));
        let dry = if request.dry_run { " dry-run" } else { "" };
        let split = intent.split.as_ref().map_or(String::new(), |c| {
            format!(" with {} to {}", c.share, c.slot)
        });
        let maintenance = match &intent.maintenance {
            MaintenanceChange::Keep => "",
            MaintenanceChange::Start(_) => " maintenance on",
            MaintenanceChange::End => " maintenance off",
        };
        self.note(format!(
            "switch to {target}{condition}{split}{maintenance} ({}){dry}",
            intent.event.as_str()
        ));
        // The real switch, on a host whose nginx and kernel are in memory.
        let fail = match self.switch_fails_after_reload {
            true => Fail::FirstOf("new workers"),
            false => Fail::Never,
        };
        let nginx = FakeSwitchHost::new(
            request.config.upstream_file.as_path(),
            request.ports,
            request.config.service_port.get(),
            fail,
        )
        .with_clients_open(self.reload_with_clients);
        request.run_on(&nginx, progress)
    }

    fn read_file(&self, path: &Path) -> Result<Option<String>> {
        crate::fsutil::read_optional(path)
    }

    // Files are written to the test's directory and asserted there, not in the timeline.
    fn write_file(&self, path: &Path, text: &str) -> Result<()> {
        std::fs::write(path, text).map_err(|e| Error::io("write", path, e))
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        std::fs::remove_file(path).map_err(|e| Error::io("remove", path, e))
    }

    fn reload_nginx(
        &self,
        config: &SwitchConfig,
    ) -> std::result::Result<bool, (&'static str, String)> {
        self.note(format!("reload nginx ({})", config.reload_cmd));
        Ok(true)
    }

    fn port_taken(&self, port: u16) -> Option<String> {
        (self.port_taken == Some(port)).then(|| "pid 4242 (squatter)".into())
    }

    fn watch(&self, monitor: &Monitor, _progress: &Progress) -> MonitorReport {
        self.note(format!("watch {}", monitor.url));
        let during = if monitor.url.as_str().ends_with("/health") {
            &self.step_traffic
        } else {
            &self.watch_traffic
        };
        if let Some((path, lines)) = during {
            std::fs::create_dir_all(crate::fsutil::parent_dir(path)).unwrap();
            crate::fsutil::append_line(path, lines.trim_end()).unwrap();
        }
        let p95_ms = self.probes_p95_ms.unwrap_or(2);
        if p95_ms > monitor.max_p95_ms {
            let why = format!(
                "p95 latency {p95_ms} ms is above the limit {} ms",
                monitor.max_p95_ms
            );
            self.note(why.clone());
            return MonitorReport {
                passed: false,
                p95_ms,
                reasons: vec![why],
                ..self.probes_report(monitor)
            };
        }
        self.probes_report(monitor)
    }

    fn validate(&self, request: &ValidateRequest) -> ValidateReport {
        self.note("validate".into());
        let status = if self.validate_fails {
            CheckStatus::Fail
        } else {
            CheckStatus::Pass
        };
        ValidateReport {
            passed: !self.validate_fails,
            app: request.app.to_string(),
            standby: Slot::Blue,
            checks: vec![CheckResult {
                name: "nginx".into(),
                status,
                detail: "the fake's verdict".into(),
            }],
        }
    }

    fn routed(
        &self,
        _config: &SwitchConfig,
        _app: &AppName,
        _ports: SlotPorts,
    ) -> Result<Option<Slot>> {
        self.note("routed".into());
        Ok(self.routed)
    }

    fn split_routed(
        &self,
        _config: &SwitchConfig,
        _app: &AppName,
        _ports: SlotPorts,
    ) -> Result<Option<Slot>> {
        Ok(self.split_left)
    }

    fn pause(&self, duration: Duration) {
        self.note(format!("pause {}", humantime::format_duration(duration)));
    }
}
