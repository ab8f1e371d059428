//! The action's inputs: read from the environment (`action.yml` maps each input to an
//! `INPUT_*` variable), validated all at once before any connection is made, and turned
//! into the plan the host runs.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::deploy::{DeployPlan, Operation, Retire};
use crate::error::{Error, Result};
use crate::input::{
    AppName, HttpUrl, Image, SlotPorts, Version, parse_fraction, parse_port, parse_positive_count,
};
use crate::runtime::{Pull, Runtime};
use crate::switch::SwitchMode;

/// Where the target host is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Host name or address.
    pub name: String,
    /// SSH port.
    pub port: u16,
}

/// How the image reaches the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageTransfer {
    /// The host pulls it from its registry.
    Registry,
    /// The runner streams `docker save` over SSH into `docker load`.
    Ssh,
}

/// When Slack hears about a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyOn {
    /// Only when the deploy failed or rolled back.
    Failure,
    /// After every run.
    Always,
    /// Never.
    Never,
}

/// Every input, validated.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Hosts, deployed one after another.
    pub hosts: Vec<Host>,
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

/// The environment variable holding input `name` (`ssh-key` -> `INPUT_SSH_KEY`).
pub fn env_name(name: &str) -> String {
    format!("INPUT_{}", name.replace('-', "_").to_ascii_uppercase())
}

/// Reads inputs from a map of environment variables.
struct Source<'a> {
    env: &'a HashMap<String, String>,
    errors: Vec<String>,
}

impl Source<'_> {
    fn raw(&self, name: &str) -> String {
        self.env
            .get(&env_name(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    }

    fn optional(&self, name: &str) -> Option<String> {
        Some(self.raw(name)).filter(|v| !v.is_empty())
    }

    fn required(&mut self, name: &str) -> String {
        let v = self.raw(name);
        if v.is_empty() {
            self.errors.push(format!("input `{name}` is required"));
        }
        v
    }

    /// Parses input `name` (with `default` when empty), recording a failure.
    fn parse<T>(
        &mut self,
        name: &str,
        default: &str,
        parse: impl Fn(&str) -> Result<T>,
    ) -> Option<T> {
        let raw = self.optional(name).unwrap_or_else(|| default.to_owned());
        match parse(&raw) {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(format!("input `{name}`: {e}"));
                None
            }
        }
    }

    fn choice<T: Copy>(&mut self, name: &str, default: &str, options: &[(&str, T)]) -> Option<T> {
        self.parse(name, default, |raw| {
            options
                .iter()
                .find(|(k, _)| *k == raw)
                .map(|(_, v)| *v)
                .ok_or_else(|| {
                    let names: Vec<&str> = options.iter().map(|(k, _)| *k).collect();
                    Error::invalid(
                        name,
                        format!("{raw:?}: expected one of {}", names.join(", ")),
                    )
                })
        })
    }

    fn boolean(&mut self, name: &str, default: &str) -> Option<bool> {
        self.choice(name, default, &[("true", true), ("false", false)])
    }

    fn number(&mut self, name: &str, default: &str, max: u64) -> Option<u64> {
        self.parse(name, default, |raw| match raw.parse::<u64>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(Error::invalid(
                name,
                format!("{raw:?}: expected a whole number from 0 to {max}"),
            )),
        })
    }
}

/// Parses `host` input: names or addresses, one per line or comma-separated, each with an
/// optional `:port` (IPv6 in brackets).
fn parse_hosts(raw: &str, default_port: u16) -> Result<Vec<Host>> {
    let mut hosts = Vec::new();
    for item in raw
        .split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let (name, port) = match item.strip_prefix('[') {
            Some(rest) => {
                let (name, after) = rest
                    .split_once(']')
                    .ok_or_else(|| Error::invalid("host", format!("{item:?}: unclosed [")))?;
                let port = match after.strip_prefix(':') {
                    Some(p) => parse_port(p)?,
                    None if after.is_empty() => default_port,
                    None => return Err(Error::invalid("host", format!("{item:?}: junk after ]"))),
                };
                (name.to_owned(), port)
            }
            None => match item.rsplit_once(':') {
                Some((name, p)) if !name.contains(':') => (name.to_owned(), parse_port(p)?),
                _ => (item.to_owned(), default_port),
            },
        };
        let ok_char = |c: char| c.is_ascii_alphanumeric() || ".-_:".contains(c);
        if name.is_empty() || name.starts_with('-') || !name.chars().all(ok_char) {
            return Err(Error::invalid(
                "host",
                format!("{item:?}: not a host name or address"),
            ));
        }
        hosts.push(Host { name, port });
    }
    if hosts.is_empty() {
        return Err(Error::invalid("host", "no host given"));
    }
    Ok(hosts)
}

