//! Names a user gives: the app, a slot, a switch target, a version, an image.

use std::fmt;
use std::str::FromStr;

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

impl SwitchTarget {
    /// The target as typed: `blue`, `green` or `previous`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SwitchTarget::Slot(slot) => slot.as_str(),
            SwitchTarget::Previous => "previous",
        }
    }
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

    /// The name as written, without its tag or digest (`docker.io/library/shop:2` ->
    /// `docker.io/library/shop`).
    pub fn name(&self) -> &str {
        let name = self.0.split('@').next().unwrap_or(&self.0);
        let last = name.rfind('/').map_or(0, |i| i + 1);
        match name[last..].find(':') {
            Some(colon) => &name[..last + colon],
            None => name,
        }
    }

    /// The repository the reference names, without its tag or digest, as Docker lists it
    /// (`registry:5000/acme/shop:2` -> `registry:5000/acme/shop`; Docker Hub's
    /// `docker.io/library/shop:2` -> `shop`).
    pub fn repository(&self) -> &str {
        let name = self.name();
        let name = name.strip_prefix("docker.io/").unwrap_or(name);
        name.strip_prefix("library/").unwrap_or(name)
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

/// A compose service name (`web`, `api-2`): 1-64 ASCII letters, digits and `. _ -`,
/// starting with a letter or digit, so it can never be taken for an option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceName(String);

impl ServiceName {
    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ServiceName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
        let starts_well = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if s.len() > 64 || !starts_well || !s.chars().all(ok_char) {
            return Err(Error::invalid(
                "compose service",
                format!("{s:?}: use 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit"),
            ));
        }
        Ok(ServiceName(s.to_owned()))
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

serde_via_str!(AppName, Version, Image, ServiceName, SwitchTarget);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_images_repository_drops_its_tag_and_digest() {
        for (image, repository) in [
            ("shop", "shop"),
            ("shop:2", "shop"),
            ("ghcr.io/acme/shop:v1.2", "ghcr.io/acme/shop"),
            ("registry:5000/acme/shop:2", "registry:5000/acme/shop"),
            ("registry:5000/shop", "registry:5000/shop"),
            ("shop@sha256:abc", "shop"),
            ("docker.io/acme/shop:2", "acme/shop"),
            ("docker.io/library/shop:2", "shop"),
        ] {
            assert_eq!(image.parse::<Image>().unwrap().repository(), repository);
        }
    }

    #[test]
    fn service_names() {
        let list = crate::input::parse_list::<ServiceName>(" web, worker  api-2 ").unwrap();
        let names: Vec<&str> = list.iter().map(ServiceName::as_str).collect();
        assert_eq!(names, ["web", "worker", "api-2"]);
        assert!(
            crate::input::parse_list::<ServiceName>("")
                .unwrap()
                .is_empty()
        );
        for bad in ["-d", "web;rm", "$web", &"a".repeat(65)] {
            assert!(bad.parse::<ServiceName>().is_err(), "{bad}");
        }
    }

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
