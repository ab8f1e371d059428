//! The action's inputs: read from the environment (`action.yml` maps each input to an
//! `INPUT_*` variable), validated all at once before any connection is made, and turned
//! into the plan the host runs. Defaults come from [`crate::config::defaults`], values go
//! through the parsers of [`crate::input`] and choices through the enums' own names, so
//! nothing here restates a rule.
//!
//! - this file: the inputs as types, and [`Inputs::from_env`], which builds the plan;
//! - `connection`: the inputs that say how to reach the hosts (where, in what batches, as
//!   whom, with which key, through which bastion);
//! - `source`: reading one input with its default and parser, collecting every problem;
//! - `choices`: the action's own choices (image transfer, when to notify).

mod choices;
mod connection;
mod source;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::num::NonZeroU32;

pub use choices::{ImageTransfer, NotifyOn};
use connection::Connection;
use source::Source;
pub use source::env_name;

use crate::action::fleet::{FleetSpec, SshTarget};
use crate::canary::{CanarySpec, Share, TrafficSteps};
use crate::config::{default_server_file, default_state_dir, default_upstream_file, defaults};
use crate::deploy::{
    DeployPlan, HealthSpec, HookSpec, MaintenanceSpec, Operation, Retire, RetireSpec, SiteSpec,
    WatchSpec,
};
use crate::error::Error;
use crate::exec::CommandLine;
use crate::input::{
    AppName, Fraction, HealthPath, HostPath, HostPort, HttpUrl, Image, Listen, Port, ServerNames,
    ServiceName, SlotPorts, StatusSet, SwitchMode, Version, parse_list, parse_port,
    parse_positive_count, parse_time_limit, parse_wait,
};
use crate::runtime::{Pull, Runtime, RuntimeSpec};
use crate::switch::SwitchConfig;
use crate::validate::MemoryCheck;

/// Every input, validated.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Hosts, in the order batches take them.
    pub hosts: Vec<SshTarget>,
    /// How the run goes through the hosts.
    pub fleet: FleetSpec,
    /// SSH user.
    pub username: String,
    /// Private key text.
    pub ssh_key: String,
    /// known_hosts lines (empty only with `insecure_skip_host_key_check`).
    pub known_hosts: String,
    /// Skip host key checking (prints a warning).
    pub insecure_skip_host_key_check: bool,
    /// `user@bastion:port` to jump through.
    pub proxy_jump: Option<String>,
    /// How the image reaches the host.
    pub image_transfer: ImageTransfer,
    /// Slack incoming webhook URL.
    pub slack_webhook: Option<String>,
    /// When to notify.
    pub notify_on: NotifyOn,
    /// The plan every host runs.
    pub plan: DeployPlan,
}

/// The inputs a failed run is reported with, each only when it was valid.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// The app.
    pub app: Option<AppName>,
    /// The command.
    pub operation: Option<Operation>,
    /// The version.
    pub version: Option<Version>,
    /// The Slack webhook.
    pub slack_webhook: Option<String>,
    /// When to notify.
    pub notify_on: Option<NotifyOn>,
}

/// Inputs that did not validate: every problem in one error, and what was valid.
#[derive(Debug)]
pub struct InputErrors {
    /// Every problem, one clause each.
    pub error: Error,
    /// What was valid, for reporting the failure.
    pub known: Known,
}

impl Inputs {
    /// The inputs a report of this run may use.
    pub fn known(&self) -> Known {
        Known {
            app: Some(self.plan.app.clone()),
            operation: Some(self.plan.operation),
            version: Some(self.plan.version.clone()),
            slack_webhook: self.slack_webhook.clone(),
            notify_on: Some(self.notify_on),
        }
    }

    /// Validates every input from `env`; all problems are reported together.
    pub fn from_env(
        env: &HashMap<String, String>,
    ) -> std::result::Result<Inputs, Box<InputErrors>> {
        let mut s = Source {
            env,
            errors: Vec::new(),
        };
        let connection = Connection::read(&mut s);
        let app = s.parse("app", "", str::parse::<AppName>);
        let operation = s.choice::<Operation>("command", defaults::COMMAND);
        let version_default = env
            .get("GITHUB_SHA")
            .map(|sha| sha.chars().take(7).collect::<String>())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "unversioned".into());
        let version = s.parse("version", &version_default, str::parse::<Version>);

