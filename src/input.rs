//! Validated input types and their parsers.
//!
//! Every value a user can type is parsed here into a type that cannot hold a bad value, so
//! the rest of the library never re-checks. The parsers double as clap value parsers and
//! return messages that say what was wrong and what is accepted.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An application name: 1-40 characters of lowercase letters, digits and dashes, starting
/// with a letter or digit. It names containers, nginx upstreams and the state directory, so
/// it must be safe in all three.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AppName(String);

impl AppName {
    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AppName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::invalid("app name", format!("{s:?}: {reason}"));
        if s.is_empty() || s.len() > 40 {
            return Err(bad("must be 1 to 40 characters long"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad("use only lowercase letters, digits and dashes"));
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(bad("must not start or end with a dash"));
        }
        Ok(AppName(s.to_owned()))
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One of the two slots an app runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    /// The blue slot.
    Blue,
    /// The green slot.
    Green,
}

impl Slot {
    /// The other slot.
    pub fn other(self) -> Slot {
        match self {
            Slot::Blue => Slot::Green,
            Slot::Green => Slot::Blue,
        }
    }

    /// The slot's name, as used in files, labels and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::Blue => "blue",
            Slot::Green => "green",
        }
    }
}

impl FromStr for Slot {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "blue" => Ok(Slot::Blue),
            "green" => Ok(Slot::Green),
            _ => Err(Error::invalid(
                "slot",
                format!("{s:?}: expected blue or green"),
            )),
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a switch should go: a named slot, or back to the previous one recorded in state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchTarget {
    /// A named slot.
    Slot(Slot),
    /// The slot that was active before the current one.
    Previous,
}

impl FromStr for SwitchTarget {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "previous" => Ok(SwitchTarget::Previous),
            _ => s.parse().map(SwitchTarget::Slot).map_err(|_| {
                Error::invalid("target", format!("{s:?}: expected blue, green or previous"))
            }),
        }
    }
}

/// A version label (a commit SHA, a tag): 1-128 characters of ASCII letters, digits and
/// `. _ - + : @ /`. It is written into the nginx include and into state, so nothing that could
/// break either (spaces, quotes, newlines, `;`, braces) is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(String);

impl Version {
    /// The version as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Version {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "._-+:@/".contains(c);
        if s.is_empty() || s.len() > 128 || !s.chars().all(ok_char) {
            return Err(Error::invalid(
                "version",
                format!("{s:?}: use 1 to 128 of A-Z a-z 0-9 . _ - + : @ /"),
            ));
        }
        Ok(Version(s.to_owned()))
    }
}

/// A container image reference (`ghcr.io/acme/shop:1.2`, `shop@sha256:...`): 1-512
/// characters of ASCII letters, digits and `. _ - / : @ +`, starting with a letter or digit,
/// so it can never be taken for a command-line option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image(String);

impl Image {
    /// The reference as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Image {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "._-/:@+".contains(c);
        let starts_well = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if s.len() > 512 || !starts_well || !s.chars().all(ok_char) {
            return Err(Error::invalid(
                "image",
                format!("{s:?}: expected a reference like registry/name:tag"),
            ));
        }
        Ok(Image(s.to_owned()))
    }
}

/// The TCP ports of the two slots on the host's loopback. They are never equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Parses a TCP port, 1 to 65535.
pub fn parse_port(s: &str) -> Result<u16> {
    let bad = || Error::invalid("port", format!("{s:?}: expected a number from 1 to 65535"));
    match s.trim().parse::<u32>() {
        Ok(p @ 1..=65535) => Ok(p as u16),
        _ => Err(bad()),
    }
}

/// Parses a duration given in seconds: a plain number (`180`, `1.5`) or a number with a unit
/// (`500ms`, `2s`, `3m`, `1m 30s`).
pub fn parse_seconds(s: &str) -> Result<Duration> {
    parse_duration(s, Duration::from_secs_f64)
}

/// Parses a duration given in milliseconds: a plain number (`200`) or a number with a unit
/// (`200ms`, `2s`).
pub fn parse_millis(s: &str) -> Result<Duration> {
    parse_duration(s, |n| Duration::from_secs_f64(n / 1000.0))
}

fn parse_duration(s: &str, plain_unit: fn(f64) -> Duration) -> Result<Duration> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(Error::invalid(
            "duration",
            format!("{s:?}: must not be negative"),
        ));
    }
    if let Ok(n) = t.parse::<f64>() {
        if !n.is_finite() || n > 1e9 {
            return Err(Error::invalid("duration", format!("{s:?}: out of range")));
        }
        return Ok(plain_unit(n));
    }
    humantime::parse_duration(t).map_err(|e| {
        Error::invalid(
            "duration",
            format!("{s:?}: {e} (examples: 30, 500ms, 2s, 1m)"),
        )
    })
}

