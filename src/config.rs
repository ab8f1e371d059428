//! The one place every default lives, shared by the three front-ends: the action's inputs
//! (`action.yml`, read by [`crate::action::inputs`]), the helpers' command lines
//! ([`crate::cli`]) and the plan a host receives ([`crate::deploy::DeployPlan`]).
//!
//! Defaults are written as the text a user would type, so each front-end parses them with
//! the same parser it uses for what the user typed: a default is valid by the same rule as
//! any value (a test parses every one), and `action.yml` states the same text (a test
//! compares them).

use std::time::Duration;

use crate::input::{AppName, HostPath, parse_millis, parse_seconds};

/// Defaults, as text, by input name.
pub mod defaults {
    /// `port`: SSH port of hosts given without one.
    pub const SSH_PORT: &str = "22";
    /// `runtime`.
    pub const RUNTIME: &str = "docker";
    /// `container-port`.
    pub const CONTAINER_PORT: &str = "8080";
    /// `blue-port`.
    pub const BLUE_PORT: &str = "3001";
    /// `green-port`.
    pub const GREEN_PORT: &str = "3002";
    /// `pull`.
    pub const PULL: &str = "missing";
    /// `image-transfer`.
    pub const IMAGE_TRANSFER: &str = "registry";
    /// `health-path`.
    pub const HEALTH_PATH: &str = "/health";
    /// `health-timeout`, seconds.
    pub const HEALTH_TIMEOUT: &str = "180";
    /// `healthy-threshold`.
    pub const HEALTHY_THRESHOLD: &str = "2";
    /// `switch-mode`.
    pub const SWITCH_MODE: &str = "auto";
    /// `nft-command`.
    pub const NFT_CMD: &str = "nft";
    /// The first port of the range the default service port of each app is drawn from
    /// (see [`crate::config::default_service_port`]).
    pub const SERVICE_PORT_BASE: u16 = 20000;
    /// How many ports that range holds.
    pub const SERVICE_PORT_SPAN: u16 = 10000;
    /// `nginx-test-command`.
    pub const TEST_CMD: &str = "nginx -t";
    /// `nginx-reload-command`.
    pub const RELOAD_CMD: &str = "nginx -s reload";
    /// `nginx-pid-file`.
    pub const NGINX_PID_FILE: &str = "/run/nginx.pid";
    /// How long a reload may take to show new nginx workers, seconds.
    pub const RELOAD_TIMEOUT: &str = "10";
    /// How long the verify URL may take to answer from the new slot, seconds.
    pub const VERIFY_TIMEOUT: &str = "10";
    /// `monitor-duration`, seconds.
    pub const MONITOR_DURATION: &str = "30";
    /// Time between the watch's requests, milliseconds.
    pub const MONITOR_INTERVAL: &str = "200";
    /// Time budget of one request of a watch or health check, seconds.
    pub const REQUEST_TIMEOUT: &str = "5";
    /// Statuses the watch counts as success.
    pub const MONITOR_ACCEPT_STATUS: &str = "200-399";
    /// First wait between a health check's polls, milliseconds (the helper's; a deploy polls
    /// its standby faster).
    pub const HEALTH_INTERVAL: &str = "200";
    /// Longest wait between a health check's polls, milliseconds.
    pub const HEALTH_MAX_INTERVAL: &str = "2000";
    /// Statuses a health check accepts.
    pub const HEALTH_ACCEPT_STATUS: &str = "2xx";
    /// `max-error-rate`.
    pub const MAX_ERROR_RATE: &str = "0.01";
    /// `max-p95-ms`.
    pub const MAX_P95_MS: &str = "500";
    /// `step-seconds`.
    pub const STEP_SECONDS: &str = "60";
    /// `canary-error-margin`.
    pub const CANARY_ERROR_MARGIN: &str = "0.01";
    /// `canary-p95-margin-ms`.
    pub const CANARY_P95_MARGIN_MS: &str = "100";
    /// `canary-min-requests`.
    pub const CANARY_MIN_REQUESTS: &str = "20";
    /// `hook-timeout`, seconds.
    pub const HOOK_TIMEOUT: &str = "300";
    /// `post-switch-rollback`.
    pub const POST_SWITCH_ROLLBACK: &str = "false";
    /// `rollback-on-failure`.
    pub const ROLLBACK_ON_FAILURE: &str = "true";
    /// `retire`.
    pub const RETIRE: &str = "stop";
    /// `drain-seconds`.
    pub const DRAIN_SECONDS: &str = "5";
    /// `keep-images`.
    pub const KEEP_IMAGES: &str = "3";
    /// `batch-size`: hosts deployed at once.
    pub const BATCH_SIZE: &str = "1";
    /// `canary-hosts`: the first hosts, deployed and watched before any other.
    pub const CANARY_HOSTS: &str = "0";
    /// `max-unreachable`: hosts that may be unreachable at the start.
    pub const MAX_UNREACHABLE: &str = "0";
    /// `fleet-rollback`.
    pub const FLEET_ROLLBACK: &str = "true";
    /// `maintenance-port`: nginx's own server that answers 503 for the app.
    pub const MAINTENANCE_PORT: &str = "3003";
    /// `maintenance-retry-after`, seconds.
    pub const MAINTENANCE_RETRY_AFTER: &str = "300";
    /// `end-maintenance`.
    pub const END_MAINTENANCE: &str = "false";
    /// `server-name`: no name (the catch-all where the block is the default server).
    pub const SERVER_NAME: &str = "_";
    /// `listen`.
    pub const LISTEN: &str = "80";
    /// `stop-timeout`, seconds.
    pub const STOP_TIMEOUT: &str = "30";
    /// `min-free-disk-mb`.
    pub const MIN_FREE_DISK_MB: &str = "5120";
    /// `memory-check`: what a standby that would not fit in memory does to a run.
    pub const MEMORY_CHECK: &str = "fail";
    /// `min-free-memory-mb`: the memory that must stay available with both slots running.
    pub const MIN_FREE_MEMORY_MB: &str = "128";
    /// `command`.
    pub const COMMAND: &str = "deploy";
    /// `dry-run`.
    pub const DRY_RUN: &str = "false";
    /// `insecure-skip-host-key-check`.
    pub const INSECURE_SKIP_HOST_KEY_CHECK: &str = "false";
    /// `notify-on`.
    pub const NOTIFY_ON: &str = "failure";
    /// The docker command of the helpers.
    pub const DOCKER_CMD: &str = "docker";
    /// Connect timeout of each TCP dependency check, seconds.
    pub const TCP_TIMEOUT: &str = "3";
    /// `lock-timeout`: how long a run waits for the app lock, seconds (0: fail at once).
    pub const LOCK_TIMEOUT: &str = "300";
    /// `systemd-unit-dir`: where the boot path of the nftables mode is installed.
    pub const SYSTEMD_UNIT_DIR: &str = "/etc/systemd/system";
    /// `boot-helper-dir`: the root-owned directory holding the helper the boot unit runs.
    pub const BOOT_HELPER_DIR: &str = "/usr/local/lib/bluegreen";
    /// `access-log`: whether nginx writes the app's access log in `log-dir`.
    pub const ACCESS_LOG: &str = "true";
    /// `log-dir`: the root-owned directory nginx writes the apps' access logs in.
    pub const LOG_DIR: &str = "/var/log/bluegreen";
}

