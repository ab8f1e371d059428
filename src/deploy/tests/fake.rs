//! The recording fake host of the engine's tests (their plan and state fixtures are in
//! `fixtures.rs`): here its script (what it answers, set by the builders) and its
//! timeline; its answers to the engine, the [`Host`](crate::deploy::Host) implementation,
//! are in `fake_answers.rs`. The fake answers health checks, watches and validation from
//! the script, makes a named command fail, records state on a switch the way a real switch
//! does, and writes every call into one timeline.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use crate::cancel::{Cancel, CancelReason};
use crate::deploy::DeployPlan;
use crate::exec::CommandLine;
use crate::input::Slot;
use crate::monitor::{Monitor, MonitorReport};

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
    /// Each switch reloads nginx, sees no new workers and reloads the previous include
    /// back, changing nothing.
    pub(super) switch_fails_after_reload: bool,
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
            switch_fails_after_reload: false,
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
    pub(super) fn probes_report(&self, monitor: &Monitor) -> MonitorReport {
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
