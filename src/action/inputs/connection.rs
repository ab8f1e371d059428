//! The inputs that say how to reach the hosts: where they are and in what batches the run
//! goes through them, as whom, with which key and known hosts, and through which bastion.

use crate::action::fleet::{BatchSize, FleetSpec, SshTarget};
use crate::config::defaults;
use crate::error::Error;
use crate::input::parse_port;

use super::source::{Source, parse_hosts, ssh_word};

/// How to reach the hosts, validated.
pub(super) struct Connection {
    /// Hosts, in the order batches take them.
    pub(super) hosts: Vec<SshTarget>,
    /// How the run goes through the hosts.
    pub(super) fleet: FleetSpec,
    /// SSH user.
    pub(super) username: String,
    /// Private key text.
    pub(super) ssh_key: String,
    /// known_hosts lines (empty only with `insecure_skip_host_key_check`).
    pub(super) known_hosts: String,
    /// Skip host key checking.
    pub(super) insecure_skip_host_key_check: bool,
    /// `user@bastion:port` to jump through.
    pub(super) proxy_jump: Option<String>,
}

impl Connection {
    /// Reads the connection inputs from `s`: `None` when one is not valid, its problem then
    /// among `s`'s errors.
    pub(super) fn read(s: &mut Source) -> Option<Connection> {
        let ssh_port = s.parse("port", defaults::SSH_PORT, parse_port);
        let host_raw = s.required("host");
        let hosts = match ssh_port {
            Some(port) if !host_raw.is_empty() => {
                s.parse("host", "", |_| parse_hosts(&host_raw, port))
            }
            _ => None,
        };
        let batch = s.parse("batch-size", defaults::BATCH_SIZE, str::parse::<BatchSize>);
        let count = |name: &'static str| {
            move |raw: &str| {
                raw.trim().parse::<usize>().map_err(|_| {
                    Error::invalid(name, format!("{raw:?}: expected a whole number of hosts"))
                })
            }
        };
        let canary_hosts = s.parse(
            "canary-hosts",
            defaults::CANARY_HOSTS,
            count("canary-hosts"),
        );
        let max_unreachable = s.parse(
            "max-unreachable",
            defaults::MAX_UNREACHABLE,
            count("max-unreachable"),
        );
        let fleet_rollback = s.boolean("fleet-rollback", defaults::FLEET_ROLLBACK);
        let username = s.required("username");
        if !username.is_empty() && !ssh_word(&username, "") {
            s.errors
                .push(format!("input `username`: {username:?} is not a user name"));
        }
        let ssh_key = s.required("ssh-key");
        let insecure = s.boolean(
            "insecure-skip-host-key-check",
            defaults::INSECURE_SKIP_HOST_KEY_CHECK,
        );
        let known_hosts = s.raw("known-hosts");
        if known_hosts.is_empty() && insecure == Some(false) {
            s.errors.push(
                "input `known-hosts` is required (or set insecure-skip-host-key-check: 'true')"
                    .into(),
            );
        }
        let proxy_jump = s.optional("proxy-jump");
        if let Some(j) = proxy_jump.as_ref().filter(|j| !ssh_word(j, "@:[]")) {
            s.errors
                .push(format!("input `proxy-jump`: {j:?} is not user@host:port"));
        }
        Some(Connection {
            hosts: hosts?,
            fleet: FleetSpec {
                batch: batch?,
                canary_hosts: canary_hosts?,
                max_unreachable: max_unreachable?,
                rollback: fleet_rollback?,
            },
            username,
            ssh_key,
            known_hosts,
            insecure_skip_host_key_check: insecure?,
            proxy_jump,
        })
    }
}