/// The service port of `app` when nothing names one: a port in 20000-29999 drawn from a
/// digest of the app's name, so two apps on one host get different ports (where two
/// names draw the same one, validation refuses the second app and names the first), and
/// never one of the slots' `ports`. State records the port at the first nftables switch;
/// from then on the recorded port is the app's.
pub fn default_service_port(app: &AppName, ports: crate::input::SlotPorts) -> crate::input::Port {
    use defaults::{SERVICE_PORT_BASE, SERVICE_PORT_SPAN};
    let digest = crate::fsutil::sha256_hex(app.as_str().as_bytes());
    let drawn = u32::from_str_radix(&digest[..8], 16).expect("hex digits");
    let mut offset = (drawn % u32::from(SERVICE_PORT_SPAN)) as u16;
    loop {
        let port = SERVICE_PORT_BASE + offset;
        if ports.slot_of(port).is_none() {
            return crate::input::Port::try_from(port).expect("a port of the range is valid");
        }
        offset = (offset + 1) % SERVICE_PORT_SPAN;
    }
}

/// A default duration given in seconds, as a [`Duration`].
pub fn seconds(default: &str) -> Duration {
    parse_seconds(default).expect("every default parses (tested)")
}

/// A default duration given in milliseconds, as a [`Duration`].
pub fn millis(default: &str) -> Duration {
    parse_millis(default).expect("every default parses (tested)")
}

/// The state directory of `app` when none is given: `/var/lib/bluegreen/APP`.
pub fn default_state_dir(app: &AppName) -> HostPath {
    format!("/var/lib/bluegreen/{app}")
        .parse()
        .expect("an app name makes a valid path")
}

/// The upstream include of `app` when none is given: `/etc/nginx/conf.d/bluegreen-APP.conf`.
pub fn default_upstream_file(app: &AppName) -> HostPath {
    format!("/etc/nginx/conf.d/bluegreen-{app}.conf")
        .parse()
        .expect("an app name makes a valid path")
}

