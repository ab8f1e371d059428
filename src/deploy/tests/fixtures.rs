//! The plan and state fixtures of the engine's tests: a plan for app `shop` version v2,
//! and a state in which a slot is live.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::deploy::{
    DeployPlan, HealthSpec, HookSpec, MaintenanceSpec, Operation, Retire, RetireSpec, SiteSpec,
    WatchSpec,
};
use crate::exec::CommandLine;
use crate::input::{Slot, SlotPorts, SwitchMode};
use crate::runtime::{Pull, Runtime, RuntimeSpec};
use crate::state::State;
use crate::switch::SwitchConfig;

/// A plan for app `shop` version v2 with the docker runtime, its state in `dir`.
pub(super) fn plan(dir: &std::path::Path, runtime: Runtime) -> DeployPlan {
    let path = |name: &str| dir.join(name).display().to_string().parse().unwrap();
    DeployPlan {
        operation: Operation::Deploy,
        dry_run: false,
        purpose: "deploy v2 by test".into(),
        app: "shop".parse().unwrap(),
        version: "v2".parse().unwrap(),
        state_dir: path("state"),
        ports: SlotPorts::new(3001, 3002).unwrap(),
        runtime: RuntimeSpec {
            runtime,
            image: Some("shop:2".parse().unwrap()),
            container_port: "8080".parse().unwrap(),
            env_file: None,
            docker_args: Vec::new(),
            compose_file: Some(path("compose.yml")),
            compose_services: Vec::new(),
            deploy_command: Some("./slot.sh".into()),
            pull: Pull::Never,
        },
        health: HealthSpec {
            path: "/health".parse().unwrap(),
            timeout: Duration::from_secs(10),
            healthy_threshold: NonZeroU32::new(2).unwrap(),
        },
        switch: SwitchConfig {
            mode: SwitchMode::Reload,
            service_port: "3000".parse().unwrap(),
            service_port_given: false,
            upstream_file: path("upstream.conf"),
            test_cmd: CommandLine::new(["nginx", "-t"]),
            reload_cmd: CommandLine::new(["nginx", "-s", "reload"]),
            nginx_pid_file: path("nginx.pid"),
            reload_timeout: Duration::from_secs(10),
            verify_url: None,
            verify_timeout: Duration::from_secs(10),
            site_host: None,
            nft_cmd: CommandLine::new(["nft"]),
            log_dir: path("log"),
            access_log: true,
        },
        upstream_template: None,
        watch: WatchSpec {
            url: Some("http://127.0.0.1:8000/".parse().unwrap()),
            duration: Duration::from_secs(2),
            max_error_rate: "0.01".parse().unwrap(),
            max_p95_ms: 500,
            accept_status: "200-399".parse().unwrap(),
            rollback_on_failure: true,
            max_failed_requests: None,
        },
        canary: None,
        hooks: HookSpec::none(),
        retire: RetireSpec {
            old_slot: Retire::Stop,
            drain: Duration::from_secs(5),
            stop_timeout: Duration::from_secs(30),
            keep_images: 0,
        },
        maintenance: MaintenanceSpec::defaults(),
        site: SiteSpec::defaults(&"shop".parse().unwrap(), &path("upstream.conf")),
        lock_timeout: Duration::ZERO,
        systemd_unit_dir: path("systemd"),
        boot_helper_dir: path("lib/bluegreen"),
        min_free_disk_mb: 100,
        memory_check: crate::validate::MemoryCheck::Fail,
        min_free_memory_mb: 128,
        check_tcp: Vec::new(),
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
