//! Reading the inputs one by one: each with its default when empty and its parser, every
//! problem collected (so all are reported at once), choices by the enums' own names.

use std::collections::HashMap;

use clap::ValueEnum;

use crate::action::fleet::SshTarget;
use crate::error::{Error, Result};
use crate::exec::CommandLine;

/// The environment variable holding input `name` (`ssh-key` -> `INPUT_SSH_KEY`).
pub fn env_name(name: &str) -> String {
    format!("INPUT_{}", name.replace('-', "_").to_ascii_uppercase())
}

/// Reads inputs from a map of environment variables, collecting every problem.
pub(super) struct Source<'a> {
    pub(super) env: &'a HashMap<String, String>,
    pub(super) errors: Vec<String>,
}

impl Source<'_> {
    pub(super) fn raw(&self, name: &str) -> String {
        self.env
            .get(&env_name(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    }

    pub(super) fn optional(&self, name: &str) -> Option<String> {
        Some(self.raw(name)).filter(|v| !v.is_empty())
    }

    pub(super) fn required(&mut self, name: &str) -> String {
        let v = self.raw(name);
        if v.is_empty() {
            self.errors.push(format!("input `{name}` is required"));
        }
        v
    }

    /// Parses input `name` (`default` when empty), recording a failure.
    pub(super) fn parse<T>(
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

    /// Parses input `name` when it is set, recording a failure.
    pub(super) fn parse_optional<T>(
        &mut self,
        name: &str,
        parse: impl Fn(&str) -> Result<T>,
    ) -> Option<T> {
        self.optional(name)
            .and_then(|raw| self.parse(name, &raw, &parse))
    }

    /// One of the names of `T`'s choices.
    pub(super) fn choice<T: ValueEnum>(&mut self, name: &str, default: &str) -> Option<T> {
        self.parse(name, default, |raw| {
            T::from_str(raw, false).map_err(|_| {
                let names: Vec<String> = T::value_variants()
                    .iter()
                    .filter_map(|v| Some(v.to_possible_value()?.get_name().to_owned()))
                    .collect();
                Error::invalid(
                    name,
                    format!("{raw:?}: expected one of {}", names.join(", ")),
                )
            })
        })
    }

    pub(super) fn boolean(&mut self, name: &str, default: &str) -> Option<bool> {
        self.parse(name, default, |raw| match raw {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(Error::invalid(
                name,
                format!("{raw:?}: expected true or false"),
            )),
        })
    }

    pub(super) fn number(&mut self, name: &str, default: &str) -> Option<u64> {
        self.parse(name, default, |raw| {
            raw.parse::<u64>()
                .map_err(|_| Error::invalid(name, format!("{raw:?}: expected a whole number")))
        })
    }

    pub(super) fn command(&mut self, name: &str, default: &str) -> Option<CommandLine> {
        self.parse(name, default, |raw| CommandLine::parse(raw, name))
    }
}

/// Parses the `host` input: hosts one per line or comma-separated, each
/// `[USER@]HOST[:PORT]`. A host named twice (the same address and port, whatever the user)
/// is refused: two runs on one host would race for its app.
pub(super) fn parse_hosts(raw: &str, default_port: u16) -> Result<Vec<SshTarget>> {
    let hosts = raw
        .split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| SshTarget::parse(item, default_port))
        .collect::<Result<Vec<_>>>()?;
    if hosts.is_empty() {
        return Err(Error::invalid("host", "no host given"));
    }
    let mut seen = std::collections::HashSet::new();
    for target in &hosts {
        if !seen.insert((target.addr.host.to_ascii_lowercase(), target.addr.port)) {
            return Err(Error::invalid(
                "host",
                format!("{} is named twice: each host once", target.addr),
            ));
        }
    }
    Ok(hosts)
}

/// Whether `text` may be passed to ssh as a user name or a jump host (never an option).
pub(super) fn ssh_word(text: &str, extra: &str) -> bool {
    !text.starts_with('-')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c) || extra.contains(c))
}