impl Inputs {
    /// Validates every input from `env`; all problems are reported together.
    pub fn from_env(env: &HashMap<String, String>) -> Result<Inputs> {
        let mut s = Source {
            env,
            errors: Vec::new(),
        };
        let port = s.parse("port", "22", parse_port);
        let host_raw = s.required("host");
        let hosts = port.and_then(|p| {
            (!host_raw.is_empty())
                .then(|| s.parse("host", "", |_| parse_hosts(&host_raw, p)))
                .flatten()
        });
        let username = s.required("username");
        if !username.is_empty()
            && (username.starts_with('-')
                || !username
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)))
        {
            s.errors
                .push(format!("input `username`: {username:?} is not a user name"));
        }
        let ssh_key = s.required("ssh-key");
        let insecure = s.boolean("insecure-skip-host-key-check", "false");
        let known_hosts = s.raw("known-hosts");
        if known_hosts.is_empty() && insecure == Some(false) {
            s.errors.push(
                "input `known-hosts` is required (or set insecure-skip-host-key-check: 'true')"
                    .into(),
            );
        }
        let proxy_jump = s.optional("proxy-jump");
        if let Some(j) = &proxy_jump
            && (j.starts_with('-')
                || !j
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "@.:-_[]".contains(c)))
        {
            s.errors
                .push(format!("input `proxy-jump`: {j:?} is not user@host:port"));
        }
        let app = s.parse("app", "", |v| v.parse::<AppName>());
        let runtime = s.choice(
            "runtime",
            "docker",
            &[
                ("docker", Runtime::Docker),
                ("compose", Runtime::Compose),
                ("command", Runtime::Command),
            ],
        );
        let image = s.optional("image");
        let image = match image {
            Some(raw) => s.parse("image", "", |_| raw.parse::<Image>()),
            None => None,
        };
        let operation = s.choice(
            "command",
            "deploy",
            &[
                ("deploy", Operation::Deploy),
                ("rollback", Operation::Rollback),
                ("status", Operation::Status),
            ],
        );
        let version_default = env
            .get("GITHUB_SHA")
            .map(|sha| sha.chars().take(7).collect::<String>())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "unversioned".into());
        let version = s.parse("version", &version_default, |v| v.parse::<Version>());
        let container_port = s.parse("container-port", "8080", parse_port);
        let blue_port = s.parse("blue-port", "3001", parse_port);
        let green_port = s.parse("green-port", "3002", parse_port);
        if let (Some(b), Some(g)) = (blue_port, green_port)
            && let Err(e) = SlotPorts::new(b, g)
        {
            s.errors
                .push(format!("inputs `blue-port`/`green-port`: {e}"));
        }
        let path = |s: &mut Source, name: &str| -> Option<PathBuf> {
            let raw = s.optional(name)?;
            if !raw.starts_with('/') || raw.contains(['\n', '\r', '\0']) {
                s.errors.push(format!(
                    "input `{name}`: {raw:?} must be an absolute path on the host"
                ));
                return None;
            }
            Some(PathBuf::from(raw))
        };
        let env_file = path(&mut s, "env-file");
        let compose_file = path(&mut s, "compose-file");
        let upstream_file = path(&mut s, "upstream-file");
        let state_dir = path(&mut s, "state-dir");
        let nginx_pid_file = path(&mut s, "nginx-pid-file");
        let switch_mode = s.choice(
            "switch-mode",
            "reload",
            &[
                ("reload", SwitchMode::Reload),
                ("nftables", SwitchMode::Nftables),
            ],
        );
        let service_port = s.parse("service-port", "3000", parse_port);
        let docker_args = s.parse("docker-args", "", |raw| {
            shell_words::split(raw)
                .map_err(|e| Error::invalid("docker-args", format!("{raw:?}: {e}")))
        });
        let deploy_command = s.optional("deploy-command");
        let pull = s.choice(
            "pull",
            "missing",
            &[
                ("missing", Pull::Missing),
                ("always", Pull::Always),
                ("never", Pull::Never),
            ],
        );
        let image_transfer = s.choice(
            "image-transfer",
            "registry",
            &[
                ("registry", ImageTransfer::Registry),
                ("ssh", ImageTransfer::Ssh),
            ],
        );
        let health_path = s
            .optional("health-path")
            .unwrap_or_else(|| "/health".into());
        let health_timeout = s.number("health-timeout", "180", 3600);
        let healthy_threshold = s.parse("healthy-threshold", "2", parse_positive_count);
        let test_cmd = s
            .optional("nginx-test-command")
            .unwrap_or_else(|| "nginx -t".into());
        let reload_cmd = s
            .optional("nginx-reload-command")
            .unwrap_or_else(|| "nginx -s reload".into());
        let verify_url = match s.optional("verify-url") {
            Some(raw) => s.parse("verify-url", "", |_| raw.parse::<HttpUrl>()),
            None => None,
        };
        let monitor_url = match s.optional("monitor-url") {
            Some(raw) => s.parse("monitor-url", "", |_| raw.parse::<HttpUrl>()),
            None => None,
        };
        let monitor_duration = s.number("monitor-duration", "30", 3600);
        let max_error_rate = s.parse("max-error-rate", "0.01", parse_fraction);
        let max_p95_ms = s.number("max-p95-ms", "500", 600_000);
        let rollback_on_failure = s.boolean("rollback-on-failure", "true");
        let retire = s.choice(
            "retire",
            "stop",
            &[
                ("stop", Retire::Stop),
                ("keep", Retire::Keep),
                ("remove", Retire::Remove),
            ],
        );
        let drain_seconds = s.number("drain-seconds", "5", 3600);
        let stop_timeout = s.number("stop-timeout", "30", 3600);
        let dry_run = s.boolean("dry-run", "false");
        let slack_webhook = s.optional("slack-webhook");
        if let Some(url) = &slack_webhook
            && url.parse::<HttpUrl>().is_err()
        {
            // The URL itself is a secret: never repeat it in the message.
            s.errors
                .push("input `slack-webhook` is not an http(s) URL".into());
        }
        let notify_on = s.choice(
            "notify-on",
            "failure",
            &[
                ("failure", NotifyOn::Failure),
                ("always", NotifyOn::Always),
                ("never", NotifyOn::Never),
            ],
        );
        let min_free_disk_mb = s.number("min-free-disk-mb", "5120", 10_000_000);

        if !s.errors.is_empty() {
            return Err(Error::invalid("inputs", s.errors.join("; ")));
        }
        let purpose = format!(
            "{} {} by {} ({})",
            operation.map_or("deploy", Operation::as_str),
            version.as_ref().map_or("", Version::as_str),
            env.get("GITHUB_ACTOR").map_or("someone", String::as_str),
            run_url(env).unwrap_or_else(|| "a local run".into())
        );
        let plan = DeployPlan {
            operation: operation.expect("validated"),
            dry_run: dry_run.expect("validated"),
            app: app.expect("validated"),
            state_dir,
            purpose,
            runtime: runtime.expect("validated"),
            image,
            version: version.expect("validated"),
            container_port: container_port.expect("validated"),
            blue_port: blue_port.expect("validated"),
            green_port: green_port.expect("validated"),
            env_file,
            docker_args: docker_args.expect("validated"),
            compose_file,
            deploy_command,
            pull: pull.expect("validated"),
            health_path,
            health_timeout_secs: health_timeout.expect("validated"),
            healthy_threshold: healthy_threshold.expect("validated"),
            upstream_file,
            switch_mode: switch_mode.expect("validated"),
            service_port: service_port.expect("validated"),
            test_cmd,
            reload_cmd,
            nginx_pid_file: nginx_pid_file.unwrap_or_else(|| PathBuf::from("/run/nginx.pid")),
            verify_url,
            monitor_url,
            monitor_duration_secs: monitor_duration.expect("validated"),
            max_error_rate: max_error_rate.expect("validated"),
            max_p95_ms: max_p95_ms.expect("validated"),
            rollback_on_failure: rollback_on_failure.expect("validated"),
            retire: retire.expect("validated"),
            drain_seconds: drain_seconds.expect("validated"),
            stop_timeout_secs: stop_timeout.expect("validated"),
            min_free_disk_mb: min_free_disk_mb.expect("validated"),
        };
        plan.check()
            .map_err(|e| Error::invalid("inputs", e.to_string()))?;
        let image_transfer = image_transfer.expect("validated");
        if image_transfer == ImageTransfer::Ssh && plan.image.is_none() {
            return Err(Error::invalid(
                "inputs",
                "image-transfer: ssh needs an image",
            ));
        }
        Ok(Inputs {
            hosts: hosts.expect("validated"),
            username,
            ssh_key,
            known_hosts,
            insecure_skip_host_key_check: insecure.expect("validated"),
            proxy_jump,
            image_transfer,
            slack_webhook,
            notify_on: notify_on.expect("validated"),
            plan,
        })
    }
}

