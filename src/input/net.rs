//! Network values: ports, the two slots' ports, `HOST:PORT` pairs, HTTP URLs, sets of
//! HTTP statuses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

use super::Slot;

/// A TCP port, 1 to 65535 (a port setting of its own, like the container's or the service
/// port; the two slots' ports are a [`SlotPorts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct Port(u16);

impl Port {
    /// The port number.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<u16> for Port {
    type Error = Error;

    fn try_from(port: u16) -> Result<Self> {
        if port == 0 {
            return Err(Error::invalid("port", "port 0 is not a usable port"));
        }
        Ok(Port(port))
    }
}

impl From<Port> for u16 {
    fn from(port: Port) -> u16 {
        port.0
    }
}

impl FromStr for Port {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        parse_port(s).map(Port)
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The TCP ports of the two slots on the host's loopback. They are never equal. In JSON:
/// `{"blue": 3001, "green": 3002}`, checked when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PortPair", into = "PortPair")]
pub struct SlotPorts {
    blue: u16,
    green: u16,
}

impl SlotPorts {
    /// Checks that the ports are usable and distinct.
    pub fn new(blue: u16, green: u16) -> Result<Self> {
        for (name, port) in [("--blue-port", blue), ("--green-port", green)] {
            if port == 0 {
                return Err(Error::invalid(name, "port 0 is not a usable port"));
            }
        }
        if blue == green {
            return Err(Error::invalid(
                "ports",
                format!("blue and green must use different ports (both are {blue})"),
            ));
        }
        Ok(SlotPorts { blue, green })
    }

    /// The port of `slot`.
    pub fn port(&self, slot: Slot) -> u16 {
        match slot {
            Slot::Blue => self.blue,
            Slot::Green => self.green,
        }
    }

    /// The slot that uses `port`, if any.
    pub fn slot_of(&self, port: u16) -> Option<Slot> {
        [Slot::Blue, Slot::Green]
            .into_iter()
            .find(|&slot| self.port(slot) == port)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PortPair {
    blue: u16,
    green: u16,
}

impl TryFrom<PortPair> for SlotPorts {
    type Error = Error;

    fn try_from(pair: PortPair) -> Result<Self> {
        SlotPorts::new(pair.blue, pair.green)
    }
}

impl From<SlotPorts> for PortPair {
    fn from(ports: SlotPorts) -> PortPair {
        PortPair {
            blue: ports.blue,
            green: ports.green,
        }
    }
}

/// Parses a TCP port, 1 to 65535.
pub fn parse_port(s: &str) -> Result<u16> {
    let bad = || Error::invalid("port", format!("{s:?}: expected a number from 1 to 65535"));
    match s.trim().parse::<u32>() {
        Ok(p @ 1..=65535) => Ok(p as u16),
        _ => Err(bad()),
    }
}

/// An `http://` or `https://` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(String);

impl HttpUrl {
    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it names its host by address (`127.0.0.1`, `[::1]`) or as `localhost`:
    /// a request to it carries no name nginx could pick a server block by.
    pub fn names_an_address(&self) -> bool {
        let (localhost, address) = self.host();
        localhost || address.is_some()
    }

    /// Whether it is asked on this host: its host `localhost` or a loopback address.
    pub fn is_loopback(&self) -> bool {
        let (localhost, address) = self.host();
        localhost || address.is_some_and(|ip| ip.is_loopback())
    }

    /// Whether its host is `localhost`, and the address it names, if it names one.
    fn host(&self) -> (bool, Option<std::net::IpAddr>) {
        let uri: ureq::http::Uri = self.0.parse().expect("checked when parsed");
        let host = uri.host().unwrap_or_default();
        let address = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok();
        (host.eq_ignore_ascii_case("localhost"), address)
    }

    /// The TCP port it is asked on: the one it names, else its scheme's (80 or 443).
    pub fn port(&self) -> u16 {
        let uri: ureq::http::Uri = self.0.parse().expect("checked when parsed");
        uri.port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            })
    }
}

impl FromStr for HttpUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::invalid("URL", format!("{s:?}: {reason}"));
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("must not contain spaces or control characters"));
        }
        let uri: ureq::http::Uri = s.parse().map_err(|_| bad("not a valid URL"))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => return Err(bad("must start with http:// or https://")),
        }
        match uri.host() {
            Some(h) if !h.is_empty() => {}
            _ => return Err(bad("has no host")),
        }
        Ok(HttpUrl(s.to_owned()))
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A `HOST:PORT` pair: a TCP dependency (`db:5432`, `[::1]:6379`) or an SSH target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Host name or address, without brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl HostPort {
    /// Parses `HOST:PORT`, or `HOST` alone when `default_port` is given. IPv6 addresses are
    /// written in brackets; a host never starts with a dash, so it cannot pass for an option.
    pub fn parse_with_default(s: &str, default_port: Option<u16>) -> Result<Self> {
        let bad = |reason: &str| Error::invalid("HOST:PORT", format!("{s:?}: {reason}"));
        let (host, port) = match s.strip_prefix('[') {
            Some(rest) => {
                let (host, after) = rest.split_once(']').ok_or_else(|| bad("unclosed ["))?;
                match after.strip_prefix(':') {
                    Some(p) => (host, Some(p)),
                    None if after.is_empty() => (host, None),
                    None => return Err(bad("unexpected text after ]")),
                }
            }
            None => match s.rsplit_once(':') {
                Some((host, _)) if host.contains(':') => {
                    return Err(bad("write IPv6 addresses in brackets, like [::1]:6379"));
                }
                Some((host, p)) => (host, Some(p)),
                None => (s, None),
            },
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        if host.starts_with('-')
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
        {
            return Err(bad("host has characters a host name cannot have"));
        }
        let port = match (port, default_port) {
            (Some(p), _) => {
                parse_port(p).map_err(|_| bad("port must be a number from 1 to 65535"))?
            }
            (None, Some(default)) => default,
            (None, None) => return Err(bad("missing :PORT")),
        };
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }
}

impl FromStr for HostPort {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        HostPort::parse_with_default(s, None)
    }
}

