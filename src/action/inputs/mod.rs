//! The action's inputs: read from the environment (`action.yml` maps each input to an
//! `INPUT_*` variable), validated all at once before any connection is made, and turned
//! into the plan the host runs. Defaults come from [`crate::config::defaults`], values go
//! through the parsers of [`crate::input`] and choices through the enums' own names, so
//! nothing here restates a rule.
//!
//! - this file: the inputs as types, and [`Inputs::from_env`], which builds the plan;
//! - `table`: every input that lands in the plan, declared once (name, default, where it
//!   goes), applied over [`DeployPlan::defaults`];
//! - `connection`: the inputs that say how to reach the hosts (where, in what batches, as
//!   whom, with which key, through which bastion);
//! - `source`: reading one input with its default and parser, collecting every problem;
//! - `choices`: the action's own choices (image transfer, when to notify).

mod choices;
mod connection;
mod source;
mod table;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

pub use choices::{ImageTransfer, NotifyOn};
use connection::Connection;
pub use source::env_name;
use source::{Source, Value};
use table::PLAN_INPUTS;

use crate::action::fleet::{FleetSpec, SshTarget};
use crate::config::defaults;
use crate::deploy::{DeployPlan, Operation};
use crate::error::Error;
use crate::input::{AppName, HttpUrl, SlotPorts, Version, parse_port};

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

        let blue_port = s.parse("blue-port", defaults::BLUE_PORT, parse_port);
        let green_port = s.parse("green-port", defaults::GREEN_PORT, parse_port);
        let ports = match (blue_port, green_port) {
            (Some(b), Some(g)) => s.parse("blue-port`/`green-port", "", |_| SlotPorts::new(b, g)),
            _ => None,
        };
        let image_transfer = s.choice::<ImageTransfer>("image-transfer", defaults::IMAGE_TRANSFER);
        let mut plan = read_plan(&mut s, app.as_ref(), ports);

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

        plan.operation = operation.expect("validated");
        plan.version = version.expect("validated");
        plan.purpose = format!(
            "{} {} by {} ({})",
            plan.operation.as_str(),
            plan.version,
            env.get("GITHUB_ACTOR").map_or("someone", String::as_str),
            crate::action::report::GithubContext::run_url(env)
                .unwrap_or_else(|| "a local run".into())
        );
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

/// The plan the inputs of [`PLAN_INPUTS`] make: each given input, or its default, over
/// [`DeployPlan::defaults`] (an input with no default and no value leaves its setting
/// alone); each problem is recorded in `s`. Where the app or the ports are not valid, the
/// other inputs are still checked (every problem is reported at once) against a stand-in,
/// and that plan is never used.
fn read_plan(s: &mut Source, app: Option<&AppName>, ports: Option<SlotPorts>) -> DeployPlan {
    let mut plan = DeployPlan::defaults(
        app.unwrap_or(&"app".parse().expect("a valid name")),
        ports.unwrap_or_else(|| {
            let port = |text| parse_port(text).expect("the default parses");
            SlotPorts::new(port(defaults::BLUE_PORT), port(defaults::GREEN_PORT))
                .expect("the default ports differ")
        }),
    );
    for input in PLAN_INPUTS {
        let raw = s
            .optional(input.name)
            .unwrap_or_else(|| input.default.into());
        if raw.is_empty() {
            continue;
        }
        let value = Value {
            name: input.name,
            raw: &raw,
        };
        if let Err(e) = (input.apply)(&mut plan, &value) {
            s.errors.push(format!("input `{}`: {e}", input.name));
        }
    }
    if s.optional("canary-pause-at").is_some() && s.optional("traffic-steps").is_none() {
        s.errors.push(
            "input `canary-pause-at` needs `traffic-steps`: there is no step to pause at".into(),
        );
    }
    plan
}
