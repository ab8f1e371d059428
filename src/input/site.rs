//! What `setup` writes into the app's nginx server block: its server names and the address
//! it listens on. Both reach nginx's configuration as they are, so each holds only what
//! nginx reads as one plain word.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

use super::{HostPort, parse_port};

/// nginx `server_name`s, written separated by spaces or commas: host names, a leading
/// `*.` or trailing `.*` wildcard, or `_` (no name; the catch-all when the block is the
/// listen address's default). Regular expressions are not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerNames(String);

impl ServerNames {
    /// The names as nginx takes them, separated by single spaces.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first name a request can ask for as it is (no wildcard, not `_`): the Host
    /// that reaches this server block.
    pub fn host_name(&self) -> Option<&str> {
        self.0
            .split(' ')
            .find(|name| *name != "_" && !name.starts_with("*.") && !name.ends_with(".*"))
    }

    /// The names of the first `server_name` directive of a server block's text (as setup
    /// writes it), if they are names this type takes.
    pub fn in_server_block(text: &str) -> Option<ServerNames> {
        text.lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix("server_name "))
            .and_then(|rest| rest.split(';').next())
            .and_then(|names| names.parse().ok())
    }
}

impl FromStr for ServerNames {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let names: Vec<&str> = s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            return Err(Error::invalid(
                "server-name",
                "expected at least one name (or _ for none)",
            ));
        }
        for name in &names {
            let bare = name
                .strip_prefix("*.")
                .or_else(|| name.strip_suffix(".*"))
                .unwrap_or(name);
            let plain = bare
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
            if bare.is_empty() || !plain || bare.starts_with(['-', '.']) {
                return Err(Error::invalid(
                    "server-name",
                    format!(
                        "{name:?} is not a host name (letters, digits, dots and dashes, a leading *. or trailing .* wildcard, or _)"
                    ),
                ));
            }
        }
        Ok(ServerNames(names.join(" ")))
    }
}

/// Parses the one host name a site is asked as (`--site-host`): a plain name, no wildcard,
/// not `_`.
pub fn parse_site_host(s: &str) -> Result<String> {
    let names: ServerNames = s.parse().map_err(|_| bad_site_host(s))?;
    match names.host_name() {
        Some(name) if name == names.as_str() => Ok(name.to_owned()),
        _ => Err(bad_site_host(s)),
    }
}

/// The error for a `--site-host` that is not one plain host name.
fn bad_site_host(s: &str) -> Error {
    Error::invalid(
        "site-host",
        format!(
            "{s:?}: expected one host name, as the site's server_name gives it (shop.example.com)"
        ),
    )
}

/// The address nginx's server block for the app listens on: a port (`80`), or an address
/// and a port (`127.0.0.1:8080`, `[::]:80`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen(String);

impl Listen {
    /// The address as nginx's `listen` takes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Listen {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.bytes().all(|b| b.is_ascii_digit()) {
            let port = parse_port(s).map_err(|_| {
                Error::invalid(
                    "listen",
                    format!("{s:?}: a port is a number from 1 to 65535"),
                )
            })?;
            return Ok(Listen(port.to_string()));
        }
        let address: HostPort = s.parse().map_err(|e: Error| {
            Error::invalid(
                "listen",
                format!("{s:?}: expected a port or ADDRESS:PORT ({e})"),
            )
        })?;
        Ok(Listen(address.to_string()))
    }
}

impl fmt::Display for ServerNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

serde_via_str!(ServerNames, Listen);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_blocks_host_name_is_its_first_plain_name() {
        let names = |s: &str| s.parse::<ServerNames>().unwrap();
        assert_eq!(names("_").host_name(), None);
        assert_eq!(
            names("*.example.com shop.example.com").host_name(),
            Some("shop.example.com")
        );
        assert_eq!(names("www.* _").host_name(), None);
        let block = "# comment\nserver {\n    listen 80;\n    server_name shop.example.com www.shop.example.com;\n}\n";
        assert_eq!(
            ServerNames::in_server_block(block).unwrap().host_name(),
            Some("shop.example.com")
        );
        assert_eq!(ServerNames::in_server_block("server { listen 80; }"), None);
        assert_eq!(
            parse_site_host("shop.example.com").unwrap(),
            "shop.example.com"
        );
        for bad in [
            "_",
            "*.example.com",
            "a.example b.example",
            "shop\r\nX: y",
            "",
        ] {
            assert!(parse_site_host(bad).is_err(), "{bad:?}");
        }
        assert_eq!(ServerNames::in_server_block("server_name ~^(.+)$;"), None);
    }

    #[test]
    fn server_names_are_plain_words_joined_by_spaces() {
        let names: ServerNames = "shop.example.com, www.shop.example.com *.shop.test"
            .parse()
            .unwrap();
        assert_eq!(
            names.as_str(),
            "shop.example.com www.shop.example.com *.shop.test"
        );
        assert_eq!("_".parse::<ServerNames>().unwrap().as_str(), "_");
        for bad in [
            "",
            " , ",
            "~^re$",
            "a;b",
            "shop.com{",
            "-x.com",
            "$host",
            "*.",
        ] {
            let err = bad.parse::<ServerNames>().unwrap_err();
            assert_eq!(err.exit_code(), crate::error::EXIT_BAD_INPUT, "{bad}");
        }
    }

    #[test]
    fn listen_takes_a_port_or_an_address_and_a_port() {
        assert_eq!("80".parse::<Listen>().unwrap().as_str(), "80");
        assert_eq!(
            "127.0.0.1:8080".parse::<Listen>().unwrap().as_str(),
            "127.0.0.1:8080"
        );
        assert_eq!("[::]:80".parse::<Listen>().unwrap().as_str(), "[::]:80");
        for bad in ["0", "70000", "", "80 ssl", "host:", "a;b:80", ":::80"] {
            assert!(bad.parse::<Listen>().is_err(), "{bad}");
        }
    }
}
