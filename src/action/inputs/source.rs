//! Reading the inputs one by one: each with its default when empty and its parser, every
//! problem collected (so all are reported at once), choices by the enums' own names; and
//! [`Value`], one input's text with the parsers the inputs' table uses.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use clap::ValueEnum;

use crate::action::fleet::SshTarget;
use crate::error::{Error, Result};
use crate::exec::CommandLine;
use crate::input::{parse_list, parse_time_limit, parse_wait};

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

    /// One of the names of `T`'s choices.
    pub(super) fn choice<T: ValueEnum>(&mut self, name: &str, default: &str) -> Option<T> {
        self.parse(name, default, |raw| Value { name, raw }.choice())
    }

    pub(super) fn boolean(&mut self, name: &str, default: &str) -> Option<bool> {
        self.parse(name, default, |raw| Value { name, raw }.boolean())
    }
}

/// One input's text as given, with its name for the wording of a problem: what a row of
/// the inputs' table parses.
pub(super) struct Value<'a> {
    pub(super) name: &'a str,
    pub(super) raw: &'a str,
}

impl Value<'_> {
    /// The value through its type's own parser.
    pub(super) fn parse<T: FromStr<Err = Error>>(&self) -> Result<T> {
        self.raw.parse()
    }

    /// One of the names of `T`'s choices.
    pub(super) fn choice<T: ValueEnum>(&self) -> Result<T> {
        T::from_str(self.raw, false).map_err(|_| {
            let names: Vec<String> = T::value_variants()
                .iter()
                .filter_map(|v| Some(v.to_possible_value()?.get_name().to_owned()))
                .collect();
            Error::invalid(
                self.name,
                format!("{:?}: expected one of {}", self.raw, names.join(", ")),
            )
        })
    }

    /// `true` or `false`.
    pub(super) fn boolean(&self) -> Result<bool> {
        match self.raw {
            "true" => Ok(true),
            "false" => Ok(false),
            raw => Err(Error::invalid(
                self.name,
                format!("{raw:?}: expected true or false"),
            )),
        }
    }

    /// A whole number.
    pub(super) fn number(&self) -> Result<u64> {
        self.raw.parse::<u64>().map_err(|_| {
            Error::invalid(
                self.name,
                format!("{:?}: expected a whole number", self.raw),
            )
        })
    }

    /// A whole number up to 2^32 - 1; `expected` says what the input counts.
    pub(super) fn count(&self, expected: &str) -> Result<u32> {
        self.raw
            .parse::<u32>()
            .map_err(|_| Error::invalid(self.name, format!("{:?}: {expected}", self.raw)))
    }

    /// A command line, split into words.
    pub(super) fn command(&self) -> Result<CommandLine> {
        CommandLine::parse(self.raw, self.name)
    }

    /// Words separated by commas or white space, each through `T`'s parser.
    pub(super) fn list<T: FromStr<Err = Error>>(&self) -> Result<Vec<T>> {
        parse_list(self.raw)
    }

    /// Seconds, up to an hour; 0 allowed.
    pub(super) fn wait(&self) -> Result<Duration> {
        parse_wait(self.raw)
    }

    /// Seconds, more than 0 and up to an hour.
    pub(super) fn time_limit(&self) -> Result<Duration> {
        parse_time_limit(self.raw)
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
