//! `status`: what an app's host holds and serves, for an operator at the host: what
//! state.json records, what nginx really routes to (the upstream file, or the nftables rule
//! in that mode), what each slot runs and whether it answers, and the latest history. The
//! same report as the action's `command: status`; changes nothing.

use std::num::NonZeroU32;
use std::process::ExitCode;

use crate::cli::{AppArgs, EXIT_CODES_HELP, PortArgs};
use crate::config::{self, default_state_dir, default_upstream_file, defaults};
use crate::deploy::{
    DeployPlan, Engine, HealthSpec, HookSpec, Operation, Retire, RetireSpec, StatusReport,
    SystemHost, WatchSpec,
};
use crate::error::Result;
use crate::exec::CommandLine;
use crate::input::{HealthPath, HostPath};
use crate::report::{Report, fail, fail_run, finish};
use crate::runtime::{Pull, Runtime, RuntimeSpec};
use crate::switch::{SwitchConfig, SwitchMode};

const EXAMPLES: &str = "\
Examples:
  bluegreen status --app shop
  bluegreen status --app shop --runtime compose --nft-command 'sudo nft' --json

Exit code 1 means something needs a look: nginx routes to another slot than state.json
records, or the slot that takes traffic does not answer healthy or is not running.";

/// Show what an app's host holds and serves.
#[derive(Debug, clap::Parser)]
#[command(name = "status", version, after_help = format!("{EXAMPLES}\n\n{EXIT_CODES_HELP}"))]
pub struct Cli {
    #[command(flatten)]
    app: AppArgs,

    #[command(flatten)]
    ports: PortArgs,

    /// The nginx include that holds the app's upstream
    /// [default: /etc/nginx/conf.d/bluegreen-APP.conf].
    #[arg(long, value_name = "PATH")]
    upstream_file: Option<HostPath>,

    /// How the slots run, to see what each runs.
    #[arg(long, value_enum, default_value = defaults::RUNTIME)]
    runtime: Runtime,

    /// The health path each slot is probed at.
    #[arg(long, default_value = defaults::HEALTH_PATH, value_name = "PATH")]
    health_path: HealthPath,

    /// The nft command (split into words, no shell), e.g. 'sudo nft': reads the rule in
    /// nftables mode.
    #[arg(long, default_value = defaults::NFT_CMD, value_name = "CMD")]
    nft_command: String,

    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The status plan of the app these options name; the settings a status does not use are
/// the defaults.
fn plan(cli: &Cli) -> Result<DeployPlan> {
    let app = &cli.app.app;
    let parse = |text: &str| -> Result<HostPath> { text.parse() };
    Ok(DeployPlan {
        operation: Operation::Status,
        dry_run: false,
        purpose: "status by hand".into(),
        app: app.clone(),
        version: "unversioned".parse()?,
        state_dir: cli
            .app
            .state_dir
            .clone()
            .unwrap_or_else(|| default_state_dir(app)),
        ports: cli.ports.ports(app, &cli.app.store())?,
        runtime: RuntimeSpec {
            runtime: cli.runtime,
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
            path: cli.health_path.clone(),
            timeout: config::seconds(defaults::HEALTH_TIMEOUT),
            healthy_threshold: NonZeroU32::MIN,
        },
        switch: SwitchConfig {
            mode: SwitchMode::Auto,
            service_port: defaults::SERVICE_PORT.parse()?,
            upstream_file: cli
                .upstream_file
                .clone()
                .unwrap_or_else(|| default_upstream_file(app)),
            test_cmd: CommandLine::parse(defaults::TEST_CMD, "test")?,
            reload_cmd: CommandLine::parse(defaults::RELOAD_CMD, "reload")?,
            nginx_pid_file: parse(defaults::NGINX_PID_FILE)?,
            reload_timeout: config::seconds(defaults::RELOAD_TIMEOUT),
            verify_url: None,
            verify_timeout: config::seconds(defaults::VERIFY_TIMEOUT),
            nft_cmd: CommandLine::parse(&cli.nft_command, "--nft-command")?,
        },
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
        },
        canary: None,
        hooks: HookSpec::none(),
        retire: RetireSpec {
            old_slot: Retire::Stop,
            drain: std::time::Duration::ZERO,
            stop_timeout: config::seconds(defaults::STOP_TIMEOUT),
            keep_images: 0,
        },
        min_free_disk_mb: 0,
        check_tcp: Vec::new(),
        lock_timeout: std::time::Duration::ZERO,
        systemd_unit_dir: parse(defaults::SYSTEMD_UNIT_DIR)?,
    })
}

impl Report for StatusReport {
    fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    fn human(&self) -> String {
        self.lines().iter().map(|l| format!("{l}\n")).collect()
    }
}

pub fn main(cli: Cli) -> ExitCode {
    let plan = match plan(&cli) {
        Ok(plan) => plan,
        Err(e) => return fail(cli.json, &e),
    };
    let quiet = |_: &crate::deploy::Event| {};
    let result = Engine::new(&plan, &SystemHost, &quiet).run();
    match (result.status, result.error) {
        (Some(report), _) => finish(cli.json, Ok(report)),
        (None, Some(e)) => fail_run(cli.json, &e),
        (None, None) => unreachable!("a status run that failed says why"),
    }
}