/// Parses a fraction from 0 to 1 (an error rate).
pub fn parse_fraction(s: &str) -> Result<f64> {
    match s.trim().parse::<f64>() {
        Ok(n) if (0.0..=1.0).contains(&n) => Ok(n),
        _ => Err(Error::invalid(
            "rate",
            format!("{s:?}: expected a number from 0 to 1 (0.01 means 1%)"),
        )),
    }
}

/// Parses a count that must be at least 1.
pub fn parse_positive_count(s: &str) -> Result<u32> {
    match s.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(Error::invalid(
            "count",
            format!("{s:?}: expected a whole number of at least 1"),
        )),
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

/// A `HOST:PORT` pair naming a TCP dependency (`db:5432`, `[::1]:6379`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Host name or address, without brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl FromStr for HostPort {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::invalid("HOST:PORT", format!("{s:?}: {reason}"));
        let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("missing :PORT"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        if host.contains(':') && !s.starts_with('[') {
            return Err(bad("write IPv6 addresses in brackets, like [::1]:6379"));
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
        {
            return Err(bad("host has characters a host name cannot have"));
        }
        let port = parse_port(port).map_err(|_| bad("port must be a number from 1 to 65535"))?;
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
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
pub struct StatusSet(Vec<(u16, u16)>);

impl StatusSet {
    /// Whether `status` is in the set.
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
    }
}

impl Default for StatusSet {
    /// Any 2xx status.
    fn default() -> Self {
        StatusSet(vec![(200, 299)])
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
        Ok(StatusSet(ranges))
    }
}

/// Serializes a validated string type as its string, and deserializes it through its
/// parser, so a value read from JSON is checked exactly like one typed on a command line.
macro_rules! serde_via_str {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_via_str!(AppName, Version, Image, HttpUrl);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names() {
        for good in ["shop", "a", "shop-api-2", &"a".repeat(40)] {
            assert!(good.parse::<AppName>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "Shop",
            "shop_api",
            "-shop",
            "shop-",
            "shop;rm",
            "a b",
            &"a".repeat(41),
        ] {
            let err = bad.parse::<AppName>().unwrap_err();
            assert_eq!(err.exit_code(), crate::error::EXIT_BAD_INPUT, "{bad}");
        }
    }

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
    }

    #[test]
    fn durations() {
        assert_eq!(parse_seconds("180").unwrap(), Duration::from_secs(180));
        assert_eq!(parse_seconds("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_seconds("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_millis("200").unwrap(), Duration::from_millis(200));
        assert_eq!(parse_millis("2s").unwrap(), Duration::from_secs(2));
        for bad in ["-1", "-5s", "soon", "1e99", "NaN", "inf"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
        assert!(
            parse_seconds("-1")
                .unwrap_err()
                .to_string()
                .contains("negative")
        );
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

    #[test]
    fn fractions_and_counts() {
        assert_eq!(parse_fraction("0.01").unwrap(), 0.01);
        assert!(parse_fraction("1.5").is_err() && parse_fraction("-0.1").is_err());
        assert_eq!(parse_positive_count("2").unwrap(), 2);
        assert!(parse_positive_count("0").is_err() && parse_positive_count("-1").is_err());
    }

    #[test]
    fn versions() {
        assert!("v1.2.3".parse::<Version>().is_ok());
        assert!("ghcr.io/acme/shop:abc123".parse::<Version>().is_ok());
        for bad in [
            "",
            "v1;",
            "a b",
            "v1\nserver x",
            "$(id)",
            "{",
            &"a".repeat(129),
        ] {
            assert!(bad.parse::<Version>().is_err(), "{bad}");
        }
    }

    #[test]
    fn images() {
        for good in [
            "shop",
            "ghcr.io/acme/shop:1.2",
            "localhost:5000/a/b@sha256:abc",
        ] {
            assert!(good.parse::<Image>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "--privileged",
            "-x",
            "shop:1 2",
            "shop;id",
            "$(id)",
            "a\nb",
        ] {
            assert!(bad.parse::<Image>().is_err(), "{bad}");
        }
    }

    #[test]
    fn switch_targets() {
        assert_eq!(
            "previous".parse::<SwitchTarget>().unwrap(),
            SwitchTarget::Previous
        );
        assert_eq!(
            "green".parse::<SwitchTarget>().unwrap(),
            SwitchTarget::Slot(Slot::Green)
        );
        assert!("purple".parse::<SwitchTarget>().is_err());
    }
}