impl Serialize for HostPort {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A set of accepted HTTP status codes, written like `2xx`, `200,204` or `200-299,304`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet {
    ranges: Vec<(u16, u16)>,
    text: String,
}

impl StatusSet {
    /// Whether `status` is in the set.
    pub fn contains(&self, status: u16) -> bool {
        self.ranges
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&status))
    }

    /// The set as it was written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Default for StatusSet {
    /// Any 2xx status.
    fn default() -> Self {
        StatusSet {
            ranges: vec![(200, 299)],
            text: "2xx".into(),
        }
    }
}

impl FromStr for StatusSet {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "status set",
                format!("{s:?}: expected codes from 100 to 599 like 2xx, 200,204 or 200-299"),
            )
        };
        let code = |t: &str| match t.trim().parse::<u16>() {
            Ok(c @ 100..=599) => Ok(c),
            _ => Err(bad()),
        };
        let mut ranges = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            let range = if let Some(class) = part.strip_suffix("xx") {
                let c = code(&format!("{class}00"))?;
                (c, c + 99)
            } else if let Some((lo, hi)) = part.split_once('-') {
                let (lo, hi) = (code(lo)?, code(hi)?);
                if lo > hi {
                    return Err(bad());
                }
                (lo, hi)
            } else {
                let c = code(part)?;
                (c, c)
            };
            ranges.push(range);
        }
        Ok(StatusSet {
            ranges,
            text: s.trim().to_owned(),
        })
    }
}

serde_via_str!(HttpUrl, StatusSet);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_ports() {
        let p = SlotPorts::new(3001, 3002).unwrap();
        assert_eq!(p.port(Slot::Green), 3002);
        assert_eq!(p.slot_of(3001), Some(Slot::Blue));
        assert_eq!(p.slot_of(80), None);
        assert!(
            SlotPorts::new(3001, 3001)
                .unwrap_err()
                .to_string()
                .contains("different")
        );
        assert!(SlotPorts::new(0, 3001).is_err());
        assert_eq!(parse_port("65535").unwrap(), 65535);
        for bad in ["0", "65536", "-1", "http", ""] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#"{"blue":3001,"green":3002}"#);
        assert_eq!(serde_json::from_str::<SlotPorts>(&json).unwrap(), p);
        assert!(serde_json::from_str::<SlotPorts>(r#"{"blue":3001,"green":3001}"#).is_err());
        assert_eq!("8080".parse::<Port>().unwrap().get(), 8080);
        assert!(serde_json::from_str::<Port>("0").is_err());
    }

    #[test]
    fn urls() {
        assert!("http://127.0.0.1:3001/health".parse::<HttpUrl>().is_ok());
        assert!("https://example.com".parse::<HttpUrl>().is_ok());
        for bad in [
            "127.0.0.1:3001",
            "ftp://x/",
            "http://",
            "http://a b/",
            "http:///x",
        ] {
            assert!(bad.parse::<HttpUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn host_ports() {
        let hp: HostPort = "db.internal:5432".parse().unwrap();
        assert_eq!((hp.host.as_str(), hp.port), ("db.internal", 5432));
        let v6: HostPort = "[::1]:6379".parse().unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.to_string(), "[::1]:6379");
        for bad in ["db", ":5432", "db:0", "db:x", "::1:6379", "a;b:1"] {
            assert!(bad.parse::<HostPort>().is_err(), "{bad}");
        }
        let with_default = |s| HostPort::parse_with_default(s, Some(22)).map(|h| (h.host, h.port));
        assert_eq!(with_default("web1").unwrap(), ("web1".into(), 22));
        assert_eq!(with_default("web1:2222").unwrap(), ("web1".into(), 2222));
        assert_eq!(with_default("[::1]").unwrap(), ("::1".into(), 22));
        for bad in ["", "-oProxyCommand=x", "a b", "[::1", "x:0", "[::1]x"] {
            assert!(with_default(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_sets() {
        let d = StatusSet::default();
        assert!(d.contains(200) && d.contains(299) && !d.contains(301) && !d.contains(500));
        let s: StatusSet = "2xx,301,400-404".parse().unwrap();
        assert!(s.contains(204) && s.contains(301) && s.contains(403) && !s.contains(405));
        for bad in ["", "9xx", "600", "404-400", "ok"] {
            assert!(bad.parse::<StatusSet>().is_err(), "{bad}");
        }
    }
}
