//! The plan and state fixtures of the engine's tests: a plan for app `shop` version v2,
//! and a state in which a slot is live.

use std::time::Duration;

use crate::deploy::{DeployPlan, HealthSpec, RetireSpec, SiteSpec, WatchSpec};
use crate::input::{AppName, Slot, SlotPorts, SwitchMode};
use crate::runtime::{Pull, Runtime, RuntimeSpec};
use crate::state::State;
use crate::switch::SwitchConfig;

/// A plan for app `shop` version v2 with the docker runtime, its state in `dir`: the
/// defaults but for the host paths (all under `dir`), the reload mode on service port 3000,
/// short waits and a watch of 2 s.
pub(super) fn plan(dir: &std::path::Path, runtime: Runtime) -> DeployPlan {
    let path = |name: &str| dir.join(name).display().to_string().parse().unwrap();
    let app: AppName = "shop".parse().unwrap();
    let base = DeployPlan::defaults(&app, SlotPorts::new(3001, 3002).unwrap());
    DeployPlan {
        purpose: "deploy v2 by test".into(),
        version: "v2".parse().unwrap(),
        state_dir: path("state"),
        runtime: RuntimeSpec {
            runtime,
            image: Some("shop:2".parse().unwrap()),
            compose_file: Some(path("compose.yml")),
            deploy_command: Some("./slot.sh".into()),
            pull: Pull::Never,
            ..base.runtime
        },
        health: HealthSpec {
            timeout: Duration::from_secs(10),
            ..base.health
        },
        switch: SwitchConfig {
            mode: SwitchMode::Reload,
            service_port: "3000".parse().unwrap(),
            upstream_file: path("upstream.conf"),
            nginx_pid_file: path("nginx.pid"),
            log_dir: path("log"),
            ..base.switch
        },
        watch: WatchSpec {
            url: Some("http://127.0.0.1:8000/".parse().unwrap()),
            duration: Duration::from_secs(2),
            ..base.watch
        },
        retire: RetireSpec {
            keep_images: 0,
            ..base.retire
        },
        site: SiteSpec::defaults(&app, &path("upstream.conf")),
        lock_timeout: Duration::ZERO,
        systemd_unit_dir: path("systemd"),
        boot_helper_dir: path("lib/bluegreen"),
        min_free_disk_mb: 100,
        ..base
    }
}

/// Records `slot` as live with `version`, after `previous` (live before it).
pub(super) fn live(plan: &DeployPlan, previous: Option<(Slot, &str)>, slot: Slot, version: &str) {
    let mut state = State::new(&plan.app);
    if let Some((before, v)) = previous {
        state = state.after_switch(before, plan.ports, Some(v), None, "t0");
    }
    let state = state.after_switch(slot, plan.ports, Some(version), None, "t1");
    plan.store().save(&state).unwrap();
}
