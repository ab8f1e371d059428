//! The recording fake host of the engine's tests (their plan and state fixtures are in
//! `fixtures.rs`). The fake answers health checks, watches and validation from a script, makes a named command
//! fail, records state on a switch the way a real switch does, and writes every call into
//! one timeline.

use std::collections::{HashMap, VecDeque};
use std::os::unix::process::ExitStatusExt;
use std::sync::Mutex;
use std::time::Duration;

use crate::cancel::{Cancel, CancelReason};
use crate::deploy::{DeployPlan, Host};
use crate::error::{Error, Result};
use crate::exec::{CommandLine, CommandOutput};
use crate::health::{HealthCheck, HealthReport};
use crate::input::{AppName, Slot, SlotPorts, SwitchTarget};
use crate::monitor::{Monitor, MonitorReport};
use crate::progress::Progress;
use crate::switch::{InPlace, MaintenanceChange, SwitchConfig, SwitchReport, SwitchRequest};
use crate::validate::{CheckResult, CheckStatus, ValidateReport, ValidateRequest};

/// A host that answers from a script and writes down what it was asked.
pub(super) struct FakeHost {
    pub(super) timeline: Mutex<Vec<String>>,
    /// Health answers per slot, in order; the last one repeats.
    pub(super) health: Mutex<HashMap<Slot, VecDeque<bool>>>,
    /// A command whose words, or one of whose variables (`NAME=value`), contain this text
    /// fails.
    pub(super) failing: Option<&'static str>,
    /// Every command run, with its variables.
    pub(super) commands: Mutex<Vec<CommandLine>>,
    pub(super) validate_fails: bool,
    pub(super) watch_passes: bool,
    pub(super) routed: Option<Slot>,
    /// A slot whose port answers while its container does not run (`docker ps` lists
    /// nothing for it); every other slot's container runs.
    pub(super) squatted: Option<Slot>,
    /// A slot whose container is stopped: `docker ps` lists nothing for it until a
    /// `docker start` of it runs.
    pub(super) stopped: Mutex<Option<Slot>>,
    /// The budget of every health check, in order (the timeline gives their URLs).
    pub(super) health_budgets: Mutex<Vec<Duration>>,
    /// Raised (as the runner would) when the timeline gets a line starting with this text.
    pub(super) cancel_at: Option<(&'static str, Cancel)>,
    /// The version label of each slot's container (`docker inspect`); a slot without one
    /// has no container.
    pub(super) labels: HashMap<Slot, &'static str>,
    /// The content ID of the image of each slot's container (`docker inspect`), where the
    /// test says.
    pub(super) container_images: HashMap<Slot, &'static str>,
    /// The content ID of each image the host has (`docker image inspect`); every compose
    /// file has the services `web` and `worker`.
    pub(super) images: HashMap<&'static str, &'static str>,
    /// The state directory that claimed the app (`docker volume inspect`, `create`); the
    /// test's run helper claims it for the plan unless `unclaimed`.
    pub(super) claimed_by: Mutex<Option<String>>,
    /// No deployment has claimed the app on this host yet.
    pub(super) unclaimed: bool,
    /// The access log a canary step reads, and the lines nginx writes into it while the
    /// step probes the new slot (each watch of a slot's health URL).
    pub(super) step_traffic: Option<(std::path::PathBuf, String)>,
    /// Each switch reloads nginx with this many client connections open.
    pub(super) reload_with_clients: Option<u32>,
    /// Each switch reloads nginx, fails at its verify and reloads the previous include
    /// back, changing nothing.
    pub(super) switch_fails_at_verify: bool,
    /// The access log lines nginx writes while the deploy's watch runs (its URL is the
    /// site's, not a slot's health URL).
    pub(super) watch_traffic: Option<(std::path::PathBuf, String)>,
    /// The slot a split nginx routes sends a share to, which state may not know.
    pub(super) split_left: Option<Slot>,
    /// What `docker image ls` of the app's repository prints.
    pub(super) image_listing: Option<String>,
    /// The image references `docker image rm` removed.
    pub(super) removed_images: Mutex<Vec<String>>,
    /// A port another program listens on.
    pub(super) port_taken: Option<u16>,
    /// The p95 the watch's probes measure (2 ms unless set), held to the watch's limit.
    pub(super) probes_p95_ms: Option<u64>,
}

impl FakeHost {
    pub(super) fn new() -> FakeHost {
        FakeHost {
            timeline: Mutex::default(),
            health: Mutex::default(),
            failing: None,
            commands: Mutex::default(),
            validate_fails: false,
            watch_passes: true,
            routed: None,
            cancel_at: None,
            squatted: None,
            stopped: Mutex::default(),
            health_budgets: Mutex::default(),
            labels: HashMap::new(),
            images: HashMap::new(),
            container_images: HashMap::new(),
            claimed_by: Mutex::default(),
            unclaimed: false,
            step_traffic: None,
            watch_traffic: None,
            reload_with_clients: None,
            switch_fails_at_verify: false,
            split_left: None,
            image_listing: None,
            removed_images: Mutex::default(),
            port_taken: None,
            probes_p95_ms: None,
        }
    }