        let runtime = s.choice::<Runtime>("runtime", defaults::RUNTIME);
        let image = s.parse_optional("image", str::parse::<Image>);
        let container_port = s.parse(
            "container-port",
            defaults::CONTAINER_PORT,
            str::parse::<Port>,
        );
        let blue_port = s.parse("blue-port", defaults::BLUE_PORT, parse_port);
        let green_port = s.parse("green-port", defaults::GREEN_PORT, parse_port);
        let ports = match (blue_port, green_port) {
            (Some(b), Some(g)) => s.parse("blue-port`/`green-port", "", |_| SlotPorts::new(b, g)),
            _ => None,
        };
        let env_file = s.parse_optional("env-file", str::parse::<HostPath>);
        let docker_args = s.parse("docker-args", "", |raw| {
            shell_words::split(raw)
                .map_err(|e| Error::invalid("docker-args", format!("{raw:?}: {e}")))
        });
        let compose_file = s.parse_optional("compose-file", str::parse::<HostPath>);
        let compose_services = s.parse("compose-services", "", parse_list::<ServiceName>);
        let deploy_command = s.optional("deploy-command");
        let pull = s.choice::<Pull>("pull", defaults::PULL);
        let image_transfer = s.choice::<ImageTransfer>("image-transfer", defaults::IMAGE_TRANSFER);

        let health_path = s.parse(
            "health-path",
            defaults::HEALTH_PATH,
            str::parse::<HealthPath>,
        );
        let health_timeout = s.parse("health-timeout", defaults::HEALTH_TIMEOUT, parse_time_limit);
        let healthy_threshold = s.parse("healthy-threshold", defaults::HEALTHY_THRESHOLD, |raw| {
            parse_positive_count(raw).map(|n| NonZeroU32::new(n).expect("at least 1"))
        });

        let switch_mode = s.choice::<SwitchMode>("switch-mode", defaults::SWITCH_MODE);
        let service_port = s.parse_optional("service-port", str::parse::<Port>);
        let upstream_file = s.parse_optional("upstream-file", str::parse::<HostPath>);
        let upstream_template = s.parse_optional("upstream-template", str::parse::<HostPath>);
        let test_cmd = s.command("nginx-test-command", defaults::TEST_CMD);
        let reload_cmd = s.command("nginx-reload-command", defaults::RELOAD_CMD);
        let nft_cmd = s.command("nft-command", defaults::NFT_CMD);
        let log_dir = s.parse("log-dir", defaults::LOG_DIR, str::parse::<HostPath>);
        let access_log = s.boolean("access-log", defaults::ACCESS_LOG);
        let nginx_pid_file = s.parse(
            "nginx-pid-file",
            defaults::NGINX_PID_FILE,
            str::parse::<HostPath>,
        );
        let verify_url = s.parse_optional("verify-url", str::parse::<HttpUrl>);

