//! The plan of an engine operation started by hand on the host (`bluegreen status`,
//! `setup`, `maintenance`): the options they share (those of switch-traffic) and the
//! defaults for the settings they do not use; and running it, with the engine's progress on
//! stderr and its result on stdout.

use std::num::NonZeroU32;
use std::process::ExitCode;

use clap::Args;

use crate::cli::{AppArgs, NginxArgs, PortArgs, SwitchArgs, SwitchParts};
use crate::config::{self, default_state_dir, defaults};
use crate::deploy::{
    DeployPlan, DeployResult, Engine, Event, HealthSpec, HookSpec, MaintenanceSpec, Operation,
    Retire, RetireSpec, SiteSpec, SystemHost, WatchSpec,
};
use crate::error::Result;
use crate::input::{HostPath, Port};
use crate::runtime::{Pull, Runtime, RuntimeSpec};

/// The options every operation run by hand takes.
#[derive(Debug, Clone, Args)]
pub struct HandArgs {
    #[command(flatten)]
    pub app: AppArgs,

    #[command(flatten)]
    pub ports: PortArgs,

    #[command(flatten)]
    pub nginx: NginxArgs,

    #[command(flatten)]
    pub switch: SwitchArgs,

    /// The loopback port of nginx's own server that answers 503 for the app (maintenance,
    /// and setup's placeholder before the first deploy).
    #[arg(long, default_value = defaults::MAINTENANCE_PORT, value_name = "PORT")]
    pub maintenance_port: Port,

    /// Where the nftables mode installs its boot path (a systemd unit).
    #[arg(long, default_value = defaults::SYSTEMD_UNIT_DIR, value_name = "DIR")]
    pub systemd_unit_dir: HostPath,

    /// The root-owned directory holding the helper the boot unit runs as root.
    #[arg(long, default_value = defaults::BOOT_HELPER_DIR, value_name = "DIR")]
    pub boot_helper_dir: HostPath,
}

impl HandArgs {
    /// The plan of `operation` for the app these options name; what it does not use is the
    /// default. Fails on bad input before anything is touched.
    pub fn plan(&self, operation: Operation, purpose: &str) -> Result<DeployPlan> {
        let app = &self.app.app;
        let parts = SwitchParts {
            app,
            state_dir: self.app.state_dir.as_ref(),
            ports: &self.ports,
            nginx: &self.nginx,
            switch: &self.switch,
        };
        // The engine decides `auto` as the run starts, and says why.
        let switch = parts.requested_config()?;
        let upstream_file = switch.upstream_file.clone();
        let mut plan = DeployPlan {
            operation,
            dry_run: false,
            purpose: purpose.to_owned(),
            app: app.clone(),
            version: "unversioned".parse()?,
            state_dir: self
                .app
                .state_dir
                .clone()
                .unwrap_or_else(|| default_state_dir(app)),
            ports: parts.ports()?,
            runtime: RuntimeSpec {
                runtime: Runtime::Docker,
                image: None,
                container_port: defaults::CONTAINER_PORT.parse()?,
                env_file: None,
                docker_args: Vec::new(),
                compose_file: None,
                compose_services: Vec::new(),
                deploy_command: None,
                pull: Pull::Never,
            },
            health: HealthSpec {
                path: defaults::HEALTH_PATH.parse()?,
                timeout: config::seconds(defaults::HEALTH_TIMEOUT),
                healthy_threshold: NonZeroU32::MIN,
            },
            switch,
            upstream_template: None,
            watch: WatchSpec {
                url: None,
                duration: std::time::Duration::ZERO,
                max_error_rate: defaults::MAX_ERROR_RATE.parse()?,
                max_p95_ms: defaults::MAX_P95_MS
                    .parse()
                    .expect("every default parses (tested)"),
                accept_status: defaults::MONITOR_ACCEPT_STATUS.parse()?,
                rollback_on_failure: false,
                max_failed_requests: None,
            },
            canary: None,
            hooks: HookSpec::none(),
            retire: RetireSpec {
                old_slot: Retire::Stop,
                drain: std::time::Duration::ZERO,
                stop_timeout: config::seconds(defaults::STOP_TIMEOUT),
                keep_images: 0,
            },
            maintenance: MaintenanceSpec {
                port: self.maintenance_port,
                ..MaintenanceSpec::defaults()
            },
            site: SiteSpec::defaults(app, &upstream_file),
            min_free_disk_mb: 0,
            memory_check: crate::validate::MemoryCheck::Off,
            min_free_memory_mb: 0,
            check_tcp: Vec::new(),
            lock_timeout: self.switch.lock_timeout,
            systemd_unit_dir: self.systemd_unit_dir.clone(),
            boot_helper_dir: self.boot_helper_dir.clone(),
        };
        // Probes of the site ask it by the name setup gave it, as a deploy's do.
        plan.settle_site_host();
        Ok(plan)
    }
}

/// Runs `plan` on this host: the engine's progress on stderr, then its result on stdout
/// (one JSON object with `json`, else a line and, for a dry run, the diff); returns the
/// run's exit code.
pub fn run(plan: &DeployPlan, json: bool) -> ExitCode {
    let problems = plan.problems();
    if !problems.is_empty() {
        let error = crate::error::Error::invalid("plan", problems.join("; "));
        return crate::report::fail(json, &error);
    }
    let progress = |event: &Event| match event {
        Event::Log { line } => eprintln!("{line}"),
        Event::PhaseEnd(record) => eprintln!(
            "{} {} ({} ms): {}",
            if record.ok { "ok" } else { "FAILED" },
            record.phase.as_str(),
            record.ms,
            record.detail
        ),
        _ => {}
    };
    let result = Engine::new(plan, &SystemHost, &progress).run();
    print_result(plan, &result, json);
    ExitCode::from(result.exit_code())
}

fn print_result(plan: &DeployPlan, result: &DeployResult, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string(result).expect("a result serializes")
        );
        return;
    }
    if let Some(diff) = result.upstream_diff.as_ref().filter(|d| !d.is_empty()) {
        print!("{diff}");
    }
    for warning in &result.warnings {
        println!("warning: {warning}");
    }
    let outcome = result.result.map_or("failed", |o| o.as_str());
    match &result.error {
        Some(e) => println!(
            "{} {}: {outcome}: {}",
            plan.operation.as_str(),
            plan.app,
            e.message
        ),
        None => println!("{} {}: {outcome}", plan.operation.as_str(), plan.app),
    }
}