    /// The same host, where nginx logs `lines` into `plan`'s access log during each step.
    pub(super) fn serving_in_steps(mut self, plan: &DeployPlan, lines: String) -> FakeHost {
        self.step_traffic = Some((plan.switch.access_log_path(&plan.app), lines));
        self
    }

    /// The same host, where nginx logs `lines` into `plan`'s access log during the watch.
    pub(super) fn serving_in_watch(mut self, plan: &DeployPlan, lines: String) -> FakeHost {
        self.watch_traffic = Some((plan.switch.access_log_path(&plan.app), lines));
        self
    }

    /// The watch's report from its probes' errors (`watch_passes`).
    fn probes_report(&self, monitor: &Monitor) -> MonitorReport {
        MonitorReport {
            passed: self.watch_passes,
            url: monitor.url.to_string(),
            requests: 10,
            failures: if self.watch_passes { 0 } else { 10 },
            error_rate: if self.watch_passes { 0.0 } else { 1.0 },
            p50_ms: 1,
            p95_ms: 2,
            p99_ms: 3,
            longest_gap_ms: 4,
            duration_ms: 2000,
            stopped_early: !self.watch_passes,
            reasons: if self.watch_passes {
                Vec::new()
            } else {
                vec!["error rate 100.0% (10 of 10) is above the limit 1.0%".into()]
            },
            first_failure: None,
        }
    }

    /// The same host, whose `slot` holds a container labelled `version`.
    pub(super) fn holding(mut self, slot: Slot, version: &'static str) -> FakeHost {
        self.labels.insert(slot, version);
        self
    }

    /// Claims the app for `plan`'s deployment, unless the test set a claim (or none).
    pub(super) fn claim_for(&self, plan: &DeployPlan) {
        if !self.unclaimed {
            let mut claimed = self.claimed_by.lock().unwrap();
            claimed.get_or_insert_with(|| plan.state_dir.as_str().to_owned());
        }
    }

    /// The same host, having `image` with content ID `id`.
    pub(super) fn having_image(mut self, image: &'static str, id: &'static str) -> FakeHost {
        self.images.insert(image, id);
        self
    }

    /// Raises `cancel` when the engine does something whose timeline line starts with `at`.
    pub(super) fn cancelling_at(mut self, at: &'static str, cancel: &Cancel) -> FakeHost {
        self.cancel_at = Some((at, cancel.clone()));
        self
    }

    pub(super) fn healthy(self, slot: Slot, answers: &[bool]) -> FakeHost {
        self.health
            .lock()
            .unwrap()
            .insert(slot, answers.iter().copied().collect());
        self
    }

    pub(super) fn note(&self, line: String) {
        if let Some((at, cancel)) = &self.cancel_at
            && line.starts_with(at)
        {
            cancel.request(CancelReason::Runner);
        }
        self.timeline.lock().unwrap().push(line);
    }

    pub(super) fn timeline(&self) -> Vec<String> {
        self.timeline.lock().unwrap().clone()
    }
}

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

    fn switch(&self, request: &SwitchRequest, _progress: &Progress) -> Result<SwitchReport> {
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
        let config = &request.config;
        let state = request
            .store
            .load(&request.app, config.upstream_file.as_path(), request.ports)?
            .state;
        // The real switch's decision and record; only nginx and the kernel are left out.
        let include = crate::fsutil::read_optional(config.upstream_file.as_path())?;
        let decision = request.decide(&InPlace {
            state: &state,
            include: include.as_deref(),
            rule: request.config.nft(&request.app).map(|_| None),
            access_log: None,
        })?;
        if self.switch_fails_at_verify {
            return Err(Error::SwitchFailed {
                to: decision.to.to_string(),
                stage: "verify",
                reason: "the fake's verify URL did not answer".into(),
                restored: true,
                reloads: vec![self.reload_with_clients; 2],
            });
        }
        if !request.dry_run {
            std::fs::write(config.upstream_file.as_path(), &decision.include).unwrap();
            request.record(&state, &decision)?;
        }
        Ok(SwitchReport {
            app: request.app.to_string(),
            from: state.active,
            to: decision.to,
            port: request.ports.port(decision.to),
            version: decision.version,
            dry_run: request.dry_run,
            rendered: String::new(),
            diff: "+ server 127.0.0.1:3002;".into(),
            workers_restarted: true,
            verified_slot: true,
            kernel_confirmed: false,
            maintenance: decision.maintenance.is_some(),
            mode: request.config.mode,
            warnings: Vec::new(),
            elapsed_ms: 1,
            reload: self.reload_with_clients.map(|n| crate::switch::Reload {
                clients_open: Some(n),
            }),
        })
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