        let monitor_url = s.parse_optional("monitor-url", str::parse::<HttpUrl>);
        let monitor_duration = s.parse("monitor-duration", defaults::MONITOR_DURATION, parse_wait);
        let max_error_rate = s.parse(
            "max-error-rate",
            defaults::MAX_ERROR_RATE,
            str::parse::<Fraction>,
        );
        let max_p95_ms = s.number("max-p95-ms", defaults::MAX_P95_MS);
        let max_failed_requests = match s.optional("max-failed-requests") {
            Some(raw) => s.number("max-failed-requests", &raw),
            None => None,
        };
        let monitor_accept_status = s.parse(
            "monitor-accept-status",
            defaults::MONITOR_ACCEPT_STATUS,
            str::parse::<StatusSet>,
        );
        let traffic_steps = s.parse_optional("traffic-steps", str::parse::<TrafficSteps>);
        let step_seconds = s.parse("step-seconds", defaults::STEP_SECONDS, parse_time_limit);
        let canary_pause_at = s.parse_optional("canary-pause-at", str::parse::<Share>);
        if canary_pause_at.is_some() && s.optional("traffic-steps").is_none() {
            s.errors.push(
                "input `canary-pause-at` needs `traffic-steps`: there is no step to pause at"
                    .into(),
            );
        }
        let canary_error_margin = s.parse(
            "canary-error-margin",
            defaults::CANARY_ERROR_MARGIN,
            str::parse::<Fraction>,
        );
        let canary_p95_margin_ms = s.number("canary-p95-margin-ms", defaults::CANARY_P95_MARGIN_MS);
        let canary_min_requests = s.parse(
            "canary-min-requests",
            defaults::CANARY_MIN_REQUESTS,
            |raw| {
                raw.parse::<u32>().map_err(|_| {
                    Error::invalid(
                        "canary-min-requests",
                        format!("{raw:?}: expected a whole number"),
                    )
                })
            },
        );
        let pre_switch = s.parse_optional("pre-switch-command", |raw| {
            CommandLine::parse(raw, "pre-switch-command")
        });
        let post_switch = s.parse_optional("post-switch-command", |raw| {
            CommandLine::parse(raw, "post-switch-command")
        });
        let step_command = s.parse_optional("step-command", |raw| {
            CommandLine::parse(raw, "step-command")
        });
        let hook_timeout = s.parse("hook-timeout", defaults::HOOK_TIMEOUT, parse_time_limit);
        let post_switch_rollback =
            s.boolean("post-switch-rollback", defaults::POST_SWITCH_ROLLBACK);
        let rollback_on_failure = s.boolean("rollback-on-failure", defaults::ROLLBACK_ON_FAILURE);
        let retire = s.choice::<Retire>("retire", defaults::RETIRE);
        let drain = s.parse("drain-seconds", defaults::DRAIN_SECONDS, parse_wait);
        let stop_timeout = s.parse("stop-timeout", defaults::STOP_TIMEOUT, parse_wait);
        let keep_images = s.parse("keep-images", defaults::KEEP_IMAGES, |raw| {
            raw.trim().parse::<u32>().map_err(|_| {
                Error::invalid(
                    "keep-images",
                    format!("{raw:?}: expected a whole number (0: keep every image)"),
                )
            })
        });
        let maintenance_port = s.parse(
            "maintenance-port",
            defaults::MAINTENANCE_PORT,
            str::parse::<Port>,
        );
        let maintenance_retry_after = s.parse(
            "maintenance-retry-after",
            defaults::MAINTENANCE_RETRY_AFTER,
            |raw| {
                raw.trim().parse::<u32>().map_err(|_| {
                    Error::invalid(
                        "maintenance-retry-after",
                        format!("{raw:?}: expected whole seconds"),
                    )
                })
            },
        );
        let maintenance_page = s.parse_optional("maintenance-page", str::parse::<HostPath>);
        let end_maintenance = s.boolean("end-maintenance", defaults::END_MAINTENANCE);
        let server_names = s.parse(
            "server-name",
            defaults::SERVER_NAME,
            str::parse::<ServerNames>,
        );
        let listen = s.parse("listen", defaults::LISTEN, str::parse::<Listen>);
        let server_file = s.parse_optional("server-file", str::parse::<HostPath>);
        let min_free_disk_mb = s.number("min-free-disk-mb", defaults::MIN_FREE_DISK_MB);
        let memory_check = s.choice::<MemoryCheck>("memory-check", defaults::MEMORY_CHECK);
        let min_free_memory_mb = s.number("min-free-memory-mb", defaults::MIN_FREE_MEMORY_MB);
        let check_tcp = s.parse("check-tcp", "", parse_list::<HostPort>);
        let dry_run = s.boolean("dry-run", defaults::DRY_RUN);
        let lock_timeout = s.parse("lock-timeout", defaults::LOCK_TIMEOUT, parse_wait);
        let systemd_unit_dir = s.parse(
            "systemd-unit-dir",
            defaults::SYSTEMD_UNIT_DIR,
            str::parse::<HostPath>,
        );
        let boot_helper_dir = s.parse(
            "boot-helper-dir",
            defaults::BOOT_HELPER_DIR,
            str::parse::<HostPath>,
        );
        let state_dir = s.parse_optional("state-dir", str::parse::<HostPath>);

        let slack_webhook = s.optional("slack-webhook");
        let webhook_valid = slack_webhook
            .as_ref()
            .is_none_or(|url| url.parse::<HttpUrl>().is_ok());
        if !webhook_valid {
            // The URL itself is a secret: never repeat it in the message.
            s.errors
                .push("input `slack-webhook` is not an http(s) URL".into());
        }
        let notify_on = s.choice::<NotifyOn>("notify-on", defaults::NOTIFY_ON);
        let known = Known {
            app: app.clone(),
            operation,
            version: version.clone(),
            slack_webhook: slack_webhook.clone().filter(|_| webhook_valid),
            notify_on,
        };
        let invalid = |errors: Vec<String>, known: Known| {
            Box::new(InputErrors {
                error: Error::invalid("inputs", errors.join("; ")),
                known,
            })
        };
        if !s.errors.is_empty() {
            return Err(invalid(s.errors, known));
        }

