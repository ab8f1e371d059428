//! Every input that lands in the plan, declared once: its name, what an empty value means
//! and where a given value goes. [`Inputs::from_env`](super::Inputs::from_env) starts from
//! [`DeployPlan::defaults`] and applies the rows of the inputs that are given, in this
//! order; the tests check each row's default against `DeployPlan::defaults` and each name
//! against action.yml.
//!
//! Order matters in two places: `traffic-steps` comes before the canary's settings (they
//! apply to its steps; without steps they are checked and have nothing to set), and
//! `upstream-file` before `server-file` (the server block's default sits beside the
//! include).
//!
//! The inputs not here are read before the plan is built, because the plan's defaults or
//! the report of a failed run need them: `app`, `command`, `version`, `blue-port` and
//! `green-port`, the connection's (see `connection`), `image-transfer`, `slack-webhook`
//! and `notify-on`.

use std::num::NonZeroU32;

use super::source::Value;
use crate::canary::CanarySpec;
use crate::config::{default_server_file, defaults};
use crate::deploy::DeployPlan;
use crate::error::{Error, Result};
use crate::input::parse_positive_count;

/// One input of the plan.
pub(super) struct PlanInput {
    /// Its name in action.yml.
    pub(super) name: &'static str,
    /// What an empty value means, as action.yml's default says it ("": nothing set).
    pub(super) default: &'static str,
    /// Parses a given value into its place in the plan.
    pub(super) apply: fn(&mut DeployPlan, &Value) -> Result<()>,
}

const fn input(
    name: &'static str,
    default: &'static str,
    apply: fn(&mut DeployPlan, &Value) -> Result<()>,
) -> PlanInput {
    PlanInput {
        name,
        default,
        apply,
    }
}

/// The canary's settings, set where there are traffic steps.
fn canary(plan: &mut DeployPlan, set: impl FnOnce(&mut CanarySpec)) {
    if let Some(spec) = plan.canary.as_mut() {
        set(spec);
    }
}

