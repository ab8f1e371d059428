//! The plan an empty input means: every setting at its default (the action's defaults,
//! from [`crate::config::defaults`]), for an app on its slots' ports. The action's inputs
//! and the helpers run by hand start from it and change only what they are given, so a new
//! setting has its default here and nowhere else in code.

use std::str::FromStr;

use clap::ValueEnum;

use crate::canary::{CanarySpec, TrafficSteps};
use crate::config::{
    self, default_service_port, default_state_dir, default_upstream_file, defaults,
};
use crate::deploy::{
    DeployPlan, HealthSpec, HookSpec, MaintenanceSpec, Operation, RetireSpec, SiteSpec, WatchSpec,
};
use crate::exec::CommandLine;
use crate::input::{AppName, SlotPorts};
use crate::runtime::RuntimeSpec;
use crate::switch::SwitchConfig;

impl DeployPlan {
    /// The plan of a deploy of `app` on the slots' `ports` with every other setting at its
    /// default; the version is `unversioned` and the purpose empty until the caller says
    /// who runs it and why.
    pub fn defaults(app: &AppName, ports: SlotPorts) -> DeployPlan {
        let upstream_file = default_upstream_file(app);
        DeployPlan {
            operation: Operation::Deploy,
            dry_run: parsed(defaults::DRY_RUN),
            purpose: String::new(),
            app: app.clone(),
            version: parsed("unversioned"),
            state_dir: default_state_dir(app),
            ports,
            runtime: RuntimeSpec {
                runtime: choice(defaults::RUNTIME),
                image: None,
                container_port: parsed(defaults::CONTAINER_PORT),
                env_file: None,
                docker_args: Vec::new(),
                compose_file: None,
                compose_services: Vec::new(),
                deploy_command: None,
                pull: choice(defaults::PULL),
            },
            health: HealthSpec {
                path: parsed(defaults::HEALTH_PATH),
                timeout: config::seconds(defaults::HEALTH_TIMEOUT),
                healthy_threshold: parsed(defaults::HEALTHY_THRESHOLD),
            },
            switch: SwitchConfig {
                mode: choice(defaults::SWITCH_MODE),
                service_port: default_service_port(app, ports),
                service_port_given: false,
                test_cmd: command(defaults::TEST_CMD),
                reload_cmd: command(defaults::RELOAD_CMD),
                nginx_pid_file: parsed(defaults::NGINX_PID_FILE),
                reload_timeout: config::seconds(defaults::RELOAD_TIMEOUT),
                verify_url: None,
                verify_timeout: config::seconds(defaults::VERIFY_TIMEOUT),
                site_host: None,
                nft_cmd: command(defaults::NFT_CMD),
                log_dir: parsed(defaults::LOG_DIR),
                access_log: parsed(defaults::ACCESS_LOG),
                upstream_file: upstream_file.clone(),
            },
            upstream_template: None,
            watch: WatchSpec {
                url: None,
                duration: config::seconds(defaults::MONITOR_DURATION),
                max_error_rate: parsed(defaults::MAX_ERROR_RATE),
                max_p95_ms: parsed(defaults::MAX_P95_MS),
                accept_status: parsed(defaults::MONITOR_ACCEPT_STATUS),
                rollback_on_failure: parsed(defaults::ROLLBACK_ON_FAILURE),
                max_failed_requests: None,
                failed_elsewhere: 0,
            },
            canary: None,
            hooks: HookSpec {
                post_switch_rollback: parsed(defaults::POST_SWITCH_ROLLBACK),
                ..HookSpec::none()
            },
            retire: RetireSpec {
                old_slot: choice(defaults::RETIRE),
                drain: config::seconds(defaults::DRAIN_SECONDS),
                stop_timeout: config::seconds(defaults::STOP_TIMEOUT),
                keep_images: parsed(defaults::KEEP_IMAGES),
            },
            maintenance: MaintenanceSpec {
                end_on_deploy: parsed(defaults::END_MAINTENANCE),
                ..MaintenanceSpec::defaults()
            },
            site: SiteSpec::defaults(app, &upstream_file),
            min_free_disk_mb: parsed(defaults::MIN_FREE_DISK_MB),
            memory_check: choice(defaults::MEMORY_CHECK),
            min_free_memory_mb: parsed(defaults::MIN_FREE_MEMORY_MB),
            check_tcp: Vec::new(),
            lock_timeout: config::seconds(defaults::LOCK_TIMEOUT),
            systemd_unit_dir: parsed(defaults::SYSTEMD_UNIT_DIR),
            boot_helper_dir: parsed(defaults::BOOT_HELPER_DIR),
            expect_live: None,
            hand_switch: None,
        }
    }
}

/// A default given as text, parsed (every default parses: config's
/// `every_default_parses_with_the_parser_of_its_setting`, and every test that builds a
/// plan).
fn parsed<T: FromStr>(text: &str) -> T {
    text.parse()
        .unwrap_or_else(|_| panic!("the default {text:?} parses"))
}

/// A default choice, by its name.
fn choice<T: ValueEnum>(name: &str) -> T {
    T::from_str(name, false).unwrap_or_else(|_| panic!("the default {name:?} is a choice"))
}

/// A default command line.
fn command(text: &str) -> CommandLine {
    CommandLine::parse(text, "default").expect("every default command parses")
}

impl CanarySpec {
    /// Traffic through `steps`, with every other canary setting at its default.
    pub fn defaults(steps: TrafficSteps) -> CanarySpec {
        CanarySpec {
            steps,
            step_duration: config::seconds(defaults::STEP_SECONDS),
            pause_at: None,
            error_margin: parsed(defaults::CANARY_ERROR_MARGIN),
            p95_margin_ms: parsed(defaults::CANARY_P95_MARGIN_MS),
            min_requests: parsed(defaults::CANARY_MIN_REQUESTS),
        }
    }
}
