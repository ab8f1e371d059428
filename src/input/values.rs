//! Plain values: durations, fractions, counts, paths on the host, the health endpoint's
//! path, the switch mode.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The longest wait or time limit any setting accepts.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

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

/// Parses a wait in seconds (like [`parse_seconds`]): from 0 to an hour.
pub fn parse_wait(s: &str) -> Result<Duration> {
    let d = parse_seconds(s)?;
    if d > MAX_WAIT {
        return Err(Error::invalid(
            "duration",
            format!("{s:?}: at most an hour (3600 seconds)"),
        ));
    }
    Ok(d)
}

/// Parses a time limit in seconds (like [`parse_seconds`]): more than 0, at most an hour.
pub fn parse_time_limit(s: &str) -> Result<Duration> {
    let d = parse_wait(s)?;
    if d.is_zero() {
        return Err(Error::invalid(
            "duration",
            format!("{s:?}: a time limit must be more than 0"),
        ));
    }
    Ok(d)
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

/// A fraction from 0 to 1 (an error rate).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Fraction(f64);

impl Fraction {
    /// The value.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Fraction {
    type Error = Error;

    fn try_from(n: f64) -> Result<Self> {
        parse_fraction(&n.to_string()).map(Fraction)
    }
}

impl From<Fraction> for f64 {
    fn from(f: Fraction) -> f64 {
        f.0
    }
}

impl FromStr for Fraction {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        parse_fraction(s).map(Fraction)
    }
}

impl fmt::Display for Fraction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
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

/// An absolute path on the host. It is written into files and command lines, so it holds no
/// line break and no NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPath(String);

impl HostPath {
    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path.
    pub fn as_path(&self) -> &Path {
        Path::new(&self.0)
    }
}

impl FromStr for HostPath {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if !s.starts_with('/') || s.contains(['\n', '\r', '\0']) {
            return Err(Error::invalid(
                "path",
                format!("{s:?}: must be an absolute path on the host"),
            ));
        }
        Ok(HostPath(s.to_owned()))
    }
}

impl fmt::Display for HostPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The path of the app's health endpoint (`/health`): starts with `/`, holds no spaces or
/// control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthPath(String);

impl HealthPath {
    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for HealthPath {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if !s.starts_with('/') || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid(
                "health path",
                format!("{s:?}: must start with / and hold no spaces"),
            ));
        }
        Ok(HealthPath(s.to_owned()))
    }
}

serde_via_str!(HostPath, HealthPath);

/// How traffic moves from one slot to the other.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum SwitchMode {
    /// nftables when the host can do it (`nft` answers and is permitted), else reload;
    /// resolved on the host before the switch, and the choice is reported with its reason.
    Auto,
    /// Rewrite the upstream file and reload nginx. Works everywhere; a reload closes idle
    /// keep-alive client connections, so a request racing that close can fail.
    Reload,
    /// Keep nginx's configuration constant and move a DNAT rule (nftables) from the service
    /// port to the new slot. No reload, no dropped client connections; needs nftables and
    /// root.
    Nftables,
}

impl SwitchMode {
    /// The mode's name, as the `switch-mode` input spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SwitchMode::Auto => "auto",
            SwitchMode::Reload => "reload",
            SwitchMode::Nftables => "nftables",
        }
    }
}

impl std::fmt::Display for SwitchMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(parse_wait("0").unwrap(), Duration::ZERO);
        assert!(parse_wait("3601").is_err());
        assert!(parse_time_limit("0").is_err() && parse_time_limit("1").is_ok());
    }

    #[test]
    fn fractions_and_counts() {
        assert_eq!(parse_fraction("0.01").unwrap(), 0.01);
        assert!(parse_fraction("1.5").is_err() && parse_fraction("-0.1").is_err());
        assert_eq!(parse_positive_count("2").unwrap(), 2);
        assert!(parse_positive_count("0").is_err() && parse_positive_count("-1").is_err());
        assert!(serde_json::from_str::<Fraction>("1.5").is_err());
        assert_eq!(
            serde_json::from_str::<Fraction>("0.25").unwrap().get(),
            0.25
        );
    }

    #[test]
    fn host_paths_and_health_paths() {
        assert!("/etc/nginx/conf.d/x.conf".parse::<HostPath>().is_ok());
        for bad in ["relative/x", "", "/a\nb", "/a\0b"] {
            assert!(bad.parse::<HostPath>().is_err(), "{bad:?}");
        }
        assert!("/health".parse::<HealthPath>().is_ok());
        for bad in ["health", "/a b", "/a\tb"] {
            assert!(bad.parse::<HealthPath>().is_err(), "{bad:?}");
        }
    }
}