/// The inputs of the plan, in the order they are applied.
pub(super) const PLAN_INPUTS: &[PlanInput] = &[
    // How slots run.
    input("runtime", defaults::RUNTIME, |p, v| {
        v.choice().map(|r| p.runtime.runtime = r)
    }),
    input("image", "", |p, v| {
        v.parse().map(|i| p.runtime.image = Some(i))
    }),
    input("container-port", defaults::CONTAINER_PORT, |p, v| {
        v.parse().map(|port| p.runtime.container_port = port)
    }),
    input("env-file", "", |p, v| {
        v.parse().map(|f| p.runtime.env_file = Some(f))
    }),
    input("docker-args", "", |p, v| {
        shell_words::split(v.raw)
            .map(|words| p.runtime.docker_args = words)
            .map_err(|e| Error::invalid(v.name, format!("{:?}: {e}", v.raw)))
    }),
    input("compose-file", "", |p, v| {
        v.parse().map(|f| p.runtime.compose_file = Some(f))
    }),
    input("compose-services", "", |p, v| {
        v.list().map(|s| p.runtime.compose_services = s)
    }),
    input("deploy-command", "", |p, v| {
        p.runtime.deploy_command = Some(v.raw.to_owned());
        Ok(())
    }),
    input("pull", defaults::PULL, |p, v| {
        v.choice().map(|pull| p.runtime.pull = pull)
    }),
    // When the standby is ready.
    input("health-path", defaults::HEALTH_PATH, |p, v| {
        v.parse().map(|path| p.health.path = path)
    }),
    input("health-timeout", defaults::HEALTH_TIMEOUT, |p, v| {
        v.time_limit().map(|t| p.health.timeout = t)
    }),
    input("healthy-threshold", defaults::HEALTHY_THRESHOLD, |p, v| {
        parse_positive_count(v.raw)
            .map(|n| p.health.healthy_threshold = NonZeroU32::new(n).expect("at least 1"))
    }),
    // How traffic moves.
    input("switch-mode", defaults::SWITCH_MODE, |p, v| {
        v.choice().map(|m| p.switch.mode = m)
    }),
    input("service-port", "", |p, v| {
        v.parse().map(|port| {
            p.switch.service_port = port;
            p.switch.service_port_given = true;
        })
    }),
    input("upstream-file", "", |p, v| {
        v.parse().map(|file| {
            p.site.server_file = default_server_file(&p.app, &file);
            p.switch.upstream_file = file;
        })
    }),
    input("upstream-template", "", |p, v| {
        v.parse().map(|f| p.upstream_template = Some(f))
    }),
    input("nginx-test-command", defaults::TEST_CMD, |p, v| {
        v.command().map(|c| p.switch.test_cmd = c)
    }),
    input("nginx-reload-command", defaults::RELOAD_CMD, |p, v| {
        v.command().map(|c| p.switch.reload_cmd = c)
    }),
    input("nft-command", defaults::NFT_CMD, |p, v| {
        v.command().map(|c| p.switch.nft_cmd = c)
    }),
    input("log-dir", defaults::LOG_DIR, |p, v| {
        v.parse().map(|d| p.switch.log_dir = d)
    }),
    input("access-log", defaults::ACCESS_LOG, |p, v| {
        v.boolean().map(|on| p.switch.access_log = on)
    }),
    input("nginx-pid-file", defaults::NGINX_PID_FILE, |p, v| {
        v.parse().map(|f| p.switch.nginx_pid_file = f)
    }),
    input("verify-url", "", |p, v| {
        v.parse().map(|u| p.switch.verify_url = Some(u))
    }),
    // The watch after the switch.
    input("monitor-url", "", |p, v| {
        v.parse().map(|u| p.watch.url = Some(u))
    }),
    input("monitor-duration", defaults::MONITOR_DURATION, |p, v| {
        v.wait().map(|d| p.watch.duration = d)
    }),
    input("max-error-rate", defaults::MAX_ERROR_RATE, |p, v| {
        v.parse().map(|r| p.watch.max_error_rate = r)
    }),
    input("max-p95-ms", defaults::MAX_P95_MS, |p, v| {
        v.number().map(|ms| p.watch.max_p95_ms = ms)
    }),
    input("max-failed-requests", "", |p, v| {
        v.number().map(|n| p.watch.max_failed_requests = Some(n))
    }),
    input(
        "monitor-accept-status",
        defaults::MONITOR_ACCEPT_STATUS,
        |p, v| v.parse().map(|s| p.watch.accept_status = s),
    ),
    // Traffic steps, then their settings.
    input("traffic-steps", "", |p, v| {
        v.parse()
            .map(|steps| p.canary = Some(CanarySpec::defaults(steps)))
    }),
    input("step-seconds", defaults::STEP_SECONDS, |p, v| {
        v.time_limit().map(|d| canary(p, |c| c.step_duration = d))
    }),
    input("canary-pause-at", "", |p, v| {
        v.parse()
            .map(|share| canary(p, |c| c.pause_at = Some(share)))
    }),
    input(
        "canary-error-margin",
        defaults::CANARY_ERROR_MARGIN,
        |p, v| v.parse().map(|m| canary(p, |c| c.error_margin = m)),
    ),
    input(
        "canary-p95-margin-ms",
        defaults::CANARY_P95_MARGIN_MS,
        |p, v| v.number().map(|ms| canary(p, |c| c.p95_margin_ms = ms)),
    ),
    input(
        "canary-min-requests",
        defaults::CANARY_MIN_REQUESTS,
        |p, v| {
            v.count("expected a whole number")
                .map(|n| canary(p, |c| c.min_requests = n))
        },
    ),
    // The user's commands.
    input("pre-switch-command", "", |p, v| {
        v.command().map(|c| p.hooks.pre_switch = Some(c))
    }),
    input("post-switch-command", "", |p, v| {
        v.command().map(|c| p.hooks.post_switch = Some(c))
    }),
    input("step-command", "", |p, v| {
        v.command().map(|c| p.hooks.step = Some(c))
    }),
    input("hook-timeout", defaults::HOOK_TIMEOUT, |p, v| {
        v.time_limit().map(|t| p.hooks.timeout = t)
    }),
    input(
        "post-switch-rollback",
        defaults::POST_SWITCH_ROLLBACK,
        |p, v| v.boolean().map(|on| p.hooks.post_switch_rollback = on),
    ),
    input(
        "rollback-on-failure",
        defaults::ROLLBACK_ON_FAILURE,
        |p, v| v.boolean().map(|on| p.watch.rollback_on_failure = on),
    ),
    // The old slot.
    input("retire", defaults::RETIRE, |p, v| {
        v.choice().map(|r| p.retire.old_slot = r)
    }),
    input("drain-seconds", defaults::DRAIN_SECONDS, |p, v| {
        v.wait().map(|d| p.retire.drain = d)
    }),
    input("stop-timeout", defaults::STOP_TIMEOUT, |p, v| {
        v.wait().map(|d| p.retire.stop_timeout = d)
    }),
    input("keep-images", defaults::KEEP_IMAGES, |p, v| {
        v.count("expected a whole number (0: keep every image)")
            .map(|n| p.retire.keep_images = n)
    }),
    // Maintenance mode and the site.
    input("maintenance-port", defaults::MAINTENANCE_PORT, |p, v| {
        v.parse().map(|port| p.maintenance.port = port)
    }),
    input(
        "maintenance-retry-after",
        defaults::MAINTENANCE_RETRY_AFTER,
        |p, v| {
            v.count("expected whole seconds")
                .map(|s| p.maintenance.retry_after_seconds = s)
        },
    ),
    input("maintenance-page", "", |p, v| {
        v.parse().map(|f| p.maintenance.page = Some(f))
    }),
    input("end-maintenance", defaults::END_MAINTENANCE, |p, v| {
        v.boolean().map(|on| p.maintenance.end_on_deploy = on)
    }),
    input("server-name", defaults::SERVER_NAME, |p, v| {
        v.parse().map(|n| p.site.server_names = n)
    }),
    input("listen", defaults::LISTEN, |p, v| {
        v.parse().map(|l| p.site.listen = l)
    }),
    input("server-file", "", |p, v| {
        v.parse().map(|f| p.site.server_file = f)
    }),
    // Checks, the lock and where things live on the host.
    input("min-free-disk-mb", defaults::MIN_FREE_DISK_MB, |p, v| {
        v.number().map(|mb| p.min_free_disk_mb = mb)
    }),
    input("memory-check", defaults::MEMORY_CHECK, |p, v| {
        v.choice().map(|c| p.memory_check = c)
    }),
    input(
        "min-free-memory-mb",
        defaults::MIN_FREE_MEMORY_MB,
        |p, v| v.number().map(|mb| p.min_free_memory_mb = mb),
    ),
    input("check-tcp", "", |p, v| {
        v.list().map(|deps| p.check_tcp = deps)
    }),
    input("dry-run", defaults::DRY_RUN, |p, v| {
        v.boolean().map(|on| p.dry_run = on)
    }),
    input("lock-timeout", defaults::LOCK_TIMEOUT, |p, v| {
        v.wait().map(|t| p.lock_timeout = t)
    }),
    input("systemd-unit-dir", defaults::SYSTEMD_UNIT_DIR, |p, v| {
        v.parse().map(|d| p.systemd_unit_dir = d)
    }),
    input("boot-helper-dir", defaults::BOOT_HELPER_DIR, |p, v| {
        v.parse().map(|d| p.boot_helper_dir = d)
    }),
    input("state-dir", "", |p, v| v.parse().map(|d| p.state_dir = d)),
];