/// The URL of the current workflow run, when running under GitHub Actions (or act).
pub fn run_url(env: &HashMap<String, String>) -> Option<String> {
    let server = env.get("GITHUB_SERVER_URL")?;
    let repo = env.get("GITHUB_REPOSITORY")?;
    let run = env.get("GITHUB_RUN_ID")?;
    Some(format!("{server}/{repo}/actions/runs/{run}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = [
            ("host", "203.0.113.7"),
            ("username", "deploy"),
            ("ssh-key", "KEY"),
            ("known-hosts", "203.0.113.7 ssh-ed25519 AAAA"),
            ("app", "shop"),
            ("image", "ghcr.io/acme/shop:1"),
        ]
        .iter()
        .map(|(k, v)| (env_name(k), v.to_string()))
        .collect();
        for (k, v) in pairs {
            m.insert(env_name(k), v.to_string());
        }
        m
    }

    #[test]
    fn defaults_fill_the_plan() {
        let i = Inputs::from_env(&env(&[])).unwrap();
        assert_eq!(
            i.hosts,
            [Host {
                name: "203.0.113.7".into(),
                port: 22
            }]
        );
        assert_eq!(
            (i.plan.blue_port, i.plan.green_port, i.plan.container_port),
            (3001, 3002, 8080)
        );
        assert_eq!(i.plan.health_path, "/health");
        assert_eq!(i.plan.version.as_str(), "unversioned");
        assert!(i.plan.rollback_on_failure);
        assert_eq!(i.notify_on, NotifyOn::Failure);
    }

    #[test]
    fn hosts_lists_and_ports() {
        let h = parse_hosts("a.example.com, b:2222\n[::1]:2200\n", 22).unwrap();
        assert_eq!(
            h.iter()
                .map(|h| (h.name.as_str(), h.port))
                .collect::<Vec<_>>(),
            [("a.example.com", 22), ("b", 2222), ("::1", 2200)]
        );
        for bad in ["", "-oProxyCommand=x", "a b", "[::1", "x:0"] {
            assert!(parse_hosts(bad, 22).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_bad_input_is_reported_at_once() {
        let e = Inputs::from_env(&env(&[
            ("app", "Bad App"),
            ("blue-port", "70000"),
            ("runtime", "podman"),
            ("max-error-rate", "5"),
            ("retire", "later"),
            ("known-hosts", ""),
        ]))
        .unwrap_err()
        .to_string();
        for needle in [
            "`app`",
            "`blue-port`",
            "`runtime`",
            "`max-error-rate`",
            "`retire`",
            "`known-hosts`",
        ] {
            assert!(e.contains(needle), "{needle} missing from {e}");
        }
    }

    #[test]
    fn the_webhook_never_appears_in_errors() {
        let e = Inputs::from_env(&env(&[("slack-webhook", "hooks.example/T000/SECRET")]))
            .unwrap_err()
            .to_string();
        assert!(!e.contains("SECRET"), "{e}");
    }
}
