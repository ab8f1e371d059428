//! The plan of an engine operation started by hand on the host (`bluegreen status`,
//! `setup`, `maintenance`, `switch-traffic`, and the rollback of `monitor
//! --rollback-on-fail`): the options they share (those of switch-traffic) and the defaults
//! for the settings they do not use; and running it, with the engine's progress on stderr
//! and its result on stdout.

use std::num::NonZeroU32;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::cli::{AppArgs, NginxArgs, PortArgs, SwitchArgs, SwitchParts};
use crate::config::defaults;
use crate::deploy::{
    DeployPlan, DeployResult, Engine, Event, HealthSpec, MaintenanceSpec, Operation, RetireSpec,
    SiteSpec, SystemHost, WatchSpec,
};
use crate::error::Result;
use crate::input::{HostPath, Port};
use crate::runtime::{Pull, RuntimeSpec};
use crate::validate::MemoryCheck;

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
    /// The options of a helper that takes the switch's options but not the rest
    /// (`switch-traffic`, `monitor --rollback-on-fail`): those left out at their defaults.
    pub fn with_defaults(
        app: AppArgs,
        ports: PortArgs,
        nginx: NginxArgs,
        switch: SwitchArgs,
    ) -> HandArgs {
        let parsed = |text: &str| text.parse::<HostPath>().expect("a tested default");
        HandArgs {
            app,
            ports,
            nginx,
            switch,
            maintenance_port: defaults::MAINTENANCE_PORT
                .parse()
                .expect("a tested default"),
            systemd_unit_dir: parsed(defaults::SYSTEMD_UNIT_DIR),
            boot_helper_dir: parsed(defaults::BOOT_HELPER_DIR),
        }
    }

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
        let defaults = DeployPlan::defaults(app, parts.ports()?);
        // What is left at its default is not used by these operations; what they do use
        // and the action would default otherwise is said here: no watch, no pull, no
        // preflight limits, a slot stopped at once.
        let mut plan = DeployPlan {
            operation,
            purpose: purpose.to_owned(),
            state_dir: self.app.state_dir.clone().unwrap_or(defaults.state_dir),
            runtime: RuntimeSpec {
                pull: Pull::Never,
                ..defaults.runtime
            },
            health: HealthSpec {
                healthy_threshold: NonZeroU32::MIN,
                ..defaults.health
            },
            site: SiteSpec::defaults(app, &switch.upstream_file),
            upstream_template: self.switch.template_path()?,
            switch,
            watch: WatchSpec {
                duration: Duration::ZERO,
                rollback_on_failure: false,
                ..defaults.watch
            },
            retire: RetireSpec {
                drain: Duration::ZERO,
                keep_images: 0,
                ..defaults.retire
            },
            maintenance: MaintenanceSpec {
                port: self.maintenance_port,
                ..defaults.maintenance
            },
            min_free_disk_mb: 0,
            memory_check: MemoryCheck::Off,
            min_free_memory_mb: 0,
            lock_timeout: self.switch.lock_timeout,
            systemd_unit_dir: self.systemd_unit_dir.clone(),
            boot_helper_dir: self.boot_helper_dir.clone(),
            ..defaults
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
    if let Err(error) = refuse_problems(plan) {
        return crate::cli::output::fail(json, &error);
    }
    let result = Engine::new(plan, &SystemHost, &print_progress).run();
    print_result(plan, &result, json);
    ExitCode::from(result.exit_code())
}

/// Refuses `plan`, before anything runs, when a rule that spans its fields is broken (see
/// [`DeployPlan::problems`]).
pub fn refuse_problems(plan: &DeployPlan) -> Result<()> {
    let problems = plan.problems();
    if problems.is_empty() {
        return Ok(());
    }
    Err(crate::error::Error::invalid("plan", problems.join("; ")))
}

/// Prints the engine's progress on stderr: its log lines and each phase's end.
pub fn print_progress(event: &Event) {
    match event {
        Event::Log { line } => eprintln!("{line}"),
        Event::PhaseEnd(record) => eprintln!(
            "{} {} ({} ms): {}",
            if record.ok { "ok" } else { "FAILED" },
            record.phase.as_str(),
            record.ms,
            record.detail
        ),
        _ => {}
    }
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