        let app = app.expect("validated");
        let upstream_file = upstream_file.unwrap_or_else(|| default_upstream_file(&app));
        let purpose = format!(
            "{} {} by {} ({})",
            operation.map_or("deploy", Operation::as_str),
            version.as_ref().map_or("", Version::as_str),
            env.get("GITHUB_ACTOR").map_or("someone", String::as_str),
            crate::action::report::GithubContext::run_url(env)
                .unwrap_or_else(|| "a local run".into())
        );
        let plan = DeployPlan {
            operation: operation.expect("validated"),
            dry_run: dry_run.expect("validated"),
            purpose,
            state_dir: state_dir.unwrap_or_else(|| default_state_dir(&app)),
            version: version.expect("validated"),
            ports: ports.expect("validated"),
            runtime: RuntimeSpec {
                runtime: runtime.expect("validated"),
                image,
                container_port: container_port.expect("validated"),
                env_file,
                docker_args: docker_args.expect("validated"),
                compose_file,
                compose_services: compose_services.expect("validated"),
                deploy_command,
                pull: pull.expect("validated"),
            },
            health: HealthSpec {
                path: health_path.expect("validated"),
                timeout: health_timeout.expect("validated"),
                healthy_threshold: healthy_threshold.expect("validated"),
            },
            switch: SwitchConfig {
                mode: switch_mode.expect("validated"),
                service_port: service_port.unwrap_or_else(|| {
                    crate::config::default_service_port(&app, ports.expect("validated"))
                }),
                service_port_given: service_port.is_some(),
                upstream_file: upstream_file.clone(),
                test_cmd: test_cmd.expect("validated"),
                reload_cmd: reload_cmd.expect("validated"),
                nginx_pid_file: nginx_pid_file.expect("validated"),
                reload_timeout: crate::config::seconds(defaults::RELOAD_TIMEOUT),
                verify_url,
                verify_timeout: crate::config::seconds(defaults::VERIFY_TIMEOUT),
                site_host: None,
                nft_cmd: nft_cmd.expect("validated"),
                log_dir: log_dir.expect("validated"),
                access_log: access_log.expect("validated"),
            },
            upstream_template,
            watch: WatchSpec {
                url: monitor_url,
                duration: monitor_duration.expect("validated"),
                max_error_rate: max_error_rate.expect("validated"),
                max_p95_ms: max_p95_ms.expect("validated"),
                max_failed_requests,
                accept_status: monitor_accept_status.expect("validated"),
                rollback_on_failure: rollback_on_failure.expect("validated"),
            },
            canary: traffic_steps.map(|steps| CanarySpec {
                steps,
                step_duration: step_seconds.expect("validated"),
                pause_at: canary_pause_at,
                error_margin: canary_error_margin.expect("validated"),
                p95_margin_ms: canary_p95_margin_ms.expect("validated"),
                min_requests: canary_min_requests.expect("validated"),
            }),
            hooks: HookSpec {
                pre_switch,
                post_switch,
                step: step_command,
                timeout: hook_timeout.expect("validated"),
                post_switch_rollback: post_switch_rollback.expect("validated"),
            },
            retire: RetireSpec {
                old_slot: retire.expect("validated"),
                drain: drain.expect("validated"),
                stop_timeout: stop_timeout.expect("validated"),
                keep_images: keep_images.expect("validated"),
            },
            maintenance: MaintenanceSpec {
                port: maintenance_port.expect("validated"),
                retry_after_seconds: maintenance_retry_after.expect("validated"),
                page: maintenance_page,
                end_on_deploy: end_maintenance.expect("validated"),
            },
            site: SiteSpec {
                server_names: server_names.expect("validated"),
                listen: listen.expect("validated"),
                server_file: server_file
                    .unwrap_or_else(|| default_server_file(&app, &upstream_file)),
            },
            min_free_disk_mb: min_free_disk_mb.expect("validated"),
            memory_check: memory_check.expect("validated"),
            min_free_memory_mb: min_free_memory_mb.expect("validated"),
            check_tcp: check_tcp.expect("validated"),
            lock_timeout: lock_timeout.expect("validated"),
            systemd_unit_dir: systemd_unit_dir.expect("validated"),
            boot_helper_dir: boot_helper_dir.expect("validated"),
            app,
        };
        let image_transfer = image_transfer.expect("validated");
        let mut problems = plan.problems();
        if image_transfer == ImageTransfer::Ssh && plan.runtime.image.is_none() {
            problems.push("image-transfer: ssh needs an image".into());
        }
        if !problems.is_empty() {
            return Err(invalid(problems, known));
        }
        let connection = connection.expect("validated");
        Ok(Inputs {
            hosts: connection.hosts,
            fleet: connection.fleet,
            username: connection.username,
            ssh_key: connection.ssh_key,
            known_hosts: connection.known_hosts,
            insecure_skip_host_key_check: connection.insecure_skip_host_key_check,
            proxy_jump: connection.proxy_jump,
            image_transfer,
            slack_webhook,
            notify_on: notify_on.expect("validated"),
            plan,
        })
    }
}