/// The server block `setup` writes for `app` when no file is given: `bluegreen-APP.server.conf`
/// beside the upstream include `upstream_file` (an app name holds no dot, so no app's
/// include has this name).
pub fn default_server_file(app: &AppName, upstream_file: &HostPath) -> HostPath {
    let dir = upstream_file
        .as_path()
        .parent()
        .unwrap_or(std::path::Path::new("/"));
    dir.join(format!("bluegreen-{app}.server.conf"))
        .display()
        .to_string()
        .parse()
        .expect("a directory of a host path and an app name make a valid path")
}

/// Serde for a [`Duration`] as whole milliseconds (`"reload_timeout": 10000`).
pub mod serde_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the duration as milliseconds.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    /// Reads milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::defaults::*;
    use super::*;
    use crate::exec::CommandLine;
    use crate::input::{
        Fraction, HealthPath, Port, StatusSet, parse_positive_count, parse_time_limit, parse_wait,
    };

    #[test]
    fn the_default_service_port_is_drawn_from_the_app_name_and_never_a_slots() {
        let ports = crate::input::SlotPorts::new(3001, 3002).unwrap();
        let shop: AppName = "shop".parse().unwrap();
        let api: AppName = "api".parse().unwrap();
        let port = default_service_port(&shop, ports).get();
        assert!((20000..30000).contains(&port), "{port}");
        assert_eq!(
            default_service_port(&shop, ports).get(),
            port,
            "the same every time"
        );
        assert_ne!(default_service_port(&api, ports).get(), port);
        // A slot on the drawn port: the next one.
        let taken = crate::input::SlotPorts::new(port, 3002).unwrap();
        assert_eq!(default_service_port(&shop, taken).get(), port + 1);
    }

    #[test]
    fn every_default_parses_with_the_parser_of_its_setting() {
        for port in [
            SSH_PORT,
            CONTAINER_PORT,
            BLUE_PORT,
            GREEN_PORT,
            MAINTENANCE_PORT,
        ] {
            port.parse::<Port>().unwrap();
        }
        MAINTENANCE_RETRY_AFTER.parse::<u32>().unwrap();
        BATCH_SIZE
            .parse::<crate::action::fleet::BatchSize>()
            .unwrap();
        for count in [CANARY_HOSTS, MAX_UNREACHABLE] {
            count.parse::<usize>().unwrap();
        }
        SERVER_NAME.parse::<crate::input::ServerNames>().unwrap();
        LISTEN.parse::<crate::input::Listen>().unwrap();
        for wait in [MONITOR_DURATION, DRAIN_SECONDS, STOP_TIMEOUT, LOCK_TIMEOUT] {
            parse_wait(wait).unwrap();
        }
        for limit in [
            HEALTH_TIMEOUT,
            RELOAD_TIMEOUT,
            VERIFY_TIMEOUT,
            REQUEST_TIMEOUT,
            TCP_TIMEOUT,
        ] {
            parse_time_limit(limit).unwrap();
        }
        for interval in [MONITOR_INTERVAL, HEALTH_INTERVAL, HEALTH_MAX_INTERVAL] {
            parse_millis(interval).unwrap();
        }
        HEALTH_PATH.parse::<HealthPath>().unwrap();
        parse_positive_count(HEALTHY_THRESHOLD).unwrap();
        MAX_ERROR_RATE.parse::<Fraction>().unwrap();
        MAX_P95_MS.parse::<u64>().unwrap();
        MIN_FREE_DISK_MB.parse::<u64>().unwrap();
        MIN_FREE_MEMORY_MB.parse::<u64>().unwrap();
        <crate::validate::MemoryCheck as clap::ValueEnum>::from_str(MEMORY_CHECK, false).unwrap();
        for set in [MONITOR_ACCEPT_STATUS, HEALTH_ACCEPT_STATUS] {
            set.parse::<StatusSet>().unwrap();
        }
        for cmd in [TEST_CMD, RELOAD_CMD, DOCKER_CMD, NFT_CMD] {
            CommandLine::parse(cmd, "default").unwrap();
        }
        for path in [NGINX_PID_FILE, SYSTEMD_UNIT_DIR, BOOT_HELPER_DIR, LOG_DIR] {
            path.parse::<HostPath>().unwrap();
        }
        let app: AppName = "shop".parse().unwrap();
        assert_eq!(default_state_dir(&app).as_str(), "/var/lib/bluegreen/shop");
        assert_eq!(
            default_upstream_file(&app).as_str(),
            "/etc/nginx/conf.d/bluegreen-shop.conf"
        );
        assert_eq!(
            default_server_file(&app, &default_upstream_file(&app)).as_str(),
            "/etc/nginx/conf.d/bluegreen-shop.server.conf"
        );
    }
}
